"""Turn a ModelSpec's fp32 module into the module that runs at a given precision.

Profiling, quality measurement and serving must all run *the same* converted
module, so the conversion lives here once. Callers always get float32 outputs
(a thin wrapper casts bf16/fp16 outputs back) so downstream comparisons and
JSON serialisation never depend on the precision.
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import nn

from planner.core.errors import InputError, UnsupportedPrecision
from planner.core.workloads import PRECISIONS
from planner.models import ModelSpec

_HALF_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}
_INT8_REASON = ("int8 runs on CPUs (torch quantize_dynamic) and on NVIDIA GPUs of compute capability >= 7.5 "
                "(torch._int_mm, planner/models/int8_gpu.py)")


class Float32Output(nn.Module):
    """Wraps a reduced-precision module so its (tensor) output is always float32."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        return out.float() if out.is_floating_point() else out


def _device(device: str) -> torch.device:
    """Parse a device string, turning torch's RuntimeError into a user-facing InputError."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError("device", device, f"not a torch device ({exc})", "use 'cpu', 'cuda' or 'cuda:N'") from exc


def _disable_encoder_fast_path(module: nn.Module) -> None:
    """Send quantized TransformerEncoderLayers down their ordinary (slow) Python path.

    The fused fast path reads ``linear1.weight.device``, but a dynamically quantized
    Linear's ``weight`` is a method, so inference fails with AttributeError. Zeroing
    ``activation_relu_or_gelu`` is the per-module switch torch checks before that read
    (the activation itself is still applied); unlike
    ``torch.backends.mha.set_fastpath_enabled`` it touches no process-global state.
    """
    for sub in module.modules():
        if isinstance(sub, nn.TransformerEncoderLayer):
            sub.activation_relu_or_gelu = 0


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise UnsupportedPrecision(
            f"precision={precision!r} is not known. To fix: use one of {', '.join(PRECISIONS)}"
        )


def supported_precisions(device: str) -> dict[str, str | None]:
    """Map each precision to None if it runs on ``device``, else the reason it does not.

    "Supported" means it runs correctly, not that it is fast: fp16 on CPU is slow
    but supported, and the profiler is what decides whether it is worth it.
    """
    dev = _device(device)
    result: dict[str, str | None] = {p: None for p in PRECISIONS}
    if dev.type not in ("cpu", "cuda"):
        result["int8"] = f"{_INT8_REASON}; device {device!r} is neither"
    if dev.type == "cuda" and torch.cuda.is_available():
        if torch.cuda.get_device_capability(dev) < (7, 5):
            result["int8"] = f"{_INT8_REASON}; {torch.cuda.get_device_name(dev)} is older"
        if not torch.cuda.is_bf16_supported():
            result["bf16"] = f"the GPU behind {device!r} does not support bfloat16"
    return result


def prepare_for_precision(
    spec: ModelSpec, precision: str, device: str = "cpu"
) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor]]:
    """Return (module, input_cast) for ``precision`` on ``device``.

    ``input_cast`` moves a batch to ``device`` and, for bf16/fp16, casts float inputs
    to that dtype (integer token ids stay int64). The module's outputs are float32.
    Raises ``UnsupportedPrecision`` for unknown precisions or int8 where it cannot run.
    """
    _check_precision(precision)
    dev = _device(device)
    reason = supported_precisions(device)[precision]
    if reason is not None:
        raise UnsupportedPrecision(f"precision={precision!r} on device={device!r}: {reason}. "
                                   f"To fix: use one of {', '.join(p for p, r in supported_precisions(device).items() if r is None)}")
    module = spec.build().eval()

    if precision == "fp32":
        module = module.to(dev)

        def cast_fp32(x: torch.Tensor) -> torch.Tensor:
            return x.to(dev)

        return module, cast_fp32

    if precision == "int8" and dev.type == "cuda":
        from planner.models.int8_gpu import quantize_linears_int8

        quantized = quantize_linears_int8(module.to(dev))
        _disable_encoder_fast_path(quantized)

        def cast_int8_gpu(x: torch.Tensor) -> torch.Tensor:
            return x.to(dev)

        return quantized.eval(), cast_int8_gpu

    if precision == "int8":
        with warnings.catch_warnings():
            # torch.ao.quantization is deprecated in favour of torchao, which we do not depend on.
            warnings.simplefilter("ignore")
            quantized = torch.ao.quantization.quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8)
        _disable_encoder_fast_path(quantized)
        quantized.eval()

        def cast_int8(x: torch.Tensor) -> torch.Tensor:
            return x.to(dev)

        return quantized, cast_int8

    dtype = _HALF_DTYPES[precision]
    wrapped = Float32Output(module.to(device=dev, dtype=dtype)).eval()

    def cast_half(x: torch.Tensor) -> torch.Tensor:
        return x.to(device=dev, dtype=dtype) if x.is_floating_point() else x.to(dev)

    return wrapped, cast_half
