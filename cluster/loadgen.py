"""Open-loop Poisson HTTP load (the MLPerf "Server" scenario), for `planner verify`.

Requests are sent at exponentially distributed intervals whatever the server's
speed: a closed loop (send the next request when the last one returns) would
slow down with the server and hide the very latency we want to see. Send times
come from a seeded generator, so two runs offer the same load.
"""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import aiohttp


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

    @property
    def completed(self) -> int:
        return len(self.latencies_ms)


async def _one(session: aiohttp.ClientSession, url: str, body: bytes, result: LoadResult) -> None:
    started = time.perf_counter()
    try:
        async with session.post(url, data=body, headers={"content-type": "application/json"}) as resp:
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
                        duration_s: float, seed: int = 0) -> LoadResult:
    """Offer `qps` requests/s for `duration_s` (open loop), then wait for every answer."""
    result = LoadResult(url=url, qps_target=qps, duration_s=duration_s)
    tasks = []
    start = time.perf_counter()
    for send_at in poisson_send_times(qps, duration_s, seed):
        delay = start + send_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_one(session, url, body, result)))
        result.sent += 1
    await asyncio.gather(*tasks)
    # The window is the offered duration, or longer if answers trail behind it.
    result.elapsed_s = max(duration_s, time.perf_counter() - start)
    return result


async def _drive_all(targets: list[tuple[str, bytes, float]], duration_s: float, warmup_requests: int,
                     timeout_s: float) -> list[LoadResult]:
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        # Warm-up: first requests pay for connection setup and lazy paths; not part of the sample.
        warm = LoadResult(url="warmup", qps_target=0, duration_s=0)
        for url, body, _ in targets:
            for _ in range(warmup_requests):
                await _one(session, url, body, warm)
        return await asyncio.gather(*(drive_poisson(session, url, body, qps, duration_s, seed=i)
                                      for i, (url, body, qps) in enumerate(targets)))


def drive(targets: list[tuple[str, bytes, float]], duration_s: float, warmup_requests: int = 5,
          timeout_s: float = 30.0) -> list[LoadResult]:
    """Drive every (url, body, qps) target at once, for the same window."""
    return asyncio.run(_drive_all(targets, duration_s, warmup_requests, timeout_s))
