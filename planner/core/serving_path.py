"""The serving path: what Ray Serve adds to every request, profiled like a model (`planner calibrate`).

A request to a planned workload goes client -> HTTP proxy -> router -> replica
(parse, batch, model, reply) -> proxy -> client. Everything but the model is
the serving path. `planner calibrate` (cluster/calibration.py) measures it on
the target cluster, with the model swapped for a precomputed output:

- `replica_floor_ms`: replica CPU per request outside the model (Serve's
  request path, JSON parsing of the model's item, batching, reply), per model,
  since the body size differs;
- `proxy_cpu_ms`: HTTP proxy CPU per request (JSON bodies; `proxy_cpu_ms_bytes`
  for raw-bytes bodies);
- `points`: the latency distribution (mean, p50, p90, p99) of a request through
  the whole path at light and at moderate load, per proxy.

A `ServingPath` says where its figures came from (`source`: measured, stated,
assumed). `ASSUMED` is used only when nothing was measured or stated, and is
labelled `assumed` wherever it shows.

How the planner composes it with the model (docs/optimization.md, section 2):
the path latency at the plan's per-proxy load is `at(qps_per_proxy)`; a batch
of B costs the replica B x floor on top of the model's batch time, so its
capacity is lower than the model's raw throughput; the proxies are a resource
of their own (`plan_ingress`), sized for all online traffic and charged.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from planner.core.errors import InputError

SERVING_PATH_FORMAT_VERSION = 1


@dataclass(frozen=True)
class PathPoint:
    """Latency of a request through the whole serving path (no model) at one offered load per proxy."""
    qps: float            # offered requests/s through one proxy when measured
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int = 0     # how many requests the quantiles come from (0: not measured)

    def __post_init__(self) -> None:
        values = (self.qps, self.mean_ms, self.p50_ms, self.p90_ms, self.p99_ms)
        if not (math.isfinite(self.qps) and all(v >= 0 for v in values)):  # latency inf: saturated
            raise InputError("serving path point", values, "not non-negative numbers",
                             "measure again with `planner calibrate`")
        if not self.p50_ms <= self.p90_ms <= self.p99_ms:
            raise InputError("serving path point", f"p50 {self.p50_ms} p90 {self.p90_ms} p99 {self.p99_ms}",
                             "quantiles out of order", "measure again with `planner calibrate`")


@dataclass(frozen=True)
class ServingPath:
    replica_floor_ms: float                   # replica CPU per request outside the model (default for any model)
    proxy_cpu_ms: float                       # HTTP proxy CPU per request, JSON bodies
    points: tuple[PathPoint, ...]             # sorted by qps; at least one
    source: str                               # measured | stated | assumed
    source_detail: str
    floor_by_model: Mapping[str, float] = field(default_factory=dict)  # model -> replica CPU ms per request
    proxy_cpu_ms_bytes: float | None = None   # raw-bytes bodies
    proxies_per_node: int = 1                 # Serve's default: one HTTP proxy on every node
    cpu: str = ""                             # the CPU it was measured on
    serve_settings: str = ""                  # the Serve request-path settings in force
    system_vcpus: float = 0.0                 # CPU Ray's own processes took while idle (measured), per node
    measured_at: str = ""                     # ISO date
    constant: bool = False                    # the path latency does not depend on load (stated by the user)
    loadgen_cpu_ms: float | None = None       # the load generator's own CPU per request (measured); None: not known
    # Replica CPU per request outside the model when requests queue (the probe saturated): the per-request
    # work amortises. floor_by_model is what a request reaching an idle replica pays. Absent: the same.
    saturated_floor_by_model: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.points:
            raise InputError("serving path", "no points", "needs at least one latency point",
                             "measure with `planner calibrate`")
        object.__setattr__(self, "points", tuple(sorted(self.points, key=lambda p: p.qps)))
        for name in ("replica_floor_ms", "proxy_cpu_ms", "system_vcpus", "loadgen_cpu_ms"):
            value = getattr(self, name)
            if value is None and name == "loadgen_cpu_ms":
                continue
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"serving path {name}", value, "not a finite non-negative number",
                                 "measure again with `planner calibrate`")

    def floor_ms(self, model: str) -> float:
        """Replica CPU per request outside the model, for `model` (its own body size) or the default."""
        return float(self.floor_by_model.get(model, self.replica_floor_ms))

    def saturated_floor_ms(self, model: str) -> float:
        """The same for a request that finds the replica busy (never above floor_ms; absent: floor_ms)."""
        light = self.floor_ms(model)
        return min(light, float(self.saturated_floor_by_model.get(model, light)))

    @property
    def proxy_capacity_rps(self) -> float:
        """Requests/s one proxy can carry with its core fully busy."""
        return math.inf if self.proxy_cpu_ms <= 0 else 1000.0 / self.proxy_cpu_ms

    def at(self, qps_per_proxy: float) -> PathPoint:
        """The path's latency distribution at an offered load per proxy.

        Between measured loads: linear in the load. Below the lightest: the lightest. Beyond the
        heaviest: the heaviest plus the growth of the proxy's own queue from there (an M/G/1
        server taking `proxy_cpu_ms` per request; the same exponential-tail formula as a replica's
        queue, planner/core/latency.py), so an unmeasured load is never predicted as free.
        """
        from planner.core.latency import queue_wait_p99_ms  # here: latency imports this module

        pts = self.points
        if self.constant or qps_per_proxy <= pts[0].qps:
            return replace(pts[0], qps=qps_per_proxy)
        for lo, hi in zip(pts, pts[1:]):
            if qps_per_proxy <= hi.qps:
                t = (qps_per_proxy - lo.qps) / (hi.qps - lo.qps) if hi.qps > lo.qps else 1.0
                mix = lambda a, b: a + t * (b - a)  # noqa: E731
                return PathPoint(qps_per_proxy, mix(lo.mean_ms, hi.mean_ms), mix(lo.p50_ms, hi.p50_ms),
                                 mix(lo.p90_ms, hi.p90_ms), mix(lo.p99_ms, hi.p99_ms))
        top = pts[-1]
        capacity = self.proxy_capacity_rps
        if qps_per_proxy >= capacity:
            return PathPoint(qps_per_proxy, math.inf, math.inf, math.inf, math.inf)
        grow_p99 = (queue_wait_p99_ms(qps_per_proxy, capacity, 1, 1.0)
                    - queue_wait_p99_ms(top.qps, capacity, 1, 1.0))
        grow_mean = _mm1_mean_wait_ms(qps_per_proxy, capacity) - _mm1_mean_wait_ms(top.qps, capacity)
        return PathPoint(qps_per_proxy, top.mean_ms + grow_mean, top.p50_ms + grow_mean, top.p90_ms + grow_p99,
                         top.p99_ms + grow_p99)

    def describe(self) -> str:
        light = self.points[0]
        return (f"{self.source}: floor {self.replica_floor_ms:.2f} ms/request, proxy {self.proxy_cpu_ms:.2f} ms "
                f"CPU/request, path p50/p99 {light.p50_ms:.1f}/{light.p99_ms:.1f} ms at {light.qps:g} qps"
                + (f" ({self.source_detail})" if self.source_detail else ""))


def _mm1_mean_wait_ms(arrival_rps: float, capacity_rps: float) -> float:
    rho = arrival_rps / capacity_rps
    return rho / (1.0 - rho) * 1000.0 / capacity_rps if rho < 1.0 else math.inf


# Used only when nothing was measured or stated, and labelled `assumed` wherever it shows. From
# the 2-vCPU development VM (Nov 2026): replica floor 0.53 ms/request with the fast path
# (bench.serving_overhead), a 1-3 ms model's HTTP p50 10-15 ms at low load; the proxy's CPU and
# the path's tail were not measured then, so they are round guesses on the cautious side.
ASSUMED = ServingPath(
    replica_floor_ms=0.55, proxy_cpu_ms=2.0,
    points=(PathPoint(qps=10.0, mean_ms=11.0, p50_ms=10.0, p90_ms=14.0, p99_ms=25.0),),
    source="assumed",
    source_detail="not measured on this cluster: run `planner calibrate` (figures from a 2-vCPU VM, Nov 2026)")


# Requests that reach the replicas with no cost on the way (tests of the replica-side model, benches
# that compare hardware alone). Not a user setting: every HTTP request passes a proxy.
NO_SERVING_PATH = ServingPath(replica_floor_ms=0.0, proxy_cpu_ms=0.0, points=(PathPoint(0.0, 0.0, 0.0, 0.0, 0.0),),
                              source="stated", source_detail="none: replica-side model only", constant=True)


def stated(overhead_ms: float) -> ServingPath:
    """A constant path latency the user stated (`serving_overhead_ms` in the workloads file)."""
    point = PathPoint(qps=0.0, mean_ms=overhead_ms, p50_ms=overhead_ms, p90_ms=overhead_ms, p99_ms=overhead_ms)
    return replace(ASSUMED, points=(point,), source="stated", constant=True,
                   source_detail=f"serving_overhead_ms: {overhead_ms:g} in the workloads file (a constant; "
                                 "the floor and proxy CPU are assumed)")


# --- planning the ingress ------------------------------------------------------------------

@dataclass(frozen=True)
class Ingress:
    """The HTTP proxies a plan's online traffic needs, what they cost and what they add to latency."""
    online_qps: float
    proxies: int                 # proxies needed so none is busier than max_utilization
    proxy_vcpus: float           # CPU the proxies need: online_qps x proxy ms / max_utilization (reserved, charged)
    qps_per_proxy: float
    path: PathPoint              # the path's latency distribution at that load
    source: str                  # the serving path's source
    usd_per_hour: float = 0.0    # proxy_vcpus at the CPU's price
    cpu_hardware: str = ""       # whose vCPUs the proxies take
    problem: str = ""            # "" when the proxies fit; else why not, and what is needed

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in out["path"].items()}
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in out.items()}


