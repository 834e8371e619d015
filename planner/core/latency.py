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

                          + queue_wait_p99_ms                # behind batches already running/queued

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

# Ray Serve's HTTP path (proxy -> router -> replica -> back, plus JSON) added 10-15 ms per
# request at low load on the 2-vCPU development machine (p50 of a 1-3 ms model served over
# HTTP, Nov 2026). An estimate for other machines: set `serving_overhead_ms` in the workload
# file, and `planner verify` shows the real gap.
DEFAULT_SERVING_OVERHEAD_MS = 10.0


def batch_wait_timeout_ms(batch_size: int, arrival_rps_per_replica: float) -> float:
    """How long a replica should hold a partial batch: the time B requests take to arrive."""
    if batch_size <= 1:
        return 0.0
    if arrival_rps_per_replica <= 0:
        return math.inf
    return 1000.0 * (batch_size - 1) / arrival_rps_per_replica


UNKNOWN_SERVICE_CS2 = 1.0   # squared CV of batch time when the profile has none (exponential)
TAIL_PROBABILITY = 0.01  # p99: the tail probability (shared with candidate_tables)


def queue_wait_p99_ms(arrival_rps_per_replica: float, throughput_rps: float, batch_size: int,
                      service_cv: float | None = None) -> float:
    """p99 of the wait behind other batches on one replica (M/G/1, exponential tail); inf if saturated."""
    rho = arrival_rps_per_replica / throughput_rps
    if rho <= TAIL_PROBABILITY:
        return 0.0
    if rho >= 1.0:
        return math.inf
    service_ms = 1000.0 * batch_size / throughput_rps
    cs2 = UNKNOWN_SERVICE_CS2 if service_cv is None else service_cv ** 2
    mean_wait = rho / (1.0 - rho) * service_ms * (1.0 + cs2) / 2.0
    return mean_wait / rho * math.log(rho / TAIL_PROBABILITY)


def predicted_p99_ms(batch_size: int, batch_latency_p99_ms: float, arrival_rps_per_replica: float,
                     serving_overhead_ms: float = DEFAULT_SERVING_OVERHEAD_MS, throughput_rps: float | None = None,
                     service_cv: float | None = None) -> float:
    """End-to-end p99 of one request: formation wait + queueing wait + batch p99 + serving overhead.

    Without `throughput_rps` the queueing term is left out (the spine's model).
    """
    queue = (0.0 if throughput_rps is None
             else queue_wait_p99_ms(arrival_rps_per_replica, throughput_rps, batch_size, service_cv))
    return (batch_wait_timeout_ms(batch_size, arrival_rps_per_replica) + queue
            + batch_latency_p99_ms + serving_overhead_ms)


def replicas_for_demand(demand_rps: float, throughput_rps_per_replica: float, max_utilization: float) -> int:
    """Fewest replicas with replicas x throughput x max_utilization >= demand."""
    if demand_rps <= 0:
        return 0
    capacity = throughput_rps_per_replica * max_utilization
    # The small epsilon keeps 10.0 / (12.5 * 0.8) from rounding up to 2 through float error.
    return max(1, math.ceil(demand_rps / capacity - 1e-9))
