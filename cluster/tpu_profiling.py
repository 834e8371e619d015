"""JAX profiling as Ray tasks, for TPU nodes (and JAX on CPU nodes).

The task body (`run_jax_profile_job`) is plain Python, like
cluster.profiling.run_profile_job: it profiles one (model, precision) at every
batch size with planner.backends.jax_tpu.profile_jax_grid (quality measured once,
the batch stops growing past the job's latency cap), and turns every failure into
`ProfileOutcome.error`, so nothing raises through Ray.

Placement is the backend's (planner.backends.jax_tpu.tpu_task_options): Ray's TPU
resource is "TPU" and counts chips, and `accelerator_type` picks the generation. A
task placed on a node that only *claims* TPUs (a misconfigured host, or a test's fake
node) is refused by planner.backends.jax_tpu.check_jax_sees, and the error says which
Ray node it ran on.
"""
from __future__ import annotations

from typing import Sequence

from cluster.profile_jobs import ProfileJob, ProfileOutcome
from planner.core.catalog import HardwareType
from planner.core.errors import InputError, PlannerError, UnsupportedPrecision
from planner.core.profiles import SkippedPoint
from planner.profiling.timing import TimingBudget


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
    """The body of one JAX profiling task; plain Python so it also runs without Ray."""
    from planner.backends.jax_tpu import SUPPORTED_MODELS, profile_jax_grid

    sizes = sorted(set(job.batch_sizes))
    try:
        if job.hardware != hardware.name:
            raise InputError("job.hardware", job.hardware, f"does not match the hardware passed ({hardware.name})",
                             "pass the catalog entry the job names")
        rows, skipped = profile_jax_grid(job.model, job.precision, sizes, hardware, budget or TimingBudget(),
                                         threads=job.threads, max_batch_latency_ms=job.max_batch_latency_ms)
        return ProfileOutcome(job, tuple(rows), tuple(skipped))
    except PlannerError as exc:
        if isinstance(exc, UnsupportedPrecision) or job.model not in SUPPORTED_MODELS:
            return ProfileOutcome(job, (), _skip(job, sizes, "unsupported", str(exc)), error=str(exc))
        error = f"{exc}{_ray_node_context()}"
        return ProfileOutcome(job, (), _skip(job, sizes, "error", error), error=error)
    except RuntimeError as exc:  # XLA runtime failures, e.g. a TPU held by another process
        error = f"JAX runtime error{_ray_node_context()}: {exc}"
        return ProfileOutcome(job, (), _skip(job, sizes, "error", error), error=error)
