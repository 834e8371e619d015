"""One configuration a workload could run on, as the evaluator priced and checked it.

planner/planning/candidates.py builds them; the plan records the chosen one and the
alternatives (planner/core/plan.py); explanations and reports read them.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    workload: str
    hardware: str
    precision: str
    batch_size: int
    units_per_replica: float        # vCPUs for CPU, devices for accelerators
    replicas: int
    devices: float                  # inventory units used: replicas x units_per_replica
    unit: str                       # vcpu | gpu | tpu_chip
    predicted_p99_ms: float
    predicted_throughput_rps: float  # capacity of all replicas at 100% busy
    batch_wait_timeout_ms: float
    usd_per_hour: float
    power_w: float                  # busy + idle power of its replicas (planner/core/costs.py)
    quality_loss: float
    memory_gib: float
    profile_source: str             # measured | estimated | imported, with detail
    feasible: bool
    reason: str                     # "" when feasible, else the limit it breaks, with values
    energy_usd_per_hour: float = 0.0   # electricity bill (included in usd_per_hour)
    carbon_g_per_hour: float = 0.0
    objective_value: float = 0.0       # in the objective's units: $/h, W, gCO2e/h
    energy_unknown: bool = False       # power_w/carbon leave this configuration's energy out: nobody knows it
    model: str = ""                    # a variant serving the workload; "" = the workload's own model
    energy_source: str = ""            # the profile row's energy_source: "measured: rapl ...", "estimated ..."
    # The predicted p99's terms: (term, mean ms, p99 ms, where it came from); composed by
    # planner/core/latency.compose_p99_ms. Empty on plans written before it was recorded.
    prediction: tuple[tuple[str, float, float, str], ...] = ()

    def describe(self) -> str:
        variant = f"{self.model} " if self.model else ""
        return (f"{variant}{self.hardware} {self.precision} batch {self.batch_size} x{self.replicas} "
                f"({self.devices:g} {self.unit})")

    @property
    def hardware_usd_per_hour_per_unit(self) -> float:
        """The hardware's $/h per unit, recovered from the candidate (its cost less its energy)."""
        return max(0.0, self.usd_per_hour - self.energy_usd_per_hour) / self.devices if self.devices else 0.0
