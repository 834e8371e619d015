"""The planning UI end to end in a real headless Chromium: `planner ui` as a user starts it.

Main path: load the example workloads -> plan -> the plan table has one row per
served workload -> download the cost reports, which must parse. A screenshot of
every page is saved under the test's tmp_path; with UPDATE_SCREENSHOTS=1 they
also replace docs/ui/<page>.png (the README's pictures). Nothing here starts Ray.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.browser import LAUNCH_ARGS, ChromiumUnavailable, find_chromium
from tests.conftest import REPO, free_port

STARTUP_TIMEOUT_S = 60
STEP_TIMEOUT_MS = 60_000
VIEWPORT = {"width": 1400, "height": 1800}
DOCS_SCREENSHOTS = REPO / "docs" / "ui"


@pytest.fixture(scope="module")
def chromium() -> str:
    try:
        return find_chromium()
    except ChromiumUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"`planner ui` exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"`planner ui` did not answer on {url} within {STARTUP_TIMEOUT_S} s:\n{log.read_text()[-2000:]}")


@pytest.fixture
def ui_url(tmp_path: Path):
    port = free_port()
    log = tmp_path / "planner-ui.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "planner", "ui", "--port", str(port)], cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _settled(page) -> None:
    """Wait for Streamlit's script run to finish (its "running" indicator gone), then for the paint."""
    page.wait_for_timeout(200)  # a click's rerun may not have started yet
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=STEP_TIMEOUT_MS)
    page.locator('[data-testid="stSkeleton"]').first.wait_for(state="detached", timeout=STEP_TIMEOUT_MS)
    page.wait_for_timeout(500)  # charts and the data editor draw after the run


def _screenshot(page, folder: Path, name: str) -> None:
    _settled(page)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOTS / path.name)


def test_load_plan_and_download_reports_in_a_real_browser(chromium: str, ui_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    shots = tmp_path / "screenshots"
    shots.mkdir()
    served = [w["name"] for w in yaml.safe_load((REPO / "examples" / "workloads.yaml").read_text())["workloads"]
              if w["kind"] != "training"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=list(LAUNCH_ARGS))
        try:
            page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
            page.set_default_timeout(STEP_TIMEOUT_MS)
            page.goto(ui_url)

            # 1. Workloads: load the example; the loader validates it.
            page.get_by_role("button", name="Load example workloads").click()
            expect(page.get_by_text("Valid: 5 workloads")).to_be_visible()
            expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()  # the table editor
            _screenshot(page, shots, "workloads")

            # 2. Profiles: the committed measurements and estimates, charted.
            page.get_by_role("tab", name="Profiles").click()
            expect(page.get_by_text("estimated rows")).to_be_visible()
            expect(page.locator('[data-testid="stVegaLiteChart"]').first).to_be_visible()
            _screenshot(page, shots, "profiles")

            # 3. Plan: one table row per served workload.
            page.get_by_role("tab", name="Plan").click()
            page.get_by_role("button", name="Plan", exact=True).click()
            table = page.locator('[data-testid="stTable"]').first
            expect(table).to_be_visible()
            rows = table.locator("tbody tr")
            expect(rows).to_have_count(len(served))
            assert [rows.nth(i).locator("th").inner_text().strip() for i in range(len(served))] == served
            expect(page.get_by_text("OPTIMAL").first).to_be_visible()
            _screenshot(page, shots, "plan")

            # 4. Deploy and verify: shown, never pressed (it would start Ray).
            page.get_by_role("tab", name="Deploy and verify").click()
            expect(page.get_by_role("button", name="Deploy and verify")).to_be_visible()
            _screenshot(page, shots, "deploy")

            # 5. Reports: every format downloads; the text ones parse.
            page.get_by_role("tab", name="Reports").click()
            expect(page.get_by_role("button", name="Download csv")).to_be_visible()
            _screenshot(page, shots, "reports")
            downloaded = {}
            for fmt in ("csv", "json"):
                with page.expect_download() as info:
                    page.get_by_role("button", name=f"Download {fmt}").click()
                path = tmp_path / info.value.suggested_filename
                info.value.save_as(path)
                downloaded[fmt] = path
        finally:
            browser.close()

    assert downloaded["csv"].name == "cost_report.csv" and downloaded["csv"].stat().st_size > 0
    table_rows = list(csv.DictReader(io.StringIO(downloaded["csv"].read_text())))
    assert {r["name"] for r in table_rows if r["scope"] == "workload"} == set(served)
    assert json.loads(downloaded["json"].read_text())
