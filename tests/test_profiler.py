"""The profiler core (no Ray) and its Ray task wrapper on a real local Ray."""
from __future__ import annotations

import itertools

import pytest

from planner.core.errors import PlannerError
from planner.models import get_model
from planner.profiling.profiler import QUICK_BUDGET, TimingBudget, profile_point, time_callable


def test_timing_stops_when_budget_is_met_with_an_injected_clock():
    ticks = itertools.count(step=0.01)  # every clock read advances 10 ms
    calls = []
    budget = TimingBudget(warmup_iters=2, warmup_s=0.0, window_iters=5, window_s=0.0, stable_windows=3,
                          max_seconds=10.0)
    sample = time_callable(lambda: calls.append(1), budget, clock=lambda: next(ticks))
    # Every timed call spans one tick (10 ms), so the first three windows already agree: stable.
    assert sample.stable and len(sample.window_p50_ms) == 3
    assert len(sample.latencies_ms) == 15
    assert all(lat == pytest.approx(10.0) for lat in sample.latencies_ms)
    assert sample.cv == pytest.approx(0.0, abs=1e-9)


def test_unstable_timings_run_until_the_budget_and_say_so():
    ticks = itertools.count()
    state = {"t": 0.0, "n": 0}

    def clock() -> float:  # every call drifts 10% slower than the last: never stable
        return state["t"]

    def run() -> None:
        state["n"] += 1
        state["t"] += 0.001 * (1.1 ** (state["n"] // 5))

    budget = TimingBudget(warmup_iters=1, warmup_s=0.0, window_iters=5, window_s=0.0, max_seconds=0.5)
    sample = time_callable(run, budget, clock=clock)
    assert not sample.stable and len(sample.window_p50_ms) > 3
    del ticks


def test_profile_point_measures_the_mlp_on_cpu(catalog):
    spec = get_model("mlp_digits")
    row = profile_point(spec, "fp32", 8, catalog.get("cpu-x86"), threads=1, budget=QUICK_BUDGET,
                        energy_window_s=0.05)
    assert row.source == "measured" and row.hardware == "cpu-x86" and row.units_per_replica == 1.0
    assert 0 < row.latency_p50_ms <= row.latency_p90_ms <= row.latency_p99_ms
    assert row.throughput_rps == pytest.approx(8000.0 / (row.latency_p50_ms), rel=0.5)
    assert row.samples >= 30 and row.memory_gib > 0 and row.flops_per_item == 2 * (64 * 256 + 256 * 256 + 256 * 10)
    assert 0 < row.peak_fraction < 1 and row.device_fingerprint and row.framework_version.startswith("torch")
    assert row.energy_source.startswith("estimated") and row.energy_j_per_item > 0
    assert "thread" in row.device_name and row.quality_loss == 0.0


def test_refuses_to_record_cpu_timings_as_gpu(catalog):
    with pytest.raises(PlannerError, match="refusing to record CPU timings as GPU"):
        profile_point(get_model("mlp_digits"), "fp32", 1, catalog.get("h100"), device="cpu")


def test_ray_tasks_profile_models_and_stop_growing_batches(ray_local, catalog):
    from cluster.profiling import ProfileJob, run_profile_jobs

    jobs = [ProfileJob("mlp_digits", "fp32", "cpu-x86", (1, 4)),
            ProfileJob("mlp_digits", "bf16", "cpu-x86", (1, 4)),
            # A 1e-6 ms cap is below any real batch: only the first size is measured, the rest skipped.
            ProfileJob("transformer_small", "fp32", "cpu-x86", (1, 2, 4), max_batch_latency_ms=1e-6)]
    seen = []
    outcomes = run_profile_jobs(jobs, catalog, on_done=seen.append, max_concurrent=2)
    assert len(seen) == 3 and all(not o.error for o in outcomes)
    by_job = {(o.job.model, o.job.precision): o for o in outcomes}
    assert [r.batch_size for r in by_job["mlp_digits", "fp32"].rows] == [1, 4]
    assert [r.batch_size for r in by_job["transformer_small", "fp32"].rows] == [1]
    assert by_job["transformer_small", "fp32"].skipped_batch_sizes == (2, 4)
    assert all(r.source == "measured" for o in outcomes for r in o.rows)


def test_gpu_job_without_a_gpu_reports_an_error_not_a_row(catalog):
    from cluster.profiling import ProfileJob, run_profile_job

    outcome = run_profile_job(ProfileJob("mlp_digits", "fp32", "t4", (1,)), catalog.get("t4"), device="cpu")
    assert outcome.rows == () and "refusing" in outcome.error


def test_a_point_is_measured_through_the_backend(catalog):
    from planner.backends.registry import backend_for
    from planner.profiling.timing import QUICK_BUDGET

    cpu = catalog.get("cpu-x86")
    row = backend_for(cpu).measure_point("mlp_digits", "fp32", 2, cpu, threads=1, budget=QUICK_BUDGET)
    assert row.source == "measured" and row.hardware == "cpu-x86" and row.units_per_replica == 1.0
