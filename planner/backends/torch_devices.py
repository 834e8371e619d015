"""Torch on CPUs and torch on CUDA GPUs: the two backends that profile with planner.profiling.profiler
and serve with cluster.serving.ModelServer.

They share the harness (the same prepared module and runner in profiling and serving) and
differ in the device they check, the device string they hand torch, and the Ray resources
their tasks and replicas ask for.
"""
from __future__ import annotations

from typing import Any, Sequence

from planner.backends.base import Backend, Capabilities, ReplicaSettings
from planner.backends.torch_checks import check_cpu_device, check_cuda_device
from planner.core.catalog import HardwareType
from planner.core.profiles import ProfileRow, SkippedPoint
from planner.core.workloads import PRECISIONS
from planner.profiling.timing import TimingBudget

# Every precision a workload may ask for runs on torch (planner.models.precision.prepare_for_precision);
# a given device may still refuse one (planner.models.precision.supported_precisions, e.g. int8 on old GPUs).
_TORCH_CAPABILITIES = Capabilities(precisions=PRECISIONS, profiles=True, serves=True)


class _TorchBackend(Backend):
    framework = "torch"
    capabilities = _TORCH_CAPABILITIES

    def measure_point(self, model: str, precision: str, batch_size: int, hardware: HardwareType, *,
                      device: str | None = None, threads: int = 1,
                      budget: TimingBudget = TimingBudget()) -> ProfileRow:
        from planner.models import get_model
        from planner.profiling.profiler import profile_point

        return profile_point(get_model(model), precision, batch_size, hardware,
                             device=device or self.profiling_device, threads=threads, budget=budget)

    def profile_grid(self, model: str, precision: str, batch_sizes: Sequence[int], hardware: HardwareType, *,
                     device: str | None = None, threads: int = 1, budget: TimingBudget = TimingBudget(),
                     max_batch_latency_ms: float | None = None) -> tuple[list[ProfileRow], list[SkippedPoint]]:
        from planner.models import get_model
        from planner.profiling.profiler import profile_grid

        return profile_grid(get_model(model), [precision], batch_sizes, hardware,
                            device=device or self.profiling_device, threads=threads, budget=budget,
                            max_batch_latency_ms=max_batch_latency_ms)


class TorchCpuBackend(_TorchBackend):
    """CPU replicas are sized in vCPUs: a replica of n units runs torch with n threads on n reserved CPUs."""

    name = "torch-cpu"
    description = "torch on CPUs"
    kind = "cpu"
    profiling_device = "cpu"

    def check_device(self, hardware: HardwareType, device: str | None = None) -> str:
        return check_cpu_device(hardware, device or self.profiling_device)

    def profiling_task_options(self, hardware: HardwareType, threads: int,
                               cpu_label_selector: dict[str, str] | None = None) -> dict[str, Any]:
        # num_gpus=0 and the selector keep CPU timings off accelerator nodes, where they would compete.
        options: dict[str, Any] = {"num_cpus": threads, "num_gpus": 0}
        if cpu_label_selector:
            options["label_selector"] = dict(cpu_label_selector)
        return options

    def replica_actor_options(self, hardware: HardwareType, units_per_replica: float,
                              cpu_label_selector: dict[str, str] | None = None) -> dict[str, Any]:
        actor: dict[str, Any] = {"num_cpus": units_per_replica}
        if cpu_label_selector:
            actor["label_selector"] = dict(cpu_label_selector)
        return actor

    def replica_settings(self, hardware: HardwareType, units_per_replica: float) -> ReplicaSettings:
        return ReplicaSettings(device="cpu", threads=int(max(1, units_per_replica)))


class TorchCudaBackend(_TorchBackend):
    """A GPU replica holds a whole GPU or a share of one (planner/planning/sharing.py), plus a little host CPU."""

    name = "torch-cuda"
    description = "torch on CUDA GPUs"
    kind = "gpu"
    profiling_device = "cuda:0"

    def check_device(self, hardware: HardwareType, device: str | None = None) -> str:
        return check_cuda_device(hardware, device or self.profiling_device)

    def profiling_task_options(self, hardware: HardwareType, threads: int,
                               cpu_label_selector: dict[str, str] | None = None) -> dict[str, Any]:
        # A whole GPU of the planned type: a shared one would time its neighbours too.
        return {"num_cpus": 1, "num_gpus": 1, "accelerator_type": hardware.ray_accelerator_type}

    def replica_actor_options(self, hardware: HardwareType, units_per_replica: float,
                              cpu_label_selector: dict[str, str] | None = None) -> dict[str, Any]:
        from planner.core.inventory import ACCELERATOR_REPLICA_CPUS

        return {"num_cpus": ACCELERATOR_REPLICA_CPUS, "num_gpus": units_per_replica,
                "accelerator_type": hardware.ray_accelerator_type}

    def replica_settings(self, hardware: HardwareType, units_per_replica: float) -> ReplicaSettings:
        # One host thread: the model runs on the GPU, and the process has ACCELERATOR_REPLICA_CPUS of a CPU.
        return ReplicaSettings(device="cuda", threads=1)
