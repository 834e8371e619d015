"""Work per inference and the fraction of the device's peak a measurement achieved.

FLOPs are counted by torch's own FlopCounterMode (matmuls and convolutions;
element-wise ops are not counted, which is the convention of roofline
analyses). Bytes are an estimate of DRAM traffic per batch: every weight read
once, every leaf activation written once and read once, plus the input; caches
that keep activations on chip make the real traffic lower.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from planner.core.catalog import HardwareType


@dataclass(frozen=True)
class WorkCount:
    flops_per_item: float
    bytes_per_item: float


def count_work(module: torch.nn.Module, batch: torch.Tensor) -> WorkCount:
    """FLOPs and estimated bytes moved per item for one forward pass of this batch."""
    batch_size = batch.shape[0]
    activation_bytes: list[int] = []

    def hook(_mod: torch.nn.Module, _inp: object, out: object) -> None:
        tensors = out if isinstance(out, (tuple, list)) else (out,)
        activation_bytes.append(sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor)))

    handles = [m.register_forward_hook(hook) for m in module.modules() if not list(m.children())]
    counter = FlopCounterMode(display=False)
    try:
        with torch.inference_mode(), counter:
            module(batch)
    finally:
        for h in handles:
            h.remove()
    weight_bytes = sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))
    for value in module.state_dict().values():  # int8 packed weights live outside parameters()
        if isinstance(value, tuple):
            weight_bytes += sum(t.numel() * t.element_size() for t in value if isinstance(t, torch.Tensor))
    traffic = weight_bytes + 2 * sum(activation_bytes) + batch.numel() * batch.element_size()
    return WorkCount(flops_per_item=counter.get_total_flops() / batch_size, bytes_per_item=traffic / batch_size)


# Which catalog peak a precision runs against (fp32 matmuls on GPUs may use TF32; we do not enable it).
_PEAK_KEY = {"fp32": "fp32", "bf16": "bf16", "fp16": "fp16", "int8": "int8"}


@dataclass(frozen=True)
class Efficiency:
    achieved_tflops: float
    achieved_gbps: float
    peak_fraction: float | None      # of compute peak; None when the catalog has no figure


def efficiency(work: WorkCount, throughput_rps: float, hardware: HardwareType, precision: str,
               units: float) -> Efficiency:
    achieved_tflops = work.flops_per_item * throughput_rps / 1e12
    achieved_gbps = work.bytes_per_item * throughput_rps / 1e9
    peak = hardware.peak_tflops.get(_PEAK_KEY.get(precision, precision))
    fraction = achieved_tflops / (peak * units) if peak else None
    return Efficiency(achieved_tflops, achieved_gbps, fraction)
