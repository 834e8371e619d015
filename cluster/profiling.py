"""Profiling as Ray tasks, scheduled onto the hardware being profiled.

One task per (model, precision) profiles all batch sizes in order, so the
model is built and its quality measured once, and the batch size stops
growing as soon as a batch takes longer than the slowest latency target that
could use it (a bigger batch can only be slower).

CPU tasks ask for `threads` CPUs, which is the replica size the row records;
GPU tasks ask for one GPU of the catalog's Ray accelerator type. A task that
lands on a node without the device refuses (planner.profiling.profiler.check_device_matches)
instead of recording CPU timings under a GPU's name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from planner.core.catalog import Catalog, HardwareType
from planner.core.errors import ClusterError, PlannerError
from planner.core.profiles import ProfileRow, SkippedPoint
from planner.profiling.timing import TimingBudget


@dataclass(frozen=True)
class ProfileJob:
    model: str
    precision: str
    hardware: str
    batch_sizes: tuple[int, ...]
    threads: int = 1
    max_batch_latency_ms: float | None = None   # stop growing the batch past this
    cached: tuple[ProfileRow, ...] = ()         # stored rows of this point on any device (the cache)


@dataclass(frozen=True)
class ProfileOutcome:
    job: ProfileJob
    rows: tuple[ProfileRow, ...]
    skipped: tuple[SkippedPoint, ...]
    error: str = ""
    cache_hits: int = 0
    node_id: str = ""      # the Ray node it ran on ('' outside Ray): where the placement put it

    @property
    def skipped_batch_sizes(self) -> tuple[int, ...]:
        return tuple(p.batch_size for p in self.skipped)


def run_profile_job(job: ProfileJob, hardware: HardwareType, device: str,
                    budget: TimingBudget | None = None) -> ProfileOutcome:
    """The body of one task; plain Python so it also runs without Ray (e.g. on a GPU box)."""
    from planner.models import get_model
    from planner.profiling.profiler import check_device_matches, profile_grid
    from planner.profiling.provenance import local_provenance

    try:
        # First: a node that claims a GPU torch cannot see (a fake one, a broken driver) refuses
        # here with the reason, before anything asks CUDA for device properties.
        check_device_matches(hardware, device)
        spec = get_model(job.model)
        # Cache: a stored row counts only if it was taken on this very device with this framework.
        prov = local_provenance(device, job.threads)
        hits = {r.batch_size: r for r in job.cached
                if r.device_fingerprint == prov.device_fingerprint and r.framework_version == prov.framework_version}
        missing = [b for b in job.batch_sizes if b not in hits]
        rows, skipped = (profile_grid(spec, [job.precision], missing, hardware, device=device, threads=job.threads,
                                      budget=budget or TimingBudget(), max_batch_latency_ms=job.max_batch_latency_ms)
                         if missing else ([], []))
        cached_rows = [hits[b] for b in job.batch_sizes if b in hits]
        return ProfileOutcome(job, tuple(sorted(cached_rows + rows, key=lambda r: r.batch_size)), tuple(skipped),
                              cache_hits=len(cached_rows))
    except PlannerError as exc:
        skipped = tuple(SkippedPoint(job.model, job.hardware, job.precision, b, "error", str(exc))
                        for b in job.batch_sizes)
        return ProfileOutcome(job, (), skipped, error=str(exc))


def _task_options(hardware: HardwareType, threads: int, cpu_label_selector: dict[str, str] | None = None) -> dict:
    """A whole GPU of the planned type, one TPU chip of its generation, or CPUs off accelerator nodes."""
    if hardware.kind == "cpu":
        options: dict = {"num_cpus": threads, "num_gpus": 0}
        if cpu_label_selector:
            options["label_selector"] = dict(cpu_label_selector)
        return options
    if hardware.kind == "gpu":
        return {"num_cpus": 1, "num_gpus": 1, "accelerator_type": hardware.ray_accelerator_type}
    from cluster.tpu_profiling import tpu_task_options
    return tpu_task_options(hardware, 1)


def _remote_job(job: ProfileJob, hardware: HardwareType, budget: TimingBudget | None) -> ProfileOutcome:
    import dataclasses

    import ray

    if hardware.kind == "tpu":
        from cluster.tpu_profiling import run_jax_profile_job
        outcome = run_jax_profile_job(job, hardware, budget)
    else:
        outcome = run_profile_job(job, hardware, "cpu" if hardware.kind == "cpu" else "cuda:0", budget)
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
            options = _task_options(hardware, job.threads, selector)
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
