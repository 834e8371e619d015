"""Ray Serve deployment of a plan: one application per workload, at the planned precision.

Each workload becomes a Serve application named after it, routed at
``/<workload name>``, so one workload can be redeployed or rolled back without
touching the others. Its single deployment has the plan's replicas, the
replica size (vCPUs, or one accelerator of the planned type), and dynamic
batching with the plan's ``max_batch_size`` and ``batch_wait_timeout_s``,
carried in ``user_config`` so a re-plan that only changes batching
reconfigures replicas in place.

HTTP contract: ``POST /<name>`` with ``{"inputs": <one item>}`` (nested lists
of the model's item shape) -> ``{"outputs": [...]}``; or, with
``Content-Type: application/octet-stream``, the item's raw bytes (C order,
little-endian, the model's item dtype: what ``numpy.ndarray.tobytes()`` gives),
which skips JSON: a 3x32x32 float32 image is 64 KB of JSON and ~0.5 ms of
``json.loads`` per request on the replica's core, 12 KB and ~0 ms as bytes. A
wrong shape, type or an oversized body gets a 4xx with a message.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from cluster.replicas import deployment_options, locally_deployable, replica_options
from planner.backends.registry import backend_for
from planner.core.catalog import Catalog
from planner.core.errors import ClusterError
from planner.core.plan import Plan

__all__ = ["ModelServer", "DeployedWorkload", "SkippedWorkload", "deploy_plan", "wait_until_running",
           "health_check", "remove_workloads_not_in",
           # what each replica asks Serve for (cluster/replicas.py), imported from here by many callers
           "deployment_options", "replica_options", "locally_deployable"]

MAX_BODY_BYTES = 1 << 20  # one item of the built-in models is < 100 KiB as JSON
BINARY_CONTENT_TYPE = "application/octet-stream"


@serve.deployment
class ModelServer:
    """Serves one model at one precision with dynamic batching (a thin wrapper around torch)."""

    def __init__(self, model_name: str, precision: str, threads: int, device: str = "cpu"):
        import torch

        from planner.models import get_model
        from planner.models.precision import prepare_for_precision

        torch.set_num_threads(max(1, int(threads)))
        self._torch = torch
        spec = get_model(model_name)
        self.module, self.cast = prepare_for_precision(spec, precision, device)
        self.device = device
        self.item_shape = tuple(spec.item_shape)
        self.item_np_dtype = np.dtype(spec.item_dtype).newbyteorder("<")
        self.model_name, self.precision = model_name, precision
        self._example_item = self.cast(spec.example_input(1))[0]
        self.run, self.execution = self._make_runner(1)
        self._model_cpu_s, self._batches, self._items = 0.0, 0, 0

    def _make_runner(self, max_batch_size: int) -> Any:
        # The same execution as the profile that chose this plan (planner/models/runner.py):
        # CUDA-graph replay per batch-size bucket on GPUs, eager on CPUs.
        from planner.models.runner import make_runner
        return make_runner(self.module, self._example_item, self.device, max_batch_size)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        max_batch_size = int(user_config.get("max_batch_size", 1))
        self.run, self.execution = self._make_runner(max_batch_size)
        self.predict.set_max_batch_size(max_batch_size)
        self.predict.set_batch_wait_timeout_s(float(user_config.get("batch_wait_timeout_s", 0.0)))

    @serve.batch(max_batch_size=1, batch_wait_timeout_s=0.0)
    async def predict(self, items: list[Any]) -> list[list[float]]:
        torch = self._torch
        batch = self.cast(torch.stack(items).to(self.device))
        started = time.thread_time()   # the model's own CPU time here, beside the request path's
        out = self.run(batch).float().cpu()
        self._model_cpu_s += time.thread_time() - started
        self._batches += 1
        self._items += len(items)
        return out.tolist()

    def cpu_stats(self) -> dict[str, float]:
        """This replica's CPU seconds (all of it, and the model's part) and what it has served."""
        import resource
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {"cpu_s": usage.ru_utime + usage.ru_stime, "model_cpu_s": self._model_cpu_s,
                "batches": self._batches, "items": self._items}

    def model_alone_ms(self, runs: int = 200) -> float:
        """The model's CPU per batch of one in a tight loop in this process (as the profiler times it)."""
        batch = self._example_item.unsqueeze(0).to(self.device)
        for _ in range(10):
            self.run(batch)
        started = time.thread_time()
        for _ in range(runs):
            self.run(batch).float().cpu()
        return (time.thread_time() - started) * 1000.0 / runs

    def _parse(self, body: bytes, content_type: str = "application/json") -> Any:
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse({"error": f"body of {len(body)} bytes exceeds {MAX_BODY_BYTES}",
                                 "fix": "send one item per request"}, status_code=413)
        if content_type.split(";")[0].strip().lower() == BINARY_CONTENT_TYPE:
            return self._parse_binary(body)
        try:
            payload = json.loads(body)
            # numpy reads nested lists ~3x faster than torch.tensor; ragged lists or strings raise.
            array = np.asarray(payload["inputs"], dtype=self.item_np_dtype)
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": f"could not read inputs: {exc}",
                                 "fix": 'send JSON {"inputs": [...]} with one item'}, status_code=400)
        if tuple(array.shape) != self.item_shape:
            return JSONResponse({"error": f"inputs has shape {list(array.shape)}, "
                                          f"model {self.model_name} expects {list(self.item_shape)}",
                                 "fix": "send one item of the expected shape"}, status_code=422)
        return self._torch.from_numpy(array)

    def _parse_binary(self, body: bytes) -> Any:
        expected = int(np.prod(self.item_shape)) * self.item_np_dtype.itemsize
        if len(body) != expected:
            return JSONResponse({"error": f"binary body of {len(body)} bytes; model {self.model_name} expects "
                                          f"{expected} ({list(self.item_shape)} x {self.item_np_dtype.name}, "
                                          "little-endian)",
                                 "fix": "send one item's raw bytes (numpy: item.astype(dtype).tobytes())"},
                                status_code=422)
        # A writable copy: torch warns on (and must not write into) a tensor over immutable bytes.
        array = np.frombuffer(body, dtype=self.item_np_dtype).reshape(self.item_shape).copy()
        return self._torch.from_numpy(array)

    async def __call__(self, request: Request) -> Any:
        parsed = self._parse(await request.body(), request.headers.get("content-type", "application/json"))
        if isinstance(parsed, JSONResponse):
            return parsed
        outputs = await self.predict(parsed)
        return {"outputs": outputs, "model": self.model_name, "precision": self.precision}


