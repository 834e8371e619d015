"""What does Serve cost? Deployed throughput at saturation over the profiler's raw throughput.

One configuration (default resnet_small fp32, batch 8, one 1-vCPU replica):
the profiler's items/s for it (the model alone, in-process), then the same
model deployed on Serve with max_batch_size 8, saturated closed-loop by many
concurrent callers, (a) through a DeploymentHandle (Serve's router, queue,
batching and replica; no HTTP) and (b) over HTTP through the proxy. On a
2-vCPU machine the callers, the proxy and the replica share the cores, which
is part of what (b) measures.

    python -m bench.serving_overhead [--model resnet_small] [--batch 8] [--seconds 8] [--port 8126]

Last line: {"ratio": handle items/s / raw items/s, "http_ratio": ..., "raw_rps": ..., "handle_rps": ..., "http_rps": ...}
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor

import requests


def _saturate_handle(handle, item, seconds: float, concurrency: int) -> float:
    async def run() -> int:
        done = 0
        deadline = time.perf_counter() + seconds

        async def caller() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await handle.predict.remote(item)
                done += 1
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return done

    started = time.perf_counter()
    done = asyncio.run(run())
    return done / (time.perf_counter() - started)


def _saturate_http(url: str, body: dict, seconds: float, concurrency: int) -> float:
    deadline = time.perf_counter() + seconds

    def caller() -> int:
        n, session = 0, requests.Session()
        while time.perf_counter() < deadline:
            if session.post(url, json=body, timeout=30).status_code == 200:
                n += 1
        return n

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        done = sum(pool.map(lambda _: caller(), range(concurrency)))
    return done / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet_small")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--port", type=int, default=8126)
    args = parser.parse_args(argv)

    from ray import serve

    from cluster.runtime import ensure_ray, shutdown_ray
    from cluster.serving import ModelServer
    from planner.catalog import load_catalog
    from planner.models import get_model
    from planner.profiler import profile_point

    spec = get_model(args.model)
    raw = profile_point(spec, args.precision, args.batch, load_catalog().get("cpu-x86"), threads=1).throughput_rps
    print(f"raw (profiler, in-process, 1 thread): {raw:.1f} items/s at batch {args.batch}", flush=True)
    ensure_ray(num_cpus=4)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": args.port})
        app = ModelServer.options(name="overhead", num_replicas=1, max_ongoing_requests=4 * args.batch,
                                  ray_actor_options={"num_cpus": 1},
                                  user_config={"max_batch_size": args.batch, "batch_wait_timeout_s": 0.01}
                                  ).bind(args.model, args.precision, 1, "cpu")
        handle = serve.run(app, name="overhead", route_prefix="/overhead", blocking=False)
        item = spec.example_input(1)[0]
        _saturate_handle(handle, item, 2.0, 2 * args.batch)  # warm up
        from cluster.metrics import scrape_batch_counts
        before = scrape_batch_counts().get("overhead")
        via_handle = _saturate_handle(handle, item, args.seconds, 2 * args.batch)
        time.sleep(2.5)
        after = scrape_batch_counts().get("overhead")
        seen = (after - before).mean_batch_size if after and before else None
        print(f"Serve via DeploymentHandle, saturated: {via_handle:.1f} items/s; mean batch size seen "
              f"{'unknown' if seen is None else f'{seen:.2f}'} (Serve metrics, bucket upper edges)", flush=True)
        via_http = _saturate_http(f"http://127.0.0.1:{args.port}/overhead", {"inputs": item.tolist()},
                                  args.seconds, 2 * args.batch)
        print(f"Serve over HTTP, saturated: {via_http:.1f} items/s", flush=True)
    finally:
        shutdown_ray()
    print(json.dumps({"ratio": round(via_handle / raw, 3), "mean_batch_seen": seen, "http_ratio": round(via_http / raw, 3),
                      "raw_rps": round(raw, 1), "handle_rps": round(via_handle, 1), "http_rps": round(via_http, 1),
                      "model": args.model, "precision": args.precision, "batch": args.batch}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
