"""Batch-job scheduling over an hourly horizon: known answers, and exhaustive search on small instances."""
from __future__ import annotations

import itertools
import random

import pytest

from planner.core.errors import InfeasiblePlanError, InputError
from planner.planning.batch_schedule import HourlyPrices, Job, JobOption, hours_in_use, run_cost, schedule_jobs

# 1 kW per unit so $/h of energy = the $/kWh price; no rental.
GPU = JobOption("gpu", units=1, items_per_hour=100.0, usd_per_unit_hour=0.0, watts_per_unit=1000.0)


def test_a_job_runs_in_the_cheapest_hours_of_its_window():
    prices = HourlyPrices(usd_per_kwh=(3, 1, 1, 2, 5, 5))
    schedule = schedule_jobs([Job("j", 200, deadline_h=6, options=(GPU,))], prices, {"gpu": [1] * 6})
    (job,) = schedule.jobs
    assert (job.start_h, job.hours, job.usd) == (1, 2, pytest.approx(2.0))
    assert schedule.asap_usd == pytest.approx(4.0) and schedule.savings_pct == pytest.approx(50.0)
    assert schedule.status == "OPTIMAL" and schedule.gap_pct < 0.01


def test_capacity_pushes_the_second_job_to_the_next_cheapest_hours():
    prices = HourlyPrices(usd_per_kwh=(1, 1, 2, 3, 9, 9))
    jobs = [Job("a", 200, 6, (GPU,)), Job("b", 200, 6, (GPU,))]
    schedule = schedule_jobs(jobs, prices, {"gpu": [1] * 6})
    assert hours_in_use(schedule, "gpu", 6) == [1, 1, 1, 1, 0, 0]
    assert schedule.usd == pytest.approx(1 + 1 + 2 + 3)


def test_capacity_left_by_serving_may_vary_by_hour():
    prices = HourlyPrices(usd_per_kwh=(1, 1, 5, 5))
    schedule = schedule_jobs([Job("j", 100, 4, (GPU,))], prices, {"gpu": [0, 1, 1, 1]})
    assert schedule.jobs[0].start_h == 1  # hour 0 is cheapest but serving holds the only GPU


def test_cheaper_hardware_wins_when_the_deadline_allows_and_not_otherwise():
    slow_cheap = JobOption("cpu", 4, 25.0, 0.0, 50.0)  # 4 h for 100 items at 0.2 kW
    for deadline, expected in ((6, "cpu"), (3, "gpu")):
        schedule = schedule_jobs([Job("j", 100, deadline, (GPU, slow_cheap))], HourlyPrices((1,) * 6),
                                 {"gpu": [1] * 6, "cpu": [8] * 6})
        assert schedule.jobs[0].option.hardware == expected


def test_carbon_price_moves_work_to_clean_hours():
    prices = HourlyPrices(usd_per_kwh=(1, 1, 1), gco2e_per_kwh=(800, 100, 800), carbon_usd_per_kg=1.0)
    schedule = schedule_jobs([Job("j", 100, 3, (GPU,))], prices, {"gpu": [1] * 3})
    assert schedule.jobs[0].start_h == 1 and schedule.jobs[0].kg_co2e == pytest.approx(0.1)


def test_infeasible_job_is_named_with_the_fix():
    with pytest.raises(InfeasiblePlanError, match="job 'big'.*takes 5 h.*deadline later"):
        schedule_jobs([Job("big", 500, 3, (GPU,))], HourlyPrices((1,) * 6), {"gpu": [1] * 6})
    with pytest.raises(InfeasiblePlanError, match="no schedule meets every deadline"):
        schedule_jobs([Job("a", 200, 2, (GPU,)), Job("b", 200, 2, (GPU,))], HourlyPrices((1,) * 2),
                      {"gpu": [1, 1]})


def test_bad_input_names_the_field():
    with pytest.raises(InputError, match="jobs.j.deadline_h"):
        schedule_jobs([Job("j", 100, 9, (GPU,))], HourlyPrices((1,) * 6), {"gpu": [1] * 6})
    with pytest.raises(InputError, match="capacity.gpu"):
        schedule_jobs([Job("j", 100, 3, (GPU,))], HourlyPrices((1,) * 6), {"gpu": [1] * 5})


def _exhaustive(jobs, prices, capacity):
    horizon, best = prices.horizon_h, None
    per_job = [[(o, s) for o in j.options for s in range(j.release_h, j.deadline_h - o.hours_for(j.size) + 1)]
               for j in jobs]
    for combo in itertools.product(*per_job):
        used = {hw: [0] * horizon for hw in capacity}
        cost = 0.0
        for job, (o, s) in zip(jobs, combo):
            hours = o.hours_for(job.size)
            for h in range(s, s + hours):
                used[o.hardware][h] += o.units
            cost += run_cost(o, s, hours, prices)[0]
        if all(u <= c for hw in capacity for u, c in zip(used[hw], capacity[hw])):
            best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(8))
def test_optimal_cost_equals_exhaustive_search(seed):
    rng = random.Random(seed)
    horizon = 6
    prices = HourlyPrices(tuple(rng.choice((1.0, 1.5, 2.0)) for _ in range(horizon)), pue=1.1)
    capacity = {"gpu": [rng.randint(1, 2) for _ in range(horizon)], "cpu": [8] * horizon}
    options = (GPU, JobOption("cpu", 4, 40.0, 0.05, 60.0))
    jobs = []
    for j in range(3):
        release = rng.randint(0, 2)
        jobs.append(Job(f"j{j}", rng.choice((80, 150)), rng.randint(release + 3, horizon), options, release))
    expected = _exhaustive(jobs, prices, capacity)
    if expected is None:
        with pytest.raises(InfeasiblePlanError):
            schedule_jobs(jobs, prices, capacity)
    else:
        assert schedule_jobs(jobs, prices, capacity).usd == pytest.approx(expected, abs=1e-5)
