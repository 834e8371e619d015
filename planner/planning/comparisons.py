"""The plans a cost report compares the chosen plan with (bench/plan_quality.py builds the same two).

- the best single-hardware plan: every workload on one hardware type, the cheapest type that
  fits the inventory (if none does, the cheapest rented freely, and the name says so);
- the all-fp32 plan: the optimizer with only fp32 allowed.
Pure: a planning context and profile rows in, $/h by name out (None where no such plan meets
every target).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from planner.core.catalog import Catalog
from planner.core.profiles import ProfileRow
from planner.planning.context import PlanningContext, candidate_tables, served
from planner.planning.optimizer import SolverSettings, optimize


def baseline_costs(context: PlanningContext, rows: Sequence[ProfileRow], catalog: Catalog,
                   settings: SolverSettings = SolverSettings(time_limit_s=5.0)) -> dict[str, float | None]:
    """$/h of the best single-hardware plan and of the all-fp32 plan, by a name that says which."""
    context = served(context)

    def cost(ctx: PlanningContext, some_rows: list[ProfileRow]) -> float | None:
        solved = optimize(ctx, candidate_tables(ctx, some_rows, catalog), settings)
        return solved.objective_usd_per_hour if solved.ok else None

    hardware = sorted({r.hardware for r in rows if r.mode == "inference"})
    singles = {hw: cost(context, [r for r in rows if r.hardware == hw]) for hw in hardware}
    note = ""
    if not any(v is not None for v in singles.values()) and context.inventory is not None:
        rented = replace(context, inventory=None, owned=frozenset())
        singles = {hw: cost(rented, [r for r in rows if r.hardware == hw]) for hw in hardware}
        note = ", rented beyond the inventory"
    fitting = {hw: usd for hw, usd in singles.items() if usd is not None}
    result: dict[str, float | None] = {}
    if fitting:
        best = min(fitting, key=lambda hw: fitting[hw])
        result[f"best single hardware ({best}{note})"] = fitting[best]
    else:
        result["best single hardware"] = None
    fp32 = context.with_spec(workloads=tuple(replace(w, precisions=("fp32",)) for w in context.workloads))
    result["all fp32"] = cost(fp32, [r for r in rows if r.precision == "fp32"])
    return result