def ingress_from_dict(data: Mapping[str, Any]) -> Ingress:
    values = dict(data)
    values["path"] = PathPoint(**{k: (int(v) if k == "requests" else float(v)) for k, v in values["path"].items()})
    return Ingress(**values)


def plan_ingress(path: ServingPath, online_qps: float, max_utilization: float, *, nodes: int | None = None,
                 cpu_hardware: str = "", cpu_usd_per_vcpu_hour: float = 0.0,
                 cpu_available: float | None = None) -> Ingress:
    """Size the HTTP proxies for all online traffic.

    Each proxy is one process (one core at most) and is kept at or below `max_utilization`, like a
    replica; its CPU is reserved from the CPU inventory (`cpu_available`) and charged at the CPU's
    price. With node shapes (`nodes`), Serve runs `proxies_per_node` per node, so more proxies than
    that need more nodes: reported, with the number needed.
    """
    if online_qps <= 0:
        return Ingress(0.0, 0, 0.0, 0.0, path.at(0.0), path.source, cpu_hardware=cpu_hardware)
    busy_vcpus = online_qps * path.proxy_cpu_ms / 1000.0
    proxies = max(1, math.ceil(busy_vcpus / max_utilization - 1e-9))
    proxy_vcpus = busy_vcpus / max_utilization
    per_proxy = online_qps / proxies
    problems = []
    if nodes is not None and proxies > nodes * path.proxies_per_node:
        problems.append(f"the HTTP ingress needs {proxies} proxies for {online_qps:,.0f} online qps "
                        f"({path.proxy_cpu_ms:.2f} ms CPU per request, {path.source}; at most "
                        f"{max_utilization:.0%} busy each) and Serve runs {path.proxies_per_node} per node: "
                        f"the cluster has {nodes} nodes. To fix: add {proxies - nodes * path.proxies_per_node} "
                        "nodes, or lower the online qps")
    if cpu_available is not None and proxy_vcpus > cpu_available + 1e-9:
        problems.append(f"the HTTP ingress needs {proxy_vcpus:.2f} vCPUs of {cpu_hardware or 'CPU'} for "
                        f"{online_qps:,.0f} online qps ({proxies} proxies, {path.proxy_cpu_ms:.2f} ms CPU per "
                        f"request, {path.source}); the inventory has {cpu_available:g}. To fix: add "
                        f"{math.ceil(proxy_vcpus - cpu_available)} vCPUs to the inventory, or lower the online qps")
    return Ingress(online_qps, proxies, proxy_vcpus, per_proxy, path.at(per_proxy), path.source,
                   usd_per_hour=proxy_vcpus * cpu_usd_per_vcpu_hour, cpu_hardware=cpu_hardware,
                   problem="; ".join(problems))


