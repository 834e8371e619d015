"""Candidates evaluated with numpy, for plans with thousands of workloads.

Same model as planner/planning/candidates.py's `evaluate_candidate` (the reference, and
what the tests compare against), computed for all of a workload's profile rows
at once; `Candidate` objects are built only for the few that matter (the
feasible ones that survive pruning, and the cheapest rejected ones), because
building millions of Python objects is what made 10,000 workloads slow.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from planner.planning.candidates import (ENERGY_OBJECTIVES, Candidate, _source_label, energy_unknown, idle_w_per_unit,
                               running_costs, workload_rows)
from planner.core.catalog import Catalog, HardwareType
from planner.core.latency import DEFAULT_SERVING_OVERHEAD_MS, TAIL_PROBABILITY, UNKNOWN_SERVICE_CS2
from planner.core.profiles import ProfileRow
from planner.core.workloads import Electricity, Workload

FEASIBLE, PRECISION, QUALITY, MEMORY, P99, INVENTORY, ENERGY_UNKNOWN = range(7)


@dataclass
class ModelRows:
    """One model's inference rows as arrays (plus the rows, to build Candidates from)."""
    rows: list[ProfileRow]
    hardware: list[HardwareType]
    precision: np.ndarray
    batch: np.ndarray
    p99_ms: np.ndarray
    throughput: np.ndarray
    cs2: np.ndarray            # squared CV of the batch time (queueing term)
    units: np.ndarray
    memory: np.ndarray
    energy: np.ndarray
    quality: np.ndarray
    price: np.ndarray
    idle_w: np.ndarray                # per unit
    energy_unknown: np.ndarray        # bool: no measured or estimated energy
    memory_limit: np.ndarray          # nan where the catalog has no memory figure
    hw_index: np.ndarray              # index into `hardware_names`
    hardware_names: list[str]

    @classmethod
    def build(cls, rows: list[ProfileRow], catalog: Catalog) -> "ModelRows":
        hardware = [catalog.get(r.hardware) for r in rows]
        names = sorted({r.hardware for r in rows})
        f = lambda get: np.array([get(r) for r in rows], dtype=float)  # noqa: E731
        return cls(rows=rows, hardware=hardware, precision=np.array([r.precision for r in rows]),
                   batch=f(lambda r: r.batch_size), p99_ms=f(lambda r: r.latency_p99_ms),
                   throughput=f(lambda r: r.throughput_rps), units=f(lambda r: r.units_per_replica),
                   cs2=f(lambda r: UNKNOWN_SERVICE_CS2 if r.latency_cv is None else r.latency_cv ** 2),
                   memory=f(lambda r: r.memory_gib), energy=f(lambda r: r.energy_j_per_item),
                   quality=f(lambda r: r.quality_loss), price=np.array([h.usd_per_hour for h in hardware]),
                   idle_w=np.array([idle_w_per_unit(h) for h in hardware]),
                   energy_unknown=np.array([energy_unknown(r) for r in rows], dtype=bool),
                   memory_limit=np.array([np.nan if h.memory_gib is None else h.memory_gib for h in hardware])
                   * f(lambda r: r.units_per_replica),
                   hw_index=np.array([names.index(r.hardware) for r in rows]), hardware_names=names)


