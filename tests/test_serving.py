"""Ray Serve deployment of a plan and verification under load: real local Ray, real HTTP."""
from __future__ import annotations

import json
import time

import pytest
import requests

from planner import api
from planner.core.profiles import ProfileRow
from planner.core.workloads import Workload, WorkloadSet
from tests.conftest import SESSION_SERVE_PORT

PORT = SESSION_SERVE_PORT


def _rows() -> list[ProfileRow]:
    return [ProfileRow("mlp_digits", "cpu-x86", "fp32", b, 0.2 * b, 0.5 * b, 2000.0 * b, 0.01, 0.001, 0.0,
                       "imported", source_detail="hand-written test rows") for b in (1, 4)]


@pytest.fixture(scope="module")
def deployed(ray_local, catalog):
    workloads = WorkloadSet((Workload("digits", "mlp_digits", "online", ("fp32",), 0.0, 2, qps=40, p99_ms=200),
                             Workload("never-here", "transformer_small", "online", ("fp32",), 0.0, 1, qps=5,
                                      p99_ms=200)),
                            serving_overhead_ms=10.0)
    # The second workload's only profile is on an H100, which this machine does not have.
    rows = _rows() + [ProfileRow("transformer_small", "h100", "fp32", 1, 0.1, 0.2, 1e4, 1.0, 0.0, 0.0, "imported")]
    plan = api.plan(workloads, rows, catalog=catalog)
    assert plan.ok and plan.workload("never-here").chosen.hardware == "h100"
    deployment = api.deploy(plan, catalog=catalog, http_port=PORT)
    yield plan, deployment
    from ray import serve
    for name in deployment.urls:
        serve.delete(name)


def test_plan_replicas_and_batching_reach_serve(deployed):
    from ray import serve
    plan, deployment = deployed
    digits = plan.workload("digits")
    assert deployment.urls["digits"] == f"http://127.0.0.1:{PORT}/digits"
    status = serve.status().applications["digits"]
    assert status.status == "RUNNING"
    replicas = status.deployments["digits"].replica_states.get("RUNNING", 0)
    assert replicas == digits.chosen.replicas == 2


def test_workloads_on_missing_hardware_are_skipped_with_reason(deployed):
    _, deployment = deployed
    assert "never-here" not in deployment.urls
    assert "never-here" in deployment.skipped and "has none" in deployment.skipped["never-here"]


def test_http_inference_returns_the_models_prediction(deployed):
    from planner.models import get_model
    spec = get_model("mlp_digits")
    x, y = spec.calibration()
    resp = requests.post(f"http://127.0.0.1:{PORT}/digits", json={"inputs": x[0].tolist()}, timeout=30)
    assert resp.status_code == 200
    body = resp.json()
    assert body["precision"] == "fp32" and len(body["outputs"]) == 10
    assert max(range(10), key=body["outputs"].__getitem__) == int(y[0])


