"""Starting or attaching to Ray with settings that behave on small machines and in CI.

See ../shared/reference/ray-notes.md: token auth and usage stats are turned off
for an embedded cluster, and the object store is kept small because each Ray
node otherwise takes 30% of RAM. An embedded Ray advertises the cores this
process may use, never more: Serve would otherwise place replicas on CPUs the
machine does not have, and every latency measured there would include the wait
for a core.
"""
from __future__ import annotations

import logging
import os

from planner.core.errors import ClusterError

EMBEDDED_OBJECT_STORE_BYTES = 200 * 2**20


def quiet_serve_logs() -> None:
    """Serve logs every application start at INFO on the driver; the CLI prints its own summary."""
    logging.getLogger("ray.serve").setLevel(logging.WARNING)


# Serve's request path. Applied to this process when the cluster package is imported (before
# ray.serve reads them: a handle picks its transport from the importing process's environment),
# and so to every process of an embedded Ray it starts; setdefault, so the user's own values win.
# Three of the settings Ray's RAY_SERVE_THROUGHPUT_OPTIMIZED=1 turns on, taken one by one: that
# switch also turns on direct ingress and runs the router on the caller's event loop, which breaks
# synchronous DeploymentHandle use. Measured on a pinned 1-vCPU replica with its model swapped out
# (python -m bench.serving_overhead --compare-serve-defaults): Serve's CPU per request falls from
# ~0.95 ms to ~0.53 ms. On your own cluster, export them before `ray start` on every node (README,
# "Running on your Ray cluster").
SERVE_FAST_PATH_ENV = {
    # Handles and the HTTP proxy talk to replicas over Serve's own gRPC channel instead of a Ray
    # actor call each (no ownership/reference-counting round trips per request).
    "RAY_SERVE_USE_GRPC_BY_DEFAULT": "1",
    # The replica runs user code on its request loop: no thread hop and future chaining per request.
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    # Access-log lines are flushed every 1,000 requests (and on every ERROR), not one write each.
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000",
}


def apply_serve_fast_path_env() -> None:
    for key, value in SERVE_FAST_PATH_ENV.items():
        os.environ.setdefault(key, value)


