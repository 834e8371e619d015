"""Demand over a day: replicas per hour, Serve autoscaling bounds, and what the day costs.

A workload may give ``qps_hourly`` (24 values). The optimizer chooses its
configuration for the peak hour (so every limit, the inventory included, holds
at the worst hour); this module then sizes that configuration hour by hour:

    replicas_h = max(min_replicas, ceil(qps_h / (T x max_utilization)))
    cost_h     = hardware $/h per replica x replicas_h + energy $/h at peak x qps_h / qps_peak

and gives Ray Serve ``min_replicas = min_h replicas_h`` and ``max_replicas =
max_h replicas_h``. The day's cost is the sum of cost_h; provisioning for the
peak costs 24 x cost_peak. Energy is taken as proportional to the items served
(the idle power of a replica is in its hardware share only through the plan's
peak figure), an approximation that errs towards the peak-provisioned cost.

Serve scales on ongoing requests per replica; at the planned utilisation U a
replica holds about U x B requests in service (Little's law over one batch
time), so ``target_ongoing_requests = max(1, U x B)``.
"""
from __future__ import annotations

from planner.core.candidate import Candidate
from planner.core.latency import replicas_for_demand
from planner.core.plan import Autoscaling


def autoscale(qps_hourly: tuple[float, ...], chosen: Candidate, min_replicas: int,
              max_utilization: float) -> Autoscaling:
    peak = max(qps_hourly)
    per_replica_rps = chosen.predicted_throughput_rps / chosen.replicas
    hardware_per_replica = max(0.0, chosen.usd_per_hour - chosen.energy_usd_per_hour) / chosen.replicas
    replicas = tuple(max(min_replicas, replicas_for_demand(q, per_replica_rps, max_utilization)) for q in qps_hourly)
    # Never more than the plan sized for the peak (it already covers min_replicas and memory).
    replicas = tuple(min(r, chosen.replicas) for r in replicas)
    day = sum(hardware_per_replica * r + chosen.energy_usd_per_hour * (q / peak if peak else 0.0)
              for r, q in zip(replicas, qps_hourly))
    return Autoscaling(min(replicas), max(replicas), max(1.0, round(max_utilization * chosen.batch_size, 2)),
                       replicas, day, 24 * chosen.usd_per_hour)