# --- the file (serving_path.json) ----------------------------------------------------------

def serving_path_to_dict(path: ServingPath) -> dict[str, Any]:
    out = asdict(path)
    out["points"] = [asdict(p) for p in path.points]
    out["floor_by_model"] = dict(path.floor_by_model)
    out["saturated_floor_by_model"] = dict(path.saturated_floor_by_model)
    return {"format_version": SERVING_PATH_FORMAT_VERSION, **out}


def serving_path_from_dict(data: Mapping[str, Any], where: str = "serving_path.json") -> ServingPath:
    if not isinstance(data, Mapping):
        raise InputError(where, type(data).__name__, "not a JSON object", "pass a file `planner calibrate` wrote")
    try:
        points = tuple(PathPoint(**{k: (int(v) if k == "requests" else float(v)) for k, v in p.items()})
                       for p in data["points"])
        floors = {str(k): float(v) for k, v in (data.get("floor_by_model") or {}).items()}
        saturated = {str(k): float(v) for k, v in (data.get("saturated_floor_by_model") or {}).items()}
        return ServingPath(
            replica_floor_ms=float(data["replica_floor_ms"]), proxy_cpu_ms=float(data["proxy_cpu_ms"]),
            points=points, source=str(data.get("source", "measured")), source_detail=str(data.get("source_detail", "")),
            floor_by_model=floors,
            proxy_cpu_ms_bytes=None if data.get("proxy_cpu_ms_bytes") is None else float(data["proxy_cpu_ms_bytes"]),
            proxies_per_node=int(data.get("proxies_per_node", 1)), cpu=str(data.get("cpu", "")),
            serve_settings=str(data.get("serve_settings", "")), system_vcpus=float(data.get("system_vcpus", 0.0)),
            measured_at=str(data.get("measured_at", "")), constant=bool(data.get("constant", False)),
            loadgen_cpu_ms=None if data.get("loadgen_cpu_ms") is None else float(data["loadgen_cpu_ms"]),
            saturated_floor_by_model=saturated)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(where, str(exc), "not a serving-path profile",
                         "pass a file `planner calibrate` wrote (serving_path.json)") from None


