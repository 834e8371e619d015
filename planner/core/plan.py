"""The plan record and its JSON form (plan.json, documented in docs/formats.md).

The optimizer returns a `Plan`; the CLI, deployer, verifier and reports read
it. plan.json is a persisted boundary, so reading it back checks its shape and
names the field at fault.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from planner.core.candidate import Candidate
from planner.core.errors import InputError
from planner.core.explain import explain_plan
from planner.core.io import write_atomically
from planner.core.objectives import OBJECTIVES
from planner.core.serving_path import Ingress, ServingPath, ingress_from_dict, serving_path_from_dict, serving_path_to_dict

PLAN_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Autoscaling:
    """Serve autoscaling bounds for a demand curve over a day (planner/planning/autoscaling.py sizes it)."""
    min_replicas: int
    max_replicas: int
    target_ongoing_requests: float
    replicas_by_hour: tuple[int, ...]
    day_usd: float
    peak_provisioned_day_usd: float

    @property
    def savings_pct(self) -> float:
        if self.peak_provisioned_day_usd <= 0:
            return 0.0
        return (1 - self.day_usd / self.peak_provisioned_day_usd) * 100.0


@dataclass(frozen=True)
class WorkloadPlan:
    name: str
    model: str
    kind: str
    qps_target: float                 # demand in requests (items) per second
    p99_ms_target: float | None       # None for batch work
    chosen: Candidate
    alternatives: tuple[Candidate, ...]
    autoscaling: Autoscaling | None = None   # with an hourly demand curve (planner/planning/autoscaling.py)
    placement: tuple[tuple[str, int], ...] = ()  # (node id, replicas) on a live cluster (planner/planning/packing.py)
    labels: tuple[tuple[str, str], ...] = ()     # the workload's labels, e.g. (("team", "search"),)


@dataclass(frozen=True)
class Plan:
    status: str                       # OPTIMAL | FEASIBLE | INFEASIBLE
    objective: str                    # cost | energy
    objective_usd_per_hour: float
    best_bound_usd_per_hour: float
    objective_power_w: float
    solve_seconds: float
    workloads: tuple[WorkloadPlan, ...]
    infeasible: tuple[str, ...] = ()  # one diagnosis per workload that could not be placed
    provenance: Mapping[str, Any] = field(default_factory=dict)
    inventory: Mapping[str, int] | None = None   # what the plan was allowed to use (None: unbounded)
    max_utilization: float = 0.8
    objective_value: float = 0.0                 # in the objective's units ($/h, W, gCO2e/h)
    best_bound_objective: float = 0.0
    carbon_g_per_hour: float = 0.0
    budget_usd_per_hour: float | None = None
    # Shared GPUs are paid whole: the unused part of partly used devices, included in the $/h total.
    unallocated_usd_per_hour: float = 0.0
    # The HTTP proxies the online traffic needs (their $/h is in the total) and the serving path
    # the predictions used (planner/core/serving_path.py); None on plans from before they were planned.
    ingress: Ingress | None = None
    serving_path: ServingPath | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("OPTIMAL", "FEASIBLE") and not self.infeasible

    def workload(self, name: str) -> WorkloadPlan:
        for w in self.workloads:
            if w.name == name:
                return w
        raise InputError("workload", name, "not in this plan",
                         f"use one of {', '.join(w.name for w in self.workloads)}")


_CHOSEN_FIELDS = ("hardware", "precision", "batch_size", "replicas", "devices", "unit", "units_per_replica",
                  "predicted_p99_ms", "predicted_throughput_rps", "usd_per_hour", "batch_wait_timeout_ms",
                  "power_w", "quality_loss", "memory_gib", "profile_source", "energy_usd_per_hour",
                  "carbon_g_per_hour", "objective_value", "energy_unknown", "energy_source")
_ALTERNATIVE_FIELDS = ("hardware", "precision", "batch_size", "replicas", "devices", "units_per_replica",
                       "predicted_p99_ms", "usd_per_hour", "feasible", "reason")


def _round(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    explanations = {e.workload: e for e in explain_plan(plan, plan.inventory, plan.max_utilization)}
    workloads = []
    for w in plan.workloads:
        entry: dict[str, Any] = {"name": w.name, "model": w.model, "kind": w.kind,
                                 "qps_target": _round(w.qps_target), "p99_ms_target": w.p99_ms_target}
        entry.update({k: _round(getattr(w.chosen, k)) for k in _CHOSEN_FIELDS})
        if w.chosen.prediction:
            # Each term of predicted_p99_ms and where it came from (composed: docs/optimization.md §2).
            entry["prediction"] = [{"term": t, "mean_ms": round(m, 3), "p99_ms": round(p, 3), "source": src}
                                   for t, m, p, src in w.chosen.prediction]
        e = explanations[w.name]
        entry["explanation"] = {
            "limits": list(e.limits), "replicas_set_by": e.replicas_set_by,
            "runner_ups": [{"configuration": a.description, "usd_per_hour": _round(a.usd_per_hour),
                            "extra_usd_per_hour": _round(a.extra_usd_per_hour), "note": a.note} for a in e.runner_ups],
            "cheaper_rejected": [{"configuration": a.description, "usd_per_hour": _round(a.usd_per_hour),
                                  "reason": a.note} for a in e.cheaper_rejected]}
        entry["alternatives"] = [{k: _round(getattr(c, k)) for k in _ALTERNATIVE_FIELDS} for c in w.alternatives]
        if w.labels:
            entry["labels"] = dict(w.labels)
        if w.placement:
            entry["placement"] = [{"node_id": node, "replicas": n} for node, n in w.placement]
        if w.autoscaling is not None:
            entry["autoscaling"] = {k: (list(v) if isinstance(v, tuple) else _round(v))
                                    for k, v in asdict(w.autoscaling).items()}
        workloads.append(entry)
    return {
        "format_version": PLAN_FORMAT_VERSION,
        "status": plan.status,
        "objective": plan.objective,
        "objective_usd_per_hour": _round(plan.objective_usd_per_hour),
        "best_bound_usd_per_hour": _round(plan.best_bound_usd_per_hour),
        "objective_power_w": _round(plan.objective_power_w),
        "objective_value": _round(plan.objective_value),
        "objective_units": OBJECTIVES[plan.objective].unit if plan.objective in OBJECTIVES else "",
        "best_bound_objective": _round(plan.best_bound_objective),
        "carbon_g_per_hour": _round(plan.carbon_g_per_hour),
        # Power and carbon totals leave these out: no one measured or could estimate their energy.
        "energy_unknown_workloads": [w.name for w in plan.workloads if w.chosen.energy_unknown],
        "budget_usd_per_hour": plan.budget_usd_per_hour,
        "unallocated_usd_per_hour": _round(plan.unallocated_usd_per_hour),
        "ingress": None if plan.ingress is None else plan.ingress.to_dict(),
        "serving_path": None if plan.serving_path is None else serving_path_to_dict(plan.serving_path),
        "solve_seconds": _round(plan.solve_seconds),
        "workloads": workloads,
        "inventory": None if plan.inventory is None else dict(plan.inventory),
        "max_utilization": plan.max_utilization,
        "infeasible": list(plan.infeasible),
        "provenance": dict(plan.provenance),
    }


def write_plan(path: str | Path, plan: Plan) -> Path:
    return write_atomically(path, json.dumps(plan_to_dict(plan), indent=2) + "\n")


def _candidate_from(entry: Mapping[str, Any], workload: str, where: str) -> Candidate:
    defaults = {f.name: None for f in fields(Candidate)}
    values: dict[str, Any] = {**defaults, "workload": workload, "feasible": True, "reason": "", "unit": "",
                              "batch_wait_timeout_ms": 0.0, "power_w": 0.0, "quality_loss": 0.0,
                              "memory_gib": 0.0, "profile_source": "", "predicted_throughput_rps": 0.0,
                              "energy_source": ""}
    required = _CHOSEN_FIELDS[:5] + ("predicted_p99_ms", "usd_per_hour")
    for key in required:
        if key not in entry:
            raise InputError(f"{where}.{key}", None, "missing from plan.json",
                             "regenerate the plan with `planner plan`")
    values.update({k: entry[k] for k in entry if k in defaults and k != "workload"})
    values["units_per_replica"] = values.get("units_per_replica") or 1.0
    values["prediction"] = tuple((str(t["term"]), float(t["mean_ms"]), float(t["p99_ms"]), str(t["source"]))
                                 for t in values.get("prediction") or ())
    return Candidate(**values)


def _autoscaling_from(entry: Mapping[str, Any] | None) -> Autoscaling | None:
    if not entry:
        return None
    return Autoscaling(int(entry["min_replicas"]), int(entry["max_replicas"]), float(entry["target_ongoing_requests"]),
                       tuple(int(r) for r in entry["replicas_by_hour"]), float(entry["day_usd"]),
                       float(entry["peak_provisioned_day_usd"]))


def _labels_from(entry: Any, where: str) -> tuple[tuple[str, str], ...]:
    if entry is None:
        return ()
    if not isinstance(entry, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in entry.items()):
        raise InputError(where, entry, "labels must map strings to strings", 'write e.g. "labels": {"team": "search"}')
    return tuple(entry.items())


def plan_from_dict(data: Mapping[str, Any], source: str = "plan.json") -> Plan:
    try:
        workloads = []
        for i, entry in enumerate(data["workloads"]):
            where = f"{source}: workloads[{i}]"
            chosen = _candidate_from(entry, entry["name"], where)
            alternatives = tuple(_candidate_from(a, entry["name"], f"{where}.alternatives[{j}]")
                                 for j, a in enumerate(entry.get("alternatives", [])))
            workloads.append(WorkloadPlan(name=entry["name"], model=entry["model"], kind=entry.get("kind", "online"),
                                          qps_target=float(entry["qps_target"]),
                                          p99_ms_target=entry.get("p99_ms_target"),
                                          autoscaling=_autoscaling_from(entry.get("autoscaling")),
                                          placement=tuple((p["node_id"], int(p["replicas"]))
                                                          for p in entry.get("placement", ())),
                                          labels=_labels_from(entry.get("labels"), f"{where}.labels"),
                                          chosen=chosen, alternatives=alternatives))
        return Plan(status=data["status"], objective=data.get("objective", "cost"),
                    objective_usd_per_hour=float(data["objective_usd_per_hour"]),
                    best_bound_usd_per_hour=float(data.get("best_bound_usd_per_hour", 0.0)),
                    objective_power_w=float(data.get("objective_power_w", 0.0)),
                    solve_seconds=float(data.get("solve_seconds", 0.0)), workloads=tuple(workloads),
                    infeasible=tuple(data.get("infeasible", ())), provenance=data.get("provenance", {}),
                    inventory=data.get("inventory"), max_utilization=float(data.get("max_utilization", 0.8)),
                    objective_value=float(data.get("objective_value", 0.0)),
                    best_bound_objective=float(data.get("best_bound_objective", 0.0)),
                    carbon_g_per_hour=float(data.get("carbon_g_per_hour", 0.0)),
                    budget_usd_per_hour=data.get("budget_usd_per_hour"),
                    unallocated_usd_per_hour=float(data.get("unallocated_usd_per_hour", 0.0)),
                    ingress=ingress_from_dict(data["ingress"]) if data.get("ingress") else None,
                    serving_path=(serving_path_from_dict(data["serving_path"], f"{source}: serving_path")
                                  if data.get("serving_path") else None))
    except (KeyError, TypeError) as exc:
        raise InputError(f"{source}", str(exc.args[0]), "required field missing or malformed",
                         "regenerate the plan with `planner plan`") from None


def read_plan(path: str | Path) -> Plan:
    path = Path(path)
    if not path.is_file():
        raise InputError("plan", str(path), "file not found", "pass a plan.json written by `planner plan`")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(str(path), f"line {exc.lineno}", "not valid JSON",
                         "regenerate the plan with `planner plan`") from None
    return plan_from_dict(data, str(path))
