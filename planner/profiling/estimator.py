"""Estimate profiles on catalog hardware we cannot measure, from measurements on hardware we can.

Model (per model, precision and mode, fitted on the measured device A, applied to B)::

    latency_A(b) ~= overhead_A + b x per_item_A          floor + growth to the largest batch (robust fit)
    roofline_X    = max(flops_per_item / peak_X(precision), bytes_per_item / bandwidth_X)
    efficiency    = roofline_A / per_item_A              A's achieved fraction of its roofline
                  = KIND_EFFICIENCY[B]   if A is another kind and B's kind has a calibrated figure
    per_item_B    = roofline_B / efficiency               same fraction of B's roofline
    overhead_B    = overhead_A           if A and B are the same kind
                  = launch + other ops x t_op + conv ops x t_conv   otherwise, when the row counts its
                                                     ATen ops (ops_per_batch, conv_ops_per_batch)
                  = DEFAULT_OVERHEAD_MS  otherwise        (a documented constant per target kind)
    latency_B(b)  = overhead_B + b x per_item_B;   p99_B(b) = latency_B(b) x p99_A(b) / p50_A(b)

Why two terms: small batches on a GPU are bound by kernel launches, not by
FLOPs or bytes; a pure roofline ratio would scale the launch overhead by the
ratio of peaks and be wrong by the full overhead. The per-item slope is where
the device's compute and bandwidth show.

Why ops x a per-op time across kinds: a CPU's fixed cost per batch says nothing
about a GPU's, but the number of kernels a forward launches does, and GPU
inference runs by CUDA-graph replay (planner/models/runner.py), where each
kernel costs its minimum duration plus the gap to the next, a few microseconds,
whatever the host, on top of one graph launch. A cuDNN convolution costs several
times an elementwise or small GEMM kernel, so convolutions have their own time.
The three GPU constants are fitted on the H200 reference data at batch 1
(`python -m bench.estimator_calibration`), and the same fit on the H100 data
gives the same constants within 4%, which is the check that the form is right. Likewise a CPU's
fraction of its roofline says little about a GPU's (caches and vector units vs
tensor cores and HBM): across kinds the target kind's typical fraction is used.

Energy: the catalog's power model, idle + (max - idle) x busy fraction, over
the estimated latency. Quality loss is carried over from A (it depends on the
precision's arithmetic, not the chip). Memory is carried over from A.
Every row is `source=estimated` with `uncertainty_pct` from the validation in
docs/profiler.md (`python -m bench.estimator_error`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Sequence

import numpy as np

from planner.core.catalog import HardwareType
from planner.core.costs import IDLE_FRACTION_WHEN_UNKNOWN
from planner.core.errors import InputError
from planner.core.profiles import ProfileRow

# Fixed cost of one batch when the source is another kind of device (ms). GPU: a forward pass of a
# small model through PyTorch eager launches tens of kernels at ~5-20 us each; 0.5 ms sits at the
# H100 reference data's small-model floor (0.13-1.5 ms). TPU: XLA dispatch of one compiled program.
DEFAULT_OVERHEAD_MS = {"gpu": 0.5, "tpu": 0.3, "cpu": 0.05}
# Fixed cost of a batch on a target of another kind (ms): one graph launch, plus a time per ATen op
# that launches work, plus a time per convolution. GPU: least squares (relative error) over the
# 9 fp32/bf16/fp16 model pairs of profiles/reference/h200.csv at batch 1, CUDA-graph replay
# (`python -m bench.estimator_calibration`; the H100 data gives 9.8 / 2.85 / 11.0 us).
LAUNCH_MS = {"gpu": 0.0095}
PER_OP_MS = {"gpu": 0.0027}
PER_CONV_OP_MS = {"gpu": 0.0110}
# Fraction of the roofline a GPU reaches per item, for a source of another kind: median of
# roofline / per-item slope over the same 12 pairs of profiles/reference/h200.csv (0.04-0.39).
KIND_EFFICIENCY = {"gpu": 0.2}
# Validation error bounds (docs/profiler.md): same kind vs across kinds.
UNCERTAINTY_PCT = {"same_kind": 20.0, "cross_kind": 60.0}  # mean error over all batch sizes, rounded up
_PEAK_KEY = {"fp32": "fp32", "bf16": "bf16", "fp16": "fp16", "int8": "int8"}


@dataclass(frozen=True)
class BatchCurve:
    overhead_ms: float
    per_item_ms: float
    flops_per_item: float
    bytes_per_item: float


def fit_batch_curve(rows: Sequence[ProfileRow]) -> BatchCurve:
    """latency_p50(b) = overhead + b x per_item, fitted robustly.

    A least-squares line is ill-conditioned on GPUs, where small models are
    launch-bound and latency barely moves with the batch: jitter then tilts
    the line to a negative intercept or slope. Instead: overhead is the
    floor (the smallest p50 over the batch sizes), and per_item is the growth
    from that floor to the largest batch. With one batch size, all of it is
    per-item time.
    """
    if not rows:
        raise InputError("rows", 0, "no measured rows to fit", "measure at least two batch sizes")
    ordered = sorted(rows, key=lambda r: r.batch_size)
    largest = ordered[-1]
    if len(ordered) == 1:
        overhead, per_item = 0.0, largest.latency_p50_ms / largest.batch_size
    else:
        overhead = min(r.latency_p50_ms for r in ordered)
        # Floor at 1% of the largest batch's per-item time so a flat curve still has a cost per item.
        per_item = max((largest.latency_p50_ms - overhead) / largest.batch_size,
                       0.01 * largest.latency_p50_ms / largest.batch_size)
    flops = next((r.flops_per_item for r in rows if r.flops_per_item), 0.0) or 0.0
    bytes_ = float(np.median([r.bytes_per_item for r in rows if r.bytes_per_item] or [0.0]))
    return BatchCurve(float(overhead), float(per_item), float(flops), bytes_)


def roofline_ms_per_item(curve: BatchCurve, hardware: HardwareType, precision: str, units: float) -> float | None:
    """The faster-of-compute-and-memory bound per item on this hardware, or None without figures."""
    peak = hardware.peak_tflops.get(_PEAK_KEY.get(precision, precision))
    bandwidth = hardware.memory_bandwidth_gbps
    if not peak or not bandwidth or not curve.flops_per_item:
        return None
    compute_ms = curve.flops_per_item / (peak * units * 1e12) * 1e3
    memory_ms = curve.bytes_per_item / (bandwidth * units * 1e9) * 1e3
    return max(compute_ms, memory_ms)


def fixed_cost_ms(kind: str, ops: float, conv_ops: float) -> float:
    """A batch's fixed cost on a device of `kind` from its op counts (the cross-kind overhead)."""
    return LAUNCH_MS[kind] + (ops - conv_ops) * PER_OP_MS[kind] + conv_ops * PER_CONV_OP_MS[kind]


