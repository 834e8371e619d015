"""The README as written: its CLI tour, its Python API snippet and its UI command, run verbatim.

README.md marks each block run here with an HTML comment right above its fence
(`<!-- tests/test_readme.py runs this block: NAME -->`). The blocks run in one temporary
folder that sees the repository's examples/ and profiles/ through links, in the README's
order: the CLI tour, then the Python snippet (its profile store already holds the tour's
points), then the UI. Every command must succeed; the tour's outputs are then checked.

Where this differs from a user's shell, and why:
- Serve's HTTP port. The README leaves Serve on its default, 8000; here each command that
  serves gets `--port <free port>` appended (argparse keeps the last value), and the Python
  snippet's `planner.deploy(plan)` gets `http_port=<free port>`, so a busy port 8000 never
  breaks the run.
- `planner deploy plan.json` serves until Ctrl-C (embedded Ray): it runs until Serve routes
  its workloads, then gets SIGINT, as from Ctrl-C, and must exit 0. `planner ui` serves until
  stopped: it runs until its health URL answers, then is terminated.
- Ray keeps its files in this session's RAY_TMPDIR (conftest.py), so the embedded Rays
  started here never join another Ray running on the machine.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO, free_port

README = REPO / "README.md"
MARKER = re.compile(r"<!-- tests/test_readme\.py runs this block: ([\w-]+) -->\n```\w*\n(.*?)\n```", re.S)
LINKED = ("examples", "profiles")    # what the README's commands read, relative to the repository's root
COMMAND_TIMEOUT_S = 300
SERVE_STARTUP_TIMEOUT_S = 180
EXIT_VERIFY_FAILED = 4               # planner.cli: a workload missed its target (the README says so)


def readme_blocks() -> dict[str, str]:
    blocks = dict(MARKER.findall(README.read_text()))
    assert {"cli-tour", "python-api", "ui"} <= set(blocks), f"README.md lost a marked block: {sorted(blocks)}"
    return blocks


def shell_commands(block: str) -> list[list[str]]:
    """The block's commands as argv lists: `\\` continuations joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [argv for line in joined.splitlines() if (argv := shlex.split(line, comments=True))]


def serves(argv: list[str]) -> bool:
    return argv[:2] in (["planner", "deploy"], ["planner", "ui"]) or argv[:2] == ["planner", "verify"] and "--deploy" in argv


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("readme")
    for name in LINKED:
        (folder / name).symlink_to(REPO / name, target_is_directory=True)
    return folder


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    # `planner` is this environment's console script; the checkout's code comes first on the path.
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """End a background command and everything it started (its own session), if still there."""
    for s in (sig, signal.SIGKILL):
        try:
            os.killpg(proc.pid, s)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=60)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_for(check, proc: subprocess.Popen, log: Path, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what}: exited with {proc.returncode} before serving:\n{log.read_text()[-3000:]}")
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"{what}: not serving after {timeout_s} s:\n{log.read_text()[-3000:]}")


def _start_logged(argv: list[str], log: Path, cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    """A README command that keeps serving, in its own session (so _stop ends its children), output to `log`."""
    with log.open("w") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    return proc, log


def _deploy_then_ctrl_c(argv: list[str], port: int, cwd: Path, env: dict[str, str]) -> str:
    """`planner deploy` on an embedded Ray: wait until Serve routes what it deployed, then Ctrl-C."""
    proc, log = _start_logged(argv, cwd / "deploy.log", cwd, env)
    try:
        def routed() -> bool:
            text = log.read_text()
            names = re.findall(r"deployed (\S+): POST", text)
            return ("press Ctrl-C" in text and bool(names) and set(names) <= set(
                requests.get(f"http://127.0.0.1:{port}/-/routes", timeout=5).json().values()))

        _wait_for(routed, proc, log, shlex.join(argv), SERVE_STARTUP_TIMEOUT_S)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    finally:
        _stop(proc)
    return log.read_text()


def _serve_ui_then_stop(argv: list[str], port: int, cwd: Path, env: dict[str, str]) -> None:
    proc, log = _start_logged(argv, cwd / "ui.log", cwd, env)
    try:
        _wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=5).ok,
                  proc, log, shlex.join(argv), SERVE_STARTUP_TIMEOUT_S)
    finally:
        _stop(proc)


