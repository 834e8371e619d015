"""Large plans: LP relaxation (GLOP), then CP-SAT on the few workloads the LP leaves fractional.

The plan model is a multiple-choice knapsack: one candidate per workload, a
handful of shared inventory rows (one per hardware type). Its LP relaxation
has a basic optimal solution with at most as many fractional workloads as
there are inventory rows that bind, so for thousands of workloads:

    1. solve the LP (OR-Tools GLOP): its optimum is a lower bound on every plan;
    2. keep the workloads the LP already assigns integrally;
    3. choose for the (<= 12 or so) fractional ones with CP-SAT, exactly, in the
       inventory the others left.

The plan's cost minus the LP bound is the reported gap; when it is 0 the plan
is proven optimal. If step 3 finds nothing (the rounding left too little room),
the caller falls back to CP-SAT on the whole model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from ortools.linear_solver import pywraplp
from ortools.sat.python import cp_model

from planner.planning.candidates import Candidate

INTEGRAL = 1 - 1e-6


@dataclass(frozen=True)
class LpResult:
    chosen: dict[str, Candidate]
    lower_bound: float           # LP optimum, in the objective's units ($/h or W)
    fractional_workloads: int


def solve_by_lp(placeable: Mapping[str, Sequence[Candidate]], inventory: Mapping[str, int] | None,
                time_limit_s: float, num_workers: int, budget_usd_per_hour: float | None = None) -> LpResult | None:
    """None when the LP is infeasible or the rounding step finds no completion.

    Minimises each candidate's `objective_value` (computed for the plan's objective).
    """
    lp = pywraplp.Solver.CreateSolver("GLOP")
    y = {}
    caps = {hw: lp.Constraint(-lp.infinity(), float(n)) for hw, n in (inventory or {}).items()}
    budget = None if budget_usd_per_hour is None else lp.Constraint(-lp.infinity(), budget_usd_per_hour)
    objective_row = lp.Objective()
    for w, cands in placeable.items():
        one = lp.Constraint(1.0, 1.0)
        for i, c in enumerate(cands):
            var = lp.NumVar(0.0, 1.0, "")
            y[w, i] = var
            one.SetCoefficient(var, 1.0)
            objective_row.SetCoefficient(var, c.objective_value)
            if c.hardware in caps:
                caps[c.hardware].SetCoefficient(var, c.devices)
            if budget is not None:
                budget.SetCoefficient(var, c.usd_per_hour)
    objective_row.SetMinimization()
    lp.SetTimeLimit(int(time_limit_s * 1000))
    if lp.Solve() != pywraplp.Solver.OPTIMAL:
        return None
    bound = objective_row.Value()

    chosen: dict[str, Candidate] = {}
    fractional: list[str] = []
    left = {hw: float(n) for hw, n in (inventory or {}).items()}
    for w, cands in placeable.items():
        best = max(range(len(cands)), key=lambda i: y[w, i].solution_value())
        if y[w, best].solution_value() >= INTEGRAL:
            chosen[w] = cands[best]
            if cands[best].hardware in left:
                left[cands[best].hardware] -= cands[best].devices
        else:
            fractional.append(w)
    spent = sum(c.usd_per_hour for c in chosen.values())
    if fractional:
        room = None if budget_usd_per_hour is None else budget_usd_per_hour - spent
        rest = _exact_for(fractional, placeable, left, room, time_limit_s, num_workers)
        if rest is None:
            return None
        chosen.update(rest)
    return LpResult(chosen, bound, len(fractional))


def _exact_for(workloads: Sequence[str], placeable: Mapping[str, Sequence[Candidate]], left: Mapping[str, float],
               budget_left: float | None, time_limit_s: float, num_workers: int) -> dict[str, Candidate] | None:
    """CP-SAT over the fractional workloads only, in the inventory that remains."""
    model = cp_model.CpModel()
    x = {(w, i): model.new_bool_var("") for w in workloads for i in range(len(placeable[w]))}
    for w in workloads:
        model.add_exactly_one(x[w, i] for i in range(len(placeable[w])))
    for hw, room in left.items():
        terms = [int(round(c.devices * 1000)) * x[w, i] for w in workloads for i, c in enumerate(placeable[w])
                 if c.hardware == hw]
        if terms:
            model.add(sum(terms) <= int(room * 1000 + 1e-6))
    if budget_left is not None:
        model.add(sum(int(round(c.usd_per_hour * 1e6)) * x[w, i] for w in workloads
                      for i, c in enumerate(placeable[w])) <= int(budget_left * 1e6))
    model.minimize(sum(int(round(c.objective_value * 1e6)) * x[w, i]
                       for w in workloads for i, c in enumerate(placeable[w])))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = num_workers
    if solver.solve(model) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    return {w: next(c for i, c in enumerate(placeable[w]) if solver.value(x[w, i])) for w in workloads}
