"""A real browser for the UI tests: the system Chromium, installed with apt-get when missing.

Playwright drives it through `executable_path`, so no browser is downloaded by
`playwright install` (which needs the internet); only the distribution's package
is used. When Chromium is absent and cannot be installed, `ensure_chromium`
raises with what to do: the browser test then fails, it never silently skips.
"""
from __future__ import annotations

import os
import shutil
import subprocess

EXECUTABLES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
LAUNCH_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")
APT_TIMEOUT_S = 900


class ChromiumUnavailable(RuntimeError):
    """No Chromium on this machine, and it could not be installed."""


def find_chromium() -> str | None:
    for name in EXECUTABLES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _apt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["apt-get", *args], capture_output=True, text=True, timeout=APT_TIMEOUT_S,
                          env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def ensure_chromium() -> str:
    """The path of a Chromium executable, installing the `chromium` package with apt-get if needed."""
    found = find_chromium()
    if found:
        return found
    fix = "To fix: install Chromium (as root: apt-get update && apt-get install -y chromium) and run again"
    if not shutil.which("apt-get"):
        raise ChromiumUnavailable(f"Chromium is not installed and apt-get is not available. {fix}")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise ChromiumUnavailable(f"Chromium is not installed and installing it needs root. {fix}")
    for step in (("update",), ("install", "-y", "chromium")):
        try:
            done = _apt(*step)
        except subprocess.TimeoutExpired:
            raise ChromiumUnavailable(f"apt-get {' '.join(step)} took over {APT_TIMEOUT_S} s. {fix}") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip()[-800:]
            raise ChromiumUnavailable(f"apt-get {' '.join(step)} failed (exit {done.returncode}): {tail}. {fix}")
    found = find_chromium()
    if not found:
        raise ChromiumUnavailable(f"apt-get installed chromium but no executable named {', '.join(EXECUTABLES)} "
                                  f"is on PATH. {fix}")
    return found
