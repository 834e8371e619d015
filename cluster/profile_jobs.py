"""The records of a profiling task: what it is asked to measure (ProfileJob) and what it returns (ProfileOutcome).

Shared by the task bodies of every backend (cluster.profiling for torch, cluster.tpu_profiling
for JAX), so neither imports the other.
"""
from __future__ import annotations

from dataclasses import dataclass

from planner.core.profiles import ProfileRow, SkippedPoint


@dataclass(frozen=True)
class ProfileJob:
    model: str
    precision: str
    hardware: str
    batch_sizes: tuple[int, ...]
    threads: int = 1
    max_batch_latency_ms: float | None = None   # stop growing the batch past this
    cached: tuple[ProfileRow, ...] = ()         # stored rows of this point on any device (the cache)


@dataclass(frozen=True)
class ProfileOutcome:
    job: ProfileJob
    rows: tuple[ProfileRow, ...]
    skipped: tuple[SkippedPoint, ...]
    error: str = ""
    cache_hits: int = 0
    node_id: str = ""      # the Ray node it ran on ('' outside Ray): where the placement put it

    @property
    def skipped_batch_sizes(self) -> tuple[int, ...]:
        return tuple(p.batch_size for p in self.skipped)