@dataclass
class CandidateTable:
    """Every candidate of one workload, as arrays; `candidate(i)` builds the i-th as a Candidate."""
    workload: Workload
    model: ModelRows
    replicas: np.ndarray
    per_replica_rps: np.ndarray
    wait_ms: np.ndarray
    p99_ms: np.ndarray
    devices: np.ndarray
    cost: np.ndarray                  # $/h including electricity
    power: np.ndarray
    energy_usd: np.ndarray
    carbon_g: np.ndarray
    objective_value: np.ndarray
    code: np.ndarray                  # FEASIBLE or the first limit broken, in evaluate_candidate's order
    available: np.ndarray             # inventory of each row's hardware (inf: unbounded)
    objective: str = "cost"

    def __len__(self) -> int:
        return len(self.model.rows)

    def reason(self, i: int) -> str:
        w, m, code = self.workload, self.model, int(self.code[i])
        row, hw = m.rows[i], m.hardware[i]
        if code == PRECISION:
            return f"precision {row.precision} not allowed (allowed: {', '.join(w.precisions)})"
        if code == QUALITY:
            return f"quality_loss {row.quality_loss:.4g} > max_quality_loss {w.max_quality_loss:g}"
        if code == MEMORY:
            return f"memory {row.memory_gib:.3g} GiB > {m.memory_limit[i]:.3g} GiB on {row.hardware}"
        if code == P99:
            return f"predicted p99 {self.p99_ms[i]:.1f} ms > p99_ms {w.p99_ms:g}"
        if code == INVENTORY:
            available = int(self.available[i])
            return (f"needs {self.devices[i]:g} {hw.unit} of {row.hardware}, inventory has {available}"
                    if available else f"no {row.hardware} in the inventory")
        if code == ENERGY_UNKNOWN:
            return f"energy unknown ({row.energy_source}); objective {self.objective} needs it"
        return ""

    def candidate(self, i: int) -> Candidate:
        row, hw = self.model.rows[i], self.model.hardware[i]
        return Candidate(
            workload=self.workload.name, hardware=row.hardware, precision=row.precision, batch_size=row.batch_size,
            units_per_replica=row.units_per_replica, replicas=int(self.replicas[i]), devices=float(self.devices[i]),
            unit=hw.unit, predicted_p99_ms=float(self.p99_ms[i]),
            predicted_throughput_rps=float(self.replicas[i] * row.throughput_rps),
            batch_wait_timeout_ms=float(self.wait_ms[i]), usd_per_hour=float(self.cost[i]),
            power_w=float(self.power[i]), quality_loss=row.quality_loss, memory_gib=row.memory_gib,
            profile_source=_source_label(row), feasible=bool(self.code[i] == FEASIBLE), reason=self.reason(i),
            energy_usd_per_hour=float(self.energy_usd[i]), carbon_g_per_hour=float(self.carbon_g[i]),
            objective_value=float(self.objective_value[i]), energy_unknown=bool(self.model.energy_unknown[i]),
            model="" if row.model == self.workload.model else row.model, energy_source=row.energy_source)

    def pareto_feasible(self, coefficient: np.ndarray) -> list[int]:
        """Feasible indices not dominated on (devices, coefficient) within their hardware type."""
        keep: list[int] = []
        feasible = np.nonzero(self.code == FEASIBLE)[0]
        for h in np.unique(self.model.hw_index[feasible]):
            idx = feasible[self.model.hw_index[feasible] == h]
            order = idx[np.lexsort((self.p99_ms[idx], coefficient[idx], self.devices[idx]))]
            best = np.inf
            for i in order:
                if coefficient[i] < best:
                    keep.append(int(i))
                    best = coefficient[i]
        return keep


def queue_wait_p99(per_replica_rps: np.ndarray, model: "ModelRows") -> np.ndarray:
    """planner.core.latency.queue_wait_p99_ms over every row at once (same formula, same edge cases)."""
    rho = per_replica_rps / model.throughput
    service_ms = 1000.0 * model.batch / model.throughput
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_wait = rho / (1.0 - rho) * service_ms * (1.0 + model.cs2) / 2.0
        tail = mean_wait / rho * np.log(rho / TAIL_PROBABILITY)
    return np.where(rho <= TAIL_PROBABILITY, 0.0, np.where(rho >= 1.0, np.inf, tail))


