"""The hardware catalog: what each device costs, holds, computes and draws, with sources.

Pure (no torch / ray). A YAML file is validated with pydantic at the edge, then turned into
frozen dataclasses. Every problem in the file becomes a one-line ``InputError`` naming the file,
the entry, the field, the bad value and how to fix it.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal, Mapping, Optional, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from planner.core.errors import InputError, UnknownHardwareError

DEFAULT_CATALOG_PATH: Path = Path(__file__).resolve().parents[2] / "profiles" / "catalog.yaml"

# Precisions a catalog entry may give a peak for: wider than those the planner profiles and serves
# (planner.core.workloads.PRECISIONS), since spec sheets also quote TF32 and FP8 peaks.
PeakPrecision = Literal["fp32", "tf32", "bf16", "fp16", "fp8", "int8"]
PEAK_PRECISIONS: tuple[str, ...] = get_args(PeakPrecision)
KIND_UNIT = {"cpu": "vcpu", "gpu": "gpu", "tpu": "tpu_chip"}
UNIT_KIND = {unit: kind for kind, unit in KIND_UNIT.items()}


def is_accelerator_unit(unit: str) -> bool:
    """True for a GPU or TPU chip: a replica holds (a share of) devices and its process also takes host vCPUs.

    False for the vCPU, where a replica's units are the vCPUs its threads run on.
    """
    return unit != KIND_UNIT["cpu"]


@dataclass(frozen=True)
class HardwareType:
    name: str
    display_name: str
    kind: str  # cpu | gpu | tpu
    unit: str  # vcpu | gpu | tpu_chip: the unit of inventory and of the price
    ray_accelerator_type: str | None
    usd_per_hour: float  # per unit, on-demand
    spot_usd_per_hour: float | None
    price_source: str
    price_includes_host: bool
    memory_gib: float | None  # per unit; None only where the spec is not sourced (e.g. a10g)
    memory_bandwidth_gbps: float | None
    peak_tflops: Mapping[str, float]  # dense, per unit; int8 in TOPS
    spec_source: str
    power_idle_w: float | None
    power_max_w: float | None
    power_source: str
    notes: str

    @property
    def is_accelerator(self) -> bool:
        """A GPU or TPU (see ``is_accelerator_unit``); which framework runs it is planner.backends' business."""
        return is_accelerator_unit(self.unit)

    def units_per_replica(self, threads: int) -> float:
        """A replica's size in this entry's unit: its vCPUs (``threads``) on a CPU, one device on an accelerator."""
        return 1.0 if self.is_accelerator else float(threads)


@dataclass(frozen=True)
class Catalog:
    version: str
    source_path: str
    hardware: Mapping[str, HardwareType]

    def names(self) -> list[str]:
        return list(self.hardware)

    def get(self, name: str) -> HardwareType:
        if name in self.hardware:
            return self.hardware[name]
        lowered = str(name).strip().lower()
        if lowered in self.hardware:
            return self.hardware[lowered]
        close = difflib.get_close_matches(lowered, self.names(), n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise UnknownHardwareError(
            "hardware", name, f"not in the catalog {self.source_path}",
            f"{hint}use one of: {', '.join(self.names())}; or add an entry to the catalog",
        )


# ---------------------------------------------------------------- pydantic edge models

class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)

    name: str = Field(min_length=1)
    display_name: str = Field(min_length=1)
    kind: Literal["cpu", "gpu", "tpu"]
    unit: Literal["vcpu", "gpu", "tpu_chip"]
    ray_accelerator_type: Optional[str] = None
    usd_per_hour: float = Field(ge=0)
    spot_usd_per_hour: Optional[float] = Field(default=None, ge=0)
    price_source: str = Field(min_length=1)
    price_includes_host: bool
    memory_gib: Optional[float] = Field(ge=0)
    memory_bandwidth_gbps: Optional[float] = Field(default=None, ge=0)
    peak_tflops: dict[PeakPrecision, float] = Field(
        default_factory=dict)
    spec_source: str = Field(min_length=1)
    power_idle_w: Optional[float] = Field(default=None, ge=0)
    power_max_w: Optional[float] = Field(default=None, ge=0)
    power_source: str = Field(min_length=1)
    notes: str = ""


class _CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    catalog_version: str
    description: str = ""
    hardware: list[_Entry] = Field(min_length=1)


_FIXES = {
    "extra_forbidden": "remove it or correct its spelling; allowed fields are: "
                       + ", ".join(_Entry.model_fields),
    "missing": "add this field to the entry",
    "greater_than_equal": "use a number >= 0",
    "literal_error": "use one of the allowed values",
    "string_too_short": "give a non-empty string (every figure needs its source)",
    "too_short": "list at least one hardware entry",
    "float_parsing": "use a plain number",
    "float_type": "use a plain number",
    "bool_parsing": "use true or false",
    "bool_type": "use true or false",
    "string_type": "use a quoted string",
    "list_type": "make it a YAML list of entries",
    "dict_type": "make it a YAML mapping, e.g. {bf16: 100}",
    "model_type": "make it a YAML mapping of field: value",
}