def _run(argv: list[str], cwd: Path, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    output = proc.stdout + proc.stderr
    assert proc.returncode in ok and "Traceback" not in output, f"{shlex.join(argv)} exited {proc.returncode}:\n" \
                                                                  f"{output[-3000:]}"
    return output


def test_cli_tour_runs_as_written(workdir: Path, env: dict[str, str]) -> None:
    port = free_port()
    deploy_log = ""
    for argv in shell_commands(readme_blocks()["cli-tour"]):
        assert argv[0] == "planner", f"the tour runs only `planner` commands: {shlex.join(argv)}"
        if serves(argv):
            argv = [*argv, "--port", str(port)]
        started = time.monotonic()
        if argv[1] == "deploy":
            deploy_log = _deploy_then_ctrl_c(argv, port, workdir, env)
        else:
            _run(argv, workdir, env, ok=(0, EXIT_VERIFY_FAILED) if argv[1] == "verify" else (0,))
        print(f"{time.monotonic() - started:6.1f} s  {shlex.join(argv)}")  # shown with -s or -rP

    plan = json.loads((workdir / "plan.json").read_text())
    assert plan["status"] in ("OPTIMAL", "FEASIBLE") and not plan.get("infeasible")
    placed = {w["name"]: w["hardware"] for w in plan["workloads"]}
    local = {name for name, hardware in placed.items() if hardware == "cpu-x86"}
    assert placed["video-frames"] != "cpu-x86" and len(local) >= 3
    assert set(re.findall(r"deployed (\S+): POST", deploy_log)) == local
    verify = json.loads((workdir / "verify.json").read_text())
    assert {w["name"] for w in verify["workloads"]} == local
    assert all(w["errors"] == 0 and w["p50_ms"] > 0 for w in verify["workloads"])
    assert {p.suffix for p in (workdir / "reports").iterdir()} >= {".csv", ".json", ".parquet", ".xlsx", ".html",
                                                                   ".md"}
    assert (workdir / "schedule.json").is_file() and (workdir / "plan_rented.json").is_file()


def _run_python_block(name: str, workdir: Path, env: dict[str, str], replace: dict[str, str] | None = None) -> str:
    code = readme_blocks()[name]
    for old, new in (replace or {}).items():
        assert code.count(old) == 1, f"README block {name!r}: `{old}` changed; update how this test adapts it"
        code = code.replace(old, new)
    script = workdir / f"readme_{name.replace('-', '_')}.py"
    script.write_text(code)
    return _run([sys.executable, str(script)], workdir, env)


def test_python_api_snippet_runs_as_written(workdir: Path, env: dict[str, str]) -> None:
    # One process profiles, plans, deploys and verifies: the deploy grows the embedded Ray that
    # planner.profile started (one logical CPU per core) to the plan's CPU replicas.
    port = free_port()
    output = _run_python_block("python-api", workdir, env,
                               {"planner.deploy(plan)": f"planner.deploy(plan, http_port={port})"})
    assert re.search(r"^(OPTIMAL|FEASIBLE) ", output, re.M), output[-3000:]
    assert "('digits-classifier', " in output, output[-3000:]
    report = json.loads((workdir / "cost_report.json").read_text())
    assert {r["name"] for r in report["rows"] if r["scope"] == "workload"} >= {"digits-classifier", "video-frames"}


def test_python_api_names_are_the_functions_after_every_submodule_is_imported() -> None:
    """`planner.plan` & co. stay the API's functions: no submodule of the same name shadows them."""
    import importlib
    import pkgutil

    import planner
    from planner import api

    for module in pkgutil.walk_packages(planner.__path__, "planner."):
        if module.name != "planner.__main__":  # that one runs the CLI
            importlib.import_module(module.name)
    for name in ("profile", "plan", "deploy", "verify", "report", "schedule"):
        assert getattr(planner, name) is getattr(api, name), f"planner.{name} is {getattr(planner, name)!r}"


def test_ui_command_serves_as_written(workdir: Path, env: dict[str, str]) -> None:
    (argv,) = shell_commands(readme_blocks()["ui"])
    port = free_port()
    _serve_ui_then_stop([*argv, "--port", str(port)], port, workdir, env)
