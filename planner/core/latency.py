"""The latency model the planner uses to predict a configuration's p99.

A replica serves requests with dynamic batching (Ray Serve's ``@serve.batch``):
it waits for up to ``max_batch_size = B`` requests, or until
``batch_wait_timeout`` has passed since the first one arrived, then runs the
batch. With ``n`` replicas sharing a Poisson stream of ``qps`` requests/s,
each replica sees ``lambda = qps / n``.

Each request's p99 is composed from four delays (docs/optimization.md, section 2): the
serving path measured by `planner calibrate` (planner/core/serving_path.py), the batch
formation wait (batch_wait_timeout_ms), the replica's queue and the batch itself.
`compose_p99_ms` adds their means and their spreads above the mean in quadrature.

Queueing (M/G/1 per replica, batches as the unit of service): a batch of B takes
S ms (the model's batch time plus Serve's per-request floor), the replica is busy
rho of the time, and the mean wait is Pollaczek-Khinchine's
Wq = rho / (1 - rho) x S x (1 + cs2) / 2, cs2 the squared coefficient of
variation of the batch time (measured: the profile's latency_cv; unknown: 1, as
an exponential service). The p99 of the wait uses the exponential tail that is
exact for M/M/1: P(W > t) = rho x exp(-rho t / Wq), so
    queue_wait_p99_ms = Wq / rho x ln(rho / 0.01)   (0 when rho <= 0.01)
bench/latency_model.py compares the composed prediction with p99 measured by `planner verify`.
"""
from __future__ import annotations

import math

import numpy as np

# Ray Serve's HTTP path (proxy -> router -> replica -> back, plus JSON) added 10-15 ms per
# request at low load on the 2-vCPU development machine (p50 of a 1-3 ms model served over
# HTTP, Nov 2026). An estimate for other machines: set `serving_overhead_ms` in the workload
# file, and `planner verify` shows the real gap.
DEFAULT_SERVING_OVERHEAD_MS = 10.0


def batch_wait_timeout_ms(batch_size, arrival_rps_per_replica):
    """How long a replica should hold a partial batch: the time B requests take to arrive.

    Floats or numpy arrays alike (the candidate evaluator passes every profile row at once).
    """
    if np.ndim(batch_size) == 0 and np.ndim(arrival_rps_per_replica) == 0:
        if batch_size <= 1:
            return 0.0
        if arrival_rps_per_replica <= 0:
            return math.inf
        return 1000.0 * (batch_size - 1) / arrival_rps_per_replica
    with np.errstate(divide="ignore"):
        return np.where(batch_size > 1, 1000.0 * (batch_size - 1) / arrival_rps_per_replica, 0.0)


UNKNOWN_SERVICE_CS2 = 1.0   # squared CV of batch time when the profile has none (exponential)
TAIL_PROBABILITY = 0.01  # p99: the tail probability


def service_cs2(service_cv: float | None) -> float:
    """Squared coefficient of variation of the batch time; unknown: an exponential service."""
    return UNKNOWN_SERVICE_CS2 if service_cv is None else service_cv ** 2


def queue_wait_p99_ms_of_cs2(arrival_rps_per_replica, throughput_rps, batch_size, cs2):
    """p99 of the wait behind other batches on one replica (M/G/1, exponential tail); inf if saturated.

    Works on numpy arrays (every row of a model at once) with the same edge cases as on floats.
    """
    arrival, throughput = np.asarray(arrival_rps_per_replica, dtype=float), np.asarray(throughput_rps, dtype=float)
    rho = arrival / throughput
    service_ms = 1000.0 * np.asarray(batch_size, dtype=float) / throughput
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_wait = rho / (1.0 - rho) * service_ms * (1.0 + cs2) / 2.0
        tail = mean_wait / rho * np.log(rho / TAIL_PROBABILITY)
    return np.where(rho <= TAIL_PROBABILITY, 0.0, np.where(rho >= 1.0, np.inf, tail))


def queue_wait_p99_ms(arrival_rps_per_replica: float, throughput_rps: float, batch_size: int,
                      service_cv: float | None = None) -> float:
    """queue_wait_p99_ms_of_cs2 for one configuration, with the profile's coefficient of variation."""
    return float(queue_wait_p99_ms_of_cs2(arrival_rps_per_replica, throughput_rps, batch_size,
                                          service_cs2(service_cv)))


