"""How much does the optimizer save against what people do by hand?

Scenario (seeded): 30 online workloads over the three built-in models, demand
log-uniform in 20..40,000 rps, p99 targets 20-250 ms (the 10 ms serving overhead rules out tighter ones), every precision allowed
within a 1% quality loss, under a mixed inventory. Profiles: the committed
reference rows (this dev machine's CPU and the H100/H200, measured) plus
roofline estimates for L4, T4, A100 80GB, L40S and TPU v5e, at catalog prices.

Compared, each planned with the same candidates:
  (a) the best single-hardware plan: every workload on one hardware type (the
      cheapest type that fits everything), precisions and batch sizes still free;
  (b) greedy: each workload, largest demand first, takes its cheapest feasible
      configuration whose hardware still has inventory left;
  (c) all-fp32: the optimizer with only fp32 allowed.

    python -m bench.plan_quality [--workloads 30] [--seed 0]

Last line: {"plan_usd_per_hour", "best_single_hardware_usd_per_hour", "greedy_usd_per_hour", "all_fp32_usd_per_hour", ...}
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
from pathlib import Path

from planner.core.candidate import Candidate
from planner.core.catalog import load_catalog
from planner.core.profiles import ProfileRow, read_profiles_csv
from planner.core.workloads import Workload, WorkloadSet
from planner.planning.candidates import enumerate_tables
from planner.planning.context import PlanningContext
from planner.planning.optimizer import optimize
from planner.profiling.estimator import estimate_profiles

REFERENCE = Path(__file__).resolve().parent.parent / "profiles" / "reference"
MODELS = ("mlp_digits", "resnet_small", "transformer_small")
ESTIMATED = ("l4", "t4", "a100-80gb", "l40s", "tpu-v5e")
INVENTORY = {"cpu-x86": 64, "t4": 4, "l4": 4, "a100-80gb": 2, "l40s": 2, "h100": 2, "h200": 2, "tpu-v5e": 8}


def scenario_rows(catalog) -> list[ProfileRow]:
    measured = [r for name in ("cpu-x86", "h100", "h200") for r in read_profiles_csv(REFERENCE / f"{name}.csv")
                if r.mode == "inference"]
    h100 = [r for r in measured if r.hardware == "h100"]
    return measured + estimate_profiles(h100, dict(catalog.hardware), [catalog.get(n) for n in ESTIMATED])


def scenario_workloads(count: int, seed: int) -> tuple[Workload, ...]:
    rng = random.Random(seed)
    return tuple(Workload(f"w{i:03d}", rng.choice(MODELS), "online", ("fp32", "bf16", "fp16", "int8"), 0.01, 1,
                          qps=round(math.exp(rng.uniform(math.log(20), math.log(40_000))), 1),
                          p99_ms=rng.choice((20.0, 25.0, 50.0, 100.0, 250.0)))
                 for i in range(count))


def solve_cost(workloads, rows, catalog, inventory) -> float | None:
    ws = WorkloadSet(tuple(workloads), inventory=inventory)
    plan = optimize(PlanningContext.of(ws), enumerate_tables(ws.workloads, rows, catalog, inventory,
                                                             ws.max_utilization, ws.serving_overhead_ms))
    return plan.objective_usd_per_hour if plan.ok else None


def greedy_cost(workloads, rows, catalog, inventory) -> float | None:
    """Largest demand first; cheapest feasible configuration with inventory left; None if one is stuck."""
    tables = enumerate_tables(workloads, rows, catalog, inventory, 0.8, WorkloadSet(()).serving_overhead_ms)
    left = dict(inventory)
    total = 0.0
    for w in sorted(workloads, key=lambda w: -w.demand_rps):
        options: list[Candidate] = [c for c in tables[w.name].candidates() if c.feasible and c.devices <= left.get(c.hardware, 0)]
        if not options:
            return None
        best = min(options, key=lambda c: (c.usd_per_hour, c.predicted_p99_ms))
        left[best.hardware] -= best.devices
        total += best.usd_per_hour
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    catalog = load_catalog()
    rows = scenario_rows(catalog)
    workloads = scenario_workloads(args.workloads, args.seed)

    plan = solve_cost(workloads, rows, catalog, INVENTORY)
    singles = {}
    for hw in INVENTORY:
        only = [r for r in rows if r.hardware == hw]
        singles[hw] = solve_cost(workloads, only, catalog, {hw: INVENTORY[hw]})
    feasible_singles = {hw: cost for hw, cost in singles.items() if cost is not None}
    # With the inventory, often no single type fits everything; then also price renting one type freely.
    unbounded_singles = {hw: solve_cost(workloads, [r for r in rows if r.hardware == hw], catalog, None)
                         for hw in INVENTORY}
    best_single_hw = min(feasible_singles or unbounded_singles,
                         key=lambda hw: (feasible_singles or unbounded_singles)[hw] or math.inf)
    best_single = (feasible_singles or unbounded_singles)[best_single_hw]
    greedy = greedy_cost(workloads, rows, catalog, INVENTORY)
    fp32_rows = [r for r in rows if r.precision == "fp32"]
    all_fp32 = solve_cost([dataclasses.replace(w, precisions=("fp32",)) for w in workloads], fp32_rows, catalog,
                          INVENTORY)

    def pct(base: float | None) -> float | None:
        return None if not base or plan is None else round(100 * (1 - plan / base), 1)

    print(f"optimizer {plan:.4f} $/h; best single hardware ({best_single_hw}"
          f"{'' if feasible_singles else ', no single type fits the inventory: rented freely'}) {best_single}; "
          f"greedy {greedy}; all-fp32 {all_fp32}")
    print(json.dumps({"plan_usd_per_hour": round(plan, 4) if plan is not None else None,
                      "best_single_hardware_usd_per_hour": round(best_single, 4) if best_single else None,
                      "best_single_hardware": best_single_hw,
                      "greedy_usd_per_hour": round(greedy, 4) if greedy is not None else None,
                      "all_fp32_usd_per_hour": round(all_fp32, 4) if all_fp32 is not None else None,
                      "savings_vs_single_pct": pct(best_single), "savings_vs_greedy_pct": pct(greedy),
                      "savings_vs_fp32_pct": pct(all_fp32), "workloads": len(workloads)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
