"""Candidate configurations: every (hardware, precision, batch size) a workload could run on.

The one evaluator. For each workload and each profile row of its model (and its
variants), it sizes the replicas, predicts p99 (planner/core/latency.py), prices
the configuration (planner/core/costs.py) and checks every per-workload limit,
in a fixed order:

    1. only precisions the workload allows;
    2. the precision's (and variant's) quality loss against fp32 within max_quality_loss;
    3. the replica fits in the memory of the units it occupies;
    4. online work meets its p99 target (batch work has only its deadline, as throughput);
    5. no configuration needs more units than the inventory holds at all;
    6. an objective or cap about energy cannot weigh a configuration whose energy nobody knows.

The optimizer then picks one feasible candidate per workload under the shared
inventory. A workload's rows are evaluated at once, as numpy arrays (a
`CandidateTable`); `Candidate` records are built only for the few that matter (the
feasible ones that survive pruning, and the cheapest rejected ones), because
building millions of Python objects is what made 10,000 workloads slow.
Infeasible candidates keep their reason: the plan reports the alternatives it
evaluated and why they lost. `evaluate_candidate` is the same code for one row.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Mapping, Sequence

import numpy as np

from planner.core.candidate import Candidate
from planner.core.catalog import Catalog, HardwareType
from planner.core.costs import idle_w_per_unit, running_costs
from planner.core.latency import (
    DEFAULT_SERVING_OVERHEAD_MS,
    TAIL_PROBABILITY,
    batch_wait_timeout_ms,
    compose_p99_ms,
    mean_queue_wait_ms,
    service_cs2,
    sharing_slowdown,
)
from planner.core.objectives import OBJECTIVES
from planner.core.profiles import ProfileRow
from planner.core.serving_path import ServingTerms
from planner.core.workloads import Electricity, Workload

FEASIBLE, PRECISION, QUALITY, MEMORY, P99, INVENTORY, ENERGY_UNKNOWN = range(7)


def sort_key(c: Candidate) -> tuple:
    """How candidates are listed: feasible first, then cheapest, then fastest."""
    return (not c.feasible, c.usd_per_hour, c.predicted_p99_ms)


@dataclass
class ModelRows:
    """One model's inference rows as arrays (plus the rows, to build Candidates from)."""
    rows: list[ProfileRow]
    hardware: list[HardwareType]
    precision: np.ndarray
    batch: np.ndarray
    p99_ms: np.ndarray
    p50_ms: np.ndarray
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
    share: np.ndarray                 # part of a core a CPU replica holds (1: whole units; GPU shares are folded in)

    @classmethod
    def build(cls, rows: list[ProfileRow], catalog: Catalog) -> "ModelRows":
        hardware = [catalog.get(r.hardware) for r in rows]
        names = sorted({r.hardware for r in rows})
        f = lambda get: np.array([get(r) for r in rows], dtype=float)  # noqa: E731
        return cls(rows=rows, hardware=hardware, precision=np.array([r.precision for r in rows]),
                   batch=f(lambda r: r.batch_size), p99_ms=f(lambda r: r.latency_p99_ms),
                   p50_ms=f(lambda r: min(r.latency_p50_ms, r.latency_p99_ms)),
                   throughput=f(lambda r: r.throughput_rps), units=f(lambda r: r.units_per_replica),
                   cs2=f(lambda r: service_cs2(r.latency_cv)),
                   memory=f(lambda r: r.memory_gib), energy=f(lambda r: r.energy_j_per_item),
                   quality=f(lambda r: r.quality_loss), price=np.array([h.usd_per_hour for h in hardware]),
                   idle_w=np.array([idle_w_per_unit(h) for h in hardware]),
                   energy_unknown=np.array([energy_unknown(r) for r in rows], dtype=bool),
                   memory_limit=np.array([np.nan if h.memory_gib is None else h.memory_gib for h in hardware])
                   * f(lambda r: r.units_per_replica),
                   hw_index=np.array([names.index(r.hardware) for r in rows]), hardware_names=names,
                   share=np.array([min(1.0, r.units_per_replica) if not h.is_accelerator else 1.0
                                   for r, h in zip(rows, hardware)], dtype=float))


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
    code: np.ndarray                  # FEASIBLE or the first limit broken, in the docstring's order
    available: np.ndarray             # inventory of each row's hardware (inf: unbounded)
    objective: str = "cost"
    capacity: np.ndarray | None = None    # items/s one replica sustains (model + Serve's floor, its share)
    terms: np.ndarray | None = None       # per row: formation, queue, service (mean, p99), sharing stretch
    serving: ServingTerms | None = None

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
            predicted_throughput_rps=float(self.replicas[i] * (row.throughput_rps if self.capacity is None
                                                               else self.capacity[i])),
            batch_wait_timeout_ms=float(self.wait_ms[i]), usd_per_hour=float(self.cost[i]),
            power_w=float(self.power[i]), quality_loss=row.quality_loss, memory_gib=row.memory_gib,
            profile_source=_source_label(row), feasible=bool(self.code[i] == FEASIBLE), reason=self.reason(i),
            energy_usd_per_hour=float(self.energy_usd[i]), carbon_g_per_hour=float(self.carbon_g[i]),
            objective_value=float(self.objective_value[i]), energy_unknown=bool(self.model.energy_unknown[i]),
            model="" if row.model == self.workload.model else row.model, energy_source=row.energy_source,
            prediction=self.prediction(i))

    def prediction(self, i: int) -> tuple[tuple[str, float, float, str], ...]:
        """Each term of the predicted p99, as (term, mean ms, p99 ms, where it came from)."""
        if self.terms is None or self.serving is None:
            return ()
        row = self.model.rows[i]
        form_mean, form_p99, queue_mean, queue_p99, service_mean, service_p99, stretch, floor = map(
            float, self.terms[:, i])
        path, source = self.serving.path, self.serving.source
        shared = f", x{stretch:.2f} sharing a core" if stretch > 1 else ""
        return (
            ("serving path", path.mean_ms, path.p99_ms, f"{source}: at {path.qps:.1f} qps per proxy"),
            ("batch formation", form_mean, form_p99, f"model: {row.batch_size - 1} more arrivals at "
                                                     f"{self.per_replica_rps[i]:.2f}/s per replica"),
            ("replica queue", queue_mean, queue_p99, "model: M/G/1, service = batch time + "
                                                    f"{row.batch_size} x {floor:.2f} ms floor{self._floor_range()}"
                                                    f" ({source}){shared}"),
            ("batch", service_mean, service_p99, f"{_source_label(row)}{shared}"),
        )

    def _floor_range(self) -> str:
        idle, busy = self.serving.floor_ms, self.serving.busy_floor_ms
        return f" at this load (idle {idle:.2f}, busy {busy:.2f})" if busy < idle else ""

    def candidates(self) -> list[Candidate]:
        """Every candidate as a record, cheapest first (feasible before infeasible)."""
        return sorted((self.candidate(i) for i in range(len(self))), key=sort_key)

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


