"""Profiler core: time one model at one (precision, batch size) on the local device.

Plain functions, no Ray: `cluster/profiling.py` wraps them in Ray tasks, and
`bench/` or a GPU machine without Ray can call them directly.

Method (per point): build the model at the precision, warm up (at least
``warmup_iters`` runs and ``warmup_s`` seconds, so lazy init, allocator growth
and CPU frequency ramps are out of the sample), then time single batches with
``perf_counter`` (after ``torch.cuda.synchronize`` on GPUs) until both
``min_iters`` and ``min_seconds`` are reached, or ``max_seconds`` is spent.
Percentiles are of per-batch latency; throughput is batch_size / mean latency.

Memory: on CUDA, ``max_memory_allocated`` (measured). On CPU, PyTorch keeps no
allocator statistics, so it is estimated as weights + buffers + the sum of
every leaf module's output tensors in one forward pass (an upper bound on
live activations); the row says so.

Energy: estimated in this issue from the catalog's per-unit maximum power over
the batch's p50 latency (the profiler issue adds NVML and RAPL meters).
"""
from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import numpy as np
import torch

from planner.catalog import HardwareType
from planner.errors import PlannerError
from planner.models import ModelSpec
from planner.models.precision import prepare_for_precision
from planner.models.quality import measure_quality_loss
from planner.profiles import ProfileRow


@dataclass(frozen=True)
class TimingBudget:
    warmup_iters: int = 5
    warmup_s: float = 0.1
    min_iters: int = 30
    min_seconds: float = 0.3
    max_seconds: float = 2.0
    max_iters: int = 2000


@dataclass(frozen=True)
class LatencySample:
    latencies_ms: tuple[float, ...]

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q))

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.latencies_ms)

    @property
    def cv(self) -> float:
        return statistics.pstdev(self.latencies_ms) / self.mean_ms if len(self.latencies_ms) > 1 else 0.0


def cpu_name() -> str:
    """The CPU model as the kernel reports it (falls back to platform.processor())."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def local_device_name(device: str, threads: int) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{cpu_name()} ({threads} thread{'s' if threads != 1 else ''})"


def check_device_matches(hardware: HardwareType, device: str) -> None:
    """Refuse to record timings under a hardware type the process is not actually running on."""
    if hardware.kind == "gpu" and not (device.startswith("cuda") and torch.cuda.is_available()):
        raise PlannerError(f"hardware '{hardware.name}' is a GPU but this process has no CUDA device "
                           f"(device={device!r}); refusing to record CPU timings as GPU timings. "
                           "To fix: run the profile on a node with a real GPU")
    if hardware.kind == "tpu":
        raise PlannerError(f"hardware '{hardware.name}' is a TPU: TPU profiling runs through the JAX backend, "
                           "not torch. To fix: profile on a TPU node with the JAX harness")
    if hardware.kind == "cpu" and device != "cpu":
        raise PlannerError(f"hardware '{hardware.name}' is a CPU type but device={device!r}. To fix: use device='cpu'")


def time_callable(run: Callable[[], object], budget: TimingBudget, sync: Callable[[], None] = lambda: None,
                  clock: Callable[[], float] = time.perf_counter) -> LatencySample:
    """Warm up, then time `run` until the budget says the sample is large enough."""
    start = clock()
    done = 0
    while done < budget.warmup_iters or clock() - start < budget.warmup_s:
        run()
        done += 1
    sync()
    latencies: list[float] = []
    start = clock()
    while True:
        t0 = clock()
        run()
        sync()
        latencies.append((clock() - t0) * 1000.0)
        elapsed = clock() - start
        enough = len(latencies) >= budget.min_iters and elapsed >= budget.min_seconds
        if enough or elapsed >= budget.max_seconds or len(latencies) >= budget.max_iters:
            break
    return LatencySample(tuple(latencies))


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


def profile_point(spec: ModelSpec, precision: str, batch_size: int, hardware: HardwareType, *,
                  device: str = "cpu", threads: int = 1, budget: TimingBudget = TimingBudget(),
                  quality_loss: float | None = None) -> ProfileRow:
    """Measure one (model, precision, batch size) point on this process's device."""
    check_device_matches(hardware, device)
    if device == "cpu":
        torch.set_num_threads(threads)
    module, cast = prepare_for_precision(spec, precision, device)
    batch = cast(spec.example_input(batch_size).to(device))

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
        sync = torch.cuda.synchronize
    else:
        sync = lambda: None  # noqa: E731 - CPU ops are synchronous

    def run() -> None:
        with torch.inference_mode():
            module(batch)

    sample = time_callable(run, budget, sync)
    if device.startswith("cuda"):
        memory_gib = torch.cuda.max_memory_allocated(device) / 2**30
        memory_note = "memory measured (torch.cuda.max_memory_allocated)"
    else:
        memory_gib = estimate_cpu_memory_gib(module, batch)
        memory_note = "memory estimated from tensor sizes"
    if quality_loss is None:
        quality_loss = measure_quality_loss(spec, precision, device).quality_loss

    units = threads if hardware.kind == "cpu" else 1
    p50 = sample.percentile(50)
    power_w = (hardware.power_max_w or 0.0) * units
    energy_j_per_item = power_w * (p50 / 1000.0) / batch_size
    device_name = local_device_name(device, threads)
    return ProfileRow(
        model=spec.name, hardware=hardware.name, precision=precision, batch_size=batch_size,
        latency_p50_ms=p50, latency_p99_ms=sample.percentile(99), throughput_rps=batch_size * 1000.0 / sample.mean_ms,
        memory_gib=memory_gib, energy_j_per_item=energy_j_per_item, quality_loss=quality_loss,
        source="measured", latency_p90_ms=sample.percentile(90), units_per_replica=float(units),
        device_name=device_name,
        source_detail=f"{device_name}, torch {torch.__version__}; {memory_note}",
        energy_source=(f"estimated: catalog max power {hardware.power_max_w:g} W/{hardware.unit} x p50 latency"
                       if hardware.power_max_w else "estimated: no power figure in the catalog (0)"),
        samples=len(sample.latencies_ms), latency_cv=sample.cv,
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
