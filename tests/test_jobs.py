"""`ray job submit`: a real head with the dashboard (`ray start --head`), a profile-and-plan job
submitted through JobSubmissionClient, its results read back.

The head runs on its own ports and temp dir beside the suite's embedded Ray, in its own
process group, and is stopped by killing that group: `ray stop` would kill every Ray on
the machine, the suite's included.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO, free_port

# What the job does not need uploaded (the working_dir upload is capped at 100 MiB by Ray).
EXCLUDES = [".venv", ".git", "out", "*.egg-info", ".whl", "__pycache__", ".pytest_cache"]


@pytest.fixture(scope="module")
def ray_head():
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           # The job's `python` is this environment's, as on a cluster whose nodes have the project installed.
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    dashboard = free_port()
    temp_dir = tempfile.mkdtemp(prefix="rayjob")  # short: Ray's socket paths must fit in 107 bytes
    cmd = [str(bin_dir / "ray"), "start", "--head", "--block", "--port", str(free_port()),
           "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard), "--include-dashboard", "true",
           "--dashboard-agent-listen-port", str(free_port()), "--metrics-export-port", str(free_port()),
           "--ray-client-server-port", str(free_port()), "--num-cpus", "2",
           "--object-store-memory", str(200 * 2**20), "--temp-dir", temp_dir, "--disable-usage-stats"]
    head = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(f"{address}/api/version", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start --head did not bring up a dashboard at {address} (exit {head.poll()})")
            time.sleep(1)
        yield address
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(head.pid, sig)
            except ProcessLookupError:
                break
            try:
                head.wait(timeout=20)
            except subprocess.TimeoutExpired:
                continue


def test_profile_and_plan_job_through_job_submission_client(ray_head, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    workloads = tmp_path / "workloads.yaml"
    workloads.write_text("inventory: {cpu-x86: 8}\nworkloads:\n"
                         "  - {name: digits, model: mlp_digits, qps: 200, p99_ms: 50, precisions: [fp32]}\n")
    profiles, plan = tmp_path / "profiles.csv", tmp_path / "plan.json"
    entrypoint = (f"python -m planner profile --models mlp_digits --precisions fp32 --batch-sizes 1,4 --quick "
                  f"--out {profiles} && python -m planner plan --workloads {workloads} --profiles {profiles} "
                  f"--out {plan}")
    client = JobSubmissionClient(ray_head)
    job = client.submit_job(entrypoint=entrypoint, runtime_env={"working_dir": str(REPO), "excludes": EXCLUDES})
    deadline = time.monotonic() + 240
    while (status := client.get_job_status(job)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
        assert time.monotonic() < deadline, f"job still {status} after 240 s"
        time.sleep(1)
    logs = client.get_job_logs(job)
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    # The job attached to the cluster it was submitted to (RAY_ADDRESS), not an embedded Ray of its own.
    words = " ".join(logs.split())  # the console wraps long lines
    assert "on cluster at" in words and "embedded local Ray" not in words
    measured = profiles.read_text().splitlines()
    assert len(measured) == 3 and ",measured," in measured[1]  # header + batch 1 and 4, measured
    chosen = json.loads(plan.read_text())["workloads"][0]
    assert chosen["name"] == "digits" and chosen["hardware"] == "cpu-x86" and chosen["replicas"] >= 1
