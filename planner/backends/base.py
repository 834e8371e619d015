"""What every execution backend provides: capabilities, a device check, measurements, Ray options.

A backend is one way a model runs on one kind of device (torch on CPU, torch on CUDA,
JAX on TPU). Everything that used to branch on ``hardware.kind`` asks the hardware's
backend instead (planner.backends.registry.backend_for), so adding a backend is one new subclass
and one registry entry.

Heavy frameworks (torch, JAX) are imported inside the methods that run them: the
registry is imported by the API, the Ray adapter and the planner's driver process,
which must stay light.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

from planner.core.catalog import HardwareType
from planner.core.errors import InputError
from planner.core.profiles import ProfileRow, SkippedPoint
from planner.profiling.timing import TimingBudget


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do at all; a given device may still refuse some precisions."""
    precisions: tuple[str, ...]   # inference precisions its harness runs
    profiles: bool                # measures profile rows
    serves: bool                  # runs Serve replicas of a plan


@dataclass(frozen=True)
class ReplicaSettings:
    """How a Serve replica of this backend runs its model (cluster.serving.ModelServer's arguments)."""
    device: str    # the framework's device string, e.g. "cpu" or "cuda"
    threads: int   # intra-op threads of the replica's process


class Backend(ABC):
    """One execution path. Subclasses set the class attributes and implement the methods."""

    name: str                  # e.g. "torch-cuda": how messages and docs name it
    description: str           # e.g. "torch on CUDA GPUs"
    kind: str                  # the catalog kind it runs (planner.core.catalog.HardwareType.kind)
    framework: str             # the harness that measures it: "torch" or "jax"
    profiling_device: str      # the device a profiling task hands the harness
    capabilities: Capabilities

    def __repr__(self) -> str:
        return f"<backend {self.name}: {self.description}>"

    # ---------------------------------------------------------------- on the device

    @abstractmethod
    def check_device(self, hardware: HardwareType, device: str | None = None) -> str:
        """Return the device the harness will time on, or refuse (PlannerError) if this process lacks it.

        The refusal is what keeps CPU timings from being recorded under a GPU's or TPU's name.
        """

    @abstractmethod
    def measure_point(self, model: str, precision: str, batch_size: int, hardware: HardwareType, *,
                      device: str | None = None, threads: int = 1,
                      budget: TimingBudget = TimingBudget()) -> ProfileRow:
        """One measured (model, precision, batch size) row on this process's device."""

    @abstractmethod
    def profile_grid(self, model: str, precision: str, batch_sizes: Sequence[int], hardware: HardwareType, *,
                     device: str | None = None, threads: int = 1, budget: TimingBudget = TimingBudget(),
                     max_batch_latency_ms: float | None = None) -> tuple[list[ProfileRow], list[SkippedPoint]]:
        """Batch sizes in increasing order, stopping (the rest skipped, with reasons) once bigger is pointless."""

    # ---------------------------------------------------------------- on Ray

    @abstractmethod
    def profiling_task_options(self, hardware: HardwareType, threads: int,
                               cpu_label_selector: dict[str, str] | None = None) -> dict[str, Any]:
        """Ray task options that land a profiling task on ``hardware`` (and only there)."""

    @abstractmethod
    def replica_actor_options(self, hardware: HardwareType, units_per_replica: float,
                              cpu_label_selector: dict[str, str] | None = None) -> dict[str, Any]:
        """Serve ``ray_actor_options`` for one replica of ``units_per_replica`` units of ``hardware``."""

    @abstractmethod
    def replica_settings(self, hardware: HardwareType, units_per_replica: float) -> ReplicaSettings:
        """The device and threads a Serve replica runs its model with."""

    def check_can_serve(self, workload: str, hardware: HardwareType) -> None:
        """Refuse (InputError) to deploy ``workload`` on ``hardware`` if this backend has no Serve replica."""
        if not self.capabilities.serves:
            raise InputError(
                f"{workload}.hardware", hardware.name,
                f"its backend {self.name} ({self.description}) profiles but cannot serve yet; refusing to deploy "
                f"workload '{workload}' rather than start it on the wrong device",
                f"re-plan without {hardware.name} for this workload (leave its rows out of the profiles or "
                "it out of the inventory)")
