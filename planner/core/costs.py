"""The cost model: what a configuration draws, pays and emits per hour while it serves its demand.

Works on floats and on numpy arrays alike (the candidate evaluator prices every profile
row of a model at once). Measured energy per item already includes the device's idle
draw while it is busy; the replicas also idle for the rest of the time:

    power_w   = demand x J/item + devices x idle_w x (1 - busy),   busy = demand / capacity
    wall_kw   = power_w x PUE / 1000
    usd/h     = devices x hardware $/h + wall_kw x $/kWh
    carbon    = wall_kw x grid gCO2e/kWh
    objective = planner/core/objectives.py's value of the above
"""
from __future__ import annotations

from planner.core.catalog import HardwareType
from planner.core.objectives import OBJECTIVES
from planner.core.workloads import Electricity

IDLE_FRACTION_WHEN_UNKNOWN = 0.2   # idle = this x max when the catalog has no idle figure (as the energy estimate)


def idle_w_per_unit(hardware: HardwareType) -> float:
    """Idle draw of one unit; when only the maximum is published, 20% of it."""
    if hardware.power_idle_w is not None:
        return hardware.power_idle_w
    return IDLE_FRACTION_WHEN_UNKNOWN * (hardware.power_max_w or 0.0)


def running_costs(demand_rps, energy_j_per_item, capacity_rps, devices, idle_w, hardware_usd_per_hour,
                  electricity: Electricity, objective: str):
    """(power_w, energy_usd_per_hour, carbon_g_per_hour, usd_per_hour, objective value) of a configuration."""
    busy = demand_rps / capacity_rps
    power_w = demand_rps * energy_j_per_item + devices * idle_w * (1.0 - busy)
    wall_kw = power_w * electricity.pue / 1000.0
    energy_usd = wall_kw * electricity.usd_per_kwh
    carbon_g = wall_kw * electricity.grid_gco2e_per_kwh
    usd = hardware_usd_per_hour + energy_usd
    return power_w, energy_usd, carbon_g, usd, OBJECTIVES[objective].value(usd, power_w, carbon_g, electricity)
