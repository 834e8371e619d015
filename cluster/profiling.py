"""Profiling as Ray tasks, scheduled onto the hardware being profiled.

One task per (model, precision) profiles all batch sizes in order, so the
model is built and its quality measured once, and the batch size stops
growing as soon as a batch takes longer than the slowest latency target that
could use it (a bigger batch can only be slower).

The hardware's backend (planner.backends.registry.backend_for) decides the rest: the
task's Ray options (CPU tasks ask for `threads` CPUs, which is the replica size
the row records; GPU tasks one GPU of the catalog's Ray accelerator type; TPU
tasks one chip of the generation), the device check (a task that lands on a
node without the device refuses instead of recording CPU timings under a GPU's
name), and the harness that measures: torch (`run_profile_job`, below) or JAX
(cluster.tpu_profiling.run_jax_profile_job).
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

from cluster.profile_jobs import ProfileJob, ProfileOutcome
from cluster.tpu_profiling import run_jax_profile_job
from planner.backends.registry import backend_for
from planner.backends.torch_checks import check_torch_device
from planner.core.catalog import Catalog, HardwareType
from planner.core.errors import ClusterError, PlannerError
from planner.core.profiles import SkippedPoint
from planner.profiling.timing import TimingBudget

__all__ = ["ProfileJob", "ProfileOutcome", "run_profile_job", "run_profile_jobs"]


def run_profile_job(job: ProfileJob, hardware: HardwareType, budget: TimingBudget | None = None, *,
                    device: str | None = None) -> ProfileOutcome:
    """The body of one torch task; plain Python so it also runs without Ray (e.g. on a GPU box).

    `device`: the torch device to time on; by default the backend's (cpu, or cuda:0 on a GPU node).
    """
    from planner.profiling.provenance import local_provenance

    backend = backend_for(hardware)
    device = device or backend.profiling_device
    try:
        # First: a node that claims a GPU torch cannot see (a fake one, a broken driver) refuses
        # here with the reason, before anything asks CUDA for device properties.
        check_torch_device(hardware, device)
        # Cache: a stored row counts only if it was taken on this very device with this framework.
        prov = local_provenance(device, job.threads)
        hits = {r.batch_size: r for r in job.cached
                if r.device_fingerprint == prov.device_fingerprint and r.framework_version == prov.framework_version}
        missing = [b for b in job.batch_sizes if b not in hits]
        rows, skipped = (backend.profile_grid(job.model, job.precision, missing, hardware, device=device,
                                              threads=job.threads, budget=budget or TimingBudget(),
                                              max_batch_latency_ms=job.max_batch_latency_ms)
                         if missing else ([], []))
        cached_rows = [hits[b] for b in job.batch_sizes if b in hits]
        return ProfileOutcome(job, tuple(sorted(cached_rows + rows, key=lambda r: r.batch_size)), tuple(skipped),
                              cache_hits=len(cached_rows))
    except PlannerError as exc:
        skipped = tuple(SkippedPoint(job.model, job.hardware, job.precision, b, "error", str(exc))
                        for b in job.batch_sizes)
        return ProfileOutcome(job, (), skipped, error=str(exc))


# The task body of each harness (Backend.framework); a backend on a new framework adds its body here.
_JOB_BODIES: dict[str, Callable[[ProfileJob, HardwareType, TimingBudget | None], ProfileOutcome]] = {
    "torch": run_profile_job,
    "jax": run_jax_profile_job,
}


def _remote_job(job: ProfileJob, hardware: HardwareType, budget: TimingBudget | None):
    """A streaming task: first the node it started on (so the driver knows it is no longer waiting
    for room), then its outcome."""
    import dataclasses

    import ray

    node_id = ray.get_runtime_context().get_node_id()
    yield node_id
    outcome = _JOB_BODIES[backend_for(hardware).framework](job, hardware, budget)
    yield dataclasses.replace(outcome, node_id=node_id)


# How long a profiling run may wait with none of its tasks running (every one waiting for room)
# before it gives up, how often it looks, and how long Ray may take to start worker processes
# (seconds on a loaded 2-core machine) before a wait with resources free is reported too.
WAIT_TIMEOUT_S = 180.0
POLL_S = 2.0
STARTUP_GRACE_S = 15.0
REPORT_EVERY_S = 10.0


def run_profile_jobs(jobs: Sequence[ProfileJob], catalog: Catalog,
                     on_done: Callable[[ProfileOutcome], None] | None = None,
                     max_concurrent: int | None = None, budget: TimingBudget | None = None, *,
                     on_wait: Callable[[str], None] | None = None,
                     wait_timeout_s: float = WAIT_TIMEOUT_S, poll_s: float = POLL_S) -> list[ProfileOutcome]:
    """Run every job as a Ray task on matching hardware; returns outcomes as they finish.

    A job no node of the cluster could ever run (no node of its accelerator type, more CPUs
    than any node has) is refused before anything is submitted: ClusterError with what is
    missing, what the cluster has and the fix. While none of the run's tasks is running (all
    waiting for room), `on_wait` gets a line every few seconds saying what is missing and who
    holds it (default: a logged warning); after `wait_timeout_s` of that, the waiting tasks are
    cancelled and ClusterError says the same. A run whose own tasks are running never times out.

    `max_concurrent` caps tasks in flight: profiling tasks sharing a core would time each other.
    """
    import ray

    from cluster.placement import read_cluster

    if not ray.is_initialized():
        raise ClusterError("Ray is not initialised. To fix: call cluster.runtime.ensure_ray() first")
    from planner.core.inventory import cpu_only_label_selector

    on_wait = on_wait or _log_wait
    remote = ray.remote(_remote_job)
    selector = cpu_only_label_selector(ray.nodes())
    options = {(name, threads): backend_for(catalog.get(name)).profiling_task_options(catalog.get(name), threads,
                                                                                        selector)
               for name, threads in {(j.hardware, j.threads) for j in jobs}}
    _refuse_unplaceable(options, read_cluster())
    queue = list(jobs)
    pending: dict = {}        # generator -> job
    started: set = set()      # generators whose task has started on a node
    outcomes: list[ProfileOutcome] = []
    limit = max_concurrent or len(queue) or 1
    idle_since = time.monotonic()   # since when none of this run's tasks has been running
    last_report = 0.0
    while queue or pending:
        while queue and len(pending) < limit:
            job = queue.pop(0)
            task = remote.options(**options[(job.hardware, job.threads)], max_retries=1)
            pending[task.remote(job, catalog.get(job.hardware), budget)] = job
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=poll_s)
        now = time.monotonic()
        if not ready:
            if started & set(pending):
                idle_since = now
                continue
            message = _wait_message(list(pending.values()), options, now - idle_since)
            if message and now - idle_since >= wait_timeout_s:
                for generator in pending:
                    ray.cancel(generator, force=True)
                raise ClusterError(f"profiling gave up: {message}")
            if message and now - last_report >= REPORT_EVERY_S:
                on_wait(message)
                last_report = now
            continue
        generator = ready[0]
        job = pending[generator]
        idle_since = now
        try:
            value = ray.get(next(generator))
        except (ray.exceptions.RayError, StopIteration) as exc:
            pending.pop(generator)
            started.discard(generator)
            outcome = ProfileOutcome(job, (), tuple(SkippedPoint(job.model, job.hardware, job.precision, b, "error",
                                                                 f"task failed: {exc}") for b in job.batch_sizes),
                                     error=f"task failed: {exc}")
        else:
            if generator not in started:
                started.add(generator)   # the first value: the node it started on
                continue
            pending.pop(generator)
            started.discard(generator)
            outcome = value
        outcomes.append(outcome)
        if on_done is not None:
            on_done(outcome)
    return outcomes


def _refuse_unplaceable(options: dict, view) -> None:
    from cluster.placement import Request, describe_cluster, never_placeable

    for (hardware, threads), task_options in options.items():
        request = Request.of(task_options)
        why = never_placeable(request, view)
        if why:
            raise ClusterError(f"cannot profile {hardware} on this cluster: each task asks for {request.describe()}, "
                               f"but {why} (the cluster: {describe_cluster(view)}). To fix: profile on a cluster "
                               "with such a node (--address), choose --hardware among what this cluster has (or "
                               f"fewer --threads), or import measurements taken elsewhere (--import FILE --hardware "
                               f"{hardware})")


def _wait_message(waiting: Sequence[ProfileJob], options: dict, waited_s: float) -> str:
    """'' while it is too early to say; else why none of `waiting` has started, and what would free room."""
    from cluster.placement import Request, read_cluster, shortage

    view = read_cluster()
    tasks = f"{len(waiting)} profiling task{'' if len(waiting) == 1 else 's'} not started after {waited_s:.0f} s"
    for job in waiting:
        short = shortage(Request.of(options[(job.hardware, job.threads)]), view)
        if short:
            frees = (["`serve shutdown` (or delete those applications)"] if "Serve replicas" in short else []) \
                + (["let those tasks finish"] if "other Ray tasks" in short else [])
            return (f"{tasks}, waiting for {short}; to free them: {' or '.join(frees + ['profile on another cluster'])}"
                    " (--address)")
    if waited_s < STARTUP_GRACE_S:
        return ""
    return (f"{tasks}, though the cluster has room for them (Ray is still starting worker processes, or the "
            "machine is overloaded)")


def _log_wait(message: str) -> None:
    import logging

    logging.getLogger("planner").warning(message)
