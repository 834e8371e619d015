"""How a prepared module is executed: eagerly on CPUs, by CUDA-graph replay on NVIDIA GPUs.

Profiling and serving must run a model the *same* way, or the profile predicts
something the deployment does not do. Both therefore get their callable from
``make_runner`` here.

Why CUDA graphs on GPUs: the built-in models (and many production ones at small
batch) are bound by kernel launches, not by the GPU. In eager PyTorch every
kernel costs a few microseconds of Python and driver work on the *host CPU*, so
the same GPU measures ~2x faster behind a faster host (we saw H200 "beat" H100
by 2x on models where the chips are identical in compute). A captured graph is
launched once per batch; what is left is the GPU's own kernel time, which is a
property of the device, repeatable, and what serving stacks (TensorRT, vLLM,
``torch.compile(mode="reduce-overhead")``) do in production.

Graphs are captured per batch size ("bucket"); a smaller batch is padded up to
the nearest captured bucket, as serving with a static max batch size does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

EAGER = "eager"
CUDA_GRAPH = "cuda_graph"


class _OpCounter(TorchDispatchMode):
    """Counts the ATen ops of one forward that launch work, and how many of them are convolutions.

    Not counted: views (they only re-label memory) and ops that hand back one of their inputs
    untouched (``dropout`` in eval mode), which launch no kernel. Convolutions are counted apart
    because a cuDNN convolution costs several times an elementwise kernel at small batch.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0
        self.conv_ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        if getattr(func, "is_view", False) or func.namespace == "prim":
            return out
        mutates = func._schema.is_mutable
        if not mutates and isinstance(out, torch.Tensor) and any(out is a for a in args):
            return out  # identity: nothing ran
        self.ops += 1
        if "conv" in func.__name__:
            self.conv_ops += 1
        return out


@dataclass(frozen=True)
class OpCount:
    ops: int        # ops that launch work (kernels on a GPU)
    conv_ops: int   # of which convolutions


def count_ops(module: nn.Module, batch: torch.Tensor) -> OpCount:
    """ATen ops one forward dispatches that launch work: a device-independent proxy for kernel launches.

    The estimator uses it for the fixed cost of a batch on a GPU (ops x per-kernel time)
    when the measured source is a CPU, whose own fixed cost says nothing about a GPU's.
    """
    counter = _OpCounter()
    # Fused fast paths (nn.TransformerEncoderLayer's) are one ATen op that launches tens of
    # kernels; count the decomposed ops instead, which track the kernels. Restored after.
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.inference_mode(), counter:
            module(batch)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return OpCount(counter.ops, counter.conv_ops)


def count_device_ops(module: nn.Module, batch: torch.Tensor) -> int:
    """Total ops that launch work (see count_ops)."""
    return count_ops(module, batch).ops


class CudaGraphRunner:
    """Replays one captured CUDA graph per batch-size bucket; pads a batch to its bucket."""

    def __init__(self, module: nn.Module, example_item: torch.Tensor, buckets: list[int], device: str):
        self.module, self.device = module, torch.device(device)
        self.buckets = sorted(set(int(b) for b in buckets))
        self.example_item = example_item.to(self.device)
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    def bucket_for(self, n: int) -> int:
        for b in self.buckets:
            if b >= n:
                return b
        raise ValueError(f"batch of {n} exceeds the largest captured bucket {self.buckets[-1]}")

    def _capture(self, bucket: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]:
        static_in = self.example_item.unsqueeze(0).expand(bucket, *self.example_item.shape).contiguous()
        # Warm up on a side stream (allocations, cuBLAS handles, autotuning) before capture,
        # as torch.cuda.graphs documents; capture must not see first-call work.
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(3):
                self.module(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph):
            static_out = self.module(static_in)
        return graph, static_in, static_out

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        n = batch.shape[0]
        bucket = self.bucket_for(n)
        if bucket not in self._graphs:
            self._graphs[bucket] = self._capture(bucket)
        graph, static_in, static_out = self._graphs[bucket]
        static_in[:n].copy_(batch)
        graph.replay()
        return static_out[:n]


def make_runner(module: nn.Module, example_item: torch.Tensor, device: str, max_batch_size: int,
                buckets: list[int] | None = None) -> tuple[Callable[[torch.Tensor], torch.Tensor], str]:
    """(callable, execution mode) for a prepared module; CUDA graphs on CUDA devices, eager otherwise.

    `example_item` is one already-cast item (it sets the graph's static input dtype and shape).
    Falls back to eager, saying why in the mode string, if capture fails (e.g. an op that syncs).
    """
    def eager(batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return module(batch)

    if not str(device).startswith("cuda"):
        return eager, EAGER
    if buckets is None:
        buckets = [1 << i for i in range(max(1, max_batch_size).bit_length()) if 1 << i < max_batch_size]
        buckets.append(max_batch_size)
    runner = CudaGraphRunner(module, example_item, buckets, device)
    try:
        runner(example_item.unsqueeze(0).to(device))  # capture the smallest bucket now: fail early
    except RuntimeError as exc:
        return eager, f"{EAGER} (CUDA graph capture failed: {str(exc).splitlines()[0][:120]})"
    return runner, CUDA_GRAPH
