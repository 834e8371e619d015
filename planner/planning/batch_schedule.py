"""Schedule deferrable batch and training jobs into cheap (or clean) hours, with CP-SAT.

A job has a size (items or steps), a release hour and a deadline hour, and one
or more ways to run (``JobOption``: a hardware type, how many of its units, and
the rate they reach, from the profiles). The horizon is hourly. A run of an
option takes ``ceil(size / rate)`` hours; per hardware type and hour, the units
in use stay within what is left after serving (``capacity[hw][h]``, which may
vary by hour). The cost of a run depends on when it runs: per hour, the
hardware's price plus its power x PUE x that hour's $/kWh, plus carbon at that
hour's gCO2e/kWh when carbon has a price.

Formulation: time-indexed, one boolean per (job, option, start hour), with one
linear capacity row per (hardware, hour). We first built the textbook CP-SAT
model, an optional interval per (job, option) with its start a variable, the
cost tied to the start by an element constraint, and a cumulative per hardware
type: on the 500-job week (``python -m bench.batch_schedule``) it found a
schedule ($19.22) but no useful bound (gap 99%) in 30 s, since the cumulative
is invisible to the LP relaxation; adding the cumulative on top of the
time-indexed rows made presolve take the whole time limit. The time-indexed
model (35k booleans) is solved to optimality in about 20 s on 2 cores.

Hourly granularity is a modelling choice: a job shorter than an hour still holds
its devices for the hour (the cost of finer slots is a larger model for little
gain when prices change hourly). Reported: the schedule, its cost, CP-SAT's
bound (gap), and the cost of running every job as soon as it is released on its
cheapest option, which is what a cron job does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from ortools.sat.python import cp_model

from planner.core.errors import InfeasiblePlanError, InputError

_MICRO = 1_000_000  # the objective is integral: micro-dollars


@dataclass(frozen=True)
class JobOption:
    hardware: str
    units: int                      # devices (or vCPUs) the job holds while it runs
    items_per_hour: float           # what those units process per hour
    usd_per_unit_hour: float        # rental price (0 for owned hardware)
    watts_per_unit: float           # average wall power while running (before PUE)
    precision: str = ""
    batch_size: int = 0

    def hours_for(self, size: float) -> int:
        return max(1, math.ceil(size / self.items_per_hour - 1e-9))


@dataclass(frozen=True)
class Job:
    name: str
    size: float                     # items (inference) or steps (training)
    deadline_h: int                 # must finish by the end of this hour (exclusive bound)
    options: tuple[JobOption, ...]
    release_h: int = 0


@dataclass(frozen=True)
class HourlyPrices:
    usd_per_kwh: tuple[float, ...]              # one per hour of the horizon
    gco2e_per_kwh: tuple[float, ...] = ()       # empty: carbon not tracked
    pue: float = 1.0
    carbon_usd_per_kg: float = 0.0

    @property
    def horizon_h(self) -> int:
        return len(self.usd_per_kwh)


@dataclass(frozen=True)
class ScheduledJob:
    name: str
    option: JobOption
    start_h: int
    hours: int
    usd: float
    kg_co2e: float


@dataclass(frozen=True)
class Schedule:
    jobs: tuple[ScheduledJob, ...]
    usd: float
    bound_usd: float
    status: str
    solve_seconds: float
    asap_usd: float                 # every job at its release on its cheapest option (no capacity check)

    @property
    def gap_pct(self) -> float:
        return 0.0 if self.usd <= 0 else max(0.0, (self.usd - self.bound_usd) / self.usd * 100.0)

    @property
    def savings_pct(self) -> float:
        return 0.0 if self.asap_usd <= 0 else (self.asap_usd - self.usd) / self.asap_usd * 100.0


def run_cost(option: JobOption, start: int, hours: int, prices: HourlyPrices) -> tuple[float, float]:
    """($, kg CO2e) of running `option` for `hours` from `start`."""
    kw = option.watts_per_unit * option.units / 1000.0 * prices.pue
    usd = kg = 0.0
    for h in range(start, start + hours):
        usd += option.usd_per_unit_hour * option.units + kw * prices.usd_per_kwh[h]
        if prices.gco2e_per_kwh:
            grams = kw * prices.gco2e_per_kwh[h]
            kg += grams / 1000.0
            usd += grams / 1000.0 * prices.carbon_usd_per_kg
    return usd, kg


def _check(jobs: Sequence[Job], prices: HourlyPrices, capacity: dict[str, Sequence[int]]) -> None:
    horizon = prices.horizon_h
    if prices.gco2e_per_kwh and len(prices.gco2e_per_kwh) != horizon:
        raise InputError("gco2e_per_kwh", len(prices.gco2e_per_kwh), f"must have one value per hour ({horizon})",
                         "give as many carbon intensities as prices")
    for hw, caps in capacity.items():
        if len(caps) != horizon:
            raise InputError(f"capacity.{hw}", len(caps), f"must have one value per hour ({horizon})",
                             "give one capacity per hour of the horizon")
    for job in jobs:
        if not 0 <= job.release_h < job.deadline_h <= horizon:
            raise InputError(f"jobs.{job.name}.deadline_h", job.deadline_h,
                             f"must be after release_h ({job.release_h}) and within the horizon ({horizon} h)",
                             "move the deadline inside the horizon")
        if not job.options:
            raise InputError(f"jobs.{job.name}", "no options", "no hardware can run this job",
                             "profile its model on hardware in the inventory")


def asap_cost(jobs: Sequence[Job], prices: HourlyPrices) -> float:
    """Every job started at its release on its cheapest option that meets the deadline."""
    total = 0.0
    for job in jobs:
        costs = [run_cost(o, job.release_h, o.hours_for(job.size), prices)[0] for o in job.options
                 if job.release_h + o.hours_for(job.size) <= job.deadline_h]
        if costs:
            total += min(costs)
    return total


def schedule_jobs(jobs: Sequence[Job], prices: HourlyPrices, capacity: dict[str, Sequence[int]],
                  time_limit_s: float = 20.0, workers: int = 2, relative_gap: float = 1e-4) -> Schedule:
    """The cheapest schedule meeting every deadline within capacity, or InfeasiblePlanError naming a job.

    Time-indexed: one boolean per (job, option, start hour); exactly one per job; per hardware
    and hour, the units of the runs covering that hour within the capacity left (one linear row);
    the cost is linear in the booleans. See the module docstring for why not intervals.
    """
    _check(jobs, prices, capacity)
    model = cp_model.CpModel()
    load: dict[tuple[str, int], list[tuple[cp_model.IntVar, int]]] = {}
    starts: list[list[tuple[JobOption, int, int, cp_model.IntVar]]] = []
    objective = []
    for job in jobs:
        per_job = []
        for k, option in enumerate(job.options):
            hours = option.hours_for(job.size)
            if option.hardware not in capacity or option.units > max(capacity[option.hardware]):
                continue
            for s in range(job.release_h, job.deadline_h - hours + 1):
                if any(capacity[option.hardware][h] < option.units for h in range(s, s + hours)):
                    continue
                x = model.NewBoolVar(f"{job.name}#{k}@{s}")
                for h in range(s, s + hours):
                    load.setdefault((option.hardware, h), []).append((x, option.units))
                objective.append(round(run_cost(option, s, hours, prices)[0] * _MICRO) * x)
                per_job.append((option, s, hours, x))
        if not per_job:
            fastest = min(o.hours_for(job.size) for o in job.options)
            why = (f"job {job.name!r}: no option finishes {job.size:g} items between hour {job.release_h} and "
                   f"{job.deadline_h} within capacity (the fastest takes {fastest} h)")
            raise InfeasiblePlanError(f"{why}. To fix: move the deadline later, or add capacity", [why])
        model.AddExactlyOne(x for *_, x in per_job)
        starts.append(per_job)
    for (hw, h), terms in load.items():
        model.Add(sum(u * x for x, u in terms) <= capacity[hw][h])
    model.Minimize(sum(objective))
    _hint_greedy(model, jobs, starts, prices, capacity)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = workers
    solver.parameters.relative_gap_limit = relative_gap
    status = solver.Solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        why = f"no schedule meets every deadline within capacity (CP-SAT: {solver.StatusName(status)})"
        raise InfeasiblePlanError(f"{why}. To fix: move deadlines later, or add capacity for the busiest hours", [why])
    scheduled = []
    for job, per_job in zip(jobs, starts):
        for option, s, hours, x in per_job:
            if solver.Value(x):
                usd, kg = run_cost(option, s, hours, prices)
                scheduled.append(ScheduledJob(job.name, option, s, hours, usd, kg))
    total = sum(j.usd for j in scheduled)
    return Schedule(tuple(scheduled), total, solver.BestObjectiveBound() / _MICRO, solver.StatusName(status),
                    solver.WallTime(), asap_cost(jobs, prices))


def _hint_greedy(model: cp_model.CpModel, jobs: Sequence[Job], starts: list, prices: HourlyPrices,
                 capacity: dict[str, Sequence[int]]) -> None:
    """Earliest deadline first, each job at its cheapest start that fits what is left: a warm start.

    CP-SAT alone can take long to find a first feasible schedule for hundreds of tight jobs;
    a greedy one, when it exists, lets the search start from a good incumbent.
    """
    left = {hw: list(caps) for hw, caps in capacity.items()}
    picks = []
    for i in sorted(range(len(jobs)), key=lambda i: (jobs[i].deadline_h, -jobs[i].size)):
        fitting = [(run_cost(o, s, hours, prices)[0], o, s, hours, x) for o, s, hours, x in starts[i]
                   if all(left[o.hardware][h] >= o.units for h in range(s, s + hours))]
        if not fitting:
            return  # greedy got stuck: no hint rather than a wrong one
        _, option, s, hours, x = min(fitting, key=lambda f: f[0])
        for h in range(s, s + hours):
            left[option.hardware][h] -= option.units
        picks.append(x)
    chosen = {x.Index() for x in picks}
    for per_job in starts:
        for *_, x in per_job:
            model.AddHint(x, x.Index() in chosen)


def hours_in_use(schedule: Schedule, hardware: str, horizon_h: int) -> list[int]:
    """Units of `hardware` the schedule holds in each hour (for checks and charts)."""
    used = [0] * horizon_h
    for job in schedule.jobs:
        if job.option.hardware == hardware:
            for h in range(job.start_h, job.start_h + job.hours):
                used[h] += job.option.units
    return used