def _quiet_env() -> None:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Serve and Ray log every replica start to the driver; the CLI shows its own progress.
    os.environ.setdefault("RAY_SERVE_LOG_TO_STDERR", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    apply_serve_fast_path_env()


METRICS_INTERVAL_MS = 1000


_embedded_gcs: str | None = None  # GCS address of the embedded Ray this process started, if any
_embedded_cores: tuple[int, ...] | None = None  # the cores its processes may run on

# Ray starts its worker processes (tasks, actors, Serve replicas and proxy) at this niceness
# (ray_config_def.h `worker_niceness`, default 15; RAY_worker_niceness overrides it); the raylet
# and GCS stay at the niceness of the process that started them. Checked on 2.60: tasks, actors
# and replicas run at 15 (tests/test_waits.py reads a replica's).
RAY_WORKER_NICENESS_DEFAULT = 15


def ray_worker_niceness() -> int:
    try:
        return int(os.environ.get("RAY_worker_niceness", RAY_WORKER_NICENESS_DEFAULT))
    except ValueError:
        return RAY_WORKER_NICENESS_DEFAULT


def machine_cores() -> tuple[int, ...]:
    """The cores this process may run on (its CPU affinity: a container's or taskset's limit, not the host's)."""
    try:
        return tuple(sorted(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return tuple(range(os.cpu_count() or 1))


def embedded_cores() -> tuple[int, ...] | None:
    """The cores the processes of the embedded Ray this process started may run on; None if it is not
    connected to one (attached to a cluster, or no Ray)."""
    return _embedded_cores if _is_embedded_here() else None


def ensure_ray(address: str | None = None, num_cpus: int | None = None, *, cpus_needed: float | None = None,
               reserve_cores: int = 0) -> str:
    """Attach to the cluster at `address` (or RAY_ADDRESS), else start an embedded local Ray; returns a description.

    An embedded Ray advertises one logical CPU per core it may run on (machine_cores()), nothing more.
    `num_cpus`: advertise that many instead: tests and benchmarks that oversubscribe a small machine
    on purpose (and planner/demo.py, until it plans for the machine it runs on).
    `cpus_needed`: CPUs the caller's work needs (a deploy: its CPU replicas, fractions summed). An
    embedded Ray cannot give more than the machine's cores: ClusterError naming both. An embedded
    Ray this process started earlier with fewer logical CPUs is restarted while nothing is served on it.
    `reserve_cores`: keep that many of the machine's cores (the last ones) free of every Ray process,
    for the load generator (cluster.loadgen.reserved_cores()): Ray's processes inherit the CPU
    affinity of the process that starts them, so it is narrowed around ray.init and restored after.
    """
    global _embedded_gcs, _embedded_cores
    _quiet_env()
    import ray

    quiet_serve_logs()
    address = address or os.environ.get("RAY_ADDRESS") or None
    cores = machine_cores()
    ray_cores = cores[:-reserve_cores] if 0 < reserve_cores < len(cores) else cores
    if ray.is_initialized():
        if not (cpus_needed and _is_embedded_here() and ray.cluster_resources().get("CPU", 0) < cpus_needed - 1e-9):
            return "attached (already initialised)"
        _refuse_beyond_cores(cpus_needed, ray_cores, reserved=len(cores) - len(ray_cores))
        _make_room_for(cpus_needed)
        num_cpus = None  # restarted with the machine's cores, not what an earlier caller advertised
    elif not address and cpus_needed and not num_cpus:
        _refuse_beyond_cores(cpus_needed, ray_cores, reserved=len(cores) - len(ray_cores))
    try:
        if address:
            # Inside `ray job submit` the job supervisor sets RAY_ADDRESS: attach to that cluster,
            # never start a second, embedded one beside it.
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            return f"cluster at {address}"
        _start_embedded(num_cpus or len(ray_cores), ray_cores)
        _embedded_gcs = ray.get_runtime_context().gcs_address
        _embedded_cores = ray_cores
    except (ConnectionError, RuntimeError, ValueError) as exc:
        target = address or "an embedded local Ray"
        raise ClusterError(f"could not start or reach Ray ({target}): {exc}. To fix: check the address "
                           "(`ray status --address ...`), or omit --address to use an embedded local Ray") from None
    return f"embedded local Ray ({int(ray.cluster_resources().get('CPU', 0))} CPUs)"


def _start_embedded(num_cpus: int, cores: tuple[int, ...]) -> None:
    import ray

    own = machine_cores()
    narrowed = set(cores) != set(own)
    if narrowed:
        os.sched_setaffinity(0, cores)  # GCS, raylet and every worker inherit it
    try:
        ray.init(num_cpus=num_cpus, include_dashboard=False,
                 object_store_memory=EMBEDDED_OBJECT_STORE_BYTES, logging_level=logging.WARNING,
                 log_to_driver=False, configure_logging=True,
                 # Serve's metrics every second (default 10 s), so `planner verify` can read batch sizes.
                 _system_config={"metrics_report_interval_ms": METRICS_INTERVAL_MS})
    finally:
        if narrowed:
            os.sched_setaffinity(0, own)


def _refuse_beyond_cores(cpus_needed: float, cores: tuple[int, ...], reserved: int = 0) -> None:
    if cpus_needed > len(cores) + 1e-9:
        spare = f" ({reserved} more kept for the load generator)" if reserved else ""
        raise ClusterError(f"the plan's CPU replicas need {cpus_needed:g} vCPUs; this machine gives an embedded "
                           f"Ray {len(cores)} cores{spare}, and an embedded Ray advertises no CPU the machine does "
                           "not have. To fix: plan for this machine (inventory `cpu-x86: "
                           f"{len(cores)}` in the workloads file), or deploy on a cluster with the CPUs (--address)")


def _is_embedded_here() -> bool:
    import ray

    return (_embedded_gcs is not None and ray.is_initialized()
            and ray.get_runtime_context().gcs_address == _embedded_gcs)


def _make_room_for(cpus_needed: float) -> None:
    """The embedded Ray this process started (e.g. by a test, with fewer logical CPUs) has fewer CPUs than
    a deploy needs: Serve would wait forever for replicas it cannot place. Nothing is served on it
    yet, so it is stopped, and the caller starts it again with the machine's cores; once Serve runs
    there, stopping it would take deployments down, so that is refused instead."""
    import ray

    have = ray.cluster_resources().get("CPU", 0)
    if any(actor["name"] == "SERVE_CONTROLLER_ACTOR" for actor in ray.util.list_named_actors(all_namespaces=True)):
        raise ClusterError(f"the embedded Ray of this process has {have:g} logical CPUs and Serve already runs on "
                           f"it; this deploy needs {cpus_needed:g}. To fix: deploy from a new Python process "
                           "(`planner.deploy` starts an embedded Ray with the machine's cores), or pass address= "
                           "of a cluster with the CPUs")
    ray.shutdown()


def cluster_inventory(catalog, address: str | None = None):
    """The running cluster's hardware (planner.core.inventory.ClusterInventory), from Ray's node table.

    Attaches to `address` (or RAY_ADDRESS / "auto"); never starts an embedded Ray, since an
    embedded one would only describe this machine as if it were the cluster.
    """
    import ray

    from planner.core.inventory import inventory_from_nodes

    if not ray.is_initialized():
        try:
            ray.init(address=address or "auto", logging_level="ERROR", log_to_driver=False)
        except (ConnectionError, RuntimeError) as exc:
            raise ClusterError(f"--inventory cluster: no Ray cluster to read ({exc}). To fix: start one "
                               "(ray start --head) or pass --address, or use --inventory file|catalog") from None
    return inventory_from_nodes(ray.nodes(), catalog)


def shutdown_ray() -> None:
    """Disconnect; an embedded Ray stops with its Serve apps, a real cluster keeps serving.

    No serve.shutdown() here: on a cluster it would tear down the user's
    deployments, and on an embedded Ray, ray.shutdown() already ends them
    (calling both makes the raylet print a spurious graceful_shutdown error).
    """
    import ray

    if ray.is_initialized():
        ray.shutdown()
