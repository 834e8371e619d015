"""Feeding verification back into the plan: the serving path's overhead as measured, not assumed.

The latency model adds one constant per request for the serving path
(`serving_overhead_ms`: proxy, routing, JSON, and on small machines the HTTP
path's own queue). `planner verify` measures p99 under the plan's load. The
gap between measured and predicted p99 is what the model missed; since the
replica side (batch formation, queueing per replica, batch p99) is modelled from
measured profiles, the gap is charged to the serving path:

    implied overhead = assumed overhead + (measured p99 - predicted p99)

per verified workload; the largest is fed back (every target must hold, so the
worst workload's path sets it). A re-plan with it predicts what was measured.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from planner.errors import InputError

# A prediction this close to the measurement needs no feedback (the tolerance for verify).
TOLERANCE = 0.25


@dataclass(frozen=True)
class OverheadFeedback:
    assumed_ms: float
    implied_ms: float                              # the overhead to plan with from now on
    per_workload: tuple[tuple[str, float, float, float], ...]   # (name, measured p99, predicted p99, implied)

    @property
    def needed(self) -> bool:
        """Some workload's measured p99 is off its prediction by more than the tolerance."""
        return any(abs(measured / predicted - 1.0) > TOLERANCE for _, measured, predicted, _ in self.per_workload
                   if predicted > 0)

    def describe(self) -> str:
        worst = max(self.per_workload, key=lambda w: w[3])
        return (f"serving path measured at {self.implied_ms:.1f} ms per request at p99 (assumed "
                f"{self.assumed_ms:g} ms; set by {worst[0]}: p99 {worst[1]:.1f} ms measured vs {worst[2]:.1f} ms "
                f"predicted)")


def overhead_feedback(verified: Iterable[Mapping], assumed_ms: float) -> OverheadFeedback:
    """From verify.json's workloads (name, p99_ms, predicted_p99_ms) and the overhead the plan assumed."""
    per_workload = []
    for w in verified:
        measured, predicted = w.get("p99_ms"), w.get("predicted_p99_ms")
        if measured is None or predicted is None or predicted <= 0:
            continue  # nothing completed, or nothing predicted: no evidence either way
        implied = max(0.0, assumed_ms + float(measured) - float(predicted))
        per_workload.append((str(w["name"]), float(measured), float(predicted), implied))
    if not per_workload:
        raise InputError("verify.workloads", 0, "no workload with a measured and a predicted p99",
                         "run `planner verify` with load that completes requests, then feed its JSON back")
    return OverheadFeedback(assumed_ms, max(w[3] for w in per_workload), tuple(per_workload))


def read_overhead_feedback(path: str | Path, assumed_ms: float) -> OverheadFeedback:
    """`planner plan --serving-overhead-from verify.json`: the feedback from a verification file."""
    import json

    try:
        data = json.loads(Path(path).read_text())
        workloads = data["workloads"]
    except FileNotFoundError:
        raise InputError("--serving-overhead-from", str(path), "file not found",
                         "give the verify.json written by `planner verify --out`") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError("--serving-overhead-from", str(path), f"not a verify.json ({exc})",
                         "give the verify.json written by `planner verify --out`") from None
    return overhead_feedback(workloads, assumed_ms)
