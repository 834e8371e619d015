"""`planner calibrate`: the serving path profiled like a model, on the cluster it will serve from.

The probe is the production replica (cluster.serving.ModelServer) with its model
swapped for a precomputed output, so every step of a request but the model runs
as deployed: the HTTP proxy, Serve's router, the replica's parsing of the
model's item, batching, the reply. What it measures (planner/core/serving_path.py):

1. the floor, per model: the probe replica's own CPU time (getrusage in the
   replica, its idle use taken out) over the open-loop HTTP window at the
   heaviest load, per request served: what a deployed replica pays per request
   (saturated through a handle it pays 4-5x less, as the per-request work
   amortises; that lower bound is used only for a model no load goes to);
2. the path's latency at a light and a moderate offered load: open-loop Poisson
   HTTP load from the same load generator `planner verify` uses (on this
   machine, a process pinned to a core of its own: cluster/loadgen.py);
3. the HTTP proxy's CPU per request, JSON and raw-bytes bodies: the proxy
   process's CPU time (/proc) over those windows, per request answered;
4. what Ray's own processes take while nothing is served (system_vcpus).

The proxy is read from /proc on this machine: the load goes to the proxy of the
node this command runs on (127.0.0.1), so run it on a cluster node (the head),
as `ray job submit` does.
"""
from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from datetime import date
from typing import Callable, Mapping, Sequence

import numpy as np
from ray import serve

from cluster.host_cpu import is_proxy as _is_proxy, is_ray as _is_ray, process_cpu_s as _process_cpu_s
from cluster.serving import BINARY_CONTENT_TYPE, ModelServer
from planner.core.serving_path import PathPoint, ServingPath


# Requests a probe must serve in a window for its per-request floor to be read from that window.
MIN_FLOOR_REQUESTS = 50


@serve.deployment
class PathProbe(ModelServer.func_or_class):
    """The production replica with its model swapped for a precomputed output; it reports its own CPU time."""

    def _make_runner(self, max_batch_size: int):
        run, _ = super()._make_runner(max_batch_size)
        out = run(self._example_item.unsqueeze(0))
        # Every step of the request path but the model: stack, cast and tolist stay.
        return (lambda batch: out.expand(batch.shape[0], *out.shape[1:])), "none (serving-path probe)"

    def cpu_s(self) -> float:
        import resource
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime


def saturate(handle, item, seconds: float, concurrency: int = 8) -> int:
    """Requests served by `concurrency` closed-loop callers through a DeploymentHandle over `seconds`."""
    async def run() -> int:
        done, deadline = 0, time.perf_counter() + seconds

        async def caller() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await handle.predict.remote(item)
                done += 1
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return done
    return asyncio.run(run())


def measure_floor(handle, item, seconds: float = 3.0) -> float:
    """Replica CPU ms per request outside the model: the probe saturated through its handle."""
    saturate(handle, item, 1.0)  # warm up
    samples = []
    for _ in range(3):
        before = handle.cpu_s.remote().result(timeout_s=30)
        served = saturate(handle, item, seconds / 3)
        after = handle.cpu_s.remote().result(timeout_s=30)
        samples.append((after - before) * 1000.0 / max(1, served))
    return statistics.median(samples)


def _point(qps: float, latencies_ms: Sequence[float]) -> PathPoint:
    lat = np.asarray(latencies_ms, dtype=float)
    p50, p90, p99 = np.percentile(lat, [50, 90, 99])
    return PathPoint(qps, float(lat.mean()), float(p50), float(p90), float(p99), int(lat.size))


