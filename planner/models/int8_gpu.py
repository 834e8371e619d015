"""int8 on NVIDIA GPUs: dynamic W8A8 quantisation of Linear layers on torch's int8 GEMM.

The same recipe as CPU int8 (``torch.ao.quantization.quantize_dynamic``, which is
CPU-only): Linear weights quantised per output channel once, activations per row
at run time, other layers left in fp32; so "int8" means the same arithmetic, and
a comparable quality loss, on both kinds of device. The GEMM is
``torch._int_mm`` (cuBLASLt int8 x int8 -> int32 on tensor cores), which is the
kernel torchao's dynamic int8 path uses; every op here is capturable in a CUDA
graph (no host sync), so int8 runs the same way as the other precisions.

``torch._int_mm`` requires more than 16 rows and both inner and output
dimensions to be multiples of 8: rows, K and N are zero-padded to fit, and the
padding sliced off (zero rows and columns do not change the result).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

_MIN_ROWS = 17  # torch._int_mm: "self.size(0) needs to be greater than 16"


def _round_up(n: int, multiple: int) -> int:
    return (n + multiple - 1) // multiple * multiple


class Int8DynamicLinear(nn.Module):
    """y = (q(x) @ q(W)^T) * s_x * s_w + b, with q() symmetric int8 (per row of x, per row of W)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.k_padded = _round_up(self.in_features, 8)
        n_padded = _round_up(self.out_features, 8)
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        q = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
        q = F.pad(q, (0, self.k_padded - self.in_features, 0, n_padded - self.out_features))
        # Stored as (K, N) column-major: the layout cuBLASLt's int8 GEMM wants for mat2.
        self.register_buffer("weight_int8_t", q.t())
        self.register_buffer("weight_scale", scale)
        self.register_buffer("bias", linear.bias.detach().float() if linear.bias is not None else None)

    @property
    def weight(self) -> torch.Tensor:
        """A dequantised view, for code that inspects ``.weight`` (shape and device only)."""
        w = self.weight_int8_t.t()[: self.out_features, : self.in_features]
        return w.float() * self.weight_scale[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead, dtype = x.shape[:-1], x.dtype
        rows = x.reshape(-1, self.in_features).float()
        m = rows.shape[0]
        row_scale = rows.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0
        q = torch.round(rows / row_scale).clamp(-127, 127).to(torch.int8)
        q = F.pad(q, (0, self.k_padded - self.in_features, 0, max(0, _MIN_ROWS - m)))
        acc = torch._int_mm(q, self.weight_int8_t)[:m, : self.out_features]
        y = acc.float() * row_scale * self.weight_scale
        if self.bias is not None:
            y = y + self.bias
        return y.to(dtype).reshape(*lead, self.out_features)


def quantize_linears_int8(module: nn.Module) -> nn.Module:
    """Replace every nn.Linear (not attention's fused in-projection parameters) in place, as CPU int8 does."""
    for name, child in list(module.named_children()):
        # MultiheadAttention.out_proj is a Linear subclass whose weight the fused attention reads
        # directly; CPU dynamic quantisation leaves it alone too, so int8 means the same thing on both.
        if type(child) is nn.Linear:
            setattr(module, name, Int8DynamicLinear(child))
        else:
            quantize_linears_int8(child)
    return module