def evaluate_table(workload: Workload, model: ModelRows, inventory: Mapping[str, int] | None,
                   max_utilization: float, serving: ServingTerms | float = DEFAULT_SERVING_OVERHEAD_MS,
                   electricity: Electricity = Electricity(), objective: str = "cost",
                   needs_energy: bool | None = None, queueing: bool = True) -> CandidateTable:
    """Every candidate of one workload on the rows of `model` (see the module docstring).

    `serving`: what the serving path adds (planner/core/serving_path.py); a number is a constant
    per-request overhead with no replica floor.
    """
    terms = serving if isinstance(serving, ServingTerms) else ServingTerms.constant(float(serving))
    demand, n = workload.demand_rps, len(model.rows)
    batch_ms = 1000.0 * model.batch / model.throughput          # the model's time for one batch, back to back
    # Serve's CPU per request on the replica depends on its load: a request reaching an idle replica
    # pays the full floor (f_idle), one finding it busy the amortised one (f_busy); a Poisson arrival
    # finds it busy with probability rho (PASTA), so f = f_busy + (f_idle - f_busy)(1 - rho), and
    # rho, which depends on f, solves rho = r (S + f) / 1000 in closed form (S: the model's ms per item).
    f_idle, f_busy = terms.floor_ms, terms.busy_floor_ms
    gap = f_idle - f_busy
    item_ms = batch_ms / model.batch
    capacity = model.share * 1000.0 / (item_ms + f_busy)        # items/s one replica sustains (rho -> 1)
    # The most a replica may take with its share's rho <= U: r (S + f_busy + (1 - U) gap) <= 1000 U share.
    # (With f_busy = f_idle, as for a path with no saturated floor, all of this is the plain
    # capacity share x 1000 / (S + f) at utilisation U.)
    at_cap = model.share * 1000.0 * max_utilization / (item_ms + f_busy + (1.0 - max_utilization) * gap)
    need = np.ceil(demand / at_cap - 1e-9) if demand > 0 else np.zeros(n)
    replicas = np.maximum(workload.min_replicas, np.maximum(need, 1.0 if demand > 0 else 0.0))
    per_replica = demand / replicas
    wait = batch_wait_timeout_ms(model.batch, per_replica)
    stretch = sharing_slowdown(model.share, max_utilization)   # 1 on a core (or device) of its own
    # Busy in wall-clock time (its work stretched on a shared core): what an arrival finds.
    rho_wall = per_replica * stretch * (item_ms + f_idle) / (1000.0 + per_replica * stretch * gap)
    floor = f_busy + gap * (1.0 - np.minimum(1.0, rho_wall))    # the floor at this replica's load
    service_ms = batch_ms + model.batch * floor                 # + Serve's CPU per request on the replica
    run_ms = stretch * service_ms
    if queueing:
        queue_mean = mean_queue_wait_ms(per_replica, run_ms, model.batch, model.cs2)
        rho = per_replica * run_ms / (1000.0 * model.batch)
        with np.errstate(divide="ignore", invalid="ignore"):
            tail = queue_mean / rho * np.log(rho / TAIL_PROBABILITY)
        queue_p99 = np.where(rho <= TAIL_PROBABILITY, 0.0, np.where(rho >= 1.0, np.inf, tail))
        queue_mean = np.where(rho <= TAIL_PROBABILITY, 0.0, queue_mean)
    else:
        queue_mean = queue_p99 = np.zeros(n)
    # The path's own latency was measured with one request's floor in it: a batch adds B - 1 more.
    extra_floor = (model.batch - 1) * floor
    # A batch's own latency: its median stands for its mean (the profile has no mean).
    service_mean, service_p99 = stretch * (model.p50_ms + extra_floor), stretch * (model.p99_ms + extra_floor)
    path = terms.path
    p99 = compose_p99_ms([(path.mean_ms, path.p99_ms), (wait / 2.0, wait), (queue_mean, queue_p99),
                          (service_mean, service_p99)])
    p99 = np.where(np.isfinite(queue_p99), p99, np.inf)
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
        (ENERGY_UNKNOWN, model.energy_unknown if (OBJECTIVES[objective].needs_energy if needs_energy is None
                                                  else needs_energy) else np.zeros(len(model.rows), dtype=bool)),
    ]
    for value, broken in reversed(checks):  # the first limit broken, in order, wins
        code = np.where(broken, value, code)
    with np.errstate(divide="ignore", invalid="ignore"):
        power, energy_usd, carbon_g, usd, value = running_costs(
            demand, model.energy, replicas * capacity, devices, model.idle_w, devices * model.price,
            electricity, objective)
    return CandidateTable(workload, model, replicas, per_replica, wait, p99, devices, usd, power, energy_usd,
                          carbon_g, value, code, available, objective, capacity=capacity,
                          terms=np.stack([np.broadcast_to(np.asarray(x, dtype=float), (n,)) for x in (
                              wait / 2.0, wait, queue_mean, queue_p99, service_mean, service_p99, stretch, floor)])
                          if n else np.zeros((8, 0)),
                          serving=terms)