def test_binary_body_gets_the_same_prediction_as_json(deployed):
    from planner.models import get_model
    x, _ = get_model("mlp_digits").calibration()
    url = f"http://127.0.0.1:{PORT}/digits"
    as_json = requests.post(url, json={"inputs": x[0].tolist()}, timeout=30).json()["outputs"]
    resp = requests.post(url, data=x[0].numpy().astype("<f4").tobytes(), timeout=30,
                         headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 200
    assert resp.json()["outputs"] == pytest.approx(as_json, rel=1e-6)


def test_binary_body_of_the_wrong_size_names_the_expected_bytes(deployed):
    resp = requests.post(f"http://127.0.0.1:{PORT}/digits", data=b"\0" * 100, timeout=30,
                         headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 422
    assert "expects 256" in resp.json()["error"] and "tobytes" in resp.json()["fix"]


@pytest.mark.parametrize("payload, status, needle", [
    (json.dumps({"inputs": [[0.0] * 64, [0.0] * 3]}), 400, "could not read inputs"),
    (json.dumps({"inputs": [0.0] * 63}), 422, "expects [64]"),
    ("not json", 400, "could not read inputs"),
    (json.dumps({"x": 1}), 400, "could not read inputs"),
    (json.dumps({"inputs": [0.0] * 300_000}), 413, "exceeds"),
])
def test_bad_requests_get_a_4xx_with_a_message(deployed, payload, status, needle):
    resp = requests.post(f"http://127.0.0.1:{PORT}/digits", data=payload, timeout=30)
    assert resp.status_code == status
    assert needle in resp.json()["error"]


def test_verify_drives_poisson_load_and_measures(deployed):
    plan, deployment = deployed
    result = api.verify(plan, deployment, duration_s=3.0, warmup_requests=3)
    (row,) = result.workloads
    assert row.name == "digits" and row.errors == 0
    assert row.requests == round(40 * 3.0)
    assert row.p50_ms is not None and 0 < row.p50_ms <= row.p99_ms
    assert row.throughput_rps == pytest.approx(40, rel=0.1)
    assert result.skipped and result.skipped[0][0] == "never-here"
    assert result.source.startswith("measured over HTTP")
    # Batch sizes from Serve's own metrics over the window: every request ran in some batch.
    assert row.planned_batch_size == plan.workload("digits").chosen.batch_size
    assert row.batches is not None and row.batches >= 1
    assert 1.0 <= row.mean_batch_size <= row.planned_batch_size
    assert row.batches >= row.requests / row.planned_batch_size


def test_batch_counts_parse_serve_histograms():
    from cluster.metrics import parse_batch_counts

    # Two replicas' cumulative buckets, as Ray exports them (its _sum is wrong and is ignored).
    text = """# TYPE ray_serve_actual_batch_size histogram
ray_serve_actual_batch_size_bucket{application="a",replica="r1",le="1.0"} 3.0
ray_serve_actual_batch_size_bucket{application="a",replica="r1",le="2.0"} 5.0
ray_serve_actual_batch_size_bucket{application="a",replica="r1",le="+Inf"} 5.0
ray_serve_actual_batch_size_count{application="a",replica="r1"} 5.0
ray_serve_actual_batch_size_sum{application="a",replica="r1"} 2.5
ray_serve_actual_batch_size_bucket{application="a",replica="r2",le="1.0"} 0.0
ray_serve_actual_batch_size_bucket{application="a",replica="r2",le="2.0"} 1.0
ray_serve_actual_batch_size_bucket{application="a",replica="r2",le="+Inf"} 1.0
ray_serve_actual_batch_size_count{application="a",replica="r2"} 1.0
ray_serve_actual_batch_size_sum{application="a",replica="r2"} 1.5
"""
    counts = parse_batch_counts(text)["a"]
    assert counts.batches == 6.0 and counts.mean_batch_size == (3 * 1 + 3 * 2) / 6
    assert (counts - counts).batches == 0 and (counts - counts).mean_batch_size is None


def test_serve_config_file_round_trip(deployed, catalog, tmp_path):
    """The written config passes Ray's own schema, and its import path + args build a working app."""
    import yaml
    from ray import serve
    from ray.serve.schema import ServeDeploySchema

    from cluster.serve_config import write_serve_config
    from planner.models import get_model

    plan, _ = deployed
    path = write_serve_config(tmp_path / "serve_config.yaml", plan, catalog, http_port=PORT)
    config = yaml.safe_load(path.read_text())
    ServeDeploySchema.model_validate(config)  # raises on anything `serve deploy` would reject
    apps = {a["name"]: a for a in config["applications"]}
    assert set(apps) == {"digits", "never-here"}  # the file is for a cluster: every workload is in it
    digits = apps["digits"]["deployments"][0]
    chosen = plan.workload("digits").chosen
    assert digits["num_replicas"] == chosen.replicas
    assert digits["user_config"]["max_batch_size"] == chosen.batch_size
    assert apps["never-here"]["deployments"][0]["ray_actor_options"]["accelerator_type"] == "H100"
    # Apply the digits application from the file as `serve deploy` would: import path, args, options.
    from ray._common.utils import import_attr
    app = import_attr(apps["digits"]["import_path"])(apps["digits"]["args"])
    serve.run(app, name="digits-from-config", route_prefix="/digits-from-config",
              blocking=False)
    try:
        x, _ = get_model("mlp_digits").calibration()
        resp = requests.post(f"http://127.0.0.1:{PORT}/digits-from-config", json={"inputs": x[0].tolist()},
                             timeout=30)
        assert resp.status_code == 200 and len(resp.json()["outputs"]) == 10
    finally:
        serve.delete("digits-from-config")


def test_deploy_history_rolls_back_a_failed_deploy_and_on_request(deployed, catalog, tmp_path):
    from dataclasses import replace

    from ray import serve

    from planner.core.errors import ClusterError
    from planner.deployment.history import DeployHistory

    history = tmp_path / "deployments"
    good = api.plan(WorkloadSet((Workload("hist", "mlp_digits", "online", ("fp32",), 0.0, 1, qps=5, p99_ms=500),),
                                serving_overhead_ms=10.0), _rows(), catalog=catalog)
    api.deploy(good, catalog=catalog, http_port=PORT, history=history)
    try:
        # Version 2 serves a model the replica cannot load: Serve cannot start it.
        broken = replace(good, workloads=tuple(replace(w, model="no_such_model") for w in good.workloads))
        with pytest.raises(ClusterError, match="version 2 failed its health checks.*rolled back to version 1"):
            api.deploy(broken, catalog=catalog, http_port=PORT, history=history)
        log = DeployHistory(history)
        assert [(e.version, e.status) for e in log.events()] == [(1, "healthy"), (2, "failed"), (3, "healthy")]
        resp = requests.post(f"http://127.0.0.1:{PORT}/hist", json={"inputs": [0.0] * 64}, timeout=30)
        assert resp.status_code == 200 and resp.json()["model"] == "mlp_digits"  # version 1 serves again
        # A healthy version 4 with batching changed, then a rollback on request restores version 3's.
        batched = replace(good, workloads=tuple(replace(w, chosen=replace(w.chosen, batch_size=4))
                                                for w in good.workloads))
        api.deploy(batched, catalog=catalog, http_port=PORT, history=history)
        version, _ = api.rollback(history, catalog=catalog, http_port=PORT)
        assert version == 3 and log.events()[-1].note == "rollback to v3"
        assert log.plan(log.events()[-1].version).workloads[0].chosen.batch_size == good.workloads[0].chosen.batch_size
        # Applications this history does not manage (the module's "digits") are left alone.
        assert serve.status().applications["digits"].status == "RUNNING"
    finally:
        serve.delete("hist")


def test_watch_flags_live_demand_above_the_plan(deployed):
    """Real traffic far above the planned qps, read back from Serve's own HTTP metrics."""
    import threading

    from cluster.loadgen import drive
    from planner.models import get_model

    plan, deployment = deployed
    # Judged against a plan for 10 qps: the offered 120 qps is 12x that, so even a CPU-starved
    # 2-vCPU run that serves a fraction of it is well above the plan (at 40 qps planned, a slow
    # full-suite run once served < 48 qps and read as latency drift only).
    from dataclasses import replace
    plan = replace(plan, workloads=tuple(replace(w, qps_target=10.0) if w.name == "digits" else w
                                         for w in plan.workloads))
    body = json.dumps({"inputs": get_model("mlp_digits").example_input(1)[0].tolist()}).encode()
    # The load outlasts the window on both sides: it needs a moment to start (warm-up requests), and
    # Serve's counters reach the metrics endpoint up to a report interval (1 s) late.
    load = threading.Thread(target=drive, args=([(deployment.urls["digits"], body, 120.0)], 8.0))
    load.start()
    try:
        time.sleep(1.5)
        findings = api.watch(plan, window_s=4.0)
    finally:
        load.join()
    kinds = {(f.workload, f.kind) for f in findings}
    assert ("digits", "demand") in kinds and ("digits", "errors") not in kinds


def test_replica_crash_under_load_is_survived_and_counted(deployed):
    """FAULT: one of digits' two replica processes is killed mid-load; Serve replaces it."""
    import threading
    import time

    import ray
    from ray import serve

    plan, deployment = deployed
    results = {}
    load = threading.Thread(target=lambda: results.setdefault("r", api.verify(plan, deployment, duration_s=6.0)))
    load.start()
    time.sleep(2.0)
    replicas = [a for a in ray.util.list_named_actors(all_namespaces=True)
                if a["name"].startswith("SERVE_REPLICA::digits#")]
    assert len(replicas) == 2
    ray.kill(ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]), no_restart=True)
    load.join()
    (row,) = results["r"].workloads
    # The verdict accounts for every request: answered ones, plus failures counted (not hidden).
    assert row.requests == round(40 * 6.0)
    assert row.requests - row.errors > 0.8 * row.requests  # the surviving replica kept serving
    assert (row.errors > 0) == ("failed requests" in row.notes)
    deadline = time.time() + 60
    while time.time() < deadline:  # the controller brings the deployment back to its planned size
        state = serve.status().applications["digits"].deployments["digits"]
        if state.replica_states.get("RUNNING", 0) == 2 and state.status == "HEALTHY":
            break
        time.sleep(1.0)
    assert serve.status().applications["digits"].deployments["digits"].replica_states.get("RUNNING", 0) == 2


