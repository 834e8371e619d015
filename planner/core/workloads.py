"""Workload files: what each model must serve, and the limits of the plan.

A workload file is YAML::

    objective: cost            # cost | energy | carbon | cost+carbon (planner/core/objectives.py)
    electricity:               # optional: bill and emissions of the power drawn
      usd_per_kwh: 0.0895      #   added to $/h (0: cloud prices already include power)
      pue: 1.135               #   facility overhead on every watt
      grid_gco2e_per_kwh: 367  #   for carbon; carbon_usd_per_kg prices it in cost+carbon
    budget_usd_per_hour: 5     # optional cap on the plan's $/h
    max_utilization: 0.8       # replicas are sized to run at most this busy
    serving_overhead_ms: 10    # per-request HTTP/serving overhead added to predicted p99
    inventory:                 # optional: hardware name -> units available (GPUs, TPU chips, vCPUs)
      cpu-x86: 8
    workloads:
      - name: digits
        model: mlp_digits
        kind: online
        qps: 50
        p99_ms: 100
        precisions: [fp32, bf16]
        max_quality_loss: 0.01
        min_replicas: 1
        labels: {team: search}   # optional: cost reports allocate by it (`planner report --aggregate team`)
      - name: nightly-embed
        model: transformer_small
        kind: batch
        items: 200000
        deadline_h: 8

Parsing is strict (unknown fields are errors) because a misspelt limit that is
silently ignored yields a plan that breaks the SLO it was meant to keep.
Pydantic checks the shape at the edge; the planner works on the frozen
dataclasses below.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Iterable, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from planner.core.errors import InputError
from planner.core.objectives import OBJECTIVE_NAMES
from planner.core.serving_path import ServingPath

PRECISIONS = ("fp32", "bf16", "fp16", "int8")


@dataclass(frozen=True)
class Electricity:
    """What running hardware costs beyond its price, and what it emits.

    Defaults: no electricity bill on top of the price (cloud prices include power),
    PUE 1.0, and the 2023 US grid average of 367 gCO2e/kWh (EIA; see
    ../shared/reference/hardware.md for regional figures).
    """
    usd_per_kwh: float = 0.0
    pue: float = 1.0
    grid_gco2e_per_kwh: float = 367.0
    carbon_usd_per_kg: float = 0.0     # the carbon price that weighs emissions in objective cost+carbon
    # Time of use, for scheduling batch jobs: one value per hour of a day (repeated over the
    # horizon) or per hour of the horizon; empty: the flat figures above every hour.
    usd_per_kwh_hourly: tuple[float, ...] = ()
    grid_gco2e_per_kwh_hourly: tuple[float, ...] = ()


@dataclass(frozen=True)
class Workload:
    """One model to serve (online) or one job to finish by a deadline (batch)."""

    name: str
    model: str
    kind: Literal["online", "batch", "training"]
    precisions: tuple[str, ...]
    max_quality_loss: float
    min_replicas: int
    qps: float | None = None            # online: requests per second to sustain
    p99_ms: float | None = None         # online: end-to-end p99 latency target
    items: int | None = None            # batch: items to process
    deadline_h: float | None = None     # batch: hours to finish them in (from the horizon's start)
    release_h: float = 0.0              # batch/training: hour from which the job may run
    steps: int | None = None            # training: optimizer steps to run
    samples_per_step: int | None = None  # training: the step's batch (matches training_step profile rows)
    qps_hourly: tuple[float, ...] = ()  # online: demand per hour of a day (qps is then its peak)
    # Other models that may serve it (a distilled or pruned variant), with the quality each loses at
    # fp32 against `model` at fp32 on the same calibration set, as the team measured it.
    variants: tuple[tuple[str, float], ...] = ()
    # Free-form string labels, e.g. (("team", "search"),): cost reports allocate by them (`--aggregate team`).
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def models(self) -> tuple[str, ...]:
        return (self.model,) + tuple(m for m, _ in self.variants)

    @property
    def demand_rps(self) -> float:
        """Throughput the plan must sustain; a batch job is planned as items/deadline for now."""
        if self.kind == "online":
            assert self.qps is not None
            return self.qps
        assert self.deadline_h is not None
        if self.kind == "training":
            assert self.steps is not None and self.samples_per_step is not None
            return self.steps * self.samples_per_step / (self.deadline_h * 3600.0)
        assert self.items is not None
        return self.items / (self.deadline_h * 3600.0)


@dataclass(frozen=True)
class WorkloadSet:
    """The user's spec: what the workloads file says, and nothing planning found out since.

    What a run plans against (the inventory actually used, live node shapes, fed-back
    serving overhead, solver-only caps) is planner/planning/context.py's PlanningContext.
    """
    workloads: tuple[Workload, ...]
    objective: str = "cost"
    max_utilization: float = 0.8
    inventory: Mapping[str, int] | None = None   # None: rent whatever the catalog lists
    owned: frozenset[str] = frozenset()          # inventory already paid for: zero marginal price
    # A constant serving-path latency the user states; None: measured (planner calibrate) or assumed.
    serving_overhead_ms: float | None = None
    queueing: bool = True                        # add the M/G/1 queueing wait to predicted p99
    http_proxies: int | None = None              # at least this many Serve HTTP proxies (else sized for the traffic)
    gpu_sharing: bool = True                     # offer fractional-GPU replicas (planner/planning/sharing.py)
    cpu_sharing: bool = True                     # offer CPU replicas holding part of a core
    serving_path: ServingPath | None = None    # `serving_path: file` (planner calibrate wrote it), read
    electricity: Electricity = Electricity()
    budget_usd_per_hour: float | None = None     # cap on the plan's $/h (with any objective)
    source_path: str = ""
    by_name: Mapping[str, Workload] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {w.name: w for w in self.workloads})

    @property
    def online_qps(self) -> float:
        """All online demand, in requests per second (what the HTTP proxies carry)."""
        return sum(w.qps or 0.0 for w in self.workloads if w.kind == "online")


# --- the file's schema (the edge) ---------------------------------------------------------

class _WorkloadModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    model: str = Field(min_length=1)
    kind: Literal["online", "batch", "training"] = "online"
    steps: int | None = Field(default=None, gt=0)
    samples_per_step: int | None = Field(default=None, gt=0)
    qps: float | None = Field(default=None, gt=0)
    p99_ms: float | None = Field(default=None, gt=0)
    items: int | None = Field(default=None, gt=0)
    deadline_h: float | None = Field(default=None, gt=0)
    release_h: float | None = Field(default=None, ge=0)
    qps_hourly: list[Annotated[float, Field(ge=0)]] | None = Field(default=None, min_length=24, max_length=24)
    variants: list[_VariantModel] = Field(default_factory=list)
    precisions: list[Literal["fp32", "bf16", "fp16", "int8"]] = Field(default_factory=lambda: ["fp32"], min_length=1)
    max_quality_loss: float = Field(default=0.0, ge=0)
    min_replicas: int = Field(default=1, ge=1)
    labels: dict[Annotated[str, Field(min_length=1)], str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _kind_fields(self) -> "_WorkloadModel":
        if self.kind == "online" and self.qps_hourly is not None:
            if self.qps is not None:
                raise _KindError("qps", self.qps, "given together with qps_hourly",
                                 "give one: qps (constant) or qps_hourly (24 values; the peak is planned for)")
            if max(self.qps_hourly) <= 0:
                raise _KindError("qps_hourly", "all zero", "no demand in any hour", "give the hourly demand")
            self.qps = max(self.qps_hourly)
        need, other = {
            "online": (("qps", "p99_ms"), ("items", "deadline_h", "release_h", "steps", "samples_per_step")),
            "batch": (("items", "deadline_h"), ("qps", "p99_ms", "qps_hourly", "steps", "samples_per_step")),
            "training": (("steps", "samples_per_step", "deadline_h"), ("qps", "p99_ms", "qps_hourly", "items")),
        }[self.kind]
        for name in need:
            if getattr(self, name) is None:
                raise _KindError(name, None, f"required for kind: {self.kind}",
                                 f"add {name} to workload '{self.name}'")
        for name in other:
            if getattr(self, name) is not None:
                raise _KindError(name, getattr(self, name), f"not used by kind: {self.kind}",
                                 f"remove {name}, or set kind to the kind that uses it")
        return self


class _VariantModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1)
    quality_loss: float = Field(ge=0)


class _ElectricityModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    usd_per_kwh: float = Field(default=0.0, ge=0)
    pue: float = Field(default=1.0, ge=1.0)
    grid_gco2e_per_kwh: float = Field(default=367.0, ge=0)
    carbon_usd_per_kg: float = Field(default=0.0, ge=0)
    usd_per_kwh_hourly: list[Annotated[float, Field(ge=0)]] = Field(default_factory=list)
    grid_gco2e_per_kwh_hourly: list[Annotated[float, Field(ge=0)]] = Field(default_factory=list)


class _FileModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    objective: Literal[OBJECTIVE_NAMES] = "cost"  # type: ignore[valid-type]  # planner/core/objectives.py
    electricity: _ElectricityModel = Field(default_factory=_ElectricityModel)
    budget_usd_per_hour: float | None = Field(default=None, gt=0)
    max_utilization: float = Field(default=0.8, gt=0, le=1)
    serving_overhead_ms: float | None = Field(default=None, ge=0)
    serving_path: str | None = Field(default=None, min_length=1)
    queueing: bool = True
    http_proxies: int | None = Field(default=None, ge=1)
    gpu_sharing: bool = True
    cpu_sharing: bool = True
    inventory: dict[str, int | dict[str, int]] | None = None
    workloads: list[_WorkloadModel] = Field(min_length=1)


class _KindError(ValueError):
    """Raised inside validation so the message can name the exact field."""

    def __init__(self, field_name: str, value: object, problem: str, fix: str):
        self.field_name, self.value, self.problem, self.fix = field_name, value, problem, fix
        super().__init__(problem)


_FIXES = {
    "greater_than": "use a positive number",
    "greater_than_equal": "use a number at or above the minimum",
    "less_than_equal": "use a number at or below the maximum",
    "literal_error": "use one of the allowed values",
    "missing": "add the field",
    "string_pattern_mismatch": "use letters, digits, '-', '_' or '.'",
}


def _field_path(loc: tuple, raw: object) -> str:
    """Turn pydantic's location into 'workloads[1].qps', with the workload's name when known."""
    parts: list[str] = []
    node = raw
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and item < len(node) and isinstance(node[item], dict) and node[item].get("name"):
                label = f"[{item}:{node[item]['name']}]"
            parts.append(label)
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts)


def _lookup(raw: object, loc: tuple) -> object:
    node = raw
    for item in loc:
        try:
            node = node[item]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _to_input_error(source: str, exc: ValidationError, raw: object) -> InputError:
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    ctx = err.get("ctx") or {}
    if isinstance(ctx.get("error"), _KindError):
        kind_err: _KindError = ctx["error"]
        return InputError(f"{source}: {_field_path(loc + (kind_err.field_name,), raw)}", kind_err.value,
                          kind_err.problem, kind_err.fix)
    value = _lookup(raw, loc)
    if err["type"] == "extra_forbidden":
        parent = _FileModel if len(loc) == 1 else _WorkloadModel
        allowed = sorted(parent.model_fields)
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return InputError(f"{source}: {_field_path(loc, raw)}", value, "unknown field",
                          f"{hint}allowed fields are {', '.join(allowed)}")
    fix = _FIXES.get(err["type"], "see docs/formats.md")
    if err["type"] == "literal_error" and "expected" in ctx:
        fix = f"use one of {ctx['expected']}"
    return InputError(f"{source}: {_field_path(loc, raw)}", value, err["msg"].lower(), fix)


def parse_workloads(raw: object, source: str = "<workloads>", *,
                    known_models: Iterable[str] | None = None,
                    known_hardware: Iterable[str] | None = None) -> WorkloadSet:
    """Validate a parsed YAML document; names unknown models/hardware when lists are given.

    A model name containing ':' is a user model (`package.module:factory`) and is
    checked when it is first loaded, not here.
    """
    if not isinstance(raw, dict):
        raise InputError(source, type(raw).__name__, "expected a mapping with a 'workloads' list",
                         "see examples/workloads.yaml for the layout")
    try:
        parsed = _FileModel.model_validate(raw)
    except ValidationError as exc:
        raise _to_input_error(source, exc, raw) from None

    names = [w.name for w in parsed.workloads]
    for i, name in enumerate(names):
        if names.index(name) != i:
            raise InputError(f"{source}: workloads[{i}].name", name, "duplicate workload name",
                             "give every workload a unique name")
    models = set(known_models) if known_models is not None else None
    hardware = set(known_hardware) if known_hardware is not None else None
    for i, w in enumerate(parsed.workloads):
        named = [("model", w.model)] + [(f"variants[{j}].model", v.model) for j, v in enumerate(w.variants)]
        for where, name in named:
            if models is not None and ":" not in name and name not in models:
                close = difflib.get_close_matches(name, sorted(models), n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise InputError(f"{source}: workloads[{i}:{w.name}].{where}", name, "unknown model",
                                 f"{hint}use a built-in model ({', '.join(sorted(models))}) "
                                 "or a user model as 'package.module:factory'")
        if w.model in [v.model for v in w.variants]:
            raise InputError(f"{source}: workloads[{i}:{w.name}].variants", w.model, "the workload's own model",
                             "list only other models as variants")
    from planner.core.inventory import parse_inventory_entry

    counts, owned = {}, set()
    for hw_name, value in (parsed.inventory or {}).items():
        if hardware is not None and hw_name not in hardware:
            close = difflib.get_close_matches(hw_name, sorted(hardware), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise InputError(f"{source}: inventory.{hw_name}", hw_name, "unknown hardware (not in the catalog)",
                             f"{hint}use a catalog name ({', '.join(sorted(hardware))}) or pass --catalog")
        counts[hw_name], is_owned = parse_inventory_entry(f"{source}: inventory.{hw_name}", value)
        if is_owned:
            owned.add(hw_name)

    serving_path = None
    if parsed.serving_path is not None:
        from planner.core.serving_path import read_serving_path
        where = Path(parsed.serving_path)
        if not where.is_absolute() and Path(source).parent.is_dir():
            where = Path(source).parent / where  # relative to the workloads file
        serving_path = read_serving_path(where)
    workloads = tuple(
        Workload(name=w.name, model=w.model, kind=w.kind, precisions=tuple(dict.fromkeys(w.precisions)),
                 max_quality_loss=w.max_quality_loss, min_replicas=w.min_replicas, qps=w.qps,
                 p99_ms=w.p99_ms, items=w.items, deadline_h=w.deadline_h, release_h=w.release_h or 0.0,
                 qps_hourly=tuple(w.qps_hourly or ()), steps=w.steps, samples_per_step=w.samples_per_step,
                 variants=tuple((v.model, v.quality_loss) for v in w.variants),
                 labels=tuple(w.labels.items()))
        for w in parsed.workloads)
    return WorkloadSet(workloads=workloads, objective=parsed.objective, max_utilization=parsed.max_utilization,
                       inventory=counts if parsed.inventory is not None else None, owned=frozenset(owned),
                       serving_overhead_ms=parsed.serving_overhead_ms, queueing=parsed.queueing,
                       http_proxies=parsed.http_proxies, gpu_sharing=parsed.gpu_sharing,
                       cpu_sharing=parsed.cpu_sharing, serving_path=serving_path,
                       electricity=_electricity(parsed.electricity, source),
                       budget_usd_per_hour=parsed.budget_usd_per_hour, source_path=source)


def _electricity(parsed: _ElectricityModel, source: str) -> Electricity:
    values = parsed.model_dump()
    for name in ("usd_per_kwh_hourly", "grid_gco2e_per_kwh_hourly"):
        curve = values[name]
        if curve and len(curve) < 24:
            raise InputError(f"{source}: electricity.{name}", f"{len(curve)} values",
                             "needs one value per hour of a day (24) or of the whole horizon",
                             "give 24 hourly values (hour 0 = the horizon's start)")
        values[name] = tuple(curve)
    return Electricity(**values)


def load_workloads(path: str | Path, **known: Iterable[str] | None) -> WorkloadSet:
    """Read and validate a workload YAML file (see the module docstring for the layout)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("--workloads", str(path), "file not found",
                         "pass the path of a workloads YAML file, e.g. examples/workloads.yaml")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise InputError(str(path), "<yaml>", f"not valid YAML{where}", "fix the YAML syntax") from None
    return parse_workloads(raw, str(path), **known)
