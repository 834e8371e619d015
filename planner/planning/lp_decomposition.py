"""Large plans: LP relaxation (GLOP), then CP-SAT on the few workloads the LP leaves fractional.

The plan model is a multiple-choice knapsack: one candidate per workload, a
handful of shared inventory rows (one per hardware type). Its LP relaxation
has a basic optimal solution with at most as many fractional workloads as
there are inventory rows that bind, so for thousands of workloads:

    1. solve the LP (OR-Tools GLOP): its optimum is a lower bound on every plan;
    2. keep the workloads the LP already assigns integrally;
    3. choose for the (<= 12 or so) fractional ones with CP-SAT, exactly, in the
       inventory the others left.

Step 3 builds its model with planner/planning/formulation.py's `build`, the one
the whole-model path uses: constraints (1), (2) and (5) over the fractional
workloads, objective (8), without the tie-break (9) or the whole-device
remainder (10), which the LP bound leaves out too.

The plan's cost minus the LP bound is the reported gap; when it is 0 the plan
is proven optimal. If step 3 finds nothing (the rounding left too little room),
the caller falls back to CP-SAT on the whole model.
"""
from __future__ import annotations

from dataclasses import dataclass

from ortools.linear_solver import pywraplp
from ortools.sat.python import cp_model

from planner.core.candidate import Candidate
from planner.planning.formulation import Problem, build, chosen_indices, minimise_objective

INTEGRAL = 1 - 1e-6


@dataclass(frozen=True)
class LpResult:
    chosen: dict[str, Candidate]
    lower_bound: float           # LP optimum, in the objective's units ($/h or W)
    fractional_workloads: int


def solve_by_lp(problem: Problem, time_limit_s: float, num_workers: int) -> LpResult | None:
    """None when the LP is infeasible or the rounding step finds no completion.

    Minimises each candidate's `objective_value` (computed for the plan's objective) under the
    problem's inventory and budget; node packing and the power cap are the whole model's alone.
    """
    placeable, inventory, budget_usd_per_hour = problem.choices, problem.capacity, problem.budget_usd_per_hour
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
        rest = Problem({w: placeable[w] for w in fractional}, problem.objective, left,
                       None if budget_usd_per_hour is None else budget_usd_per_hour - spent,
                       tie_break_levels=0, pay_whole_devices=False)
        exact = _exact(rest, time_limit_s, num_workers)
        if exact is None:
            return None
        chosen.update(exact)
    return LpResult(chosen, bound, len(fractional))


def _exact(rest: Problem, time_limit_s: float, num_workers: int) -> dict[str, Candidate] | None:
    """The formulation over the fractional workloads only, in the inventory and budget that remain."""
    formulation = build(rest)
    minimise_objective(formulation, rest)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = num_workers
    if solver.solve(formulation.model) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    return {w: rest.choices[w][i] for w, i in chosen_indices(solver, formulation, rest).items()}
