"""Profiling a training step: forward, backward and optimizer update, per precision and batch size.

Mixed precision is how training runs at lower precision in practice: weights
and optimizer state stay fp32, matmuls run under `torch.autocast` in bf16 or
fp16 (fp16 with a gradient scaler on GPUs, since its range underflows
gradients). int8 is not a training precision here and is recorded unsupported.

A row's batch_size is samples per step; latency_* is step time; throughput_rps
is samples per second; energy_j_per_item is joules per sample (x batch_size
for joules per step). mode = "training_step".
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import torch
import torch.nn.functional as F

from planner.backends.torch_checks import check_torch_device
from planner.core.catalog import HardwareType
from planner.core.errors import UnsupportedPrecision
from planner.core.profiles import ProfileRow
from planner.models import ModelSpec
from planner.profiling.profiler import measure_energy, time_on_device
from planner.profiling.timing import TimingBudget

TRAINING_PRECISIONS = ("fp32", "bf16", "fp16")


def _loss(spec: ModelSpec, out: torch.Tensor, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    if spec.task == "classification":
        labels = torch.randint(0, out.shape[-1], (batch_size,), generator=generator).to(out.device)
        return F.cross_entropy(out.float(), labels)
    return out.float().pow(2).mean()  # embedding models: any smooth scalar exercises the same backward


def profile_training_point(spec: ModelSpec, precision: str, batch_size: int, hardware: HardwareType, *,
                           device: str = "cpu", threads: int = 1, budget: TimingBudget = TimingBudget(),
                           energy_window_s: float = 0.5) -> ProfileRow:
    """Time one full training step (Adam) at this precision and batch size."""
    from planner.profiling.provenance import local_provenance

    if precision not in TRAINING_PRECISIONS:
        raise UnsupportedPrecision(f"precision {precision!r} is not a training precision here; "
                                   f"use one of {', '.join(TRAINING_PRECISIONS)} (mixed precision)")
    check_torch_device(hardware, device)
    if device == "cpu":
        torch.set_num_threads(threads)
    cuda = device.startswith("cuda")
    module = spec.build().to(device).train()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-4)
    batch = spec.example_input(batch_size).to(device)
    generator = torch.Generator().manual_seed(0)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler("cuda") if (cuda and precision == "fp16") else None
    device_type = "cuda" if cuda else "cpu"

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
            loss = _loss(spec, module(batch), batch_size, generator)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()

    sample, sync, cuda_peak_gib = time_on_device(step, budget, device)
    if cuda_peak_gib is not None:
        memory_gib = cuda_peak_gib
        memory_note = "memory measured (torch.cuda.max_memory_allocated)"
    else:
        # weights + grads + two Adam moments, all fp32; activations for backward not counted.
        params = sum(p.numel() for p in module.parameters())
        memory_gib = params * 4 * 4 / 2**30
        memory_note = "memory estimated as weights+grads+Adam state (activations not counted)"
    joules_per_step, energy_label, _ = measure_energy(step, sync, device, hardware, threads, energy_window_s)
    prov = local_provenance(device, threads)
    row = ProfileRow(
        model=spec.name, hardware=hardware.name, precision=precision, batch_size=batch_size,
        latency_p50_ms=sample.percentile(50), latency_p99_ms=sample.percentile(99),
        throughput_rps=batch_size * 1000.0 / sample.mean_ms, memory_gib=memory_gib,
        energy_j_per_item=joules_per_step / batch_size, quality_loss=0.0, source="measured",
        latency_p90_ms=sample.percentile(90), units_per_replica=hardware.units_per_replica(threads),
        device_name=prov.device_name,
        source_detail=(f"{prov.device_name}, {prov.framework_version}; training step (Adam, "
                       f"{'autocast ' + precision if dtype else 'fp32'}); {memory_note}"),
        energy_source=energy_label, samples=len(sample.latencies_ms), latency_cv=sample.cv,
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        device_fingerprint=prov.device_fingerprint, runtime_version=prov.runtime_version,
        framework_version=prov.framework_version, code_version=prov.code_version)
    return replace(row, mode="training_step", execution="eager")
