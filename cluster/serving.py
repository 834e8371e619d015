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
from dataclasses import dataclass
from typing import Any

import numpy as np
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from cluster.replicas import deployment_options, locally_deployable, replica_options
from planner.backends.registry import backend_for
from planner.core.catalog import Catalog
from planner.core.errors import ClusterError
from planner.core.plan import Plan

__all__ = ["ModelServer", "DeployedWorkload", "SkippedWorkload", "deploy_plan", "health_check",
           "remove_workloads_not_in",
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
        out = self.run(batch)
        return out.float().cpu().tolist()

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


def deploy_plan(plan: Plan, catalog: Catalog, http_port: int = 8000,
                host: str = "127.0.0.1") -> tuple[list[DeployedWorkload], list[SkippedWorkload]]:
    """Deploy every deployable workload of the plan on the connected Ray cluster.

    Every workload is judged before anything starts, so a refused one (locally_deployable) leaves
    the cluster as it was.
    """
    import ray

    if not ray.is_initialized():
        raise ClusterError("Ray is not initialised. To fix: call cluster.runtime.ensure_ray() first")
    from planner.core.inventory import cpu_only_label_selector

    resources = {k: float(v) for k, v in ray.cluster_resources().items()}
    skip_reasons = {w.name: locally_deployable(w, catalog, resources) for w in plan.workloads}
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
            serve.run(app, name=w.name, route_prefix=f"/{w.name}", blocking=False)
        except Exception as exc:  # noqa: BLE001 - Serve raises many types; the user needs the workload and cause
            raise ClusterError(f"deploying workload '{w.name}' failed: {exc}") from None
        deployed.append(DeployedWorkload(w.name, f"/{w.name}", f"http://{host}:{http_port}/{w.name}",
                                         w.chosen.replicas))
    return deployed, skipped


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
