"""Profiler core: time one model at one (precision, batch size) on the local device.

Plain functions, no Ray: `cluster/profiling.py` wraps them in Ray tasks, and
`bench/` or a GPU machine without Ray calls them directly.

Method (per point): build the model at the precision, warm up (at least
``warmup_iters`` runs and ``warmup_s`` seconds, so lazy init, allocator growth
and clock ramps are out of the sample), then time single batches with
``perf_counter`` (after ``torch.cuda.synchronize`` on GPUs) in windows, until
the last three windows' p50 agree within ``stability_pct`` (perf_analyzer's
rule) or ``max_seconds`` is spent. Percentiles are of per-batch latency over
the steady-state windows; throughput is batch_size / mean latency.

Memory: on CUDA, ``max_memory_allocated`` (measured). On CPU, PyTorch keeps no
allocator statistics, so it is estimated as weights + buffers + the sum of
every leaf module's output tensors in one forward pass (an upper bound on
live activations); the row says so.

Energy: a separate window of runs read by the best meter the node has
(planner.profiling.energy: NVML's energy counter on NVIDIA GPUs, RAPL on CPUs where
readable, else the catalog power model); the row's energy_source says which.

Efficiency: FLOPs (torch's FlopCounterMode) and estimated bytes per item, the
achieved TFLOP/s and GB/s, and the fraction of the catalog's peak.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable, Sequence

import torch

from planner.backends.torch_checks import check_torch_device
from planner.core.catalog import HardwareType
from planner.core.errors import UnsupportedPrecision
from planner.core.profiles import ProfileRow, SkippedPoint
from planner.models import ModelSpec
from planner.models.precision import prepare_for_precision
from planner.models.quality import measure_quality_loss
from planner.models.runner import OpCount, count_ops, make_runner
from planner.profiling.timing import QUICK_BUDGET, LatencySample, TimingBudget, time_callable  # noqa: F401 (re-exported)


def cpu_name() -> str:
    from planner.profiling.provenance import cpu_name as name
    return name()


def estimate_cpu_memory_gib(module: torch.nn.Module, batch: torch.Tensor) -> float:
    """Weights + buffers + input + every leaf output of one forward pass (an upper bound)."""
    total = sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))
    total += batch.numel() * batch.element_size()
    outputs: list[int] = []

    def hook(_mod: torch.nn.Module, _inp: object, out: object) -> None:
        tensors = out if isinstance(out, (tuple, list)) else (out,)
        outputs.append(sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor)))

    handles = [m.register_forward_hook(hook) for m in module.modules() if not list(m.children())]
    try:
        with torch.inference_mode():
            module(batch)
    finally:
        for h in handles:
            h.remove()
    # Dynamically quantised Linears keep their int8 weights in a packed (weight, bias) tuple
    # outside parameters(); count those from the state_dict.
    packed = 0
    for value in module.state_dict().values():
        if isinstance(value, tuple):
            packed += sum(t.numel() * t.element_size() for t in value if isinstance(t, torch.Tensor))
    return (total + sum(outputs) + packed) / 2**30


def time_on_device(run: Callable[[], object], budget: TimingBudget, device: str,
                   ) -> tuple[LatencySample, Callable[[], None], float | None]:
    """Time `run` with the device's sync; on CUDA also return the peak memory it allocated (GiB)."""
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    sample = time_callable(run, budget, sync)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    return sample, sync, peak


def measure_energy(run: Callable[[], object], sync: Callable[[], None], device: str, hardware: HardwareType,
                    threads: int, min_seconds: float) -> tuple[float, str, int]:
    """Joules per run over a dedicated window, from the best meter this node has; and its label."""
    from planner.profiling.energy import select_meter

    meter = select_meter(device, hardware, threads)
    runs = 0
    started = time.perf_counter()
    meter.start()
    while runs < 5 or time.perf_counter() - started < min_seconds:
        run()
        runs += 1
    sync()
    reading = meter.stop()
    return reading.energy_j / runs, reading.label(), runs


