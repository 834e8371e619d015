"""The JAX harness on JAX's real CPU backend, and its TPU refusal (no TPU exists here).

The last tests start their own heterogeneous Ray cluster with a FAKE TPU node (Ray
resources only, no chips), so the session's `ray_local` is shut down for this module
and restored afterwards.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("jax")
# JAX warns on every os.fork() once imported; Ray starts its processes with fork+exec, which is safe.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")

from cluster.profiling import ProfileJob  # noqa: E402
from planner.backends.jax_tpu import (  # noqa: E402
    check_jax_sees,
    jax_devices_summary,
    jax_quality_loss,
    mlp_digits_outputs,
    profile_jax_point,
    tpu_task_options,
)
from planner.core.errors import InputError, PlannerError, UnsupportedPrecision  # noqa: E402
from planner.profiling.profiler import QUICK_BUDGET as QUICK  # noqa: E402


def test_jax_sees_its_cpu_backend():
    summary = jax_devices_summary()
    assert summary["platform"] == "cpu" and summary["count"] >= 1 and summary["device_kinds"]
    assert summary["framework_version"].startswith("jax ")


def test_profile_jax_point_measures_the_mlp_on_the_cpu_backend(catalog):
    row = profile_jax_point("mlp_digits", "fp32", 8, catalog.get("cpu-x86"), budget=QUICK)
    assert row.source == "measured" and row.hardware == "cpu-x86" and row.batch_size == 8
    assert 0 < row.latency_p50_ms <= row.latency_p90_ms <= row.latency_p99_ms
    assert row.samples >= 10 and row.throughput_rps > 0 and row.memory_gib > 0
    assert "jax" in row.framework_version and row.runtime_version.startswith("jaxlib")
    assert row.device_fingerprint and row.code_version and row.quality_loss == 0.0
    assert row.energy_source.startswith(("measured", "estimated")) and row.energy_j_per_item >= 0
    assert "compile" in row.source_detail and "excluded from timing" in row.source_detail
    assert row.flops_per_item == 2 * (64 * 256 + 256 * 256 + 256 * 10) and row.achieved_tflops > 0


def test_jax_fp32_outputs_match_the_torch_mlp():
    """Same trained weights carried over: logits agree to float32 rounding."""
    import torch

    from planner.models import get_model

    spec = get_model("mlp_digits")
    x, _ = spec.calibration()
    x = x[:5]
    with torch.inference_mode():
        expected = spec.build()(x).numpy()
    got = mlp_digits_outputs(x.numpy(), "fp32")
    assert got.dtype == np.float32 and got.shape == (5, 10)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_bf16_runs_in_bf16_and_loses_little_accuracy():
    fp32 = mlp_digits_outputs(np.eye(64, dtype=np.float32)[:4], "fp32")
    bf16 = mlp_digits_outputs(np.eye(64, dtype=np.float32)[:4], "bf16")
    assert bf16.dtype == np.float32 and not np.array_equal(fp32, bf16)  # really computed in bf16
    result = jax_quality_loss("bf16")
    assert result.metric == "accuracy_drop" and result.samples > 100
    assert result.reference_value > 0.9
    assert 0.0 <= result.quality_loss <= 0.05


def test_unsupported_models_and_precisions_name_what_is_supported(catalog):
    with pytest.raises(PlannerError, match="mlp_digits"):
        profile_jax_point("resnet_small", "fp32", 1, catalog.get("cpu-x86"))
    with pytest.raises(UnsupportedPrecision, match="fp32, bf16"):
        profile_jax_point("mlp_digits", "int8", 1, catalog.get("cpu-x86"))


def test_refuses_tpu_hardware_when_jax_sees_no_tpu(catalog):
    with pytest.raises(PlannerError, match="refusing to record CPU timings as TPU timings") as err:
        check_jax_sees(catalog.get("tpu-v5e"))
    message = str(err.value)
    assert "TPU-V5LITEPOD" in message and "['cpu']" in message and "To fix: install jax[tpu]" in message
    with pytest.raises(PlannerError, match="refusing"):
        profile_jax_point("mlp_digits", "bf16", 1, catalog.get("tpu-v5e"))


def test_refuses_gpu_hardware(catalog):
    with pytest.raises(PlannerError, match="torch profiler"):
        check_jax_sees(catalog.get("h100"))


def test_tpu_task_options(catalog):
    assert tpu_task_options(catalog.get("tpu-v5e"), 4) == {
        "num_cpus": 1, "resources": {"TPU": 4}, "accelerator_type": "TPU-V5LITEPOD"}
    for chips in (0, 3, 16, 0.5):
        with pytest.raises(InputError, match="1, 2, 4, 8"):
            tpu_task_options(catalog.get("tpu-v5e"), chips)
    with pytest.raises(InputError, match="not a TPU"):
        tpu_task_options(catalog.get("cpu-x86"), 1)


def test_run_jax_profile_job_without_ray(catalog):
    from cluster.tpu_profiling import run_jax_profile_job

    ok = run_jax_profile_job(ProfileJob("mlp_digits", "fp32", "cpu-x86", (1, 4)), catalog.get("cpu-x86"), QUICK)
    assert not ok.error and [r.batch_size for r in ok.rows] == [1, 4]
    # A 1e-6 ms cap is below any real batch: the first size is measured, the rest pruned.
    capped = run_jax_profile_job(ProfileJob("mlp_digits", "fp32", "cpu-x86", (1, 2, 4), max_batch_latency_ms=1e-6),
                                 catalog.get("cpu-x86"), QUICK)
    assert [r.batch_size for r in capped.rows] == [1] and [p.status for p in capped.skipped] == ["pruned"] * 2
    unsupported = run_jax_profile_job(ProfileJob("resnet_small", "fp32", "cpu-x86", (1,)), catalog.get("cpu-x86"))
    assert unsupported.rows == () and unsupported.skipped[0].status == "unsupported"
    refused = run_jax_profile_job(ProfileJob("mlp_digits", "bf16", "tpu-v5e", (1, 8)), catalog.get("tpu-v5e"))
    assert refused.rows == () and refused.skipped_batch_sizes == (1, 8) and "refusing" in refused.error


# ---------------------------------------------------------------- a Ray cluster with a fake TPU node

@pytest.fixture(scope="module")
def fake_tpu_cluster():
    """Head (1 CPU) + a FAKE TPU v5e host: Ray resources only, there are no TPU chips on it.

    Replaces the session's Ray for this module and restores it afterwards, so tests
    that run later and rely on `ray_local` still find a live Ray.
    """
    import ray
    from ray.cluster_utils import Cluster

    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    was_initialised = ray.is_initialized()
    if was_initialised:
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args=dict(
        num_cpus=1, include_dashboard=False, object_store_memory=100 * 2**20))
    # FAKE TPU node: it advertises 4 v5e chips to Ray's scheduler but has none.
    fake_tpu_node = cluster.add_node(num_cpus=1, resources={"TPU": 4, "accelerator_type:TPU-V5LITEPOD": 1},
                                     object_store_memory=100 * 2**20, memory=2 * 2**30)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        yield fake_tpu_node
    finally:
        ray.shutdown()
        cluster.shutdown()
        if was_initialised:
            from cluster.runtime import ensure_ray

            ensure_ray(num_cpus=4)


def _job_and_node(job: ProfileJob, hardware, budget=None) -> tuple[str, object]:
    """Task body: the JAX job plus the id of the node it ran on."""
    import ray

    from cluster.tpu_profiling import run_jax_profile_job

    return ray.get_runtime_context().get_node_id(), run_jax_profile_job(job, hardware, budget)


def test_tpu_task_lands_on_the_fake_tpu_node_and_refuses_while_cpu_task_measures(fake_tpu_cluster, catalog):
    import ray

    tpu, cpu = catalog.get("tpu-v5e"), catalog.get("cpu-x86")
    body = ray.remote(_job_and_node)
    # Both submitted before either is awaited: they run side by side on the two nodes.
    tpu_ref = body.options(**tpu_task_options(tpu, 4), max_retries=0).remote(
        ProfileJob("mlp_digits", "bf16", "tpu-v5e", (1, 8)), tpu)
    cpu_ref = body.options(num_cpus=1, max_retries=0).remote(
        ProfileJob("mlp_digits", "fp32", "cpu-x86", (2,)), cpu, QUICK)
    (tpu_node, refused), (_, measured) = ray.get([tpu_ref, cpu_ref], timeout=120)

    assert tpu_node == fake_tpu_cluster.node_id                  # (a) placed by the TPU resources
    assert refused.rows == () and refused.skipped_batch_sizes == (1, 8)
    assert "refusing" in refused.error                           # (b) no CPU timings under a TPU's name
    assert tpu_node in refused.error and "TPU ids" in refused.error
    assert not measured.error and measured.rows[0].source == "measured" and measured.rows[0].hardware == "cpu-x86"


def test_inventory_cluster_reads_the_nodes_and_plans_on_them_as_owned(fake_tpu_cluster, catalog):
    from planner import api
    from planner.core.profiles import ProfileRow
    from planner.core.workloads import Workload, WorkloadSet

    # Rows written here stand for profiles (one CPU, one TPU); the inventory is what is under test.
    rows = [ProfileRow("m", "cpu-x86", "fp32", 1, 5.0, 6.0, 200.0, 0.1, 0.01, 0.0, "imported", units_per_replica=1),
            ProfileRow("m", "tpu-v5e", "bf16", 8, 2.0, 3.0, 4000.0, 1.0, 0.001, 0.0, "estimated")]
    from planner.core.serving_path import NO_SERVING_PATH
    # Planned for the replicas alone (no HTTP proxies to place): the inventory is what is under test.
    ws = WorkloadSet((Workload("w", "m", "online", ("fp32", "bf16"), 0.0, 1, qps=1000.0, p99_ms=500.0),),
                     inventory={"cpu-x86": 1}, serving_path=NO_SERVING_PATH)
    plan = api.plan(ws, rows, catalog, inventory="cluster")
    assert plan.inventory == {"cpu-x86": 2, "tpu-v5e": 4}  # head + node vCPUs; the FAKE node's 4 chips
    assert plan.ok and plan.workloads[0].chosen.hardware == "tpu-v5e"  # the CPUs cannot carry 1000 qps
    assert plan.workloads[0].chosen.usd_per_hour == 0.0  # owned: only energy, and its energy is unknown
    assert plan.provenance["inventory_source"] == "cluster"
