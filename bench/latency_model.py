"""Predicted p99 against p99 measured by `planner verify`, swept over a replica's utilisation, on this CPU.

The serving path is measured first (`planner calibrate` on the same embedded Ray),
then for each configuration (default: resnet_small fp32 batch 1, and
transformer_small fp32 batch 4, which batches) and each target utilisation of
its busiest server (default 0.1 ... 0.8), the offered rate is utilisation x
the capacity of whichever saturates first: the replica, as the planner computes
it (model plus Serve's measured floor), or the HTTP proxy (1000 / its measured
CPU ms per request; on a small machine the proxy is often the bottleneck). The planner plans that one workload on one vCPU with the measured
path, the plan is deployed on Ray Serve and driven with open-loop Poisson HTTP
load for long enough to collect at least 300 requests, and measured p99 is
compared with the plan's prediction. Nothing measured during the sweep feeds
back into a prediction.

    python -m bench.latency_model [--configs resnet_small:1,transformer_small:4]
                                  [--utilizations 0.1,0.3,0.5,0.7,0.8] [--min-requests 300] [--port 8125]

Last line: {"points": N, "worst_ratio": ..., "median_ratio": ..., "ratios": [...], "detail": [...]}
(ratio = measured p99 / predicted p99; worst = the farthest from 1).
"""
from __future__ import annotations

import argparse
import json
import statistics

from planner import api
from planner.core.catalog import load_catalog
from planner.core.workloads import Workload, WorkloadSet
from planner.models import get_model
from planner.profiling.profiler import profile_point


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="resnet_small:1,transformer_small:4", help="model:batch, comma-separated")
    parser.add_argument("--utilizations", default="0.1,0.3,0.5,0.7,0.8")
    parser.add_argument("--min-requests", type=int, default=300)
    parser.add_argument("--min-duration", type=float, default=12.0)
    parser.add_argument("--port", type=int, default=8125)
    args = parser.parse_args(argv)
    from cluster.runtime import ensure_ray, shutdown_ray

    catalog = load_catalog()
    configs = [(c.split(":")[0], int(c.split(":")[1])) for c in args.configs.split(",")]
    utilizations = [float(u) for u in args.utilizations.split(",")]
    ensure_ray()
    detail = []
    try:
        models = sorted({m for m, _ in configs})
        path = api.calibrate(models, http_port=args.port, qps=(10.0, 40.0, 80.0), duration_s=20.0,
                             mix={m: 1.0 for m in models},
                             on_progress=lambda line: print(f"calibrate: {line}", flush=True))
        print(f"serving path: {path.describe()}", flush=True)
        for model, batch in configs:
            row = profile_point(get_model(model), "fp32", batch, catalog.get("cpu-x86"), threads=1)
            floor = path.floor_ms(model)
            replica = 1000.0 * batch / (1000.0 * batch / row.throughput_rps + batch * floor)
            capacity = min(replica, path.proxy_capacity_rps)
            print(f"{model} b{batch}: {row.throughput_rps:.0f} items/s raw, {replica:.0f}/s with the "
                  f"{floor:.2f} ms floor, the proxy {path.proxy_capacity_rps:.0f}/s; batch p50 "
                  f"{row.latency_p50_ms:.2f} p99 {row.latency_p99_ms:.2f} ms", flush=True)
            for u in utilizations:
                qps = u * capacity
                workload = Workload("sweep", model, "online", ("fp32",), 0.0, 1, qps=qps, p99_ms=100_000.0)
                ws = WorkloadSet((workload,), inventory={"cpu-x86": 2}, max_utilization=0.99, serving_path=path,
                                 cpu_sharing=False)
                plan = api.plan(ws, [row], catalog)
                if not plan.ok or plan.workloads[0].chosen.replicas != 1:
                    print(f"  u={u:.1f} ({qps:.1f} qps): not one replica ({plan.infeasible})", flush=True)
                    continue
                predicted = plan.workloads[0].chosen.predicted_p99_ms
                deployment = api.deploy(plan, catalog, http_port=args.port)
                duration = max(args.min_duration, args.min_requests / qps)
                measured = api.verify(plan, deployment, duration_s=duration).workloads[0]
                from ray import serve
                serve.delete("sweep")
                ratio = measured.p99_ms / predicted if measured.p99_ms else None
                detail.append({"model": model, "batch": batch, "utilization": u, "qps": round(qps, 2),
                               "requests": measured.requests, "errors": measured.errors,
                               "measured_p50_ms": round(measured.p50_ms or 0, 2),
                               "measured_p99_ms": round(measured.p99_ms or 0, 2),
                               "predicted_p99_ms": round(predicted, 2), "ratio": None if ratio is None else round(ratio, 3)})
                print(f"  u={u:.1f} {qps:6.1f} qps  measured p50 {measured.p50_ms:6.1f} p99 {measured.p99_ms:6.1f} ms "
                      f"({measured.requests} requests, {measured.errors} errors)  predicted p99 {predicted:6.1f} ms  "
                      f"measured/predicted {ratio:.2f}", flush=True)
    finally:
        shutdown_ray()
    ratios = [d["ratio"] for d in detail if d["ratio"] is not None]
    worst = max(ratios, key=lambda r: max(r, 1 / r)) if ratios else None
    print(json.dumps({"points": len(ratios), "worst_ratio": worst,
                      "median_ratio": round(statistics.median(ratios), 3) if ratios else None,
                      "ratios": ratios, "detail": detail}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
