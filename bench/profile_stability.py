"""Does profiling the same CPU point twice give the same p50? (goal: within 5%)

Profiles every built-in model x fp32/bf16 x batch sizes on this machine's CPU,
twice, with the default stability rule (perf_analyzer-style windows), and
compares the two p50s per point. Batch growth is capped at --cap-ms per batch,
as the planner's search would be for workloads with that p99 target, so the
grid also shows how many points the search skips.

    python -m bench.profile_stability [--cap-ms 50]

Last line: {"p50_repeatability_pct": mean |p50_a - p50_b| / mean(p50) in %, "points_measured": ..., "points_total": ...}
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

from planner.core.catalog import load_catalog
from planner.models import builtin_model_names, get_model
from planner.profiling.profiler import profile_grid
from planner.profiling.timing import TimingBudget

BATCH_SIZES = (1, 4, 16, 64)
PRECISIONS = ("fp32", "bf16")


def run_grid(cap_ms: float, budget: TimingBudget):
    hardware = load_catalog().get("cpu-x86")
    rows, skipped = [], []
    for model in builtin_model_names():
        got, miss = profile_grid(get_model(model), PRECISIONS, BATCH_SIZES, hardware, threads=1,
                                 max_batch_latency_ms=cap_ms, energy_window_s=0.05, budget=budget)
        rows += got
        skipped += miss
    return rows, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap-ms", type=float, default=50.0, help="stop growing a batch past this p99 (ms)")
    parser.add_argument("--window-s", type=float, default=TimingBudget().window_s)
    parser.add_argument("--max-seconds", type=float, default=TimingBudget().max_seconds)
    args = parser.parse_args(argv)
    budget = TimingBudget(window_s=args.window_s, max_seconds=args.max_seconds)
    started = time.perf_counter()
    first, skipped = run_grid(args.cap_ms, budget)
    second, _ = run_grid(args.cap_ms, budget)
    again = {(r.model, r.precision, r.batch_size): r for r in second}
    diffs = []
    for r in first:
        other = again.get((r.model, r.precision, r.batch_size))
        if other is None:
            continue
        diff = abs(r.latency_p50_ms - other.latency_p50_ms) / ((r.latency_p50_ms + other.latency_p50_ms) / 2) * 100
        diffs.append(diff)
        print(f"{r.model:18s} {r.precision} b{r.batch_size:<3d} p50 {r.latency_p50_ms:8.3f} vs "
              f"{other.latency_p50_ms:8.3f} ms  diff {diff:5.2f}%  cv {r.latency_cv:.3f}  "
              f"{'stable' if 'stable over' in r.source_detail and 'NOT' not in r.source_detail else 'unstable'}")
    total = len(builtin_model_names()) * len(PRECISIONS) * len(BATCH_SIZES)
    print(json.dumps({"p50_repeatability_pct": round(statistics.fmean(diffs), 2),
                      "p50_repeatability_max_pct": round(max(diffs), 2),
                      "points_measured": len(first), "points_total": total,
                      "points_skipped": len(skipped), "seconds": round(time.perf_counter() - started, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
