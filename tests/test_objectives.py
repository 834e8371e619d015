"""Objectives (cost, energy, carbon, cost+carbon), the electricity bill, idle power and the budget cap."""
from __future__ import annotations

from dataclasses import replace

import pytest

from planner.core.workloads import Electricity, WorkloadSet
from planner.planning.candidates import enumerate_tables
from planner.planning.context import PlanningContext
from planner.planning.optimizer import optimize
from tests.test_optimizer import online, row

GRID = Electricity(usd_per_kwh=0.10, pue=1.2, grid_gco2e_per_kwh=400.0, carbon_usd_per_kg=0.0)


def rows_cheap_but_hungry():
    # CPU: cheap per hour, 2 J/item; T4: dearer, 0.01 J/item.
    return [replace(row("m", "cpu-x86", rps=100), energy_j_per_item=2.0),
            replace(row("m", "t4", rps=10_000), energy_j_per_item=0.01)]


def plan_for(objective, electricity=GRID, budget=None, qps=240.0):
    # Hand-computed answers use the latency model without queueing (tests/test_latency.py has it).
    ws = WorkloadSet((online("w", "m", qps=qps, p99_ms=100),), objective=objective, electricity=electricity,
                     budget_usd_per_hour=budget, queueing=False)
    tables = enumerate_tables(ws.workloads, rows_cheap_but_hungry(), _catalog(), None, 0.8, 10.0,
                              electricity, objective, queueing=False)
    return optimize(PlanningContext.of(ws), tables), {name: t.candidates() for name, t in tables.items()}


def _catalog():
    from planner.core.catalog import load_catalog
    return load_catalog()


def test_power_counts_busy_energy_and_idle_replicas():
    _, cands = plan_for("cost")
    cpu = next(c for c in cands["w"] if c.hardware == "cpu-x86")
    busy = 240 / (cpu.replicas * 100)
    assert cpu.power_w == pytest.approx(240 * 2.0 + cpu.devices * 0.7 * (1 - busy))  # catalog idle 0.7 W/vCPU


def test_electricity_is_added_to_the_hourly_cost_and_carbon_follows_the_grid():
    _, cands = plan_for("cost")
    cpu = next(c for c in cands["w"] if c.hardware == "cpu-x86")
    wall_kw = cpu.power_w * 1.2 / 1000
    assert cpu.energy_usd_per_hour == pytest.approx(wall_kw * 0.10)
    assert cpu.usd_per_hour == pytest.approx(cpu.devices * 0.0446 + wall_kw * 0.10)
    assert cpu.carbon_g_per_hour == pytest.approx(wall_kw * 400.0)


def test_objectives_choose_differently():
    cost_plan, _ = plan_for("cost")
    energy_plan, _ = plan_for("energy")
    carbon_plan, _ = plan_for("carbon")
    assert cost_plan.workloads[0].chosen.hardware == "cpu-x86"     # 3 vCPUs, cheap, ~480 W
    assert energy_plan.workloads[0].chosen.hardware == "t4"        # one T4, far less power
    assert carbon_plan.workloads[0].chosen.hardware == "t4"
    assert energy_plan.objective_value == pytest.approx(energy_plan.objective_power_w * 1.2)
    assert carbon_plan.carbon_g_per_hour < cost_plan.carbon_g_per_hour


def test_a_carbon_price_tips_the_balance():
    cheap_carbon = Electricity(0.10, 1.2, 400.0, carbon_usd_per_kg=0.01)
    dear_carbon = Electricity(0.10, 1.2, 400.0, carbon_usd_per_kg=5.0)
    assert plan_for("cost+carbon", cheap_carbon)[0].workloads[0].chosen.hardware == "cpu-x86"
    assert plan_for("cost+carbon", dear_carbon)[0].workloads[0].chosen.hardware == "t4"


def test_budget_caps_the_plan_and_says_so_when_too_tight():
    free, _ = plan_for("energy")
    assert free.workloads[0].chosen.hardware == "t4"
    # A budget below the T4's price forces the CPU, whatever the energy.
    capped, _ = plan_for("energy", budget=0.3)
    assert capped.ok and capped.workloads[0].chosen.hardware == "cpu-x86"
    assert capped.objective_usd_per_hour <= 0.3
    impossible, _ = plan_for("energy", budget=0.01)
    assert not impossible.ok and "budget" in impossible.infeasible[0]


def test_pareto_sweeps_are_monotone_and_honest_about_unknown_energy():
    from planner.core.catalog import load_catalog
    from planner.planning.pareto import cost_vs_energy, cost_vs_p99
    catalog = load_catalog()
    rows = rows_cheap_but_hungry() + [replace(row("m", "tpu-v5e", rps=50_000), energy_j_per_item=0.0,
                                              energy_source="unknown: no power figure for tpu-v5e in the catalog")]
    context = PlanningContext.of(WorkloadSet((online("w", "m", qps=240, p99_ms=100),), electricity=GRID))
    p99_front = cost_vs_p99(context, rows, catalog)
    costs = [p.usd_per_hour for p in p99_front if p.usd_per_hour is not None]
    assert costs == sorted(costs, reverse=True)  # looser targets never cost more
    energy_front = cost_vs_energy(context, rows, catalog, points=4)
    assert all(p.status in ("OPTIMAL", "FEASIBLE") for p in energy_front)
    # Under a power cap, the TPU (energy unknown) is never counted as 0 W: every point knows its energy.
    assert all(p.energy_unknown_workloads == 0 for p in energy_front)
    caps = [p.axis_value for p in energy_front]
    assert caps == sorted(caps) and all(p.wall_power_w <= cap + 0.01 for p, cap in zip(energy_front, caps))
    # The cost objective may still choose the TPU (here, the only option), and then says its energy is unknown.
    only_tpu = cost_vs_p99(context, rows[2:], catalog, scales=(1.0,))[0]
    assert only_tpu.status == "OPTIMAL" and only_tpu.energy_unknown_workloads == 1
