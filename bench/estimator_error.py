"""How wrong is the profile estimator? Compare its estimates with measurements on pairs we have.

Pairs: H100 -> H200 (both measured, profiles/reference/) and CPU -> H100 (this
machine's CPU, measured now or read from --cpu-profiles). For each pair the
estimator sees only the source's rows; its throughput is compared with the
target's measured throughput at the batch sizes the planner chooses on the
target (a scenario of every model at several demand levels, planned on the
target's measured rows), which is where an estimate's error costs money.
Also printed: the error over every common batch size, for transparency.

    python -m bench.estimator_error [--cpu-profiles out/profiles.csv]

Last line: {"pairs": {"H100->H200": err_pct, "CPU->H100": err_pct}, ...}
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from planner.core.catalog import load_catalog
from planner.core.profiles import ProfileRow, read_profiles_csv
from planner.core.workloads import Workload, WorkloadSet
from planner.planning.candidates import enumerate_tables
from planner.planning.context import PlanningContext
from planner.planning.optimizer import optimize
from planner.profiling.estimator import estimate_rows

REFERENCE = Path(__file__).resolve().parent.parent / "profiles" / "reference"
DEMANDS_RPS = (100.0, 2_000.0, 20_000.0, 100_000.0)
P99_TARGETS_MS = (5.0, 20.0, 100.0)


def _inference(rows: list[ProfileRow]) -> list[ProfileRow]:
    return [r for r in rows if r.mode == "inference" and r.source == "measured"]


def chosen_points(target_rows: list[ProfileRow], catalog) -> set[tuple[str, str, int]]:
    """(model, precision, batch) the planner picks on the target, over a grid of demands and targets."""
    models = sorted({r.model for r in target_rows})
    precisions = tuple(sorted({r.precision for r in target_rows}))
    workloads = tuple(Workload(f"{m}-{q:g}-{t:g}", m, "online", precisions, 1.0, 1, qps=q, p99_ms=t)
                      for m in models for q in DEMANDS_RPS for t in P99_TARGETS_MS)
    ws = WorkloadSet(workloads, serving_overhead_ms=0.0)
    plan = optimize(PlanningContext.of(ws), enumerate_tables(workloads, target_rows, catalog, None, 0.8, 0.0))
    return {(w.model, w.chosen.precision, w.chosen.batch_size) for w in plan.workloads}


def pair_error(source_rows: list[ProfileRow], target_rows: list[ProfileRow], catalog,
               points: set[tuple[str, str, int]] | None) -> tuple[float, float, int]:
    """(mean abs % error at the chosen points, at all common batch sizes, number of chosen points)."""
    source_hw = catalog.get(source_rows[0].hardware)
    target_hw = catalog.get(target_rows[0].hardware)
    measured = {(r.model, r.precision, r.batch_size): r for r in target_rows}
    groups: dict[tuple[str, str], list[ProfileRow]] = {}
    for r in source_rows:
        groups.setdefault((r.model, r.precision), []).append(r)
    all_errors, chosen_errors = [], []
    for (model, precision), rows in groups.items():
        sizes = sorted(b for (m, p, b) in measured if m == model and p == precision)
        for est in estimate_rows(rows, source_hw, target_hw, sizes):
            real = measured[(model, precision, est.batch_size)]
            err = abs(est.throughput_rps - real.throughput_rps) / real.throughput_rps * 100.0
            all_errors.append(err)
            if points is None or (model, precision, est.batch_size) in points:
                chosen_errors.append(err)
    mean = lambda xs: round(statistics.fmean(xs), 1) if xs else None  # noqa: E731
    return mean(chosen_errors), mean(all_errors), len(chosen_errors)


def _cpu_rows(path: str | None, catalog) -> list[ProfileRow]:
    if path:
        return _inference(read_profiles_csv(path))
    from planner.models import builtin_model_names, get_model
    from planner.profiling.profiler import QUICK_BUDGET, profile_grid
    rows: list[ProfileRow] = []
    for model in builtin_model_names():
        got, _ = profile_grid(get_model(model), ["fp32", "bf16", "fp16", "int8"], [1, 2, 4, 8, 16, 32], catalog.get("cpu-x86"),
                              budget=QUICK_BUDGET, energy_window_s=0.05)
        rows += got
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-profiles", help="measured CPU profiles CSV (default: measure now, ~1-2 min)")
    args = parser.parse_args(argv)
    catalog = load_catalog()
    h100 = _inference(read_profiles_csv(REFERENCE / "h100.csv"))
    pairs: dict[str, float | None] = {}
    detail: dict[str, dict] = {}
    if (REFERENCE / "h200.csv").exists():
        h200 = _inference(read_profiles_csv(REFERENCE / "h200.csv"))
        chosen, every, n = pair_error(h100, h200, catalog, chosen_points(h200, catalog))
        pairs["H100->H200"] = chosen
        detail["H100->H200"] = {"chosen_points": n, "all_batch_sizes_err_pct": every}
    cpu = _cpu_rows(args.cpu_profiles, catalog)
    h100_common = [r for r in h100 if r.precision in {c.precision for c in cpu}]
    chosen, every, n = pair_error(cpu, h100_common, catalog, chosen_points(h100_common, catalog))
    pairs["CPU->H100"] = chosen
    detail["CPU->H100"] = {"chosen_points": n, "all_batch_sizes_err_pct": every}
    for name, d in detail.items():
        print(f"{name}: {pairs[name]}% mean abs throughput error at {d['chosen_points']} planner-chosen points; "
              f"{d['all_batch_sizes_err_pct']}% over all common batch sizes")
    print(json.dumps({"pairs": pairs, "detail": detail}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