def _field_path(file: Path, raw: object, loc: tuple) -> str:
    """e.g. 'catalog.yaml: hardware[3] (h100).usd_per_hour'."""
    parts: list[str] = []
    for i, key in enumerate(loc):
        if isinstance(key, int) and i > 0 and loc[i - 1] == "hardware":
            label = f"[{key}]"
            try:
                label += f" ({raw['hardware'][key]['name']})"  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                pass
            parts[-1] += label
        elif isinstance(key, int):
            parts[-1] += f"[{key}]"
        else:
            parts.append(str(key))
    return f"{file}: {'.'.join(parts) or '<top level>'}"


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


def _from_validation_error(file: Path, raw: object, err: ValidationError) -> InputError:
    first = err.errors()[0]
    loc = tuple(k for k in first["loc"] if k != "[key]")
    msg = first["msg"]
    value = _Missing() if first["type"] == "missing" else first.get("input")
    if first["type"] == "literal_error" and loc[-2:-1] == ("peak_tflops",):
        msg = f"unknown precision (allowed: {', '.join(PEAK_PRECISIONS)})"
    fix = _FIXES.get(first["type"], "correct the value")
    if first["type"] == "literal_error":
        fix = f"{fix} ({first.get('ctx', {}).get('expected', '')})"
    more = len(err.errors()) - 1
    if more:
        fix += f" ({more} more problem(s) in this file after this one)"
    return InputError(_field_path(file, raw, loc), value, msg, fix)


def _freeze(e: _Entry) -> HardwareType:
    data = e.model_dump()
    data["peak_tflops"] = MappingProxyType(dict(data["peak_tflops"]))
    return HardwareType(**data)


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load and validate a hardware catalog (the shipped one when ``path`` is None)."""
    file = Path(path) if path is not None else DEFAULT_CATALOG_PATH
    if not file.is_file():
        raise InputError("catalog", str(file), "file not found",
                         f"pass the path of an existing catalog YAML (the shipped one is {DEFAULT_CATALOG_PATH})")
    try:
        raw = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise InputError("catalog", str(file), f"is not valid YAML{line}",
                         "fix the YAML syntax (indentation, quotes, colons)") from None
    if not isinstance(raw, dict):
        raise InputError("catalog", str(file), "top level is not a mapping",
                         "start the file with catalog_version:, description: and hardware: keys")
    try:
        parsed = _CatalogFile.model_validate(raw)
    except ValidationError as exc:
        raise _from_validation_error(file, raw, exc) from None

    hardware: dict[str, HardwareType] = {}
    for i, e in enumerate(parsed.hardware):
        where = f"{file}: hardware[{i}] ({e.name})"
        if e.name in hardware:
            raise InputError(f"{where}.name", e.name, "duplicate hardware name",
                             "give every entry a unique name, or delete the repeated entry")
        if e.name != e.name.strip().lower() or " " in e.name:
            raise InputError(f"{where}.name", e.name, "names must be lowercase slugs without spaces",
                             f"use e.g. {e.name.strip().lower().replace(' ', '-')!r}")
        if KIND_UNIT[e.kind] != e.unit:
            raise InputError(f"{where}.unit", e.unit, f"kind {e.kind!r} must be priced per {KIND_UNIT[e.kind]!r}",
                             f"set unit: {KIND_UNIT[e.kind]} (cpu->vcpu, gpu->gpu, tpu->tpu_chip)")
        if not is_accelerator_unit(e.unit) and e.ray_accelerator_type is not None:
            raise InputError(f"{where}.ray_accelerator_type", e.ray_accelerator_type,
                             "cpu entries have no Ray accelerator type", "set ray_accelerator_type: null")
        if e.spot_usd_per_hour is not None and e.spot_usd_per_hour > e.usd_per_hour:
            raise InputError(f"{where}.spot_usd_per_hour", e.spot_usd_per_hour,
                             f"spot price exceeds on-demand price {e.usd_per_hour}",
                             "check the two prices (both per unit per hour)")
        if (e.power_idle_w is not None and e.power_max_w is not None
                and e.power_idle_w > e.power_max_w):
            raise InputError(f"{where}.power_idle_w", e.power_idle_w,
                             f"idle power exceeds max power {e.power_max_w}", "check the two power figures")
        hardware[e.name] = _freeze(e)
    return Catalog(version=parsed.catalog_version, source_path=str(file.resolve()),
                   hardware=MappingProxyType(hardware))
