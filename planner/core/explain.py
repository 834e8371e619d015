"""Why each workload got its configuration: the binding limits, the runner-ups and what they cost.

Pure, and part of the core because plan.json carries it (planner/core/plan.py): reads a Plan (every candidate evaluated is in `alternatives`) and the
inventory, and returns plain records the CLI, UI and reports render.

- **Limits** of the chosen configuration, tightest first, as the share used:
  predicted p99 of the target, utilisation of its cap, the plan's use of the
  hardware's inventory; and what set the replica count (demand, min_replicas,
  or one replica being enough).
- **Runner-ups**: the cheapest feasible configuration on each other hardware
  type, with how much more (or less) it would cost per hour; when one is
  cheaper, the plan chose against it because the inventory was shared.
- **Cheaper, rejected**: configurations cheaper than the choice, with the limit
  each one breaks (e.g. "predicted p99 62.0 ms > p99_ms 50").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

from planner.core.candidate import Candidate

if TYPE_CHECKING:  # plan.py writes explanations into plan.json: explain needs its records only as types
    from planner.core.plan import Plan, WorkloadPlan


@dataclass(frozen=True)
class Alternative:
    description: str
    usd_per_hour: float
    extra_usd_per_hour: float      # versus the chosen configuration (negative: cheaper)
    note: str                      # why it lost


@dataclass(frozen=True)
class Explanation:
    workload: str
    chosen: str
    limits: tuple[str, ...]        # share of each limit used, tightest first
    replicas_set_by: str
    runner_ups: tuple[Alternative, ...]
    cheaper_rejected: tuple[Alternative, ...]

    def lines(self) -> list[str]:
        cheaper_feasible = any(a.extra_usd_per_hour < 0 for a in self.runner_ups)
        out = [f"{self.workload}: {self.chosen}, " + ("not the cheapest alone: the shared inventory decided"
                                                      if cheaper_feasible else "the cheapest that meets every limit")]
        out.append(f"  limits, tightest first: {'; '.join(self.limits)}")
        out.append(f"  replicas set by: {self.replicas_set_by}")
        out += [f"  instead: {a.description} at {a.extra_usd_per_hour:+.4f} $/h ({a.note})" for a in self.runner_ups]
        out += [f"  cheaper but rejected: {a.description} ({a.note})" for a in self.cheaper_rejected]
        return out


def _limits(w: WorkloadPlan, used: Mapping[str, float], inventory: Mapping[str, int] | None,
            max_utilization: float) -> tuple[list[str], str]:
    """Each limit's share used by the chosen configuration (tightest first), and what set the replicas."""
    c = w.chosen
    limits: list[tuple[float, str]] = []  # (share of the limit used, text)
    if w.p99_ms_target:
        share = c.predicted_p99_ms / w.p99_ms_target
        limits.append((share, f"p99 {share:.0%} of target (predicted {c.predicted_p99_ms:.1f} of "
                              f"{w.p99_ms_target:g} ms)"))
    per_replica = c.predicted_throughput_rps / c.replicas if c.replicas else 0.0
    busy = w.qps_target / c.predicted_throughput_rps if c.predicted_throughput_rps else 0.0
    limits.append((busy / max_utilization, f"replicas {busy:.0%} busy, cap {max_utilization:.0%} "
                                           f"({w.qps_target:g} rps on {c.replicas})"))
    if inventory is not None and c.hardware in inventory:
        available = inventory[c.hardware]
        share = used.get(c.hardware, 0.0) / available if available else 1.0
        limits.append((share, f"inventory {share:.0%} of {c.hardware} (the plan uses {used.get(c.hardware, 0.0):g} "
                              f"of {available} {c.unit})"))
    limits.sort(key=lambda item: -item[0])
    needed = w.qps_target / (per_replica * max_utilization) if per_replica else 0.0
    if c.replicas == 1 and needed <= 1:
        replicas_by = "one replica, the smallest unit, is enough"
    elif needed <= c.replicas - 1:
        replicas_by = f"min_replicas ({c.replicas}; demand alone needs {needed:.2f})"
    else:
        replicas_by = f"demand ({needed:.2f} replicas at {max_utilization:.0%} utilisation, rounded up)"
    return [text for _, text in limits], replicas_by


def _alternative(c: Candidate, chosen: Candidate, note: str) -> Alternative:
    return Alternative(c.describe(), c.usd_per_hour, c.usd_per_hour - chosen.usd_per_hour, note)


def explain_workload(w: WorkloadPlan, used: Mapping[str, float], inventory: Mapping[str, int] | None,
                     max_utilization: float = 0.8, runner_ups: int = 3, rejected: int = 3) -> Explanation:
    c = w.chosen
    best_per_hw: dict[str, Candidate] = {}
    for alt in w.alternatives:
        if alt.feasible and alt.hardware != c.hardware:
            if alt.hardware not in best_per_hw or alt.usd_per_hour < best_per_hw[alt.hardware].usd_per_hour:
                best_per_hw[alt.hardware] = alt
    ups = []
    for alt in sorted(best_per_hw.values(), key=lambda a: a.usd_per_hour)[:runner_ups]:
        note = ("costs more" if alt.usd_per_hour > c.usd_per_hour + 1e-12 else
                "cheaper alone, but its hardware is needed by other workloads under the shared inventory"
                if alt.usd_per_hour < c.usd_per_hour - 1e-12 else "same cost; less latency headroom")
        ups.append(_alternative(alt, c, note))
    cheaper = sorted((a for a in w.alternatives if not a.feasible and a.usd_per_hour < c.usd_per_hour - 1e-12),
                     key=lambda a: a.usd_per_hour)
    seen: set[str] = set()
    rejected_list = []
    for alt in cheaper:
        kind = alt.reason.split(" ")[0] + alt.hardware  # one example per hardware and kind of limit
        if kind in seen:
            continue
        seen.add(kind)
        rejected_list.append(_alternative(alt, c, alt.reason))
        if len(rejected_list) == rejected:
            break
    limits, replicas_by = _limits(w, used, inventory, max_utilization)
    return Explanation(w.name, c.describe(), tuple(limits), replicas_by, tuple(ups), tuple(rejected_list))


def explain_plan(plan: Plan, inventory: Mapping[str, int] | None = None,
                 max_utilization: float = 0.8) -> list[Explanation]:
    """One explanation per placed workload, in plan order."""
    used: dict[str, float] = {}
    for w in plan.workloads:
        used[w.chosen.hardware] = used.get(w.chosen.hardware, 0.0) + w.chosen.devices
    return [explain_workload(w, used, inventory, max_utilization) for w in plan.workloads]
