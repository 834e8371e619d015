"""How does planning scale? Synthetic instances: N workloads, 12 hardware types x 4 precisions x 8 batch sizes.

Each of 20 synthetic models gets a row per (hardware, precision, batch size)
with throughput and latency drawn around a per-model, per-hardware speed
(seeded); workloads pick a model, a demand (log-uniform 10..20,000 rps) and a
p99 target; the inventory gives each hardware type the unconstrained optimum
uses 70% of that use (and the others 10% of the total), so it binds. Prints the time to build candidates and to solve
separately, the status and the gap to CP-SAT's bound.

    python -m bench.solver_scale --workloads 1000 [--time-limit 10]

Last line: {"workloads": ..., "solve_seconds": ..., "status": ..., "gap_pct": ..., "candidates_seconds": ...}
"""
from __future__ import annotations

import argparse
import json
import math
import random
import time

from planner.core.catalog import load_catalog
from planner.core.profiles import ProfileRow
from planner.core.workloads import PRECISIONS, Workload, WorkloadSet
from planner.planning.candidates import enumerate_tables
from planner.planning.context import PlanningContext
from planner.planning.optimizer import SolverSettings, optimize

HARDWARE = ("cpu-x86", "cpu-n2", "t4", "l4", "a10g", "l40s", "a100-40gb", "a100-80gb", "h100", "h200",
            "tpu-v5e", "tpu-v6e")
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)
SPEEDUP = {"fp32": 1.0, "bf16": 1.8, "fp16": 1.8, "int8": 2.5}
QUALITY = {"fp32": 0.0, "bf16": 0.002, "fp16": 0.001, "int8": 0.01}


def synthetic_rows(models: int, rng: random.Random) -> list[ProfileRow]:
    rows = []
    for m in range(models):
        base_ms = math.exp(rng.uniform(math.log(0.2), math.log(20)))  # batch-1 latency on a vCPU
        for hw in HARDWARE:
            speed = 1.0 if hw.startswith("cpu") else rng.uniform(5, 60)
            overhead = 0.05 if hw.startswith("cpu") else rng.uniform(0.2, 1.5)
            for p in PRECISIONS:
                for b in BATCHES:
                    p50 = overhead + b * base_ms / speed / SPEEDUP[p]
                    rows.append(ProfileRow(f"m{m}", hw, p, b, p50, p50 * 1.3, b * 1000 / p50, 0.5, 0.01,
                                           QUALITY[p], "estimated", source_detail="synthetic benchmark row"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=1000)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    catalog = load_catalog()
    rows = synthetic_rows(args.models, rng)
    workloads = tuple(Workload(f"w{i}", f"m{rng.randrange(args.models)}", "online", PRECISIONS, 0.005, 1,
                               qps=round(math.exp(rng.uniform(math.log(10), math.log(20_000))), 1),
                               p99_ms=rng.choice((50.0, 100.0, 250.0, 1000.0))) for i in range(args.workloads))

    unbounded = optimize(PlanningContext.of(WorkloadSet(workloads)), enumerate_tables(workloads, rows, catalog, None, 0.8, 10.0),
                         SolverSettings(time_limit_s=args.time_limit))
    cheapest_use: dict[str, float] = {}
    for w in unbounded.workloads:
        cheapest_use[w.chosen.hardware] = cheapest_use.get(w.chosen.hardware, 0.0) + w.chosen.devices
        # Bind: each type the unconstrained optimum uses gets 70% of that; the others 10% of the total, so
    # the displaced work has somewhere dearer to go (feasible by construction, and binding).
    spare = max(1, int(0.1 * sum(cheapest_use.values())))
    inventory = {hw: max(1, int(0.7 * cheapest_use[hw])) if hw in cheapest_use else spare
                 for hw in HARDWARE}
    ws = WorkloadSet(workloads, inventory=inventory)
    started = time.perf_counter()
    candidates = enumerate_tables(workloads, rows, catalog, inventory, 0.8, 10.0)
    candidates_s = time.perf_counter() - started
    plan = optimize(PlanningContext.of(ws), candidates, SolverSettings(time_limit_s=args.time_limit, num_workers=2))
    gap = (100 * (plan.objective_usd_per_hour - plan.best_bound_usd_per_hour) / plan.objective_usd_per_hour
           if plan.objective_usd_per_hour and plan.status in ("OPTIMAL", "FEASIBLE") else None)
    print(json.dumps({"workloads": args.workloads, "solve_seconds": round(plan.solve_seconds, 2),
                      "status": plan.status, "gap_pct": None if gap is None else round(gap, 4),
                      "candidates_seconds": round(candidates_s, 2),
                      "candidates": sum(len(c) for c in candidates.values()),
                      "total_seconds": round(candidates_s + plan.solve_seconds, 2),
                      "unplaced": len(plan.infeasible)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
