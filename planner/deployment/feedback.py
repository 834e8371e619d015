"""Feeding verification back into the plan: the serving path's overhead as measured, not assumed.

The latency model adds one constant per request for the serving path
(`serving_overhead_ms`: proxy, routing, JSON, and on small machines the HTTP
path's own queue). `planner verify` measures p99 under the plan's load. The
gap between measured and predicted p99 is what the model missed; since the
replica side (batch formation, queueing per replica, batch p99) is modelled from
measured profiles, the gap is charged to the serving path of that workload:

    measured overhead(w) = assumed overhead + (measured p99(w) - predicted p99(w))

A re-plan uses it for the verified workloads only: a workload that was not
deployed where verify ran (e.g. on a GPU this machine lacks) keeps the assumed
overhead, since nothing was measured about its path.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from planner.core.errors import InputError
from planner.deployment.verification import VerificationReport, verification_data

# A prediction this close to the measurement needs no feedback (the tolerance for verify).
TOLERANCE = 0.25


@dataclass(frozen=True)
class OverheadFeedback:
    assumed_ms: float
    per_workload: tuple[tuple[str, float, float, float], ...]   # (name, measured p99, predicted p99, overhead)
    # (name, low, high) of the measured p99's 95% interval, when verify.json has it (high None: unbounded)
    intervals: tuple[tuple[str, float | None, float | None], ...] = ()
    origin: str = ""    # where the measurements came from: the verify.json path, or the report's source

    @property
    def by_workload(self) -> dict[str, float]:
        """The measured serving overhead per verified workload (what a re-plan uses)."""
        return {name: round(overhead, 3) for name, _, _, overhead in self.per_workload}

    @property
    def needed(self) -> bool:
        """Some workload's p99 is off its prediction by more than the tolerance, beyond sampling doubt.

        With a confidence interval for the measured p99, "off" means the whole interval lies
        outside prediction +- tolerance; a short window whose interval still admits the
        prediction is no evidence against it.
        """
        interval = {name: (low, high) for name, low, high in self.intervals}
        for name, measured, predicted, _ in self.per_workload:
            if predicted <= 0:
                continue
            low, high = interval.get(name, (measured, measured))
            too_slow = low is not None and low > predicted * (1.0 + TOLERANCE)
            too_fast = high is not None and high < predicted * (1.0 - TOLERANCE)
            if too_slow or too_fast:
                return True
        return False

    def describe(self) -> str:
        parts = ", ".join(f"{name} {overhead:.1f} ms (p99 {measured:.1f} measured vs {predicted:.1f} predicted)"
                          for name, measured, predicted, overhead in self.per_workload)
        return f"serving path overhead measured per workload (assumed {self.assumed_ms:g} ms): {parts}"


def overhead_feedback(verified: Iterable[Mapping], assumed_ms: float) -> OverheadFeedback:
    """From verify.json's workloads (name, p99_ms, predicted_p99_ms) and the overhead the plan assumed."""
    per_workload, intervals = [], []
    for w in verified:
        measured, predicted = w.get("p99_ms"), w.get("predicted_p99_ms")
        if measured is None or predicted is None or predicted <= 0:
            continue  # nothing completed, or nothing predicted: no evidence either way
        implied = max(0.0, assumed_ms + float(measured) - float(predicted))
        per_workload.append((str(w["name"]), float(measured), float(predicted), implied))
        if "p99_ci_low_ms" in w:
            intervals.append((str(w["name"]), w.get("p99_ci_low_ms"), w.get("p99_ci_high_ms")))
    if not per_workload:
        raise InputError("verify.workloads", 0, "no workload with a measured and a predicted p99",
                         "run `planner verify` with load that completes requests, then feed its JSON back")
    return OverheadFeedback(assumed_ms, tuple(per_workload), tuple(intervals))


def overhead_feedback_from(verification: VerificationReport | Mapping[str, Any] | str | Path,
                           assumed_ms: float) -> OverheadFeedback:
    """`planner plan --serving-overhead-from verify.json`, or `api.plan(serving_overhead_from=...)` with
    the report `api.verify` returned: the feedback from that verification."""
    flag = "--serving-overhead-from"
    data = verification_data(verification, flag)
    if isinstance(verification, (str, Path)):
        origin = str(verification)
    else:   # in memory: say where it was measured instead
        origin = f"the verification {data['source']}" if data.get("source") else "a verification in memory"
    workloads = data.get("workloads")
    if not isinstance(workloads, list):
        raise InputError(flag, origin, "not a verify.json (no workloads list)",
                         "give the verify.json written by `planner verify --out`")
    return replace(overhead_feedback(workloads, assumed_ms), origin=origin)
