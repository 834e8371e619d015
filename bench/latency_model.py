"""Predicted p99 (with and without the queueing term) against p99 measured by `planner verify`, on CPU.

One workload, resnet_small fp32 batch 1 on one 1-vCPU replica (a model slow
enough on a CPU, ~5 ms, for its queue to matter at rates the local Serve HTTP
path can carry), driven at several rates with open-loop Poisson load over real
HTTP. For each rate: the replica's utilisation, measured p50/p99, the
prediction without queueing (the spine's model) and with it, and the ratios.
The serving overhead is the workloads default (10 ms, a p50 figure). A third
prediction, not used by the planner, also queues each request at the HTTP proxy
(one M/M/1 server taking serving_overhead_ms per request), to show how much of
what is left is the serving path's own queue.

    python -m bench.latency_model [--rates 10,40,80] [--duration 12] [--port 8125]

Last line: {"points": [{"qps": ..., "utilization": ..., "measured_p99_ms": ..., "predicted_p99_ms": ...,
            "predicted_without_queueing_ms": ..., "ratio": ..., "ratio_without_queueing": ...}, ...]}
"""
from __future__ import annotations

import argparse
import json

from planner import api
from planner.core.catalog import load_catalog
from planner.core.latency import DEFAULT_SERVING_OVERHEAD_MS, predicted_p99_ms, queue_wait_p99_ms
from planner.core.workloads import Workload, WorkloadSet
from planner.models import get_model
from planner.profiling.profiler import profile_point


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="10,25,40,60", help="requests per second to drive, comma-separated")
    parser.add_argument("--duration", type=float, default=12.0, help="seconds of load per rate")
    parser.add_argument("--port", type=int, default=8125)
    args = parser.parse_args(argv)
    catalog = load_catalog()
    row = profile_point(get_model("resnet_small"), "fp32", 1, catalog.get("cpu-x86"), threads=1)
    print(f"profiled: resnet_small fp32 b1 on 1 vCPU: p50 {row.latency_p50_ms:.2f} ms, p99 {row.latency_p99_ms:.2f} ms, "
          f"{row.throughput_rps:.0f}/s, cv {row.latency_cv:.2f}")
    points = []
    try:
        for qps in (float(q) for q in args.rates.split(",")):
            workload = Workload("resnet", "resnet_small", "online", ("fp32",), 0.0, 1, qps=qps, p99_ms=10_000.0)
            ws = WorkloadSet((workload,), inventory={"cpu-x86": 1}, max_utilization=0.99)
            plan = api.plan(ws, [row], catalog)
            if not plan.ok:
                print(f"{qps:g} qps: one replica cannot carry it ({plan.infeasible})")
                continue
            deployment = api.deploy(plan, catalog, http_port=args.port)
            report = api.verify(plan, deployment, duration_s=args.duration)
            measured = report.workloads[0]
            rho = qps / row.throughput_rps
            spine = predicted_p99_ms(1, row.latency_p99_ms, qps, DEFAULT_SERVING_OVERHEAD_MS)
            with_queue = plan.workloads[0].chosen.predicted_p99_ms
            proxy = with_queue + queue_wait_p99_ms(qps, 1000.0 / DEFAULT_SERVING_OVERHEAD_MS, 1, 1.0)
            points.append({"qps": qps, "utilization": round(rho, 3),
                           "measured_p50_ms": round(measured.p50_ms, 2),
                           "measured_p99_ms": round(measured.p99_ms, 2),
                           "predicted_p99_ms": round(with_queue, 2), "predicted_without_queueing_ms": round(spine, 2),
                           "ratio": round(measured.p99_ms / with_queue, 2),
                           "ratio_without_queueing": round(measured.p99_ms / spine, 2),
                           "predicted_with_proxy_queue_ms": round(proxy, 2),
                           "errors": measured.errors})
            print(f"{qps:5g} qps  rho {rho:.2f}  measured p50 {measured.p50_ms:6.1f} p99 "
                  f"{measured.p99_ms:6.1f} ms  predicted p99 {with_queue:6.1f} (without queueing "
                  f"{spine:5.1f}; with a proxy queue {proxy:6.1f}) ms  measured/predicted "
                  f"{measured.p99_ms / with_queue:.2f} (without queueing {measured.p99_ms / spine:.2f}, "
                  f"with a proxy queue {measured.p99_ms / proxy:.2f})", flush=True)
    finally:
        from cluster.runtime import shutdown_ray
        shutdown_ray()  # the embedded Ray ends its Serve apps with it
    print(json.dumps({"points": points}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
