"""What each Serve replica of a plan asks for: replicas, replica size, placement and batching.

Plain functions of the plan and the catalog, with no Ray or Serve import, so that cluster.placement
can judge a plan's replicas against the cluster before cluster.serving starts any (and
cluster.serve_config writes the same options into a config file).
"""
from __future__ import annotations

from typing import Any

from planner.backends.registry import backend_for
from planner.core.catalog import Catalog, HardwareType
from planner.core.plan import WorkloadPlan


def deployment_options(w: WorkloadPlan, catalog: Catalog,
                       cpu_label_selector: dict[str, str] | None = None) -> dict[str, Any]:
    """Serve options that carry the plan: replicas, replica size, placement and batching.

    GPU replicas ask for (a fraction of) a GPU of the planned accelerator type, TPU replicas
    for whole chips of the planned generation; CPU replicas get `cpu_label_selector`
    (planner.core.inventory.cpu_only_label_selector) so they stay off accelerator nodes.
    """
    c = w.chosen
    scaling: dict[str, Any] = {"num_replicas": c.replicas}
    if w.autoscaling is not None and w.autoscaling.max_replicas > w.autoscaling.min_replicas:
        # An hourly demand curve: Serve scales between the plan's bounds (planner/planning/autoscaling.py).
        scaling = {"autoscaling_config": {"min_replicas": w.autoscaling.min_replicas,
                                          "max_replicas": w.autoscaling.max_replicas,
                                          "initial_replicas": w.autoscaling.max_replicas,
                                          "target_ongoing_requests": w.autoscaling.target_ongoing_requests}}
    return {"name": w.name, **scaling,
            **replica_options(catalog.get(c.hardware), c.units_per_replica, c.batch_size,
                              c.batch_wait_timeout_ms, cpu_label_selector)}


def replica_options(hardware: HardwareType, units_per_replica: float, batch_size: int, batch_wait_timeout_ms: float,
                    cpu_label_selector: dict[str, str] | None = None) -> dict[str, Any]:
    """The per-replica part of deployment_options (also what bench.serving_overhead deploys)."""
    return {
        # Room for one batch being run and one forming, so batching is never starved by admission.
        "max_ongoing_requests": max(8, 2 * batch_size),
        "ray_actor_options": backend_for(hardware).replica_actor_options(hardware, units_per_replica,
                                                                        cpu_label_selector),
        "user_config": {"max_batch_size": batch_size,
                        "batch_wait_timeout_s": round(batch_wait_timeout_ms / 1000.0, 6)},
    }


def locally_deployable(w: WorkloadPlan, catalog: Catalog, resources: dict[str, float]) -> str:
    """'' if the connected cluster can host this workload's replicas, else the reason it cannot.

    Raises InputError, naming the workload and the backend, if the cluster could host it but its
    backend cannot serve (a TPU workload: JAX has no Serve replica yet), rather than start it on the
    wrong device.
    """
    hardware = catalog.get(w.chosen.hardware)
    if hardware.is_accelerator and f"accelerator_type:{hardware.ray_accelerator_type}" not in resources:
        return f"needs {hardware.display_name} ({hardware.unit}); the cluster has none"
    backend_for(hardware).check_can_serve(w.name, hardware)
    return ""