def profile_point(spec: ModelSpec, precision: str, batch_size: int, hardware: HardwareType, *,
                  device: str = "cpu", threads: int = 1, budget: TimingBudget = TimingBudget(),
                  quality_loss: float | None = None, energy_window_s: float = 0.5,
                  flops_per_item: float | None = None) -> ProfileRow:
    """Measure one (model, precision, batch size) point on this process's device.

    `quality_loss` and `flops_per_item` may be passed in when already known (they do
    not depend on the batch size, resp. the precision); otherwise they are measured.
    """
    from planner.profiling.efficiency import count_work, efficiency
    from planner.profiling.provenance import local_provenance

    check_torch_device(hardware, device)
    if device == "cpu":
        torch.set_num_threads(threads)
    module, cast = prepare_for_precision(spec, precision, device)
    batch = cast(spec.example_input(batch_size).to(device))
    ops = _count_ops(module, batch)
    # Run it as serving will (cluster/serving.py): CUDA-graph replay on GPUs, eager on CPUs.
    runner, execution = make_runner(module, batch[0], device, batch_size, buckets=[batch_size])

    def run() -> None:
        runner(batch)

    sample, sync, cuda_peak_gib = time_on_device(run, budget, device)
    if cuda_peak_gib is not None:
        memory_gib = cuda_peak_gib
        memory_note = "memory measured (torch.cuda.max_memory_allocated)"
    else:
        memory_gib = estimate_cpu_memory_gib(module, batch)
        memory_note = "memory estimated from tensor sizes"
    joules_per_run, energy_label, _ = measure_energy(run, sync, device, hardware, threads, energy_window_s)
    if quality_loss is None:
        quality_loss = measure_quality_loss(spec, precision, device).quality_loss

    # FLOPs do not depend on precision (and quantised ops are invisible to the counter): count
    # them on the fp32 model; bytes do depend on it: count them on the prepared one.
    flops = flops_per_item if flops_per_item is not None else count_fp32_flops_per_item(spec, batch_size, device)
    work = count_work(module, batch)
    units = hardware.units_per_replica(threads)
    throughput = batch_size * 1000.0 / sample.mean_ms
    from planner.profiling.efficiency import WorkCount
    eff = efficiency(WorkCount(flops, work.bytes_per_item), throughput, hardware, precision, units)
    prov = local_provenance(device, threads)
    stability = "stable" if sample.stable else "NOT stable within budget"
    return ProfileRow(
        model=spec.name, hardware=hardware.name, precision=precision, batch_size=batch_size,
        latency_p50_ms=sample.percentile(50), latency_p99_ms=sample.percentile(99), throughput_rps=throughput,
        memory_gib=memory_gib, energy_j_per_item=joules_per_run / batch_size, quality_loss=quality_loss,
        source="measured", latency_p90_ms=sample.percentile(90), units_per_replica=units,
        device_name=prov.device_name,
        source_detail=(f"{prov.device_name}, {prov.framework_version}, {execution}; {memory_note}; "
                       f"{stability} over {len(sample.window_p50_ms)} windows"),
        energy_source=energy_label, samples=len(sample.latencies_ms), latency_cv=sample.cv,
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        flops_per_item=flops, bytes_per_item=work.bytes_per_item, achieved_tflops=eff.achieved_tflops,
        achieved_gbps=eff.achieved_gbps, peak_fraction=eff.peak_fraction,
        device_fingerprint=prov.device_fingerprint, runtime_version=prov.runtime_version,
        framework_version=prov.framework_version, code_version=prov.code_version, mode="inference",
        execution=execution.split(" ")[0], 
        ops_per_batch=float(ops.ops) if ops else None, conv_ops_per_batch=float(ops.conv_ops) if ops else None,
    )