def test_cpu_replicas_planned_to_share_one_core_run_on_their_shares(ray_local, catalog):
    """Two light workloads and one vCPU: the plan gives each replica part of the core (with the
    processor-sharing stretch in its prediction), Serve runs each on that fraction, both answer."""
    from ray import serve
    from ray.serve.context import _get_global_client

    from planner.core.serving_path import ASSUMED

    workloads = WorkloadSet(tuple(Workload(name, "mlp_digits", "online", ("fp32",), 0.0, 1, qps=15, p99_ms=200)
                                  for name in ("share-a", "share-b")),
                            inventory={"cpu-x86": 1}, serving_path=ASSUMED)
    plan = api.plan(workloads, _rows(), catalog=catalog)
    assert plan.ok, plan.infeasible
    shares = {w.name: w.chosen.units_per_replica for w in plan.workloads}
    assert all(0 < s < 1 for s in shares.values()) and all(w.chosen.replicas == 1 for w in plan.workloads)
    # Both replicas and the HTTP proxy's reserved CPU fit in the one vCPU.
    assert sum(w.chosen.devices for w in plan.workloads) + plan.ingress.proxy_vcpus <= 1.0 + 1e-9
    for w in plan.workloads:
        batch = next(t for t in w.chosen.prediction if t[0] == "batch")
        assert "sharing a core" in batch[3]
    deployment = api.deploy(plan, catalog=catalog, http_port=PORT)
    try:
        details = _get_global_client().get_serve_details()["applications"]
        for name, share in shares.items():
            config = details[name]["deployments"][name]["deployment_config"]
            assert config["ray_actor_options"]["num_cpus"] == pytest.approx(share)
        result = api.verify(plan, deployment, duration_s=3.0, warmup_requests=3)
    finally:
        for name in shares:
            serve.delete(name)
    for row in result.workloads:
        assert row.errors == 0 and row.requests == 45 and row.p99_ms is not None
        assert row.prediction_ratio == pytest.approx(row.p99_ms / row.predicted_p99_ms)
