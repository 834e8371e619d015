"""No silent waits (real local Ray): what the cluster cannot place is refused or reported within seconds,
and verification records where its load generator ran."""
from __future__ import annotations

import json
import os
import time

import pytest

from planner import api
from planner.core.errors import ClusterError
from planner.core.profiles import ProfileRow
from planner.core.workloads import Workload, WorkloadSet
from tests.conftest import SESSION_SERVE_PORT

PORT = SESSION_SERVE_PORT


def _plan(name: str, replicas: int, catalog):
    rows = [ProfileRow("mlp_digits", "cpu-x86", "fp32", b, 0.2 * b, 0.5 * b, 2000.0 * b, 0.01, 0.001, 0.0,
                       "imported", source_detail="hand-written test rows") for b in (1, 4)]
    workloads = WorkloadSet((Workload(name, "mlp_digits", "online", ("fp32",), 0.0, replicas, qps=20, p99_ms=500),),
                            serving_overhead_ms=10.0, cpu_sharing=False)  # whole vCPUs: the counts are the test
    plan = api.plan(workloads, rows, catalog=catalog)
    assert plan.ok and plan.workload(name).chosen.replicas == replicas
    return plan


def test_profiling_on_an_accelerator_the_cluster_lacks_is_refused_at_once(ray_local):
    started = time.monotonic()
    with pytest.raises(ClusterError) as refused:
        api.profile(["mlp_digits"], precisions=["fp32"], batch_sizes=[1], hardware="h100")
    assert time.monotonic() - started < 10
    message = str(refused.value)
    assert message.startswith("cannot profile h100 on this cluster")
    assert "no node has accelerator type H100" in message and "To fix:" in message and "--import" in message


def test_a_deploy_needing_more_cpus_than_the_machine_has_names_both(ray_local, catalog):
    import ray

    from cluster.runtime import machine_cores

    cores = len(machine_cores())
    replicas = int(max(ray.cluster_resources()["CPU"], cores)) + 1
    with pytest.raises(ClusterError, match=f"need {replicas} vCPUs; this machine gives an embedded Ray {cores} cores"):
        api.deploy(_plan("too-big", replicas, catalog), catalog=catalog, http_port=PORT)


def test_verify_records_where_the_load_generator_ran(ray_local, catalog, tmp_path):
    from ray import serve
    from ray.serve.context import _get_global_client

    from cluster.runtime import embedded_cores, machine_cores
    from planner.deployment.verification import read_verification, write_verification

    plan = _plan("loaded", 1, catalog)
    deployment = api.deploy(plan, catalog=catalog, http_port=PORT)
    try:
        result = api.verify(plan, deployment, duration_s=1.5, warmup_requests=2)
        details = _get_global_client().get_serve_details()["applications"]["loaded"]["deployments"]["loaded"]
        replica_niceness = os.getpriority(os.PRIO_PROCESS, details["replicas"][0]["pid"])
    finally:
        serve.delete("loaded")
    (row,) = result.workloads
    assert row.errors == 0 and row.requests == 30
    site = result.load_generator
    if len(machine_cores()) >= 2:
        # Its own process, on one core, as nice as Ray makes the replicas it measures.
        assert site.process == "own process" and site.pid != os.getpid() and site.pinned
        assert len(site.cores) == 1 and site.cluster_cores == embedded_cores()
        assert site.niceness == replica_niceness
        # Its own CPU per request, and what else ran on this machine meanwhile, are measured (/proc).
        assert site.cpu_ms_per_request > 0 and site.other_vcpus is not None and site.other_vcpus >= 0
    else:
        assert site.process == "verifying process" and not site.pinned
    written = read_verification(write_verification(tmp_path / "verify.json", result))
    assert written["load_generator"] == json.loads(json.dumps(site.as_json()))


RESERVED_CORE_CHECK = """
import json, os, ray
from cluster.loadgen import reserved_cores
from cluster.runtime import embedded_cores, ensure_ray, machine_cores
ensure_ray(reserve_cores=reserved_cores())

@ray.remote(num_cpus=1)
def where():
    return sorted(os.sched_getaffinity(0)), os.nice(0)

task_cores, niceness = ray.get(where.remote(), timeout=60)
print(json.dumps({"machine": machine_cores(), "ray": embedded_cores(), "cpus": ray.cluster_resources()["CPU"],
                  "task": task_cores, "niceness": niceness, "driver": sorted(os.sched_getaffinity(0))}))
"""


