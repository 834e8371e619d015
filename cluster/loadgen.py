"""Open-loop Poisson HTTP load (the MLPerf "Server" scenario), for `planner verify`.

Requests are sent at exponentially distributed intervals whatever the server's
speed: a closed loop (send the next request when the last one returns) would
slow down with the server and hide the very latency we want to see. Send times
come from a seeded generator, so two runs offer the same load.

Where it runs (`drive_for_verification`): on one machine the load generator competes with the
replicas and the HTTP proxy for cores, and Ray runs its workers at niceness 15 while a plain
Python process runs at 0, so an unpinned generator in the verifying process wins every tie and
the latency it measures includes its own contention. When the cluster is the embedded Ray of
this process and the machine has 2+ cores, the load is driven from a child process of its own
(`python -m cluster.loadgen REQUEST.json`), pinned to one core (the one kept free of Ray's
processes when ensure_ray(reserve_cores=reserved_cores()) started it, else the last core), at
Ray's worker niceness; where it ran goes into verify.json (LoadGeneratorSite).
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import aiohttp

if TYPE_CHECKING:
    from planner.deployment.verification import LoadGeneratorSite


@dataclass
class LoadResult:
    url: str
    qps_target: float
    duration_s: float
    sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    warmup_sent: int = 0      # requests sent to this target before the window (not in the sample)

    @property
    def completed(self) -> int:
        return len(self.latencies_ms)


async def _one(session: aiohttp.ClientSession, url: str, body: bytes, result: LoadResult,
               content_type: str = "application/json") -> None:
    started = time.perf_counter()
    try:
        async with session.post(url, data=body, headers={"content-type": content_type}) as resp:
            await resp.read()
            ok = resp.status == 200
            detail = f"HTTP {resp.status}"
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    if ok:
        result.latencies_ms.append((time.perf_counter() - started) * 1000.0)
    else:
        result.errors += 1
        if len(result.error_samples) < 5:
            result.error_samples.append(detail)


def poisson_send_times(qps: float, duration_s: float, seed: int) -> list[float]:
    """Arrival times of a Poisson process over the window, conditioned on exactly qps x duration arrivals.

    Given N arrivals in [0, T], a Poisson process's arrival times are N sorted
    uniform draws. Fixing N = round(qps x T) keeps the arrivals' burstiness but
    removes the +-1/sqrt(N) wobble in the offered rate that would otherwise blur
    a throughput check over a short window.
    """
    rng = random.Random(seed)
    count = max(1, round(qps * duration_s))
    return sorted(rng.uniform(0.0, duration_s) for _ in range(count))


async def drive_poisson(session: aiohttp.ClientSession, url: str, body: bytes, qps: float,
                        duration_s: float, seed: int = 0, content_type: str = "application/json") -> LoadResult:
    """Offer `qps` requests/s for `duration_s` (open loop), then wait for every answer."""
    result = LoadResult(url=url, qps_target=qps, duration_s=duration_s)
    tasks = []
    start = time.perf_counter()
    for send_at in poisson_send_times(qps, duration_s, seed):
        delay = start + send_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_one(session, url, body, result, content_type)))
        result.sent += 1
    await asyncio.gather(*tasks)
    # The window is the offered duration, or longer if answers trail behind it.
    result.elapsed_s = max(duration_s, time.perf_counter() - start)
    return result


async def _drive_all(targets: list[tuple[str, bytes, float]], duration_s: float, warmup_requests: int,
                     timeout_s: float, content_type: str = "application/json") -> list[LoadResult]:
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        # Warm-up: first requests pay for connection setup and lazy paths, and a replica just started
        # is still settling (first batches, connection pools); then a short window at the target
        # rates brings the path to its steady state. None of it is part of the sample.
        warm = LoadResult(url="warmup", qps_target=0, duration_s=0)
        for url, body, _ in targets:
            for _ in range(warmup_requests):
                await _one(session, url, body, warm, content_type)
        settle_s = min(WARMUP_WINDOW_S, duration_s / 4) if warmup_requests else 0.0
        settled = await asyncio.gather(*(drive_poisson(session, url, body, qps, settle_s, seed=1000 + i,
                                                       content_type=content_type)
                                         for i, (url, body, qps) in enumerate(targets) if settle_s > 0))
        results = await asyncio.gather(*(drive_poisson(session, url, body, qps, duration_s, seed=i,
                                                       content_type=content_type)
                                         for i, (url, body, qps) in enumerate(targets)))
        for i, result in enumerate(results):
            result.warmup_sent = warmup_requests + (settled[i].sent if settled else 0)
        return results


# The warm-up window before every measured one (at most a quarter of the measured window).
WARMUP_WINDOW_S = 2.0


def drive(targets: list[tuple[str, bytes, float]], duration_s: float, warmup_requests: int = 5,
          timeout_s: float = 30.0, content_type: str = "application/json") -> list[LoadResult]:
    """Drive every (url, body, qps) target at once, for the same window."""
    return asyncio.run(_drive_all(targets, duration_s, warmup_requests, timeout_s, content_type))


def reserved_cores() -> int:
    """Cores the load generator takes for itself on this machine: 1 where it has 2 or more, else 0.

    A planner sizing CPU replicas for this machine plans on cluster.runtime.machine_cores() less
    this, and starts the embedded Ray with ensure_ray(reserve_cores=reserved_cores()) so no Ray
    process runs on that core.
    """
    from cluster.runtime import machine_cores

    return 1 if len(machine_cores()) >= 2 else 0


def drive_for_verification(targets: list[tuple[str, bytes, float]], duration_s: float, warmup_requests: int = 5,
                           timeout_s: float = 30.0) -> tuple[list[LoadResult], "LoadGeneratorSite"]:
    """`drive`, from a process and core of its own where the cluster is this process's embedded Ray on a
    machine of 2+ cores; else from this process. Returns the results and where the load ran."""
    from cluster.host_cpu import OtherCpu
    from cluster.runtime import embedded_cores, machine_cores, ray_worker_niceness
    from planner.deployment.verification import LoadGeneratorSite

    cores, cluster = machine_cores(), embedded_cores()
    if cluster is None or len(cores) < 2:
        results = drive(targets, duration_s, warmup_requests, timeout_s)
        return results, LoadGeneratorSite("verifying process", os.getpid(), cores, os.nice(0), False, cluster)
    spare = [c for c in cores if c not in cluster]
    with OtherCpu() as other:   # what else ran on this machine meanwhile, recorded beside the results
        results, site = drive_in_child(targets, duration_s, spare[0] if spare else cores[-1], ray_worker_niceness(),
                                       cluster, warmup_requests, timeout_s)
    return results, replace(site, other_vcpus=None if other.vcpus is None else round(other.vcpus, 3))


def drive_in_child(targets: list[tuple[str, bytes, float]], duration_s: float, core: int, niceness: int,
                   cluster_cores: Sequence[int] | None = None, warmup_requests: int = 5,
                   timeout_s: float = 30.0) -> tuple[list[LoadResult], "LoadGeneratorSite"]:
    """`drive` in a child process pinned to `core` at `niceness` (a subprocess, not multiprocessing:
    spawning would re-run an unguarded __main__ script, such as the README's Python snippet)."""
    from planner.core.errors import ClusterError
    from planner.deployment.verification import LoadGeneratorSite

    with tempfile.TemporaryDirectory(prefix="planner-loadgen-") as folder:
        request, answer = Path(folder) / "request.json", Path(folder) / "answer.json"
        request.write_text(json.dumps({
            "targets": [[url, base64.b64encode(body).decode(), qps] for url, body, qps in targets],
            "duration_s": duration_s, "warmup_requests": warmup_requests, "timeout_s": timeout_s,
            "core": core, "niceness": niceness, "answer": str(answer)}))
        root = str(Path(__file__).resolve().parent.parent)   # so the child imports this checkout's cluster/
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        # Bounded: the window, the warm-up and the last answers' timeout, with room for the interpreter to start.
        limit_s = duration_s + timeout_s * (2 + warmup_requests * len(targets)) + 60
        try:
            proc = subprocess.run([sys.executable, "-m", "cluster.loadgen", str(request)], env=env,
                                  capture_output=True, text=True, timeout=limit_s)
        except subprocess.TimeoutExpired:
            raise ClusterError(f"the load generator's process did not finish within {limit_s:.0f} s. To fix: "
                               "check that the deployment answers (planner verify --url ...)") from None
        if proc.returncode != 0 or not answer.is_file():
            raise ClusterError(f"the load generator's process failed (exit {proc.returncode}): "
                               f"{proc.stderr.strip()[-1500:]}")
        data = json.loads(answer.read_text())
    results = [LoadResult(**r) for r in data["results"]]
    sent = sum(r.sent + r.warmup_sent for r in results)
    site = LoadGeneratorSite("own process", int(data["pid"]), tuple(data["cores"]), int(data["niceness"]),
                             tuple(data["cores"]) == (core,),
                             None if cluster_cores is None else tuple(cluster_cores),
                             cpu_ms_per_request=data["cpu_s"] * 1000.0 / sent if sent else None)
    return results, site


def _cpu_s() -> float:
    import resource
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child_main(request_path: str) -> None:
    """The child's side: pin this process, lower its priority to Ray's workers', drive, write the answer."""
    request = json.loads(Path(request_path).read_text())
    try:
        os.sched_setaffinity(0, {int(request["core"])})
    except (AttributeError, OSError):
        pass  # recorded: the answer's cores say where it could run
    current = os.nice(0)
    if request["niceness"] > current:
        os.nice(request["niceness"] - current)   # raising niceness needs no privilege; lowering would
    targets = [(url, base64.b64decode(body), float(qps)) for url, body, qps in request["targets"]]
    before = _cpu_s()
    results = drive(targets, request["duration_s"], request["warmup_requests"], request["timeout_s"])
    answer = {"pid": os.getpid(), "cores": sorted(os.sched_getaffinity(0)), "niceness": os.nice(0),
              "cpu_s": _cpu_s() - before,   # the load's own CPU (not the interpreter's start-up)
              "results": [asdict(r) for r in results]}
    Path(request["answer"]).write_text(json.dumps(answer))


if __name__ == "__main__":
    _child_main(sys.argv[1])
