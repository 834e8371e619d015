"""A real browser for the UI tests: the system Chromium, which `make test` installs.

Playwright drives it through `executable_path`, so no browser is downloaded by
`playwright install` (which needs the internet); only the distribution's package
is used, installed by the Makefile's setup step (apt-get, once). A test never
installs anything: when Chromium is missing, `find_chromium` raises with the
setup step to run, and the browser test fails; it never silently skips.
"""
from __future__ import annotations

import shutil

EXECUTABLES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
LAUNCH_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")


class ChromiumUnavailable(RuntimeError):
    """No Chromium on this machine: the setup step has not run."""


def find_chromium() -> str:
    """The path of a Chromium executable on PATH; ChromiumUnavailable names the setup step if there is none."""
    for name in EXECUTABLES:
        path = shutil.which(name)
        if path:
            return path
    raise ChromiumUnavailable(
        f"no Chromium on PATH (looked for {', '.join(EXECUTABLES)}). To fix: run `make chromium` (as root, or "
        "with passwordless sudo: it runs apt-get install chromium), or `make test`, which runs it first")