@dataclass(frozen=True)
class DeployedWorkload:
    name: str
    route: str
    url: str
    replicas: int


@dataclass(frozen=True)
class SkippedWorkload:
    name: str
    reason: str


# After Serve has the applications: how long replicas may take to start (a model's first load on a
# loaded 2-core machine takes tens of seconds) before the deploy gives up, when to start saying
# what Serve reports about those still starting, and how often.
STARTUP_TIMEOUT_S = 300.0
REPORT_AFTER_S = 10.0
REPORT_EVERY_S = 10.0


def deploy_plan(plan: Plan, catalog: Catalog, http_port: int = 8000, host: str = "127.0.0.1",
                on_status: Callable[[str], None] | None = None,
                startup_timeout_s: float = STARTUP_TIMEOUT_S) -> tuple[list[DeployedWorkload], list[SkippedWorkload]]:
    """Deploy every deployable workload of the plan on the connected Ray cluster.

    Every workload is judged before anything starts, so a refused one leaves the cluster as it
    was: hardware the cluster lacks is skipped with the reason (locally_deployable), and replicas
    the cluster cannot place now (cluster.placement.check_placeable: what they need against what
    is free) refuse the whole deploy with ClusterError naming each workload, what it needs, what
    is free and who holds the rest. Then every application is handed to Serve at once, and the
    deploy waits for their replicas to run: after REPORT_AFTER_S, `on_status` gets Serve's own
    status of those still starting every few seconds (default: a logged warning); after
    `startup_timeout_s`, ClusterError with that status.
    """
    import ray
    from ray.serve import RunTarget, run_many

    if not ray.is_initialized():
        raise ClusterError("Ray is not initialised. To fix: call cluster.runtime.ensure_ray() first")
    from cluster.placement import read_cluster, refuse_unplaceable
    from planner.core.inventory import cpu_only_label_selector

    view = read_cluster()
    skip_reasons = {w.name: locally_deployable(w, catalog, view.total) for w in plan.workloads}
    refuse_unplaceable(plan, catalog, view)
    selector = cpu_only_label_selector(ray.nodes())
    serve.start(http_options={"host": host, "port": http_port})
    _check_http_port(http_port)
    deployed, skipped = [], []
    for w in plan.workloads:
        if skip_reasons[w.name]:
            skipped.append(SkippedWorkload(w.name, skip_reasons[w.name]))
            continue
        options = deployment_options(w, catalog, selector)
        hardware = catalog.get(w.chosen.hardware)
        replica = backend_for(hardware).replica_settings(hardware, w.chosen.units_per_replica)
        app = ModelServer.options(**options).bind(w.model, w.chosen.precision, replica.threads, replica.device)
        try:
            # Handed over without waiting (serve.run would wait, silently and without end, for
            # replicas that cannot start); wait_until_running below waits and says why.
            run_many([RunTarget(app, name=w.name, route_prefix=f"/{w.name}")], wait_for_applications_running=False)
        except Exception as exc:  # noqa: BLE001 - Serve raises many types; the user needs the workload and cause
            raise ClusterError(f"deploying workload '{w.name}' failed: {exc}") from None
        deployed.append(DeployedWorkload(w.name, f"/{w.name}", f"http://{host}:{http_port}/{w.name}",
                                         w.chosen.replicas))
    wait_until_running([d.name for d in deployed], on_status=on_status, timeout_s=startup_timeout_s)
    return deployed, skipped