def predicted_p99_ms(batch_size: int, batch_latency_p99_ms: float, arrival_rps_per_replica: float,
                     serving_overhead_ms: float = DEFAULT_SERVING_OVERHEAD_MS, throughput_rps: float | None = None,
                     service_cv: float | None = None, *, batch_latency_p50_ms: float | None = None,
                     floor_ms: float = 0.0, path_mean_ms: float | None = None, stretch: float = 1.0) -> float:
    """End-to-end p99 of one request, for one configuration: the candidate evaluator's model, written plainly.

    Terms (each a mean and a p99, composed by compose_p99_ms): the serving path (p99
    `serving_overhead_ms`, mean `path_mean_ms`, default the same), the batch formation wait, the
    replica's queue (M/G/1 over batches of the model's time plus `floor_ms` per request; left out
    without `throughput_rps`), and the batch itself (its p50 stands for its mean) with the B - 1
    floors the path does not already carry. `stretch`: processor sharing on a shared core.
    """
    wait = batch_wait_timeout_ms(batch_size, arrival_rps_per_replica)
    terms = [(serving_overhead_ms if path_mean_ms is None else path_mean_ms, serving_overhead_ms),
             (wait / 2.0, wait)]
    if throughput_rps is not None:
        service_ms = stretch * (1000.0 * batch_size / throughput_rps + batch_size * floor_ms)
        cs2 = service_cs2(service_cv)
        mean = float(mean_queue_wait_ms(arrival_rps_per_replica, service_ms, batch_size, cs2))
        rho = arrival_rps_per_replica * service_ms / (1000.0 * batch_size)
        if rho >= 1.0:
            return math.inf
        p99 = 0.0 if rho <= TAIL_PROBABILITY else mean / rho * math.log(rho / TAIL_PROBABILITY)
        terms.append((0.0 if rho <= TAIL_PROBABILITY else mean, p99))
    extra = (batch_size - 1) * floor_ms
    p50 = batch_latency_p99_ms if batch_latency_p50_ms is None else min(batch_latency_p50_ms, batch_latency_p99_ms)
    terms.append((stretch * (p50 + extra), stretch * (batch_latency_p99_ms + extra)))
    return float(compose_p99_ms(terms))


def mean_queue_wait_ms(arrival_rps_per_replica, service_ms, batch_size, cs2):
    """Pollaczek-Khinchine mean wait behind other batches (M/G/1, a batch the unit of service); inf if saturated.

    `service_ms`: the mean time of one batch of `batch_size`. numpy arrays or floats.
    """
    service = np.asarray(service_ms, dtype=float)
    rho = np.asarray(arrival_rps_per_replica, dtype=float) * service / (1000.0 * np.asarray(batch_size, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        wait = rho / (1.0 - rho) * service * (1.0 + cs2) / 2.0
    return np.where(rho >= 1.0, np.inf, wait)


def compose_p99_ms(terms):
    """p99 of a sum of independent delays, from each one's (mean, p99).

    The means add; the excesses over the mean (p99 - mean) add in quadrature, as the spreads of
    independent variables do. Exact for normal terms and for one variable term beside constants;
    for two equal exponentials it is 7% above the exact p99 (docs/optimization.md). Adding the
    p99s would count every term's worst case at once, which one request almost never meets.
    """
    mean = sum(np.asarray(m, dtype=float) for m, _ in terms)
    spread = sum(np.maximum(0.0, np.asarray(p, dtype=float) - np.asarray(m, dtype=float)) ** 2 for m, p in terms)
    return mean + np.sqrt(spread)


def sharing_slowdown(share, max_utilization):
    """Processor-sharing stretch of a replica holding `share` of a core (1: a core of its own).

    The other sharers hold 1 - share of it and keep at most max_utilization of their part busy,
    so a running batch shares the core with probability up to U x (1 - share); under processor
    sharing its time stretches by 1 / (1 - that) (M/G/1-PS). A bound: sharers at their cap.
    """
    return 1.0 / (1.0 - max_utilization * (1.0 - np.asarray(share, dtype=float)))


def replicas_for_demand(demand_rps: float, throughput_rps_per_replica: float, max_utilization: float) -> int:
    """Fewest replicas with replicas x throughput x max_utilization >= demand."""
    if demand_rps <= 0:
        return 0
    capacity = throughput_rps_per_replica * max_utilization
    # The small epsilon keeps 10.0 / (12.5 * 0.8) from rounding up to 2 through float error.
    return max(1, math.ceil(demand_rps / capacity - 1e-9))
