"""The queueing term of the latency model: exact where M/M/1 is exact, close to a simulated M/D/1."""
from __future__ import annotations

import math

import numpy as np
import pytest

from planner.core.latency import predicted_p99_ms, queue_wait_p99_ms


def test_exponential_service_matches_the_exact_mm1_wait_tail():
    # M/M/1: P(W > t) = rho exp(-(mu - lambda) t); 50/s into 100/s: p99 = ln(50) / 50 s.
    assert queue_wait_p99_ms(50.0, 100.0, 1, service_cv=1.0) == pytest.approx(1000 * math.log(50) / 50)


def test_edges_idle_and_saturated():
    assert queue_wait_p99_ms(0.5, 100.0, 1) == 0.0
    assert queue_wait_p99_ms(100.0, 100.0, 1) == math.inf
    assert predicted_p99_ms(1, 5.0, 50.0, 10.0) == 15.0  # no throughput given: the spine model


@pytest.mark.parametrize("rho", [0.3, 0.6, 0.8])
def test_deterministic_service_is_close_to_a_simulated_md1_queue(rho):
    # Lindley's recursion over a million Poisson arrivals into a 10 ms deterministic server.
    rng = np.random.default_rng(1)
    service_s, n = 0.010, 1_000_000
    gaps = rng.exponential(service_s / rho, n)
    wait = np.empty(n)
    w = 0.0
    for i in range(n):  # plain loop: the recursion is sequential
        wait[i] = w
        w = max(0.0, w + service_s - gaps[i])
    simulated = float(np.percentile(wait, 99)) * 1000
    model = queue_wait_p99_ms(rho / service_s, 1 / service_s, 1, service_cv=0.0)
    # The exponential tail is conservative for deterministic service, most at low load
    # (measured: +28% at rho 0.3, +11% at 0.6, +4% at 0.8): never below, never 30% above.
    assert simulated <= model <= 1.3 * simulated


def test_batches_queue_as_units_of_service():
    # B = 8 at 800 items/s: a batch takes 10 ms; 400 items/s keeps the replica half busy.
    assert queue_wait_p99_ms(400.0, 800.0, 8, 1.0) == pytest.approx(queue_wait_p99_ms(50.0, 100.0, 1, 1.0))
    with_queue = predicted_p99_ms(8, 12.0, 400.0, 10.0, throughput_rps=800.0, service_cv=1.0)
    # Means add (path 10, formation 17.5 / 2, queue P-K 10, batch 12); spreads over the mean add in
    # quadrature (formation 8.75, queue 20 ln 50 - 10; path and batch are constants here).
    formation, queue_mean, queue_p99 = 1000 * 7 / 400, 10.0, 1000 * math.log(50) / 50
    assert with_queue == pytest.approx(10.0 + formation / 2 + queue_mean + 12.0
                                       + math.hypot(formation / 2, queue_p99 - queue_mean))