def calibrate(models: Sequence[str], http_port: int = 8000, qps: Sequence[float] = (5.0, 40.0),
              duration_s: float = 15.0, on_progress: Callable[[str], None] = lambda _: None,
              mix: Mapping[str, float] | None = None) -> ServingPath:
    """Measure the serving path on the connected cluster (cluster.runtime.ensure_ray first).

    `mix`: each model's share of the traffic (e.g. the planned qps of the workloads serving it);
    each rate in `qps` is then split across the models' probes in that proportion, as the plan's
    traffic will be, and the path's latency pools every request. Without it, the first model's
    probe takes all of it.
    """
    import ray

    from cluster.loadgen import drive_for_verification
    from cluster.runtime import SERVE_FAST_PATH_ENV, machine_cores
    from cluster.serving import replica_options
    from planner.core.catalog import load_catalog
    from planner.core.errors import ClusterError
    from planner.models import get_model
    from planner.profiling.profiler import cpu_name

    if not models:
        raise ClusterError("calibrate needs at least one model. To fix: pass --models (the ones you serve)")
    cpu = load_catalog().get("cpu-x86")
    # One small probe replica per model: as deployed (batch 1), a tenth of a CPU, so it fits beside anything.
    options = replica_options(cpu, 0.1, 1, 0.0)
    serve.start(http_options={"host": "127.0.0.1", "port": http_port})
    floors: dict[str, float] = {}     # replica CPU per request outside the model, at the heaviest load driven
    saturated: dict[str, float] = {}  # the probe saturated through its handle: requests find it busy
    handles = {}
    try:
        for model in models:
            name = f"calibrate-{model}".replace("_", "-").replace(":", "-").replace(".", "-")
            app = PathProbe.options(name=name, num_replicas=1, **options).bind(model, "fp32", 1, "cpu")
            handles[model] = (name, serve.run(app, name=name, route_prefix=f"/{name}", blocking=False))
        probe_cpu = lambda: {m: h.cpu_s.remote().result(timeout_s=120) for m, (_, h) in handles.items()}  # noqa: E731
        # What Ray (and the proxy, and each probe) take with nothing served: Ray's share of the
        # machine, and background work that is not a cost of any request. (probe_cpu first: it
        # waits for the probes to run, so their start is not counted as idle.)
        probes0 = probe_cpu()
        ray0, proxy0, t0 = _process_cpu_s(_is_ray), _process_cpu_s(_is_proxy), time.perf_counter()
        time.sleep(4.0)
        idle_s = time.perf_counter() - t0
        system_vcpus = (_process_cpu_s(_is_ray) - ray0) / idle_s
        proxy_idle_vcpus = (_process_cpu_s(_is_proxy) - proxy0) / idle_s
        probe_idle_vcpus = {m: (c - probes0[m]) / idle_s for m, c in probe_cpu().items()}
        on_progress(f"idle: Ray's processes {system_vcpus:.3f} vCPUs, the HTTP proxy {proxy_idle_vcpus:.3f}")
        first = models[0]
        shares = {m: w for m, w in (mix or {first: 1.0}).items() if m in handles and w > 0}
        for model, (name, handle) in handles.items():
            # What a request pays when others queue (amortised), and a lower bound on the floor of a
            # model no HTTP load goes to (the HTTP windows below give what an idle replica pays).
            saturated[model] = measure_floor(handle, get_model(model).example_input(1)[0], seconds=1.5)
            on_progress(f"floor of {model} saturated: {saturated[model]:.3f} ms of replica CPU per request")
        total_share = sum(shares.values())
        urls = {m: f"http://127.0.0.1:{http_port}/{handles[m][0]}" for m in shares}
        bodies = {m: json.dumps({"inputs": get_model(m).example_input(1)[0].tolist()}).encode() for m in shares}
        item = get_model(first).example_input(1)[0]
        url = f"http://127.0.0.1:{http_port}/{handles[first][0]}"
        points, proxy_ms, client_ms, others = [], [], [], []
        site = None
        for rate in sorted(qps):
            targets = [(urls[m], bodies[m], rate * w / total_share) for m, w in shares.items()]
            probes0 = probe_cpu()
            cpu0, t0 = _process_cpu_s(_is_proxy), time.perf_counter()
            results, site = drive_for_verification(targets, duration_s, warmup_requests=5)
            elapsed, probes1 = time.perf_counter() - t0, probe_cpu()
            # The floor as deployed replicas pay it: per request at this open-loop load, where each
            # request wakes the replica on its own (saturated, the per-request work amortises).
            for (m, _), result in zip(shares.items(), results):
                served = result.completed + result.warmup_sent
                if served >= MIN_FLOOR_REQUESTS:
                    cpu_s = probes1[m] - probes0[m] - probe_idle_vcpus[m] * elapsed
                    floors[m] = max(0.0, cpu_s) * 1000.0 / served
            if site.cpu_ms_per_request is not None:
                client_ms.append(site.cpu_ms_per_request)
            if site.other_vcpus is not None:
                others.append(site.other_vcpus)
            spent = _process_cpu_s(_is_proxy) - cpu0 - proxy_idle_vcpus * (time.perf_counter() - t0)
            errors = sum(r.errors for r in results)
            latencies = [x for r in results for x in r.latencies_ms]
            if errors or not latencies:
                samples = "; ".join(e for r in results for e in r.error_samples)
                raise ClusterError(f"the probes answered {errors} of {sum(r.sent for r in results)} requests with "
                                   f"errors at {rate:g} qps ({samples}). To fix: calibrate at a lower --qps, or check "
                                   "the cluster (ray status)")
            points.append(_point(rate, latencies))
            proxy_ms.append(max(0.0, spent) * 1000.0 / (len(latencies) + sum(r.warmup_sent for r in results)))
            p = points[-1]
            on_progress(f"path at {rate:g} qps: p50 {p.p50_ms:.1f}, p90 {p.p90_ms:.1f}, p99 {p.p99_ms:.1f} ms "
                        f"({p.requests} requests); proxy {proxy_ms[-1]:.2f} ms CPU per request; replica floor "
                        + ", ".join(f"{m} {f:.2f}" for m, f in floors.items()) + " ms per request")
        raw = item.numpy()
        bytes_body = raw.astype(raw.dtype.newbyteorder("<")).tobytes()
        cpu0, t0 = _process_cpu_s(_is_proxy), time.perf_counter()
        rate = max(qps)
        from cluster.loadgen import drive
        # Raw-bytes bodies only change what the proxy carries: a shorter window in this process.
        (bytes_result,) = drive([(url, bytes_body, rate)], min(duration_s, 8.0), warmup_requests=5,
                                content_type=BINARY_CONTENT_TYPE)
        spent = _process_cpu_s(_is_proxy) - cpu0 - proxy_idle_vcpus * (time.perf_counter() - t0)
        bytes_ms = max(0.0, spent) * 1000.0 / max(1, bytes_result.completed + bytes_result.warmup_sent)
    finally:
        for name, _ in handles.values():
            serve.delete(name)
    fast = all(os.environ.get(k) == v for k, v in SERVE_FAST_PATH_ENV.items())
    where = (f"load from {site.process} on cores {list(site.cores)}" if site is not None else "")
    if others:  # something else running beside calibration makes the path look slower than it is
        where += f"; other processes on this machine took up to {max(others):.2f} vCPUs meanwhile"

    # A model no load (or too little: < MIN_FLOOR_REQUESTS) went to keeps its saturated floor, a lower
    # bound, and says so.
    unloaded = sorted(set(saturated) - set(floors))
    busy = dict(saturated)
    floors = {**saturated, **floors}
    if unloaded:
        where += f"; floor of {', '.join(unloaded)} measured saturated only (a lower bound)"
    return ServingPath(
        replica_floor_ms=max(floors.values()), proxy_cpu_ms=max(proxy_ms), points=tuple(points), source="measured",
        source_detail=(f"planner calibrate on {cpu_name()}, {len(machine_cores())} cores, Ray {ray.__version__}, "
                       f"probes {', '.join(f'{m} {w / total_share:.0%}' for m, w in shares.items())} of the load "
                       f"(JSON bodies), {duration_s:g} s per load; {where}"),
        floor_by_model=floors, proxy_cpu_ms_bytes=bytes_ms, cpu=cpu_name(),
        serve_settings="fast path (cluster.runtime.SERVE_FAST_PATH_ENV)" if fast else "Serve defaults",
        system_vcpus=max(0.0, system_vcpus), measured_at=date.today().isoformat(),
        loadgen_cpu_ms=max(client_ms) if client_ms else None, saturated_floor_by_model=busy)
