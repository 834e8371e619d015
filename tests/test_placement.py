"""Placement on a simulated heterogeneous cluster: every profiling task and Serve replica on its planned hardware.

The cluster (ray.cluster_utils.Cluster, one machine) has a plain CPU head, a node with
two FAKE H100s and a node with four FAKE TPU v5e chips (resources and labels only).
Fake devices cannot run anything: profiling tasks that land on them must refuse (a CPU
timing is never recorded as a GPU/TPU one), and the Serve replicas placed there are
probes that report their node instead of loading a model.
"""
from __future__ import annotations

import os

import pytest
import yaml

from cluster.profiling import ProfileJob, run_profile_jobs
from cluster.serving import deployment_options
from planner.core.catalog import load_catalog
from planner.core.inventory import cpu_only_label_selector
from planner.core.plan import WorkloadPlan
from planner.planning.candidates import Candidate
from planner.profiling.timing import QUICK_BUDGET
from tests.conftest import free_port

LABEL = "ray.io/accelerator-type"
# Serve on the simulated cluster keeps the port it first started on; the refusal test asks for another.
SERVE_PORT, OTHER_PORT = free_port(), free_port()


@pytest.fixture(scope="module")
def hetero_cluster():
    """Head (2 CPUs) + FAKE 2xH100 node + FAKE 4-chip TPU v5e node; replaces the session's Ray, then restores it."""
    import ray
    from ray.cluster_utils import Cluster

    was_initialised = ray.is_initialized()
    if was_initialised:
        ray.shutdown()
    os.environ.pop("CUDA_VISIBLE_DEVICES", None)  # fake GPUs cannot be declared with it set empty
    small = dict(object_store_memory=100 * 2**20, memory=2 * 2**30)
    cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=2, include_dashboard=False,
                                                                object_store_memory=100 * 2**20))
    gpu = cluster.add_node(num_cpus=2, num_gpus=2, resources={"accelerator_type:H100": 1},
                           labels={LABEL: "H100"}, **small)
    tpu = cluster.add_node(num_cpus=2, resources={"TPU": 4, "accelerator_type:TPU-V5LITEPOD": 1},
                           labels={LABEL: "TPU-V5LITEPOD"}, **small)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        kinds = {n["NodeID"]: n.get("Labels", {}).get(LABEL, "cpu") for n in ray.nodes() if n["Alive"]}
        yield {"kind_of": kinds, "gpu": gpu.node_id, "tpu": tpu.node_id}
    finally:
        from ray import serve
        serve.shutdown()
        ray.shutdown()
        cluster.shutdown()
        if was_initialised:
            from cluster.runtime import ensure_ray
            ensure_ray(num_cpus=4)


def test_cpu_work_is_kept_off_accelerator_nodes_only_when_it_can_be():
    plain = {"Alive": True, "Resources": {"CPU": 2}, "Labels": {}}
    gpu = {"Alive": True, "Resources": {"CPU": 8, "GPU": 1}, "Labels": {LABEL: "H100"}}
    assert cpu_only_label_selector([plain, gpu]) == {LABEL: "!in(H100)"}
    assert cpu_only_label_selector([gpu]) is None      # a GPU laptop: CPU work has to share it
    assert cpu_only_label_selector([plain]) is None    # nothing to avoid


def test_profiling_tasks_land_on_the_planned_hardware(hetero_cluster):
    catalog = load_catalog()
    jobs = [ProfileJob("mlp_digits", "fp32", "cpu-x86", (1,)),
            ProfileJob("mlp_digits", "fp16", "h100", (1,)),
            ProfileJob("mlp_digits", "bf16", "tpu-v5e", (1,))]
    outcomes = {o.job.hardware: o for o in run_profile_jobs(jobs, catalog, budget=QUICK_BUDGET)}
    kind_of = hetero_cluster["kind_of"]
    assert kind_of[outcomes["cpu-x86"].node_id] == "cpu" and outcomes["cpu-x86"].rows  # measured, off accelerators
    assert outcomes["h100"].node_id == hetero_cluster["gpu"], outcomes["h100"].error
    assert outcomes["tpu-v5e"].node_id == hetero_cluster["tpu"]
    # The fake devices refuse instead of recording this machine's CPU timings as GPU/TPU timings.
    for hw in ("h100", "tpu-v5e"):
        assert not outcomes[hw].rows and outcomes[hw].error, outcomes[hw]
        assert all(p.status == "error" for p in outcomes[hw].skipped)


def _workload(name: str, hardware: str, unit: str, units: float, replicas: int) -> WorkloadPlan:
    chosen = Candidate(name, hardware, "fp32", 4, units, replicas, units * replicas, unit, 10.0, 100.0, 1.0,
                       1.0, 100.0, 0.0, 0.1, "measured", True, "")
    return WorkloadPlan(name, "mlp_digits", "online", 10.0, 100.0, chosen, ())


