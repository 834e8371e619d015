"""Candidate configurations: every (hardware, precision, batch size) a workload could run on.

For each workload and each profile row of its model, this module sizes the
replicas, predicts p99 and cost, and checks every per-workload limit. The
optimizer then picks one feasible candidate per workload under the shared
inventory. Infeasible candidates are kept, with the reason, because the plan
reports every alternative it evaluated and why it lost.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Mapping, Sequence

from planner.core.catalog import Catalog
from planner.core.latency import (DEFAULT_SERVING_OVERHEAD_MS, batch_wait_timeout_ms, predicted_p99_ms,
                             replicas_for_demand)
from planner.core.profiles import ProfileRow
from planner.core.workloads import Electricity, Workload


@dataclass(frozen=True)
class Candidate:
    workload: str
    hardware: str
    precision: str
    batch_size: int
    units_per_replica: float        # vCPUs for CPU, devices for accelerators
    replicas: int
    devices: float                  # inventory units used: replicas x units_per_replica
    unit: str                       # vcpu | gpu | tpu_chip
    predicted_p99_ms: float
    predicted_throughput_rps: float  # capacity of all replicas at 100% busy
    batch_wait_timeout_ms: float
    usd_per_hour: float
    power_w: float                  # busy + idle power of its replicas (see running_costs)
    quality_loss: float
    memory_gib: float
    profile_source: str             # measured | estimated | imported, with detail
    feasible: bool
    reason: str                     # "" when feasible, else the limit it breaks, with values
    energy_usd_per_hour: float = 0.0   # electricity bill (included in usd_per_hour)
    carbon_g_per_hour: float = 0.0
    objective_value: float = 0.0       # in the objective's units: $/h, W, gCO2e/h
    energy_unknown: bool = False       # power_w/carbon leave this configuration's energy out: nobody knows it
    model: str = ""                    # a variant serving the workload; "" = the workload's own model
    energy_source: str = ""            # the profile row's energy_source: "measured: rapl ...", "estimated ..."

    def describe(self) -> str:
        variant = f"{self.model} " if self.model else ""
        return (f"{variant}{self.hardware} {self.precision} batch {self.batch_size} x{self.replicas} "
                f"({self.devices:g} {self.unit})")


OBJECTIVE_UNITS = {"cost": "usd_per_hour", "energy": "watts", "carbon": "gco2e_per_hour",
                   "cost+carbon": "usd_per_hour"}


def idle_w_per_unit(hardware) -> float:
    """Idle draw of one unit; when only the maximum is published, 20% of it (as the energy estimate)."""
    if hardware.power_idle_w is not None:
        return hardware.power_idle_w
    return 0.2 * (hardware.power_max_w or 0.0)


def running_costs(demand_rps, energy_j_per_item, capacity_rps, devices, idle_w, hardware_usd_per_hour,
                  electricity: Electricity, objective: str):
    """Power, electricity, carbon, total $/h and the objective value of a configuration.

    Works on floats and on numpy arrays alike (planner/planning/candidate_tables.py uses it).
    Measured energy per item already includes the device's idle draw while it is
    busy; the replicas also idle for the rest of the time:
        power_w = demand x J/item + devices x idle_w x (1 - busy),  busy = demand / capacity
    """
    busy = demand_rps / capacity_rps
    power_w = demand_rps * energy_j_per_item + devices * idle_w * (1.0 - busy)
    wall_kw = power_w * electricity.pue / 1000.0
    energy_usd = wall_kw * electricity.usd_per_kwh
    carbon_g = wall_kw * electricity.grid_gco2e_per_kwh
    usd = hardware_usd_per_hour + energy_usd
    value = {"cost": usd, "energy": power_w * electricity.pue, "carbon": carbon_g,
             "cost+carbon": usd + carbon_g / 1000.0 * electricity.carbon_usd_per_kg}[objective]
    return power_w, energy_usd, carbon_g, usd, value


ENERGY_OBJECTIVES = ("energy", "carbon", "cost+carbon")


def energy_unknown(row: ProfileRow) -> bool:
    """True when nobody measured or could estimate the row's energy (e.g. no power figure published)."""
    return row.energy_source.startswith("unknown")


def _source_label(row: ProfileRow) -> str:
    return f"{row.source}: {row.source_detail}" if row.source_detail else row.source


