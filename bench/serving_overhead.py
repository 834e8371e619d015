"""What does Serve cost? Deployed throughput at saturation over the profiler's raw throughput.

One configuration (default resnet_small fp32, batch 8, one 1-vCPU replica):
the profiler's items/s for it (the model alone, in-process), then the same
model deployed on Serve with max_batch_size 8, saturated closed-loop by many
concurrent callers, (a) through a DeploymentHandle (Serve's router, queue,
batching and replica; no HTTP) and (b) over HTTP through the proxy.

Cores (--pin, the default on machines with 2+ cores): the replica gets a core
of its own (its reserved vCPU, as on a cluster where clients run elsewhere) and
the load generator and Ray's system processes share the others; the raw figure
is taken on that same core. Without pinning, on a 2-vCPU machine the callers
(Serve's router runs in the caller, ~1 core at saturation) take CPU from the
replica, and the ratio measures the load generator as much as Serve.

    python -m bench.serving_overhead [--model resnet_small] [--batch 8] [--seconds 8] [--port 8126] [--no-pin]

Last line: {"ratio": handle items/s / raw items/s, "http_ratio": ..., "raw_rps": ..., "handle_rps": ..., "http_rps": ...}
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
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


def _pin_process(pid: int, cores: set[int]) -> None:
    """Every thread of `pid` onto `cores` (sched_setaffinity is per thread on Linux)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cores)
        except OSError:  # a thread that just ended
            pass


def _ray_processes() -> list[int]:
    """This machine's Ray processes (workers, raylet, GCS, dashboard agent, monitors)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = open(f"/proc/{entry}/cmdline", "rb").read().decode(errors="replace")
            except OSError:
                continue
            if "ray::" in cmdline or "raylet" in cmdline or "gcs_server" in cmdline or "/ray/" in cmdline:
                pids.append(int(entry))
    return pids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet_small")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--port", type=int, default=8126)
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=(os.cpu_count() or 1) >= 2,
                        help="give the replica a core of its own (default on 2+ cores)")
    args = parser.parse_args(argv)
    all_cores = os.sched_getaffinity(0)
    replica_core = {max(all_cores)}
    others = (all_cores - replica_core) or all_cores

    from ray import serve

    from cluster.runtime import ensure_ray, shutdown_ray
    from cluster.serving import ModelServer
    from planner.catalog import load_catalog
    from planner.models import get_model
    from planner.profiler import profile_point

    @serve.deployment
    class PinnableServer(ModelServer.func_or_class):
        """The production replica, plus a way to move it onto a core of its own."""

        def pin(self, cores: list[int]) -> int:
            _pin_process(os.getpid(), set(cores))
            return os.getpid()

    spec = get_model(args.model)
    if args.pin:
        _pin_process(os.getpid(), replica_core)  # raw: the model alone, on the core the replica will get
    raw = profile_point(spec, args.precision, args.batch, load_catalog().get("cpu-x86"), threads=1).throughput_rps
    print(f"raw (profiler, in-process, 1 thread{', core ' + str(min(replica_core)) if args.pin else ''}): "
          f"{raw:.1f} items/s at batch {args.batch}", flush=True)
    if args.pin:
        _pin_process(os.getpid(), others)
    ensure_ray(num_cpus=4)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": args.port})
        app = PinnableServer.options(name="overhead", num_replicas=1, max_ongoing_requests=4 * args.batch,
                                  ray_actor_options={"num_cpus": 1},
                                  user_config={"max_batch_size": args.batch, "batch_wait_timeout_s": 0.01}
                                  ).bind(args.model, args.precision, 1, "cpu")
        handle = serve.run(app, name="overhead", route_prefix="/overhead", blocking=False)
        if args.pin:
            replica_pid = handle.pin.remote(sorted(replica_core)).result(timeout_s=60)
            for pid in _ray_processes():
                if pid != replica_pid:
                    _pin_process(pid, others)
            print(f"pinned: replica (pid {replica_pid}) on core {min(replica_core)}; callers and Ray's system "
                  f"processes on cores {sorted(others)}", flush=True)
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
                      "model": args.model, "precision": args.precision, "batch": args.batch, "pinned": args.pin}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
