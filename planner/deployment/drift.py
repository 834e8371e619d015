"""Drift: is what Serve sees live still what the plan predicted?

Per deployed workload, over a window of Serve's own HTTP metrics (requests,
errors, latency histogram), three checks against the plan:

- latency: live p99 above the workload's p99 target, or above the plan's predicted p99 by
  more than `latency_tolerance` (default 1.0: twice the prediction);
- demand: live request rate above the planned qps by more than `demand_tolerance`
  (default 0.2): the plan was sized for less;
- errors: any failed request.

A flagged workload comes with the fix: re-profile its model where it runs and re-plan.
Live p99 is a bucket upper edge (Serve's histogram), so it is an upper bound.
"""
from __future__ import annotations

from dataclasses import dataclass

from planner.core.plan import Plan


@dataclass(frozen=True)
class LiveWindow:
    seconds: float
    requests: float
    errors: float
    p99_ms: float | None


@dataclass(frozen=True)
class DriftFinding:
    workload: str
    kind: str          # latency | demand | errors
    detail: str
    fix: str


def check_drift(plan: Plan, live: dict[str, LiveWindow], latency_tolerance: float = 1.0,
                demand_tolerance: float = 0.2) -> list[DriftFinding]:
    findings = []
    for w in plan.workloads:
        window = live.get(w.name)
        if window is None or window.requests <= 0 or window.seconds <= 0:
            continue
        fix = (f"re-profile {w.model} on {w.chosen.hardware} (planner profile ... --force) and re-plan "
               "(planner plan ...), then deploy the new plan")
        rate = window.requests / window.seconds
        if window.p99_ms is not None:
            predicted, target = w.chosen.predicted_p99_ms, w.p99_ms_target
            if target is not None and window.p99_ms > target:
                findings.append(DriftFinding(w.name, "latency", f"live p99 <= {window.p99_ms:g} ms exceeds the "
                                             f"target {target:g} ms (predicted {predicted:.1f} ms)", fix))
            elif window.p99_ms > predicted * (1 + latency_tolerance):
                findings.append(DriftFinding(w.name, "latency", f"live p99 <= {window.p99_ms:g} ms is more than "
                                             f"{1 + latency_tolerance:g}x the predicted {predicted:.1f} ms", fix))
        if rate > w.qps_target * (1 + demand_tolerance):
            findings.append(DriftFinding(w.name, "demand", f"live {rate:.1f} requests/s is above the planned "
                                         f"{w.qps_target:g} by more than {100 * demand_tolerance:.0f}%",
                                         "re-plan with the new qps (planner plan ...), then deploy"))
        if window.errors:
            findings.append(DriftFinding(w.name, "errors", f"{window.errors:g} failed requests in "
                                         f"{window.seconds:.0f} s", "read the Serve replica logs; " + fix))
    return findings