@pytest.mark.parametrize("name,hardware,unit,units,replicas", [
    ("on-cpu", "cpu-x86", "vcpu", 0.5, 2),
    ("on-shared-h100", "h100", "gpu", 0.5, 3),   # three half-GPU replicas on two fake H100s
    ("on-tpu", "tpu-v5e", "tpu_chip", 2, 2),     # whole chips: 2 + 2 of the node's 4
])
def test_serve_replicas_land_on_the_planned_hardware(hetero_cluster, name, hardware, unit, units, replicas):
    import ray
    from ray import serve

    @serve.deployment
    class NodeProbe:
        """Stands in for the model server where devices are fake: reports where Serve placed it."""

        def reconfigure(self, user_config: dict) -> None:
            self.user_config = user_config

        def __call__(self) -> tuple[str, str]:
            return ray.get_runtime_context().get_node_id(), serve.get_replica_context().replica_id.unique_id

    catalog = load_catalog()
    w = _workload(name, hardware, unit, units, replicas)
    options = deployment_options(w, catalog, cpu_only_label_selector(ray.nodes()))
    serve.start(http_options={"host": "127.0.0.1", "port": SERVE_PORT})
    handle = serve.run(NodeProbe.options(**options).bind(), name=name, route_prefix=None, blocking=False)
    try:
        seen: dict[str, str] = {}
        for _ in range(60):
            node, replica = handle.remote().result(timeout_s=60)
            seen[replica] = node
            if len(seen) == replicas:
                break
        assert len(seen) == replicas
        expected = {"cpu-x86": "cpu", "h100": "H100", "tpu-v5e": "TPU-V5LITEPOD"}[hardware]
        assert {hetero_cluster["kind_of"][node] for node in seen.values()} == {expected}
    finally:
        serve.delete(name)


def test_serve_config_carries_the_placement_and_passes_rays_schema():
    from ray.serve.schema import ServeDeploySchema

    from cluster.serve_config import serve_config
    from planner.core.plan import Plan

    workloads = (_workload("on-cpu", "cpu-x86", "vcpu", 1, 2), _workload("on-h100", "h100", "gpu", 0.25, 4),
                 _workload("on-tpu", "tpu-v5e", "tpu_chip", 4, 1))
    plan = Plan("OPTIMAL", "cost", 1.0, 1.0, 100.0, 0.1, workloads)
    config = serve_config(plan, load_catalog(), cpu_label_selector={LABEL: "!in(H100,TPU-V5LITEPOD)"})
    ServeDeploySchema.model_validate(config)
    actors = {app["name"]: app["deployments"][0]["ray_actor_options"] for app in config["applications"]}
    assert actors["on-cpu"]["label_selector"] == {LABEL: "!in(H100,TPU-V5LITEPOD)"}
    assert actors["on-h100"]["num_gpus"] == 0.25 and actors["on-h100"]["accelerator_type"] == "H100"
    assert "label_selector" not in actors["on-h100"]
    # The TPU workload's backend (JAX) has no Serve replica: left out, never started on the wrong device.
    assert "on-tpu" not in actors


def test_the_serve_config_names_the_workloads_it_leaves_out(tmp_path):
    from cluster.serve_config import write_serve_config
    from planner.core.plan import Plan

    plan = Plan("OPTIMAL", "cost", 1.0, 1.0, 100.0, 0.1, (_workload("on-cpu", "cpu-x86", "vcpu", 1, 1),
                                                           _workload("on-tpu", "tpu-v5e", "tpu_chip", 4, 1)))
    text = write_serve_config(tmp_path / "serve_config.yaml", plan, load_catalog()).read_text()
    assert "# not in this file: on-tpu (tpu-v5e: backend jax-tpu profiles but cannot serve yet)" in text
    assert [app["name"] for app in yaml.safe_load(text)["applications"]] == ["on-cpu"]


def test_a_deploy_on_another_port_than_the_running_serve_is_refused(hetero_cluster):
    from ray import serve

    from cluster.serving import deploy_plan
    from planner.core.errors import ClusterError
    from planner.core.plan import Plan

    serve.start(http_options={"host": "127.0.0.1", "port": SERVE_PORT})  # as the tests above left it
    plan = Plan("OPTIMAL", "cost", 1.0, 1.0, 100.0, 0.1, (_workload("cpu-only", "cpu-x86", "vcpu", 1, 1),))
    with pytest.raises(ClusterError, match=f"port {SERVE_PORT}.*--port {SERVE_PORT}"):
        deploy_plan(plan, load_catalog(), http_port=OTHER_PORT)


def test_a_tpu_workload_is_refused_at_deploy_not_started_on_the_wrong_device(hetero_cluster):
    """The cluster has (fake) TPU chips, but JAX has no Serve replica: nothing of the plan starts."""
    from ray import serve

    from cluster.serving import deploy_plan
    from planner.core.errors import InputError
    from planner.core.plan import Plan

    plan = Plan("OPTIMAL", "cost", 1.0, 1.0, 100.0, 0.1, (_workload("first-cpu", "cpu-x86", "vcpu", 1, 1),
                                                           _workload("video-frames", "tpu-v5e", "tpu_chip", 1, 1)))
    serve.start(http_options={"host": "127.0.0.1", "port": SERVE_PORT})  # as the tests above left it
    with pytest.raises(InputError, match="video-frames.*jax-tpu.*cannot serve"):
        deploy_plan(plan, load_catalog(), http_port=SERVE_PORT)
    assert not {"first-cpu", "video-frames"} & set(serve.status().applications)  # refused before starting any
