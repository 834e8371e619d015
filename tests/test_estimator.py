"""The roofline estimator, on synthetic measured rows with answers worked out by hand."""
from __future__ import annotations

import pytest

from planner.core.catalog import load_catalog
from planner.core.profiles import ProfileRow
from planner.profiling.estimator import (
    DEFAULT_OVERHEAD_MS,
    KIND_EFFICIENCY,
    LAUNCH_MS,
    PER_CONV_OP_MS,
    PER_OP_MS,
    estimate_rows,
    fit_batch_curve,
    roofline_ms_per_item,
)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def _rows(hardware: str, precision: str = "bf16", ops: float | None = 40.0, convs: float | None = None) -> list[ProfileRow]:
    # p50 = 0.2 ms + b x 0.01 ms; 1 GFLOP and 2 MB per item.
    return [ProfileRow("m", hardware, precision, b, 0.2 + 0.01 * b, (0.2 + 0.01 * b) * 1.5,
                       b * 1000 / (0.2 + 0.01 * b), 1.0, 0.001, 0.0, "measured", flops_per_item=1e9,
                       bytes_per_item=2e6, ops_per_batch=ops, conv_ops_per_batch=convs) for b in (1, 8, 64)]


def test_same_kind_keeps_overhead_and_scales_per_item_by_roofline(catalog):
    h100, h200 = catalog.get("h100"), catalog.get("h200")
    rows = _rows("h100")
    curve = fit_batch_curve(rows)
    assert curve.overhead_ms == pytest.approx(0.21) and curve.per_item_ms == pytest.approx((0.84 - 0.21) / 64)
    est = {r.batch_size: r for r in estimate_rows(rows, h100, h200, [1, 64])}
    ratio = roofline_ms_per_item(curve, h200, "bf16", 1) / roofline_ms_per_item(curve, h100, "bf16", 1)
    assert est[64].latency_p50_ms == pytest.approx(0.21 + 64 * curve.per_item_ms * ratio)
    assert est[64].source == "estimated" and est[64].hardware == "h200" and est[64].uncertainty_pct
    assert est[64].latency_p99_ms == pytest.approx(est[64].latency_p50_ms * 1.5)


def test_across_kinds_uses_counted_ops_and_the_kinds_efficiency_not_cpu_timings(catalog):
    cpu, h100 = catalog.get("cpu-x86"), catalog.get("h100")
    rows = _rows("cpu-x86", precision="fp16")  # the CPU has no fp16 peak: counted work is still usable
    est = {r.batch_size: r for r in estimate_rows(rows, cpu, h100, [1, 64])}
    per_item = roofline_ms_per_item(fit_batch_curve(rows), h100, "fp16", 1) / KIND_EFFICIENCY["gpu"]
    assert est[64].latency_p50_ms == pytest.approx(LAUNCH_MS["gpu"] + 40 * PER_OP_MS["gpu"] + 64 * per_item)
    assert "40 ops" in est[1].source_detail
    slower_cpu = [ProfileRow(**{**r.__dict__, "latency_p50_ms": r.latency_p50_ms * 10}) for r in rows]
    assert estimate_rows(slower_cpu, cpu, h100, [64])[0].latency_p50_ms == pytest.approx(est[64].latency_p50_ms)


def test_across_kinds_convolutions_cost_their_own_time(catalog):
    cpu, h100 = catalog.get("cpu-x86"), catalog.get("h100")
    plain = estimate_rows(_rows("cpu-x86", ops=40.0, convs=0.0), cpu, h100, [1])[0]
    convs = estimate_rows(_rows("cpu-x86", ops=40.0, convs=10.0), cpu, h100, [1])[0]
    assert convs.latency_p50_ms - plain.latency_p50_ms == pytest.approx(10 * (PER_CONV_OP_MS["gpu"] - PER_OP_MS["gpu"]))
    assert "10 convolutions" in convs.source_detail


def test_across_kinds_without_an_op_count_uses_the_documented_default(catalog):
    est = estimate_rows(_rows("cpu-x86", precision="fp32", ops=None), catalog.get("cpu-x86"), catalog.get("h100"), [1])
    per_item = est[0].latency_p50_ms - DEFAULT_OVERHEAD_MS["gpu"]
    assert 0 < per_item < 0.1 and "default for gpu" in est[0].source_detail


def test_no_peak_figure_on_the_target_means_no_estimate(catalog):
    tpu = catalog.get("tpu-v5e")
    missing = next(p for p in ("fp32", "fp16", "bf16", "int8") if not tpu.peak_tflops.get(p))
    assert estimate_rows(_rows("h100", precision=missing), catalog.get("h100"), tpu, [1]) == []