def enumerate_tables(workloads: Iterable[Workload], rows: Sequence[ProfileRow], catalog: Catalog,
                     inventory: Mapping[str, int] | None, max_utilization: float,
                     serving: ServingTerms | float = DEFAULT_SERVING_OVERHEAD_MS,
                     electricity: Electricity = Electricity(), objective: str = "cost",
                     needs_energy: bool | None = None, queueing: bool = True,
                     serving_by_workload: Mapping[str, ServingTerms | float] | None = None
                     ) -> dict[str, CandidateTable]:
    """A CandidateTable per workload name. Training-step rows time a different job: never served from.

    `serving`: the serving path's terms for every workload; `serving_by_workload` overrides them
    per workload (a model's own replica floor; an overhead `planner verify` measured).
    """
    workloads = tuple(workloads)
    serving_by_workload = serving_by_workload or {}
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
                                        serving_by_workload.get(w.name, serving), electricity,
                                        objective, needs_energy, queueing)
    return tables


def evaluate_candidate(workload: Workload, row: ProfileRow, catalog: Catalog,
                       inventory: Mapping[str, int] | None, max_utilization: float,
                       serving: ServingTerms | float = DEFAULT_SERVING_OVERHEAD_MS,
                       electricity: Electricity = Electricity(), objective: str = "cost",
                       needs_energy: bool | None = None, queueing: bool = True) -> Candidate:
    """One row's candidate: `evaluate_table` on a one-row table."""
    table = evaluate_table(workload, ModelRows.build([row], catalog), inventory, max_utilization,
                           serving, electricity, objective, needs_energy, queueing)
    return table.candidate(0)


