"""The execution-backend seam: registry, capabilities, device checks, Ray options, and the deploy refusal.

Pure: no Ray is started. This machine has no GPU and no TPU, so the accelerator backends
are tested through their refusals and through the options they hand Ray.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from planner.backends.base import ReplicaSettings
from planner.backends.registry import BACKENDS, backend_for
from planner.core.catalog import UNIT_KIND
from planner.core.errors import InputError, PlannerError
from planner.core.plan import Plan, WorkloadPlan
from planner.planning.candidates import Candidate

REPO = Path(__file__).resolve().parent.parent


def _workload(name: str, hardware: str, unit: str, units: float, replicas: int) -> WorkloadPlan:
    chosen = Candidate(name, hardware, "fp32", 4, units, replicas, units * replicas, unit, 10.0, 100.0, 1.0,
                       1.0, 100.0, 0.0, 0.1, "measured", True, "")
    return WorkloadPlan(name, "mlp_digits", "online", 10.0, 100.0, chosen, ())


# ---------------------------------------------------------------- registry and capabilities

def test_every_catalog_entry_has_the_backend_of_its_kind(catalog):
    names = {hw: backend_for(catalog.get(hw)).name for hw in catalog.names()}
    assert {names[hw] for hw in ("cpu-x86", "cpu-n2")} == {"torch-cpu"}
    assert {names[hw] for hw in ("h100", "a100-80gb", "l4", "t4")} == {"torch-cuda"}
    assert {names[hw] for hw in ("tpu-v4", "tpu-v5e", "tpu-v6e")} == {"jax-tpu"}
    assert len({b.kind for b in BACKENDS}) == len(BACKENDS)  # one backend per kind: the registry is a map


def test_capabilities_say_what_each_backend_supports(catalog):
    from planner.backends.jax_tpu import JAX_PRECISIONS
    from planner.models.precision import PRECISIONS as TORCH_PRECISIONS

    cpu, cuda, tpu = (backend_for(catalog.get(hw)) for hw in ("cpu-x86", "h100", "tpu-v5e"))
    assert cpu.capabilities.precisions == cuda.capabilities.precisions == TORCH_PRECISIONS
    assert tpu.capabilities.precisions == JAX_PRECISIONS
    assert all(b.capabilities.profiles for b in BACKENDS)
    assert cpu.capabilities.serves and cuda.capabilities.serves
    assert not tpu.capabilities.serves  # JAX profiles TPUs; the Serve replica is torch-only
    assert (cpu.framework, cuda.framework, tpu.framework) == ("torch", "torch", "jax")


def test_catalog_traits_replace_kind_checks(catalog):
    cpu, h100, tpu = catalog.get("cpu-x86"), catalog.get("h100"), catalog.get("tpu-v5e")
    assert not cpu.is_accelerator and h100.is_accelerator and tpu.is_accelerator
    assert cpu.units_per_replica(4) == 4.0 and h100.units_per_replica(4) == 1.0 == tpu.units_per_replica(4)
    assert UNIT_KIND == {"vcpu": "cpu", "gpu": "gpu", "tpu_chip": "tpu"}


# (That no module outside the seam compares kind strings: tests/test_layout.py.)


# ---------------------------------------------------------------- device checks

def test_torch_cpu_backend_refuses_a_non_cpu_device(catalog):
    cpu = catalog.get("cpu-x86")
    assert backend_for(cpu).check_device(cpu) == "cpu"
    with pytest.raises(PlannerError, match="is a CPU type but device='cuda:0'"):
        backend_for(cpu).check_device(cpu, "cuda:0")


def test_torch_cuda_backend_refuses_a_node_without_cuda(catalog):
    h100 = catalog.get("h100")
    with pytest.raises(PlannerError, match="refusing to record CPU timings as GPU timings"):
        backend_for(h100).check_device(h100)


def test_the_torch_harness_refuses_hardware_of_another_framework(catalog):
    from planner.models import get_model
    from planner.profiling.profiler import profile_point

    with pytest.raises(PlannerError, match="the torch profiler does not time"):
        profile_point(get_model("mlp_digits"), "fp32", 1, catalog.get("tpu-v5e"), device="cpu")


def test_jax_tpu_backend_refuses_when_jax_sees_no_tpu(catalog):
    pytest.importorskip("jax")
    tpu = catalog.get("tpu-v5e")
    with pytest.raises(PlannerError, match="refusing to record CPU timings as TPU timings"):
        backend_for(tpu).check_device(tpu)


# ---------------------------------------------------------------- Ray options and replica settings

def test_profiling_tasks_ask_for_their_device(catalog):
    cpu, h100, tpu = catalog.get("cpu-x86"), catalog.get("h100"), catalog.get("tpu-v5e")
    selector = {"ray.io/accelerator-type": "!in(H100)"}
    assert backend_for(cpu).profiling_task_options(cpu, 2, selector) == {
        "num_cpus": 2, "num_gpus": 0, "label_selector": selector}
    assert backend_for(cpu).profiling_task_options(cpu, 1) == {"num_cpus": 1, "num_gpus": 0}
    assert backend_for(h100).profiling_task_options(h100, 4, selector) == {
        "num_cpus": 1, "num_gpus": 1, "accelerator_type": "H100"}
    assert backend_for(tpu).profiling_task_options(tpu, 4, selector) == {
        "num_cpus": 1, "resources": {"TPU": 1}, "accelerator_type": "TPU-V5LITEPOD"}


def test_replicas_ask_for_their_share_of_the_device(catalog):
    cpu, h100, tpu = catalog.get("cpu-x86"), catalog.get("h100"), catalog.get("tpu-v5e")
    selector = {"ray.io/accelerator-type": "!in(H100)"}
    # Key order is part of the generated Serve config file, so it is pinned too.
    assert list(backend_for(cpu).replica_actor_options(cpu, 2, selector).items()) == [
        ("num_cpus", 2), ("label_selector", selector)]
    assert list(backend_for(h100).replica_actor_options(h100, 0.25, selector).items()) == [
        ("num_cpus", 0.5), ("num_gpus", 0.25), ("accelerator_type", "H100")]
    assert list(backend_for(tpu).replica_actor_options(tpu, 4).items()) == [
        ("num_cpus", 0.5), ("resources", {"TPU": 4}), ("accelerator_type", "TPU-V5LITEPOD")]


def test_replica_settings_and_the_serve_config_take_the_device_from_the_backend(catalog):
    from cluster.serve_config import serve_config

    cpu, h100, tpu = catalog.get("cpu-x86"), catalog.get("h100"), catalog.get("tpu-v5e")
    assert backend_for(cpu).replica_settings(cpu, 2.0) == ReplicaSettings("cpu", 2)
    assert backend_for(cpu).replica_settings(cpu, 0.5) == ReplicaSettings("cpu", 1)
    assert backend_for(h100).replica_settings(h100, 0.5) == ReplicaSettings("cuda", 1)
    assert backend_for(tpu).replica_settings(tpu, 4) == ReplicaSettings("tpu", 1)
    plan = Plan("OPTIMAL", "cost", 1.0, 1.0, 100.0, 0.1, (
        _workload("on-cpu", "cpu-x86", "vcpu", 2, 1), _workload("on-h100", "h100", "gpu", 0.5, 2),
        _workload("on-tpu", "tpu-v5e", "tpu_chip", 4, 1)))
    args = {app["name"]: app["args"] for app in serve_config(plan, catalog)["applications"]}
    assert (args["on-cpu"]["device"], args["on-cpu"]["threads"]) == ("cpu", 2)
    assert (args["on-h100"]["device"], args["on-h100"]["threads"]) == ("cuda", 1)
    assert "on-tpu" not in args  # JAX has no Serve replica: left out of the config, never started on "cuda"


# ---------------------------------------------------------------- the deploy decision

def test_a_tpu_workload_the_cluster_could_host_is_refused_naming_workload_and_backend(catalog):
    from cluster.serving import locally_deployable

    with_tpus = {"CPU": 8.0, "TPU": 4.0, "accelerator_type:TPU-V5LITEPOD": 1.0}
    with pytest.raises(InputError) as refused:
        locally_deployable(_workload("video-frames", "tpu-v5e", "tpu_chip", 1, 1), catalog, with_tpus)
    message = str(refused.value)
    assert "'video-frames'" in message and "jax-tpu" in message and "cannot serve" in message
    assert "To fix:" in message and "\n" not in message


def test_the_deploy_decision_for_servable_and_absent_hardware_is_unchanged(catalog):
    from cluster.serving import locally_deployable

    cpu_only = {"CPU": 8.0}
    assert locally_deployable(_workload("digits", "cpu-x86", "vcpu", 1, 2), catalog, cpu_only) == ""
    assert locally_deployable(_workload("chat", "h100", "gpu", 1, 1), catalog, cpu_only) == (
        "needs NVIDIA H100 SXM 80GB (gpu); the cluster has none")
    assert locally_deployable(_workload("chat", "h100", "gpu", 1, 1), catalog,
                              {"CPU": 8.0, "GPU": 2.0, "accelerator_type:H100": 1.0}) == ""
    # A cluster without TPUs skips the TPU workload, as before: nothing would start it anywhere.
    assert locally_deployable(_workload("video-frames", "tpu-v5e", "tpu_chip", 1, 1), catalog, cpu_only) == (
        "needs Google TPU v5e (per chip) (tpu_chip); the cluster has none")
