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

Replicas are sized so each runs at most ``max_utilization`` busy, which keeps
the queue behind a running batch short; queueing delay itself is not modelled
yet (the optimizer issue adds it). B = 1 never waits.
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


def predicted_p99_ms(batch_size: int, batch_latency_p99_ms: float, arrival_rps_per_replica: float,
                     serving_overhead_ms: float = DEFAULT_SERVING_OVERHEAD_MS) -> float:
    """End-to-end p99 of one request: batch formation wait + service time + serving overhead."""
    return (batch_wait_timeout_ms(batch_size, arrival_rps_per_replica)
            + batch_latency_p99_ms + serving_overhead_ms)


def replicas_for_demand(demand_rps: float, throughput_rps_per_replica: float, max_utilization: float) -> int:
    """Fewest replicas with replicas x throughput x max_utilization >= demand."""
    if demand_rps <= 0:
        return 0
    capacity = throughput_rps_per_replica * max_utilization
    # The small epsilon keeps 10.0 / (12.5 * 0.8) from rounding up to 2 through float error.
    return max(1, math.ceil(demand_rps / capacity - 1e-9))