def wait_until_running(names: Sequence[str], on_status: Callable[[str], None] | None = None,
                       timeout_s: float = STARTUP_TIMEOUT_S, poll_s: float = 0.5,
                       report_after_s: float = REPORT_AFTER_S) -> None:
    """Wait until Serve reports every named application RUNNING; say what keeps the others, and give up.

    DEPLOY_FAILED (a replica's constructor raised, and Serve gave up on it) is a ClusterError at
    once with Serve's message. While some are not running after `report_after_s`, `on_status`
    gets their state every REPORT_EVERY_S: replicas running/starting, Serve's message for the
    deployment (after 30 s Serve itself says when replicas cannot be scheduled, with the
    resources they need and those available) and what is free now.
    """
    import time

    on_status = on_status or _log_status
    started = time.monotonic()
    last_report = 0.0
    while True:
        applications = serve.status().applications
        for name in names:
            app = applications.get(name)
            if app is not None and _value(app.status) == "DEPLOY_FAILED":
                raise ClusterError(f"deploying workload '{name}' failed: {app.message or describe_app(name, app)}")
        waiting = [name for name in names
                   if applications.get(name) is None or _value(applications[name].status) != "RUNNING"]
        if not waiting:
            break
        now = time.monotonic()
        if now - started >= timeout_s:
            raise ClusterError(f"gave up after {now - started:.0f} s waiting for Serve to run "
                               f"{', '.join(waiting)}: {_not_running(waiting, applications)}. To fix: see "
                               "`serve status` and the replica logs (Ray's session folder, logs/serve/), or free "
                               "resources for them")
        if now - started >= report_after_s and now - last_report >= REPORT_EVERY_S:
            on_status(f"waiting {now - started:.0f} s for Serve to run {', '.join(waiting)}: "
                      f"{_not_running(waiting, applications)}")
            last_report = now
        time.sleep(poll_s)
    try:  # as serve.run does: the HTTP proxies route the new applications before the deploy returns
        from ray.serve.context import _get_global_client
        _get_global_client().wait_for_proxies_serving(wait_for_applications_running=True)
    except Exception:  # noqa: BLE001 - private in 2.60; without it the first request may meet a 404 for a moment
        pass


