"""From a workloads file, profiles and a serving plan to the batch scheduler's inputs.

- Jobs: each ``kind: batch`` workload, with one option per (hardware, replicas)
  at its fastest profiled point within the workload's precisions and quality
  limit; 1, 2, 4 or 8 replicas, so a big job can meet its deadline by running
  wider. Rates come from the profiles and keep their provenance in the option.
- Prices: the file's time-of-use curves (24 values repeat daily), else its flat
  $/kWh and gCO2e/kWh every hour. Hardware is paid at the catalog's price.
- Capacity: the inventory minus what the plan's online workloads hold (serving
  is on all day, so the same every hour); no inventory means the catalog's
  hardware may be rented without limit (a large cap keeps the model finite).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from planner.core.catalog import Catalog
from planner.core.errors import InputError
from planner.core.plan import Plan
from planner.core.profiles import ProfileRow
from planner.core.workloads import WorkloadSet
from planner.planning.batch_schedule import HourlyPrices, Job, JobOption, Schedule

REPLICA_CHOICES = (1, 2, 4, 8)
UNLIMITED = 1_000  # units per hardware type when the file has no inventory


@dataclass(frozen=True)
class BatchInputs:
    jobs: tuple[Job, ...]
    prices: HourlyPrices
    capacity: dict[str, list[int]]
    sources: dict[tuple[str, str], str]   # (job, hardware) -> where its rate came from


def hourly_prices(workloads: WorkloadSet, horizon_h: int) -> HourlyPrices:
    e = workloads.electricity

    def curve(values: tuple[float, ...], flat: float) -> tuple[float, ...]:
        if not values:
            return (flat,) * horizon_h
        if len(values) >= horizon_h:
            return tuple(values[:horizon_h])
        return tuple(values[h % 24] for h in range(horizon_h))

    return HourlyPrices(usd_per_kwh=curve(e.usd_per_kwh_hourly, e.usd_per_kwh),
                        gco2e_per_kwh=curve(e.grid_gco2e_per_kwh_hourly, e.grid_gco2e_per_kwh),
                        pue=e.pue, carbon_usd_per_kg=e.carbon_usd_per_kg)


def capacity_left(workloads: WorkloadSet, plan: Plan | None, hardware: Iterable[str],
                  horizon_h: int) -> dict[str, list[int]]:
    serving: dict[str, float] = {}
    for w in (plan.workloads if plan else ()):
        if w.kind == "online":
            serving[w.chosen.hardware] = serving.get(w.chosen.hardware, 0.0) + w.chosen.devices
    capacity = {}
    for hw in hardware:
        total = UNLIMITED if workloads.inventory is None else workloads.inventory.get(hw, 0)
        capacity[hw] = [max(0, int(total - math.ceil(serving.get(hw, 0.0) - 1e-9)))] * horizon_h
    return capacity


def batch_inputs(workloads: WorkloadSet, rows: Iterable[ProfileRow], catalog: Catalog, plan: Plan | None,
                 horizon_h: int | None = None) -> BatchInputs:
    batch = [w for w in workloads.workloads if w.kind in ("batch", "training")]
    if not batch:
        raise InputError("workloads", "no kind: batch or training workload", "nothing to schedule",
                         "add a workload with kind: batch (items, deadline_h) or kind: training "
                         "(steps, samples_per_step, deadline_h)")
    horizon = horizon_h or math.ceil(max(w.deadline_h for w in batch))
    rows = list(rows)
    jobs, sources = [], {}
    for w in batch:
        if w.deadline_h > horizon:
            raise InputError(f"workloads.{w.name}.deadline_h", w.deadline_h, f"beyond the horizon ({horizon} h)",
                             "lengthen --horizon-h or move the deadline")
        best: dict[str, ProfileRow] = {}
        training = w.kind == "training"
        for r in rows:
            if training and not (r.mode == "training_step" and r.batch_size == w.samples_per_step):
                continue
            if not training and r.mode != "inference":
                continue
            if r.model == w.model and r.precision in w.precisions and r.quality_loss <= w.max_quality_loss:
                per_unit = r.throughput_rps / r.units_per_replica
                if r.hardware not in best or per_unit > best[r.hardware].throughput_rps / best[r.hardware].units_per_replica:
                    best[r.hardware] = r
        options = []
        for hw, r in sorted(best.items()):
            spec = catalog.get(hw)
            units = max(1, math.ceil(r.units_per_replica))
            # Average wall power while the job runs flat out: the measured energy per item x rate.
            watts = r.energy_j_per_item * r.throughput_rps / units
            # Training: the size is in steps, and one run uses one replica (no data parallelism
            # is modelled); inference: items, on 1-8 replicas.
            per_hour = r.throughput_rps * 3600.0 / (r.batch_size if training else 1)
            for n in ((1,) if training else REPLICA_CHOICES):
                options.append(JobOption(hw, units * n, per_hour * n, spec.usd_per_hour, watts, r.precision,
                                         r.batch_size))
            sources[(w.name, hw)] = f"{r.source} ({r.device_name or hw}, {r.precision} b{r.batch_size})"
        if not options:
            what = (f"training_step rows at {w.samples_per_step} samples per step" if training
                    else "inference rows")
            fix = (f"planner profile --training --models {w.model} --batch-sizes {w.samples_per_step}" if training
                   else f"profile {w.model} at one of {', '.join(w.precisions)}")
            raise InputError(f"workloads.{w.name}", w.model, f"no {what} within its precisions and quality limit", fix)
        size = float(w.steps if training else w.items)
        jobs.append(Job(w.name, size, math.floor(w.deadline_h), tuple(options), math.ceil(w.release_h)))
    prices = hourly_prices(workloads, horizon)
    hardware = {o.hardware for j in jobs for o in j.options}
    return BatchInputs(tuple(jobs), prices, capacity_left(workloads, plan, hardware, horizon), sources)


def schedule_to_dict(schedule: Schedule, inputs: BatchInputs) -> dict:
    """The schedule as written to schedule.json (docs/formats.md)."""
    return {
        "status": schedule.status, "usd": round(schedule.usd, 6), "bound_usd": round(schedule.bound_usd, 6),
        "gap_pct": round(schedule.gap_pct, 4), "asap_usd": round(schedule.asap_usd, 6),
        "savings_pct": round(schedule.savings_pct, 2), "solve_seconds": round(schedule.solve_seconds, 3),
        "horizon_h": inputs.prices.horizon_h, "usd_per_kwh_hourly": list(inputs.prices.usd_per_kwh),
        "gco2e_per_kwh_hourly": list(inputs.prices.gco2e_per_kwh), "pue": inputs.prices.pue,
        "capacity_left": inputs.capacity,
        "jobs": [{"name": j.name, "hardware": j.option.hardware, "precision": j.option.precision,
                  "batch_size": j.option.batch_size, "units": j.option.units, "start_h": j.start_h,
                  "hours": j.hours, "end_h": j.start_h + j.hours, "usd": round(j.usd, 6),
                  "kg_co2e": round(j.kg_co2e, 6), "items_per_hour": j.option.items_per_hour,
                  "rate_source": inputs.sources.get((j.name, j.option.hardware), "")}
                 for j in sorted(schedule.jobs, key=lambda j: (j.start_h, j.name))],
    }
