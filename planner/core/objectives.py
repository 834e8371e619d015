"""What a plan can minimise: one entry per objective.

Each objective says how a configuration's running costs (planner/core/costs.py) become the
value the optimizer adds up, the unit of that value, and the integer scale CP-SAT works in
(it needs integer coefficients; one named constant per objective keeps the rounding in one
place). Adding an objective is adding one entry to `OBJECTIVES`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from planner.core.workloads import Electricity

# One configuration's running costs, as floats or numpy arrays: (usd_per_hour with electricity,
# power_w drawn by the hardware, carbon_g_per_hour, the electricity settings) -> objective value.
ValueFunction = Callable[[Any, Any, Any, "Electricity"], Any]


@dataclass(frozen=True)
class Objective:
    name: str
    unit: str                    # plan.json's objective_units
    scale: int                   # integer solver units per unit (micro-$/h, mW, mg/h)
    value: ValueFunction
    needs_energy: bool           # a configuration whose energy nobody knows cannot be weighed
    # The value includes the hardware's price: shared GPUs are paid whole, so the unused part
    # of a partly used device counts (planner/planning/formulation.py, the whole-device remainder).
    includes_hardware_price: bool
    # The value is the plan's $/h itself, so the solver's bound is also a bound on $/h.
    is_usd_per_hour: bool


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("cost", "usd_per_hour", 1_000_000, lambda usd, power_w, carbon_g, el: usd,
              needs_energy=False, includes_hardware_price=True, is_usd_per_hour=True),
    Objective("energy", "watts", 1_000, lambda usd, power_w, carbon_g, el: power_w * el.pue,
              needs_energy=True, includes_hardware_price=False, is_usd_per_hour=False),
    Objective("carbon", "gco2e_per_hour", 1_000, lambda usd, power_w, carbon_g, el: carbon_g,
              needs_energy=True, includes_hardware_price=False, is_usd_per_hour=False),
    # Carbon priced in dollars (electricity.carbon_usd_per_kg) on top of the bill.
    Objective("cost+carbon", "usd_per_hour", 1_000_000,
              lambda usd, power_w, carbon_g, el: usd + carbon_g / 1000.0 * el.carbon_usd_per_kg,
              needs_energy=True, includes_hardware_price=True, is_usd_per_hour=False),
)}

OBJECTIVE_NAMES = tuple(OBJECTIVES)
