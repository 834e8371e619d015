"""Pareto sweeps: what each step of latency or energy costs, as a table of plans.

- Cost against p99: every workload's p99 target scaled by a factor (0.25x .. 4x);
  each point is the cheapest plan meeting the scaled targets.
- Cost against energy (the epsilon-constraint method): the cheapest plan's power
  and the least-power plan's power bound the range; each point is the cheapest
  plan whose power at the wall stays under a cap between them.
Pure: takes a planning context (planner/planning/context.py) and candidates' inputs, returns records.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from planner.core.catalog import Catalog
from planner.core.plan import Plan
from planner.core.profiles import ProfileRow
from planner.planning.context import PlanningContext, candidate_tables, served
from planner.planning.optimizer import SolverSettings, optimize

P99_SCALES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)


@dataclass(frozen=True)
class ParetoPoint:
    axis: str                 # "p99_scale" or "wall_power_w"
    axis_value: float
    status: str
    usd_per_hour: float | None
    wall_power_w: float | None
    carbon_g_per_hour: float | None
    energy_unknown_workloads: int = 0      # power and carbon leave these out: nobody knows their energy


def _solve(context: PlanningContext, rows: Sequence[ProfileRow], catalog: Catalog,
           settings: SolverSettings) -> Plan:
    context = served(context)
    return optimize(context, candidate_tables(context, rows, catalog), settings)


def _point(axis: str, value: float, plan: Plan, pue: float) -> ParetoPoint:
    if not plan.ok:
        return ParetoPoint(axis, value, "INFEASIBLE", None, None, None)
    return ParetoPoint(axis, value, plan.status, plan.objective_usd_per_hour, plan.objective_power_w * pue,
                       plan.carbon_g_per_hour, sum(1 for w in plan.workloads if w.chosen.energy_unknown))


def cost_vs_p99(context: PlanningContext, rows: Sequence[ProfileRow], catalog: Catalog,
                scales: Sequence[float] = P99_SCALES, settings: SolverSettings = SolverSettings()) -> list[ParetoPoint]:
    points = []
    for scale in scales:
        scaled = tuple(replace(w, p99_ms=w.p99_ms * scale) if w.p99_ms is not None else w for w in context.workloads)
        points.append(_point("p99_scale", scale,
                             _solve(context.with_spec(objective="cost", workloads=scaled), rows, catalog, settings),
                             context.electricity.pue))
    return points


def cost_vs_energy(context: PlanningContext, rows: Sequence[ProfileRow], catalog: Catalog, points: int = 6,
                   settings: SolverSettings = SolverSettings()) -> list[ParetoPoint]:
    pue = context.electricity.pue
    cheapest = _solve(context.with_spec(objective="cost"), rows, catalog, settings)
    leanest = _solve(context.with_spec(objective="energy"), rows, catalog, settings)
    if not (cheapest.ok and leanest.ok):
        return [_point("wall_power_w", 0.0, cheapest if not cheapest.ok else leanest, pue)]
    high, low = cheapest.objective_power_w * pue, leanest.objective_power_w * pue
    # When the cheapest plan is also the leanest, the front is that one plan.
    caps = [high] if high - low <= 1e-3 * max(high, 1e-9) else [low + (high - low) * i / max(1, points - 1) for i in range(points)]
    out = []
    for cap in caps:
        # Slack for the per-candidate rounding to mW, so the end points (which define the caps) stay feasible.
        capped = replace(context.with_spec(objective="cost"),
                         max_wall_power_w=cap * (1 + 1e-6) + 1e-3 * (1 + len(context.workloads)))
        out.append(_point("wall_power_w", cap, _solve(capped, rows, catalog, settings), pue))
    return out
