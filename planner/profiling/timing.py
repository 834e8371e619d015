"""Timing a callable until its latency is stable (perf_analyzer's rule). Pure: no torch.

Shared by the torch profiler (planner/profiling/profiler.py), the training-step profiler
and the JAX harness, so every backend is measured the same way.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class TimingBudget:
    """When a point's measurement is good enough (perf_analyzer's stability rule).

    Timed runs are grouped in windows of at least `window_iters` runs and
    `window_s` seconds. The point is stable when the p50 of each of the last
    `stable_windows` windows is within `stability_pct` of their mean; its
    statistics are then taken over those windows (the steady state). If
    `max_seconds` passes first, the point is recorded as not stable.
    """
    warmup_iters: int = 5
    warmup_s: float = 0.2
    window_iters: int = 20
    window_s: float = 0.6
    stable_windows: int = 3
    stability_pct: float = 3.0
    max_seconds: float = 8.0
    max_iters: int = 50_000


QUICK_BUDGET = TimingBudget(warmup_s=0.05, window_iters=10, window_s=0.05, stability_pct=5.0, max_seconds=1.0)


@dataclass(frozen=True)
class LatencySample:
    latencies_ms: tuple[float, ...]       # the steady-state windows' runs
    window_p50_ms: tuple[float, ...] = ()  # p50 of every window, in order
    stable: bool = True
    total_runs: int = 0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q))

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.latencies_ms)

    @property
    def cv(self) -> float:
        return statistics.pstdev(self.latencies_ms) / self.mean_ms if len(self.latencies_ms) > 1 else 0.0


def _stable(windows: list[float], budget: TimingBudget) -> bool:
    if len(windows) < budget.stable_windows:
        return False
    last = windows[-budget.stable_windows:]
    mean = statistics.fmean(last)
    return mean > 0 and (max(last) - min(last)) / mean * 100.0 <= budget.stability_pct


def time_callable(run: Callable[[], object], budget: TimingBudget, sync: Callable[[], None] = lambda: None,
                  clock: Callable[[], float] = time.perf_counter) -> LatencySample:
    """Warm up, then time `run` window by window until the p50 is stable or the budget is spent."""
    start = clock()
    done = 0
    while done < budget.warmup_iters or clock() - start < budget.warmup_s:
        run()
        done += 1
    sync()
    windows: list[list[float]] = []
    window_p50: list[float] = []
    start = clock()
    total = 0
    stable = False
    while True:
        window: list[float] = []
        window_start = clock()
        while len(window) < budget.window_iters or clock() - window_start < budget.window_s:
            t0 = clock()
            run()
            sync()
            window.append((clock() - t0) * 1000.0)
            if clock() - start >= budget.max_seconds or total + len(window) >= budget.max_iters:
                break
        total += len(window)
        windows.append(window)
        window_p50.append(float(np.percentile(window, 50)))
        stable = _stable(window_p50, budget)
        if stable or clock() - start >= budget.max_seconds or total >= budget.max_iters:
            break
    steady = [lat for w in windows[-budget.stable_windows:] for lat in w]
    return LatencySample(tuple(steady), tuple(window_p50), stable, total)