def test_a_reserved_core_is_kept_free_of_every_ray_process():
    """ensure_ray(reserve_cores=...): Ray's processes inherit the affinity they are started with.

    In a process of its own with its own Ray folder, so the session's Ray is left as it is.
    """
    import shutil
    import subprocess
    import sys
    import tempfile

    from cluster.loadgen import reserved_cores
    from cluster.runtime import machine_cores
    from tests.conftest import REPO

    if reserved_cores() == 0:
        pytest.skip("one core: nothing to reserve")
    ray_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")   # short: Ray's socket paths must fit in 107 bytes
    env = {**os.environ, "RAY_TMPDIR": ray_dir, "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    try:
        proc = subprocess.run([sys.executable, "-c", RESERVED_CORE_CHECK], env=env, capture_output=True, text=True,
                              timeout=180, cwd=REPO)
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    cores = list(machine_cores())
    assert seen["machine"] == cores and seen["ray"] == cores[:-1] and seen["cpus"] == len(cores) - 1
    assert seen["task"] == cores[:-1] and seen["niceness"] == 15   # a worker: off the reserved core, at nice 15
    assert seen["driver"] == cores                                 # the starting process got its cores back


# The tests below share one application holding every free CPU (until the module ends).
@pytest.fixture(scope="module")
def cpu_holder(ray_local):
    """A Serve application holding every CPU the session's Ray has free: another team's replicas, say."""
    import ray
    from ray import serve

    free = ray.available_resources().get("CPU", 0.0)
    assert free >= 1

    @serve.deployment(ray_actor_options={"num_cpus": free})
    class Holder:
        def __call__(self, request) -> str:
            return "held"

    serve.start(http_options={"host": "127.0.0.1", "port": PORT})
    serve.run(Holder.bind(), name="cpu-holder", route_prefix="/cpu-holder")
    yield free
    serve.delete("cpu-holder")


def test_profiling_behind_serve_replicas_says_who_holds_the_cpus_then_gives_up(cpu_holder):
    lines: list[str] = []
    started = time.monotonic()
    with pytest.raises(ClusterError, match="profiling gave up") as gave_up:
        api.profile(["mlp_digits"], precisions=["fp32"], batch_sizes=[1], on_wait=lines.append, wait_timeout_s=4)
    assert time.monotonic() - started < 30
    assert lines, "nothing was said while waiting"
    assert "waiting for 1 CPU" in lines[0] and "held by Serve replicas of application cpu-holder" in lines[0]
    assert "serve shutdown" in lines[0] and "cpu-holder" in str(gave_up.value)


def test_a_deploy_with_no_room_is_refused_naming_the_workload_and_who_holds_the_cpus(cpu_holder, catalog):
    from ray import serve

    with pytest.raises(ClusterError) as refused:
        api.deploy(_plan("late", 1, catalog), catalog=catalog, http_port=PORT)
    message = str(refused.value)
    assert "workload 'late' (1 replica x 1 CPU) does not fit" in message
    assert f"all {cpu_holder:g} CPUs of the cluster are held by Serve replicas of application cpu-holder" in message
    assert "late" not in serve.status().applications   # refused before Serve started anything


def test_replicas_that_cannot_start_are_reported_with_serves_status(cpu_holder, catalog):
    """Past the check (another deployer took the room meanwhile): the wait says what Serve reports, then ends."""
    from ray import serve
    from ray.serve import RunTarget, run_many

    from cluster.serving import ModelServer, deployment_options, wait_until_running

    plan = _plan("squeezed", 1, catalog)
    # A replica never placed cannot shut down gracefully: Serve waits this long before killing it.
    options = {**deployment_options(plan.workloads[0], catalog), "graceful_shutdown_timeout_s": 0.5}
    app = ModelServer.options(**options).bind("mlp_digits", "fp32", 1)
    run_many([RunTarget(app, name="squeezed", route_prefix="/squeezed")], wait_for_applications_running=False)
    lines: list[str] = []
    try:
        with pytest.raises(ClusterError, match="gave up after .* waiting for Serve to run squeezed") as gave_up:
            wait_until_running(["squeezed"], on_status=lines.append, timeout_s=4, report_after_s=0)
        assert lines and lines[0].startswith("waiting 0 s for Serve to run squeezed: squeezed: DEPLOYING")
        message = str(gave_up.value)
        assert "squeezed: DEPLOYING, 0 of 1 replicas running (1 starting)" in message
        assert "free now: 0 of" in message and "serve status" in message
    finally:
        serve.delete("squeezed")