def energy_unknown(row: ProfileRow) -> bool:
    """True when nobody measured or could estimate the row's energy (e.g. no power figure published)."""
    return row.energy_source.startswith("unknown")


def _source_label(row: ProfileRow) -> str:
    return f"{row.source}: {row.source_detail}" if row.source_detail else row.source


def workload_rows(workload: Workload, by_model: Mapping[str, Sequence[ProfileRow]]) -> list[ProfileRow]:
    """Rows that may serve the workload: its model's, and each variant's with the variant's quality
    loss added to the precision's (losses against fp32 taken as additive: docs/optimization.md)."""
    rows = list(by_model.get(workload.model, []))
    for model, loss in workload.variants:
        rows += [replace(r, quality_loss=r.quality_loss + loss) for r in by_model.get(model, [])]
    return rows


def diagnose_infeasible_workload(workload: Workload, candidates: Sequence[Candidate]) -> str:
    """Why no candidate works, with the best value any candidate reached for each failing limit."""
    if not candidates:
        return (f"workload '{workload.name}': no profile rows for model '{workload.model}'. "
                f"To fix: profile it (`planner profile --models {workload.model}`) or add rows to the CSV")
    allowed = [c for c in candidates if c.precision in workload.precisions]
    if not allowed:
        have = sorted({c.precision for c in candidates})
        return (f"workload '{workload.name}': precisions limit is binding: profiles cover {have}, "
                f"workload allows {list(workload.precisions)}. To fix: allow one of {have} or profile the others")
    parts = []
    best_quality = min(allowed, key=lambda c: c.quality_loss)
    if best_quality.quality_loss > workload.max_quality_loss:
        parts.append(f"max_quality_loss={workload.max_quality_loss:g} is binding: best reached "
                     f"{best_quality.quality_loss:.4g} ({best_quality.precision})")
    fits = [c for c in allowed if c.quality_loss <= workload.max_quality_loss]
    in_memory = [c for c in fits if not c.reason.startswith("memory")]
    if fits and not in_memory:
        smallest = min(fits, key=lambda c: c.memory_gib)
        parts.append(f"device memory is binding: smallest replica needs {smallest.memory_gib:.3g} GiB "
                     f"({smallest.describe()})")
    timely = [c for c in in_memory if not c.reason.startswith("predicted p99")]
    if in_memory and not timely:
        best = min(in_memory, key=lambda c: c.predicted_p99_ms)
        parts.append(f"p99_ms={workload.p99_ms:g} is binding: best predicted p99 {best.predicted_p99_ms:.1f} ms "
                     f"({best.describe()})")
    if timely and not any(c.feasible for c in timely):
        smallest = min(timely, key=lambda c: c.devices)
        parts.append(f"inventory is binding: {smallest.reason} (smallest: {smallest.describe()})")
    if not parts:
        parts.append("every candidate breaks some limit: " + "; ".join(sorted({c.reason for c in candidates})))
    return f"workload '{workload.name}' is infeasible: " + "; ".join(parts)