def evaluate_table(workload: Workload, model: ModelRows, inventory: Mapping[str, int] | None,
                   max_utilization: float, serving_overhead_ms: float = DEFAULT_SERVING_OVERHEAD_MS,
                   electricity: Electricity = Electricity(), objective: str = "cost",
                   needs_energy: bool | None = None, queueing: bool = True) -> CandidateTable:
    demand = workload.demand_rps
    need = np.ceil(demand / (model.throughput * max_utilization) - 1e-9) if demand > 0 else np.zeros(len(model.rows))
    replicas = np.maximum(workload.min_replicas, np.maximum(need, 1.0 if demand > 0 else 0.0))
    per_replica = demand / replicas
    with np.errstate(divide="ignore"):
        wait = np.where(model.batch > 1, 1000.0 * (model.batch - 1) / per_replica, 0.0)
    queue = queue_wait_p99(per_replica, model) if queueing else 0.0
    p99 = wait + queue + model.p99_ms + serving_overhead_ms
    devices = replicas * model.units
    available = (np.full(len(model.rows), np.inf) if inventory is None
                 else np.array([inventory.get(r.hardware, 0) for r in model.rows], dtype=float))
    code = np.full(len(model.rows), FEASIBLE)
    checks = [
        (PRECISION, ~np.isin(model.precision, list(workload.precisions))),
        (QUALITY, model.quality > workload.max_quality_loss + 1e-12),
        (MEMORY, ~np.isnan(model.memory_limit) & (model.memory > np.nan_to_num(model.memory_limit, nan=np.inf))),
        (P99, (p99 > workload.p99_ms) if (workload.kind == "online" and workload.p99_ms is not None)
         else np.zeros(len(model.rows), dtype=bool)),
        (INVENTORY, devices > available),
        (ENERGY_UNKNOWN, model.energy_unknown if (objective in ENERGY_OBJECTIVES if needs_energy is None
                                                  else needs_energy) else np.zeros(len(model.rows), dtype=bool)),
    ]
    for value, broken in reversed(checks):  # the first limit broken, in order, wins
        code = np.where(broken, value, code)
    with np.errstate(divide="ignore", invalid="ignore"):
        power, energy_usd, carbon_g, usd, value = running_costs(
            demand, model.energy, replicas * model.throughput, devices, model.idle_w, devices * model.price,
            electricity, objective)
    return CandidateTable(workload, model, replicas, per_replica, wait, p99, devices, usd, power, energy_usd,
                          carbon_g, value, code, available, objective)


def enumerate_tables(workloads: Iterable[Workload], rows: Sequence[ProfileRow], catalog: Catalog,
                     inventory: Mapping[str, int] | None, max_utilization: float,
                     serving_overhead_ms: float = DEFAULT_SERVING_OVERHEAD_MS,
                     electricity: Electricity = Electricity(), objective: str = "cost",
                     needs_energy: bool | None = None, queueing: bool = True,
                     measured_overhead_ms: Mapping[str, float] | None = None) -> dict[str, CandidateTable]:
    """`measured_overhead_ms`: per-workload serving overhead measured by verify, over the default."""
    workloads = tuple(workloads)
    measured_overhead_ms = measured_overhead_ms or {}
    by_model: dict[str, list[ProfileRow]] = {}
    for row in rows:
        if row.mode == "inference":
            by_model.setdefault(row.model, []).append(row)
    models: dict[object, ModelRows] = {name: ModelRows.build(model_rows, catalog) for name, model_rows in by_model.items()}
    for w in workloads:
        if w.variants and (w.model, w.variants) not in models:
            models[(w.model, w.variants)] = ModelRows.build(workload_rows(w, by_model), catalog)
    empty = ModelRows.build([], catalog) if not models else None
    tables = {}
    for w in workloads:
        model = models.get((w.model, w.variants) if w.variants else w.model) or empty or ModelRows.build([], catalog)
        tables[w.name] = evaluate_table(w, model, inventory, max_utilization,
                                        measured_overhead_ms.get(w.name, serving_overhead_ms), electricity,
                                        objective, needs_energy, queueing)
    return tables