def _count_ops(module: torch.nn.Module, batch: torch.Tensor) -> OpCount | None:
    """ATen ops per forward, or None where the dispatch mode cannot trace the module."""
    try:
        return count_ops(module, batch)
    except Exception:  # noqa: BLE001 - a count is optional metadata; the measurement goes on
        return None


def count_fp32_flops_per_item(spec: ModelSpec, batch_size: int, device: str) -> float:
    from planner.profiling.efficiency import count_work

    module, cast = prepare_for_precision(spec, "fp32", device)
    return count_work(module, cast(spec.example_input(batch_size).to(device))).flops_per_item


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def profile_grid(spec: ModelSpec, precisions: Sequence[str], batch_sizes: Sequence[int], hardware: HardwareType,
                 *, device: str = "cpu", threads: int = 1, budget: TimingBudget = TimingBudget(),
                 max_batch_latency_ms: float | None = None, energy_window_s: float = 0.5,
                 on_point: Callable[[ProfileRow | SkippedPoint], None] | None = None,
                 ) -> tuple[list[ProfileRow], list[SkippedPoint]]:
    """Profile precisions x batch sizes, measuring only what can matter.

    Per precision, batch sizes are tried in increasing order. A precision the
    device cannot run is recorded as `unsupported` with the reason. Growth stops
    (the rest recorded as `pruned`) once one batch's p99 exceeds
    `max_batch_latency_ms` (the slowest target any workload of this model has:
    a bigger batch is only slower) or the replica's memory would not fit; an
    out-of-memory error is caught, recorded as `oom`, and ends that precision.
    """
    from planner.models.precision import supported_precisions

    rows: list[ProfileRow] = []
    skipped: list[SkippedPoint] = []
    support = supported_precisions(device)
    sizes = sorted(set(batch_sizes))
    memory_limit = (None if hardware.memory_gib is None
                    else hardware.memory_gib * hardware.units_per_replica(threads))
    flops_by_batch: dict[int, float] = {}  # precision-independent: count once per batch size

    def skip(precision: str, remaining: Sequence[int], status: str, reason: str) -> None:
        for b in remaining:
            point = SkippedPoint(spec.name, hardware.name, precision, b, status, reason)
            skipped.append(point)
            if on_point:
                on_point(point)

    for precision in precisions:
        if support.get(precision, "unknown precision"):
            skip(precision, sizes, "unsupported", str(support.get(precision, "unknown precision")))
            continue
        try:
            quality = measure_quality_loss(spec, precision, device).quality_loss
        except UnsupportedPrecision as exc:
            skip(precision, sizes, "unsupported", str(exc))
            continue
        for i, batch_size in enumerate(sizes):
            try:
                if batch_size not in flops_by_batch:
                    flops_by_batch[batch_size] = count_fp32_flops_per_item(spec, batch_size, device)
                row = profile_point(spec, precision, batch_size, hardware, device=device, threads=threads,
                                    budget=budget, quality_loss=quality, energy_window_s=energy_window_s,
                                    flops_per_item=flops_by_batch[batch_size])
            except (torch.cuda.OutOfMemoryError, RuntimeError) as exc:
                if not _is_oom(exc):
                    raise
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
                skip(precision, sizes[i:], "oom", f"out of memory at batch {batch_size}: {str(exc)[:120]}")
                break
            rows.append(row)
            if on_point:
                on_point(row)
            if memory_limit is not None and row.memory_gib > memory_limit:
                skip(precision, sizes[i + 1:], "oom",
                     f"batch {batch_size} needs {row.memory_gib:.3g} GiB > {memory_limit:.3g} GiB on {hardware.name}")
                break
            if max_batch_latency_ms is not None and row.latency_p99_ms > max_batch_latency_ms:
                skip(precision, sizes[i + 1:], "pruned",
                     f"batch {batch_size} p99 {row.latency_p99_ms:.1f} ms already exceeds the slowest target "
                     f"{max_batch_latency_ms:g} ms")
                break
    return rows, skipped
