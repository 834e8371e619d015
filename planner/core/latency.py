"""The latency model the planner uses to predict a configuration's p99.

A replica serves requests with dynamic batching (Ray Serve's ``@serve.batch``):
it waits for up to ``max_batch_size = B`` requests, or until
``batch_wait_timeout`` has passed since the first one arrived, then runs the
batch. With ``n`` replicas sharing a Poisson stream of ``qps`` requests/s,
each replica sees ``lambda = qps / n``.

Spine model (documented in docs/optimization.md)::

    batch_wait_timeout_ms = 1000 * (B - 1) / lambda        # time for B requests to arrive
    predicted_p99_ms      = batch_wait_timeout_ms           # the first request of a batch waits this long
                          + latency_p99_ms(B)               # measured p99 of one batch of B
                          + serving_overhead_ms             # HTTP proxy + routing, per request

                          + queue_wait_p99_ms               # behind batches already running/queued

With Serve HTTP proxies (`http_proxies`), every request also queues at a proxy:
`serving_path_p99_ms` adds that wait to the serving overhead, once per plan.

Queueing (M/G/1 per replica, batches as the unit of service): a batch of B takes
S = 1000 x B / T ms (T = items/s back to back), the replica is busy
rho = lambda / T of the time, and the mean wait is Pollaczek-Khinchine's
Wq = rho / (1 - rho) x S x (1 + cs2) / 2, cs2 the squared coefficient of
variation of the batch time (measured: the profile's latency_cv; unknown: 1, as
an exponential service). The p99 of the wait uses the exponential tail that is
exact for M/M/1: P(W > t) = rho x exp(-rho t / Wq), so
    queue_wait_p99_ms = Wq / rho x ln(rho / 0.01)   (0 when rho <= 0.01)
Terms are added, which over-counts a little (the worst formation wait and the
worst queueing wait rarely hit the same request). bench/latency_model.py
compares this with p99 measured by `planner verify`.
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
                     service_cv: float | None = None) -> float:
    """End-to-end p99 of one request: formation wait + queueing wait + batch p99 + serving overhead.

    Without `throughput_rps` the queueing term is left out (the spine model).
    """
    queue = (0.0 if throughput_rps is None
             else queue_wait_p99_ms(arrival_rps_per_replica, throughput_rps, batch_size, service_cv))
    return (batch_wait_timeout_ms(batch_size, arrival_rps_per_replica) + queue
            + batch_latency_p99_ms + serving_overhead_ms)


def serving_path_p99_ms(serving_overhead_ms: float, http_proxies: int | None, online_qps: float) -> float:
    """What the serving path adds to every online request's p99.

    `serving_overhead_ms`, plus, with `http_proxies`, the p99 wait at a proxy: one M/M/1
    server taking `serving_overhead_ms` per request, fed its share of all online traffic
    (`online_qps`; bench/latency_model.py: measured/predicted p99 0.87-0.97 up to 40 qps on
    2 vCPUs). The traffic is fixed by the workloads, so this is one constant for every candidate.
    """
    if not http_proxies or serving_overhead_ms <= 0:
        return serving_overhead_ms
    return serving_overhead_ms + queue_wait_p99_ms(online_qps / http_proxies, 1000.0 / serving_overhead_ms, 1, 1.0)


def replicas_for_demand(demand_rps: float, throughput_rps_per_replica: float, max_utilization: float) -> int:
    """Fewest replicas with replicas x throughput x max_utilization >= demand."""
    if demand_rps <= 0:
        return 0
    capacity = throughput_rps_per_replica * max_utilization
    # The small epsilon keeps 10.0 / (12.5 * 0.8) from rounding up to 2 through float error.
    return max(1, math.ceil(demand_rps / capacity - 1e-9))
