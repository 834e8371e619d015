"""Sharing one accelerator among several small replicas (Ray fractional GPUs).

A replica may ask Ray for a fraction of a GPU (``num_gpus=0.25``); Ray then
places up to four such replicas on one device, of the same or different
workloads. For the planner each shared configuration is a profile row derived
from a measured whole-device row by a documented model, so it is labelled
``source=estimated``:

    units_per_replica = f                     (1/2, 1/4 or 1/8 of the device)
    throughput        = f x measured          proportional share: every sharer busy at once
    latency p50, p99  = measured / f          (time-slicing stretches a batch by 1/f at worst)
    memory            = measured              must fit in f x the device's memory (the usual check)
    energy per item   = measured              the work is the same

This is the conservative bound (all sharers saturated); small, launch-bound
models interleave better than that in practice. Powers of two pack exactly:
replicas whose fractions sum to at most N fit on N devices, so the inventory
check stays a sum. Devices are paid whole: the optimizer adds the unused part
of partly used devices to the plan's cost (``Plan.unallocated_usd_per_hour``).
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Iterable

from planner.core.catalog import Catalog
from planner.core.profiles import ProfileRow

SHARE_FRACTIONS = (0.5, 0.25, 0.125)
SHAREABLE_UNITS = ("gpu",)


def shared_rows(rows: Iterable[ProfileRow], catalog: Catalog,
                fractions: tuple[float, ...] = SHARE_FRACTIONS) -> list[ProfileRow]:
    """Rows for fractional replicas of every whole-device inference row on shareable hardware."""
    out = []
    for row in rows:
        if row.mode != "inference" or row.units_per_replica != 1.0 or row.hardware not in catalog.hardware:
            continue
        hardware = catalog.get(row.hardware)
        if hardware.unit not in SHAREABLE_UNITS:
            continue
        for f in fractions:
            out.append(replace(
                row, units_per_replica=f, throughput_rps=row.throughput_rps * f,
                latency_p50_ms=row.latency_p50_ms / f, latency_p99_ms=row.latency_p99_ms / f,
                latency_p90_ms=None if row.latency_p90_ms is None else row.latency_p90_ms / f,
                source="estimated", uncertainty_pct=None,
                source_detail=(f"shared: {f:g} of a {hardware.display_name} (Ray num_gpus={f:g}), proportional-share "
                               f"model (planner/planning/sharing.py) on a {row.source} row: {row.source_detail}")))
    return out


CPU_SHARE_FRACTIONS = (0.5, 0.25, 0.125)


def cpu_shared_rows(rows: Iterable[ProfileRow], catalog: Catalog,
                    fractions: tuple[float, ...] = CPU_SHARE_FRACTIONS) -> list[ProfileRow]:
    """Rows for CPU replicas that hold part of one core (Ray num_cpus=f), from every 1-vCPU row.

    Unlike a GPU share, the row keeps its measured figures: the candidate evaluator applies the
    share (capacity f x the replica's rate, so sharers together never ask more than the core) and
    processor sharing (a running batch stretched by planner/core/latency.sharing_slowdown), since
    on a CPU an idle sharer leaves the core to the others at once.
    """
    out = []
    for row in rows:
        if row.mode != "inference" or row.units_per_replica != 1.0 or row.hardware not in catalog.hardware:
            continue
        hardware = catalog.get(row.hardware)
        if hardware.is_accelerator:
            continue
        for f in fractions:
            out.append(replace(
                # The figures are the row's own (measured stays measured); the share is modelled
                # in the prediction's terms, which say so.
                row, units_per_replica=f,
                source_detail=(f"shared: {f:g} of a core (Ray num_cpus={f:g}), processor-sharing model "
                               f"(planner/core/latency.py) on a {row.source} row: {row.source_detail}")))
    return out


def unallocated_devices(devices_by_hardware: dict[str, float]) -> dict[str, float]:
    """Per hardware type, the unused part of partly used devices (paid for all the same)."""
    return {hw: math.ceil(d - 1e-9) - d for hw, d in devices_by_hardware.items() if math.ceil(d - 1e-9) - d > 1e-9}