def describe_app(name: str, app: Any) -> str:
    """One application's state from serve.status(): 'image-tagger: DEPLOYING, 0 of 1 replicas running (1 starting);
    Serve says: ...'."""
    parts = []
    for deployment in app.deployments.values():
        states = {_value(state): count for state, count in deployment.replica_states.items()}
        running = states.pop("RUNNING", 0)
        others = ", ".join(f"{count} {state.lower()}" for state, count in sorted(states.items()) if count)
        total = running + sum(states.values())
        text = (f"{running} of {total} replicas running" + (f" ({others})" if others else "")) if total \
            else "no replica yet"
        if deployment.message:
            text += f"; Serve says: {deployment.message}"
        parts.append(text)
    if app.message:
        parts.append(f"Serve says: {app.message}")
    return f"{name}: {_value(app.status)}, " + "; ".join(parts or ["no deployment yet"])


def _value(status: Any) -> str:
    """Serve's status enums as their names ('RUNNING'), whatever str() of an enum gives on this Python."""
    return str(getattr(status, "value", status))


def _not_running(names: Sequence[str], applications: Mapping[str, Any]) -> str:
    from cluster.placement import amount, describe_cluster, read_cluster

    states = "; ".join(describe_app(n, applications[n]) if n in applications else f"{n}: not known to Serve yet"
                       for n in names)
    view = read_cluster()
    free = ", ".join(f"{view.available.get(r, 0.0):g} of {amount(r, view.total[r])}" for r in ("CPU", "GPU", "TPU")
                     if view.total.get(r))
    return f"{states} (free now: {free or 'nothing'}; the cluster: {describe_cluster(view)})"


def _log_status(message: str) -> None:
    import logging

    logging.getLogger("planner").warning(message)


def _check_http_port(requested: int) -> None:
    """Serve's HTTP options are fixed when it first starts on a cluster; a later deploy asking for
    another port would hand out URLs nobody listens on. Say so instead."""
    try:
        from ray.serve.context import _get_global_client  # private, but the only way to read the live config
        actual = _get_global_client().http_config.port
    except Exception:  # noqa: BLE001 - without the check the deploy still works; the URLs may be wrong
        return
    if actual != requested:
        raise ClusterError(f"Ray Serve already runs on this cluster with HTTP on port {actual}, not {requested}. "
                           f"To fix: deploy with --port {actual} (Serve keeps the port it started with), "
                           "or shut Serve down first (serve shutdown)")


def health_check(deployed: list[DeployedWorkload], bodies: dict[str, bytes], timeout_s: float = 30.0) -> None:
    """Every deployed workload answers one real request with 200, or ClusterError naming it."""
    import requests

    for d in deployed:
        try:
            status = requests.post(d.url, data=bodies[d.name], headers={"Content-Type": "application/json"},
                                   timeout=timeout_s).status_code
        except requests.RequestException as exc:
            raise ClusterError(f"workload '{d.name}' failed a probe request: {exc}") from None
        if status != 200:
            raise ClusterError(f"workload '{d.name}' answered {status} to a probe request")


def remove_workloads_not_in(newer: Plan, restored: Plan) -> None:
    """Delete the Serve applications of workloads the newer plan added and the restored one lacks.

    Only those: other applications on the cluster (other plans, other teams) are left alone.
    """
    drop = {w.name for w in newer.workloads} - {w.name for w in restored.workloads}
    for name in list(serve.status().applications):
        if name in drop:
            serve.delete(name)
