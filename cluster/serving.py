"""Ray Serve deployment of a plan: one application per workload, at the planned precision.

Each workload becomes a Serve application named after it, routed at
``/<workload name>``, so one workload can be redeployed or rolled back without
touching the others. Its single deployment has the plan's replicas, the
replica size (vCPUs, or one accelerator of the planned type), and dynamic
batching with the plan's ``max_batch_size`` and ``batch_wait_timeout_s``,
carried in ``user_config`` so a re-plan that only changes batching
reconfigures replicas in place.

HTTP contract: ``POST /<name>`` with ``{"inputs": <one item>}`` (nested lists
of the model's item shape) -> ``{"outputs": [...]}``; a wrong shape, type or an
oversized body gets a 4xx with a message.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from planner.catalog import Catalog
from planner.errors import ClusterError
from planner.plan import Plan, WorkloadPlan

MAX_BODY_BYTES = 1 << 20  # one item of the built-in models is < 100 KiB as JSON


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
        self.item_dtype = getattr(torch, spec.item_dtype)
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

    def _parse(self, body: bytes) -> Any:
        torch = self._torch
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse({"error": f"body of {len(body)} bytes exceeds {MAX_BODY_BYTES}",
                                 "fix": "send one item per request"}, status_code=413)
        try:
            payload = json.loads(body)
            tensor = torch.tensor(payload["inputs"], dtype=self.item_dtype)
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": f"could not read inputs: {exc}",
                                 "fix": 'send JSON {"inputs": [...]} with one item'}, status_code=400)
        if tuple(tensor.shape) != self.item_shape:
            return JSONResponse({"error": f"inputs has shape {list(tensor.shape)}, "
                                          f"model {self.model_name} expects {list(self.item_shape)}",
                                 "fix": "send one item of the expected shape"}, status_code=422)
        return tensor

    async def __call__(self, request: Request) -> Any:
        parsed = self._parse(await request.body())
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


def deployment_options(w: WorkloadPlan, catalog: Catalog,
                       cpu_label_selector: dict[str, str] | None = None) -> dict[str, Any]:
    """Serve options that carry the plan: replicas, replica size, placement and batching.

    GPU replicas ask for (a fraction of) a GPU of the planned accelerator type, TPU replicas
    for whole chips of the planned generation; CPU replicas get `cpu_label_selector`
    (planner.inventory.cpu_only_label_selector) so they stay off accelerator nodes.
    """
    c = w.chosen
    hardware = catalog.get(c.hardware)
    from planner.packing import ACCELERATOR_REPLICA_CPUS
    actor: dict[str, Any] = ({"num_cpus": c.units_per_replica} if hardware.kind == "cpu"
                             else {"num_cpus": ACCELERATOR_REPLICA_CPUS})
    if hardware.kind == "cpu" and cpu_label_selector:
        actor["label_selector"] = dict(cpu_label_selector)
    if hardware.kind == "gpu":
        actor.update(num_gpus=c.units_per_replica, accelerator_type=hardware.ray_accelerator_type)
    elif hardware.kind == "tpu":
        actor.update(resources={"TPU": c.units_per_replica}, accelerator_type=hardware.ray_accelerator_type)
    scaling: dict[str, Any] = {"num_replicas": c.replicas}
    if w.autoscaling is not None and w.autoscaling.max_replicas > w.autoscaling.min_replicas:
        # An hourly demand curve: Serve scales between the plan's bounds (planner/autoscaling.py).
        scaling = {"autoscaling_config": {"min_replicas": w.autoscaling.min_replicas,
                                          "max_replicas": w.autoscaling.max_replicas,
                                          "initial_replicas": w.autoscaling.max_replicas,
                                          "target_ongoing_requests": w.autoscaling.target_ongoing_requests}}
    return {
        "name": w.name,
        **scaling,
        # Room for one batch being run and one forming, so batching is never starved by admission.
        "max_ongoing_requests": max(8, 2 * c.batch_size),
        "ray_actor_options": actor,
        "user_config": {"max_batch_size": c.batch_size,
                        "batch_wait_timeout_s": round(c.batch_wait_timeout_ms / 1000.0, 6)},
    }


def locally_deployable(w: WorkloadPlan, catalog: Catalog, resources: dict[str, float]) -> str:
    """'' if the connected cluster can host this workload's replicas, else the reason it cannot."""
    hardware = catalog.get(w.chosen.hardware)
    if hardware.kind == "cpu":
        return ""
    key = f"accelerator_type:{hardware.ray_accelerator_type}"
    if key not in resources:
        return f"needs {hardware.display_name} ({hardware.unit}); the cluster has none"
    return ""


def deploy_plan(plan: Plan, catalog: Catalog, http_port: int = 8000,
                host: str = "127.0.0.1") -> tuple[list[DeployedWorkload], list[SkippedWorkload]]:
    """Deploy every deployable workload of the plan on the connected Ray cluster."""
    import ray

    if not ray.is_initialized():
        raise ClusterError("Ray is not initialised. To fix: call cluster.runtime.ensure_ray() first")
    from planner.inventory import cpu_only_label_selector

    resources = {k: float(v) for k, v in ray.cluster_resources().items()}
    selector = cpu_only_label_selector(ray.nodes())
    serve.start(http_options={"host": host, "port": http_port})
    _check_http_port(http_port)
    deployed, skipped = [], []
    for w in plan.workloads:
        reason = locally_deployable(w, catalog, resources)
        if reason:
            skipped.append(SkippedWorkload(w.name, reason))
            continue
        options = deployment_options(w, catalog, selector)
        device = "cpu" if catalog.get(w.chosen.hardware).kind == "cpu" else "cuda"
        app = ModelServer.options(**options).bind(w.model, w.chosen.precision,
                                                  int(max(1, w.chosen.units_per_replica)), device)
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
