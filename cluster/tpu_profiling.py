"""JAX profiling as Ray tasks, for TPU nodes (and JAX on CPU nodes).

The task body (`run_jax_profile_job`) is plain Python, like
cluster.profiling.run_profile_job: it profiles one (model, precision) at every
batch size with planner.backends.jax_tpu, measures quality once, stops growing the
batch past the job's latency cap, and turns every failure into
`ProfileOutcome.error`, so nothing raises through Ray.

Placement (`tpu_task_options`): Ray's TPU resource is "TPU" and counts chips;
a request must be 1, 2, 4 or 8 chips, and `accelerator_type` picks the TPU
generation (e.g. "TPU-V5LITEPOD" for v5e). A task placed on a node that only
*claims* TPUs (a misconfigured host, or a test's fake node) is refused by
planner.backends.jax_tpu.check_jax_sees, and the error says which Ray node it ran on.
"""
from __future__ import annotations

from typing import Sequence

from planner.core.catalog import HardwareType
from planner.core.errors import InputError, PlannerError, UnsupportedPrecision
from planner.profiling.timing import TimingBudget
from planner.core.profiles import ProfileRow, SkippedPoint
from cluster.profiling import ProfileJob, ProfileOutcome

TPU_CHIP_COUNTS = (1, 2, 4, 8)


def tpu_task_options(hardware: HardwareType, chips: int) -> dict:
    """Ray task options that land on a node with ``chips`` TPU chips of ``hardware``'s generation."""
    if hardware.kind != "tpu":
        raise InputError("hardware", hardware.name, f"is a {hardware.kind}, not a TPU",
                         "pass a catalog entry of kind tpu (e.g. tpu-v5e)")
    if not hardware.ray_accelerator_type:
        raise InputError(f"{hardware.name}.ray_accelerator_type", hardware.ray_accelerator_type,
                         "a TPU entry needs a Ray accelerator type to be placed",
                         "set ray_accelerator_type in the catalog, e.g. TPU-V5LITEPOD")
    if isinstance(chips, bool) or chips not in TPU_CHIP_COUNTS:
        raise InputError("chips", chips, "Ray TPU requests must be a whole host's share of chips",
                         f"use one of {', '.join(map(str, TPU_CHIP_COUNTS))}")
    return {"num_cpus": 1, "resources": {"TPU": chips}, "accelerator_type": hardware.ray_accelerator_type}


def _ray_node_context() -> str:
    """' (Ray node <id>, TPU ids [...])' inside a Ray worker, else ''; for error messages."""
    try:
        import ray

        if not ray.is_initialized():
            return ""
        context = ray.get_runtime_context()
        tpu_ids = context.get_accelerator_ids().get("TPU", [])
        return f" (Ray node {context.get_node_id()}, TPU ids {list(tpu_ids)})"
    except Exception:  # context is a nicety for the message; never mask the real error with it
        return ""


def _skip(job: ProfileJob, sizes: Sequence[int], status: str, reason: str) -> tuple[SkippedPoint, ...]:
    return tuple(SkippedPoint(job.model, job.hardware, job.precision, b, status, reason) for b in sizes)


def run_jax_profile_job(job: ProfileJob, hardware: HardwareType,
                        budget: TimingBudget | None = None) -> ProfileOutcome:
    """The body of one JAX profiling task; plain Python so it also runs without Ray.

    Batch sizes grow in order and stop (the rest ``pruned``) once a batch's p99 exceeds
    ``job.max_batch_latency_ms``, as planner.profiling.profiler.profile_grid does for torch.
    """
    from planner.backends.jax_tpu import SUPPORTED_MODELS, check_jax_sees, jax_quality_loss, profile_jax_point

    sizes = sorted(set(job.batch_sizes))
    try:
        if job.hardware != hardware.name:
            raise InputError("job.hardware", job.hardware, f"does not match the hardware passed ({hardware.name})",
                             "pass the catalog entry the job names")
        platform = check_jax_sees(hardware)  # refuse before spending time on quality
        quality = jax_quality_loss(job.precision, platform).quality_loss
        rows: list[ProfileRow] = []
        for i, batch_size in enumerate(sizes):
            row = profile_jax_point(job.model, job.precision, batch_size, hardware, budget or TimingBudget(),
                                    threads=job.threads, quality_loss=quality)
            rows.append(row)
            if job.max_batch_latency_ms is not None and row.latency_p99_ms > job.max_batch_latency_ms:
                reason = (f"batch {batch_size} p99 {row.latency_p99_ms:.1f} ms already exceeds the slowest "
                          f"target {job.max_batch_latency_ms:g} ms")
                return ProfileOutcome(job, tuple(rows), _skip(job, sizes[i + 1:], "pruned", reason))
        return ProfileOutcome(job, tuple(rows), ())
    except PlannerError as exc:
        if isinstance(exc, UnsupportedPrecision) or job.model not in SUPPORTED_MODELS:
            return ProfileOutcome(job, (), _skip(job, sizes, "unsupported", str(exc)), error=str(exc))
        error = f"{exc}{_ray_node_context()}"
        return ProfileOutcome(job, (), _skip(job, sizes, "error", error), error=error)
    except RuntimeError as exc:  # XLA runtime failures, e.g. a TPU held by another process
        error = f"JAX runtime error{_ray_node_context()}: {exc}"
        return ProfileOutcome(job, (), _skip(job, sizes, "error", error), error=error)
