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


def _remote_job(job: ProfileJob, hardware: HardwareType, budget: TimingBudget | None) -> ProfileOutcome:
    import dataclasses

    import ray

    outcome = _JOB_BODIES[backend_for(hardware).framework](job, hardware, budget)
    return dataclasses.replace(outcome, node_id=ray.get_runtime_context().get_node_id())


def run_profile_jobs(jobs: Sequence[ProfileJob], catalog: Catalog,
                     on_done: Callable[[ProfileOutcome], None] | None = None,
                     max_concurrent: int | None = None, budget: TimingBudget | None = None) -> list[ProfileOutcome]:
    """Run every job as a Ray task on matching hardware; returns outcomes as they finish.

    `max_concurrent` caps tasks in flight: an embedded Ray may advertise more
    logical CPUs than the machine has cores (so Serve replicas fit), and
    profiling tasks sharing a core would time each other.
    """
    import ray

    if not ray.is_initialized():
        raise ClusterError("Ray is not initialised. To fix: call cluster.runtime.ensure_ray() first")
    from planner.core.inventory import cpu_only_label_selector

    remote = ray.remote(_remote_job)
    selector = cpu_only_label_selector(ray.nodes())
    queue = list(jobs)
    pending: dict = {}
    outcomes: list[ProfileOutcome] = []
    limit = max_concurrent or len(queue) or 1
    while queue or pending:
        while queue and len(pending) < limit:
            job = queue.pop(0)
            hardware = catalog.get(job.hardware)
            options = backend_for(hardware).profiling_task_options(hardware, job.threads, selector)
            ref = remote.options(**options, max_retries=1).remote(job, hardware, budget)
            pending[ref] = job
        ready, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(ready[0])
        try:
            outcome = ray.get(ready[0])
        except ray.exceptions.RayError as exc:
            outcome = ProfileOutcome(job, (), tuple(SkippedPoint(job.model, job.hardware, job.precision, b, "error",
                                                                 f"task failed: {exc}") for b in job.batch_sizes),
                                     error=f"task failed: {exc}")
        outcomes.append(outcome)
        if on_done is not None:
            on_done(outcome)
    return outcomes