def estimate_rows(measured: Sequence[ProfileRow], source: HardwareType, target: HardwareType,
                  batch_sizes: Iterable[int] | None = None, target_units: float = 1.0) -> list[ProfileRow]:
    """Estimated rows on `target` for one (model, precision, mode) measured on `source`.

    Returns [] when the target has no peak figure for the precision (it cannot be estimated).
    """
    keys = {(r.model, r.precision, r.mode, r.hardware) for r in measured}
    if len(keys) != 1:
        raise InputError("measured", sorted(keys), "rows of exactly one model/precision/mode/hardware expected",
                         "group rows before estimating")
    rows = sorted(measured, key=lambda r: r.batch_size)
    precision = rows[0].precision
    source_units = rows[0].units_per_replica
    curve = fit_batch_curve(rows)
    roof_source = roofline_ms_per_item(curve, source, precision, source_units)
    roof_target = roofline_ms_per_item(curve, target, precision, target_units)
    same_kind = source.kind == target.kind
    # Across kinds with a calibrated target efficiency, only A's *counted* work (FLOPs, bytes, ops)
    # is used, not its timings, so A needs no peak figure for this precision (e.g. fp16 on a CPU).
    calibrated_cross_kind = not same_kind and target.kind in KIND_EFFICIENCY
    if roof_target is None or (roof_source is None and not calibrated_cross_kind):
        return []
    if calibrated_cross_kind:
        efficiency = KIND_EFFICIENCY[target.kind]
    else:
        efficiency = min(1.0, roof_source / curve.per_item_ms)
    per_item = roof_target / efficiency
    ops = next((r.ops_per_batch for r in rows if r.ops_per_batch), None)
    if same_kind:
        overhead, overhead_note = curve.overhead_ms, ""
    elif ops and target.kind in PER_OP_MS:
        convs = next((r.conv_ops_per_batch for r in rows if r.conv_ops_per_batch is not None), 0.0)
        overhead = fixed_cost_ms(target.kind, ops, convs)
        overhead_note = (f" (launch {LAUNCH_MS[target.kind] * 1e3:g} us + {ops - convs:g} ops x "
                         f"{PER_OP_MS[target.kind] * 1e3:g} us + {convs:g} convolutions x "
                         f"{PER_CONV_OP_MS[target.kind] * 1e3:g} us on a {target.kind})")
    else:
        overhead = DEFAULT_OVERHEAD_MS[target.kind]
        overhead_note = f" (default for {target.kind})"
    uncertainty = UNCERTAINTY_PCT["same_kind" if same_kind else "cross_kind"]
    tail_by_batch = {r.batch_size: r.latency_p99_ms / r.latency_p50_ms for r in rows}
    default_tail = float(np.median(list(tail_by_batch.values())))
    sizes = sorted(set(batch_sizes)) if batch_sizes is not None else [r.batch_size for r in rows]
    by_batch = {r.batch_size: r for r in rows}
    out = []
    for b in sizes:
        base = by_batch.get(b) or min(rows, key=lambda r: abs(r.batch_size - b))
        p50 = overhead + b * per_item
        busy = min(1.0, b * per_item / p50)
        max_w = target.power_max_w or 0.0
        idle_w = target.power_idle_w if target.power_idle_w is not None else IDLE_FRACTION_WHEN_UNKNOWN * max_w
        power_w = (idle_w + (max_w - idle_w) * busy) * target_units
        out.append(replace(
            base, hardware=target.name, batch_size=b, latency_p50_ms=p50, latency_p90_ms=None,
            latency_p99_ms=p50 * tail_by_batch.get(b, default_tail), throughput_rps=b * 1000.0 / p50,
            energy_j_per_item=power_w * p50 / 1000.0 / b, source="estimated", units_per_replica=target_units,
            device_name=target.display_name, samples=None, latency_cv=None,
            source_detail=(f"roofline estimate from {source.name} ({rows[0].device_name}): efficiency "
                           f"{efficiency:.3g} of roofline, overhead {overhead:.3g} ms{overhead_note}"),
            energy_source=(f"estimated: catalog power model ({idle_w:g}-{max_w:g} W) x estimated latency" if max_w
                           else f"unknown: no power figure for {target.name} in the catalog"),
            achieved_tflops=curve.flops_per_item * b / p50 * 1e3 / 1e12,
            achieved_gbps=curve.bytes_per_item * b / p50 * 1e3 / 1e9,
            peak_fraction=None, uncertainty_pct=uncertainty, device_fingerprint="", runtime_version="",
            code_version=base.code_version, measured_at=""))
    return out


def estimate_profiles(measured: Sequence[ProfileRow], hardware: dict[str, HardwareType],
                      targets: Sequence[HardwareType]) -> list[ProfileRow]:
    """Estimate every (model, precision, mode) group of measured rows onto each target."""
    groups: dict[tuple, list[ProfileRow]] = {}
    for r in measured:
        if r.source == "measured":
            groups.setdefault((r.model, r.precision, r.mode, r.hardware), []).append(r)
    out: list[ProfileRow] = []
    for (_, _, _, hw_name), rows in groups.items():
        for target in targets:
            if target.name != hw_name:
                out.extend(estimate_rows(rows, hardware[hw_name], target))
    return out