def write_serving_path(path: str | Path, serving_path: ServingPath) -> Path:
    from planner.core.io import write_atomically

    text = json.dumps(serving_path_to_dict(serving_path), indent=2) + "\n"
    return write_atomically(Path(path), text.encode())


def read_serving_path(path: str | Path) -> ServingPath:
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError("--serving-path", str(p), "no such file", "run `planner calibrate --out ...` first") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(str(p), str(exc), "not JSON", "pass the serving_path.json `planner calibrate` wrote") from None
    return serving_path_from_dict(data, str(p))


@dataclass(frozen=True)
class ServingTerms:
    """What the serving path adds to one workload's requests, as the candidate evaluator uses it."""
    path: PathPoint          # latency through the path (no model) at the plan's per-proxy load
    floor_ms: float          # replica CPU per request outside the model, reaching an idle replica
    source: str              # measured | stated | assumed | fed back, with detail
    saturated_floor_ms: float | None = None   # the same finding it busy (amortised); None: floor_ms

    @property
    def busy_floor_ms(self) -> float:
        return self.floor_ms if self.saturated_floor_ms is None else min(self.floor_ms, self.saturated_floor_ms)

    @classmethod
    def constant(cls, overhead_ms: float, source: str = "stated") -> "ServingTerms":
        """A fixed per-request overhead and no replica floor (the older model; benches and tests)."""
        point = PathPoint(0.0, overhead_ms, overhead_ms, overhead_ms, overhead_ms)
        return cls(point, 0.0, source)


def serving_terms(path: ServingPath, ingress: Ingress, model: str) -> ServingTerms:
    return ServingTerms(ingress.path, path.floor_ms(model), path.source, path.saturated_floor_ms(model))
