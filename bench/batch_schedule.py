"""Batch scheduling at scale: 500 deferrable jobs over a week of hourly electricity prices.

Scenario (seeded): an owned cluster (zero marginal rental: what changes with the
hour is energy) of 8 H100s, 16 L4s and 64 vCPUs, of which daytime serving takes
up to half; 500 inference jobs over the three built-in models, each with 0.1-1
hours of work on its fastest option, released over the week and due 8-48 hours
after their fastest run could end; every job can run on any of the three hardware types at a rate taken
from the reference profiles (H100 measured; L4 estimated from it; CPU measured
on the development VM). Electricity varies 2x over the day ($0.10-0.20/kWh,
cheapest at 03:00), PUE 1.2. Power per unit: the catalog's maximum.

Baseline: every job started at its release on its cheapest option (what a cron
job does; capacity not even checked, which only flatters the baseline).

    python -m bench.batch_schedule [--jobs 500] [--horizon-h 168] [--time-limit 30]

Last line: {"jobs": ..., "horizon_h": ..., "solve_seconds": ..., "gap_pct": ..., "savings_pct": ...}
"""
from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

from planner.core.catalog import load_catalog
from planner.core.profiles import read_profiles_csv
from planner.planning.batch_schedule import HourlyPrices, Job, JobOption, hours_in_use, schedule_jobs
from planner.profiling.estimator import estimate_profiles

REFERENCE = Path(__file__).resolve().parent.parent / "profiles" / "reference"
INVENTORY = {"h100": 8, "l4": 16, "cpu-x86": 64}


def best_rates(catalog) -> dict[tuple[str, str], tuple[float, str, int]]:
    """(model, hardware) -> (items/hour for one unit, precision, batch) at the fastest measured/estimated point."""
    h100 = [r for r in read_profiles_csv(REFERENCE / "h100.csv") if r.mode == "inference"]
    cpu = [r for r in read_profiles_csv(REFERENCE / "cpu-x86.csv") if r.mode == "inference"]
    l4 = estimate_profiles(h100, {h.name: h for h in catalog.hardware.values()}, [catalog.get("l4")])
    best: dict[tuple[str, str], tuple[float, str, int]] = {}
    for r in h100 + cpu + l4:
        if r.quality_loss > 0.01:
            continue
        per_unit_hour = r.throughput_rps / r.units_per_replica * 3600.0
        key = (r.model, r.hardware)
        if key not in best or per_unit_hour > best[key][0]:
            best[key] = (per_unit_hour, r.precision, r.batch_size)
    return best


def scenario(n_jobs: int, horizon: int, seed: int, catalog) -> tuple[list[Job], HourlyPrices, dict[str, list[int]]]:
    rng = random.Random(seed)
    rates = best_rates(catalog)
    models = sorted({m for m, _ in rates})
    prices = HourlyPrices(
        usd_per_kwh=tuple(0.15 - 0.05 * math.cos(2 * math.pi * ((h % 24) - 3) / 24) for h in range(horizon)),
        pue=1.2)
    # Serving takes up to half of each pool in daytime (peak 15:00), a quarter at night.
    capacity = {hw: [n - math.ceil(n * (0.375 - 0.125 * math.cos(2 * math.pi * ((h % 24) - 3) / 24)))
                     for h in range(horizon)] for hw, n in INVENTORY.items()}
    jobs = []
    for j in range(n_jobs):
        model = rng.choice(models)
        options = []
        for hw in INVENTORY:
            if (model, hw) not in rates:
                continue
            per_unit_hour, precision, batch = rates[(model, hw)]
            units = {"cpu-x86": 8}.get(hw, 1)
            spec = catalog.get(hw)
            options.append(JobOption(hw, units, per_unit_hour * units, 0.0, spec.power_max_w or 0.0, precision, batch))
        fastest = max(o.items_per_hour for o in options)
        work_h = rng.uniform(0.1, 1.0)
        size = fastest * work_h
        release = rng.randrange(0, horizon - 60)
        deadline = min(horizon, release + math.ceil(work_h) + rng.randint(8, 48))
        jobs.append(Job(f"job{j:03d}-{model}", size, deadline, tuple(options), release_h=release))
    return jobs, prices, capacity


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--horizon-h", type=int, default=168)
    parser.add_argument("--time-limit", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    catalog = load_catalog()
    started = time.perf_counter()
    jobs, prices, capacity = scenario(args.jobs, args.horizon_h, args.seed, catalog)
    schedule = schedule_jobs(jobs, prices, capacity, time_limit_s=args.time_limit)
    total_s = time.perf_counter() - started
    for hw in capacity:
        used = hours_in_use(schedule, hw, args.horizon_h)
        assert all(u <= c for u, c in zip(used, capacity[hw])), f"{hw} over capacity"
        busy = sum(used) / max(1, sum(capacity[hw])) * 100
        print(f"{hw:8s} {sum(1 for j in schedule.jobs if j.option.hardware == hw):4d} jobs, "
              f"{busy:5.1f}% of the capacity left by serving used")
    cheap = sum(1 for j in schedule.jobs for h in range(j.start_h, j.start_h + j.hours) if prices.usd_per_kwh[h] < 0.15)
    hours = sum(j.hours for j in schedule.jobs)
    print(f"{schedule.status}: ${schedule.usd:,.2f} (bound ${schedule.bound_usd:,.2f}) vs ${schedule.asap_usd:,.2f} "
          f"running each job at its release; {cheap / hours * 100:.0f}% of job-hours in the cheaper half of the day; "
          f"solve {schedule.solve_seconds:.1f} s, {total_s:.1f} s in all")
    print(json.dumps({"jobs": len(jobs), "horizon_h": args.horizon_h, "solve_seconds": round(schedule.solve_seconds, 2),
                      "status": schedule.status, "gap_pct": round(schedule.gap_pct, 3),
                      "savings_pct": round(schedule.savings_pct, 1), "schedule_usd": round(schedule.usd, 2),
                      "asap_usd": round(schedule.asap_usd, 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