def evaluate_candidate(workload: Workload, row: ProfileRow, catalog: Catalog,
                       inventory: Mapping[str, int] | None, max_utilization: float,
                       serving_overhead_ms: float = DEFAULT_SERVING_OVERHEAD_MS,
                       electricity: Electricity = Electricity(), objective: str = "cost",
                       needs_energy: bool | None = None, queueing: bool = True) -> Candidate:
    """Size replicas for one profile row and check every per-workload limit, in a fixed order."""
    hw = catalog.get(row.hardware)
    demand = workload.demand_rps
    replicas = max(workload.min_replicas, replicas_for_demand(demand, row.throughput_rps, max_utilization))
    per_replica_rps = demand / replicas
    p99 = predicted_p99_ms(row.batch_size, row.latency_p99_ms, per_replica_rps, serving_overhead_ms,
                           row.throughput_rps if queueing else None, row.latency_cv)
    devices = replicas * row.units_per_replica
    # A catalog entry without a memory figure (e.g. a10g) cannot rule a model out on memory.
    memory_limit_gib = None if hw.memory_gib is None else hw.memory_gib * row.units_per_replica
    available = None if inventory is None else inventory.get(row.hardware, 0)

    reason = ""
    # 1. Only precisions the workload allows.
    if row.precision not in workload.precisions:
        reason = f"precision {row.precision} not allowed (allowed: {', '.join(workload.precisions)})"
    # 2. Quality cost of the precision against fp32.
    elif row.quality_loss > workload.max_quality_loss + 1e-12:
        reason = f"quality_loss {row.quality_loss:.4g} > max_quality_loss {workload.max_quality_loss:g}"
    # 3. The replica must fit in the memory of the units it occupies.
    elif memory_limit_gib is not None and row.memory_gib > memory_limit_gib:
        reason = f"memory {row.memory_gib:.3g} GiB > {memory_limit_gib:.3g} GiB on {row.hardware}"
    # 4. Online work must meet its p99 target; batch work has only a deadline (throughput).
    elif workload.kind == "online" and workload.p99_ms is not None and p99 > workload.p99_ms:
        reason = f"predicted p99 {p99:.1f} ms > p99_ms {workload.p99_ms:g}"
    # 5. No configuration may need more units than the inventory holds at all.
    elif available is not None and devices > available:
        reason = (f"needs {devices:g} {hw.unit} of {row.hardware}, inventory has {available}"
                  if available else f"no {row.hardware} in the inventory")
    # 6. An objective or cap about energy cannot weigh a configuration whose energy nobody knows.
    elif (objective in ENERGY_OBJECTIVES if needs_energy is None else needs_energy) and energy_unknown(row):
        reason = f"energy unknown ({row.energy_source}); objective {objective} needs it"

    power_w, energy_usd, carbon_g, usd, value = running_costs(
        demand, row.energy_j_per_item, replicas * row.throughput_rps, devices, idle_w_per_unit(hw),
        devices * hw.usd_per_hour, electricity, objective)
    return Candidate(
        workload=workload.name, hardware=row.hardware, precision=row.precision, batch_size=row.batch_size,
        units_per_replica=row.units_per_replica, replicas=replicas, devices=devices, unit=hw.unit,
        predicted_p99_ms=p99, predicted_throughput_rps=replicas * row.throughput_rps,
        batch_wait_timeout_ms=batch_wait_timeout_ms(row.batch_size, per_replica_rps),
        usd_per_hour=usd, power_w=power_w, quality_loss=row.quality_loss, memory_gib=row.memory_gib,
        profile_source=_source_label(row), feasible=not reason, reason=reason, energy_usd_per_hour=energy_usd,
        carbon_g_per_hour=carbon_g, objective_value=value, energy_unknown=energy_unknown(row),
        model="" if row.model == workload.model else row.model, energy_source=row.energy_source)


def workload_rows(workload: Workload, by_model: Mapping[str, Sequence[ProfileRow]]) -> list[ProfileRow]:
    """Rows that may serve the workload: its model's, and each variant's with the variant's quality
    loss added to the precision's (losses against fp32 taken as additive: docs/optimization.md)."""
    rows = list(by_model.get(workload.model, []))
    for model, loss in workload.variants:
        rows += [replace(r, quality_loss=r.quality_loss + loss) for r in by_model.get(model, [])]
    return rows


def enumerate_candidates(workloads: Iterable[Workload], rows: Sequence[ProfileRow], catalog: Catalog,
                         inventory: Mapping[str, int] | None, max_utilization: float,
                         serving_overhead_ms: float = DEFAULT_SERVING_OVERHEAD_MS,
                         electricity: Electricity = Electricity(), objective: str = "cost",
                         needs_energy: bool | None = None, queueing: bool = True) -> dict[str, list[Candidate]]:
    """All candidates per workload name, cheapest first (feasible before infeasible)."""
    by_model: dict[str, list[ProfileRow]] = {}
    for row in rows:
        if row.mode == "inference":  # training-step rows time a different job; never serve from them
            by_model.setdefault(row.model, []).append(row)
    result: dict[str, list[Candidate]] = {}
    for w in workloads:
        cands = [evaluate_candidate(w, row, catalog, inventory, max_utilization, serving_overhead_ms,
                                    electricity, objective, needs_energy, queueing)
                 for row in workload_rows(w, by_model)]
        cands.sort(key=lambda c: (not c.feasible, c.usd_per_hour, c.predicted_p99_ms))
        result[w.name] = cands
    return result


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
