"""Shared fixtures: one real local Ray per test session, isolated caches, quiet Ray, free ports, test tiers.

Ray settings follow ../shared/reference/ray-notes.md: token auth and usage
stats off, a small object store, and CUDA_VISIBLE_DEVICES unset.

Tiers: every test module has one entry in TIERS (its pytest markers). `make test-fast`
runs `-m core`; `make test` runs every tier. A module missing from TIERS is a collection
error that says where to add it.
"""
from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.pop("CUDA_VISIBLE_DEVICES", None)
# Ray's own folder for this run, so an embedded Ray started here (in this process or a CLI
# subprocess) never attaches to another Ray on the machine: without an address, ray.init()
# joins the cluster recorded in <temp>/ray/ray_current_cluster. Short, because Ray's socket
# paths must fit in 107 bytes.
if "RAY_TMPDIR" not in os.environ:
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    atexit.register(shutil.rmtree, os.environ["RAY_TMPDIR"], ignore_errors=True)

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
# Workloads-file settings for tests whose expected plans were worked out for the replicas alone:
# no serving path (no proxy, no per-request floor) and whole-vCPU replicas.
REPLICAS_ONLY = {"serving_path": str(DATA / "serving_path_none.json"), "cpu_sharing": False}

# What each test module really uses, as pytest markers (registered in pyproject.toml):
#   core     pure and fast: no Ray, no Serve, no browser, no real model built or measured
#            (CLI subprocesses that start no Ray are fine)
#   models   builds, trains or measures the real torch models on this CPU: pure, but tens of seconds
#   ray      starts Ray (the session's `ray_local`, a simulated cluster, or `planner profile`)
#   serve    deploys on Ray Serve
#   ui       drives the Streamlit app through AppTest
#   browser  drives `planner ui` in a real Chromium (installed by `make test`)
#   e2e      a whole user path: the demo, the README, `ray job submit`
TIERS: dict[str, tuple[str, ...]] = {
    "test_autoscaling": ("core",),
    "test_backends": ("core",),
    "test_history": ("core",),
    "test_layout": ("core",),
    "test_batch_schedule": ("core",),
    "test_catalog": ("core",),
    "test_cluster_view": ("core",),
    "test_cli_plan": ("core",),
    "test_drift": ("core",),
    "test_energy": ("core",),
    "test_estimator": ("core",),
    "test_feedback": ("core",),
    "test_importers": ("core",),
    "test_inventory": ("core",),
    "test_latency": ("core",),
    "test_objectives": ("core",),
    "test_optimizer": ("core",),
    "test_packing": ("core",),
    "test_pinned_plans": ("core",),
    "test_profiles_csv": ("core",),
    "test_regression": ("core",),
    "test_report": ("core",),
    "test_schedule_cli": ("core",),
    "test_serving_path": ("core",),
    "test_sharing": ("core",),
    "test_store": ("core",),
    "test_variants": ("core",),
    "test_workloads": ("core",),
    "test_models": ("models",),
    "test_faults": ("ray",),
    "test_jax_backend": ("ray",),
    "test_profile_features": ("ray",),
    "test_profiler": ("ray",),
    "test_placement": ("ray", "serve"),
    "test_serving": ("serve",),
    "test_waits": ("ray", "serve"),
    "test_ui": ("ui",),
    "test_ui_deploy": ("ui", "serve"),
    "test_ui_browser": ("browser",),
    "test_demo": ("e2e",),
    "test_jobs": ("e2e",),
    "test_readme": ("e2e",),
}


class UntieredModule(pytest.Module):
    """Stands in for a test module that has no entry in TIERS: collecting it fails with the fix."""

    def collect(self):
        raise self.CollectError(
            f"{self.path.name} has no test tier. To fix: add {self.path.stem!r}: (\"core\",) to TIERS in "
            "tests/conftest.py, or the tiers it really uses (models, ray, serve, ui, browser, e2e; see the comment "
            "there)")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With `-m`, modules whose tiers cannot match are not even imported (`-m core` imports no Ray or JAX test)."""
    tiers = TIERS.get(collection_path.stem)
    expression = config.getoption("markexpr")
    if tiers is None or not expression:
        return None
    from _pytest.mark.expression import Expression  # pytest's own parser of -m, as it applies it to each test

    return True if not Expression.compile(expression).evaluate(lambda name, **_: name in tiers) else None


def pytest_pycollect_makemodule(module_path: Path, parent):
    if module_path.stem not in TIERS:
        return UntieredModule.from_parent(parent, path=module_path)
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for tier in TIERS.get(item.path.stem, ()):
            item.add_marker(tier)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, chosen by the OS; bind it soon, another process may take it later."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Serve keeps the HTTP port it first started on for the life of its Ray instance, so every test
# that deploys on the session's Ray (`ray_local`) uses this one, picked once per run.
SESSION_SERVE_PORT = free_port()


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Trained MLP weights go to a per-session folder, never the user's ~/.cache.
    os.environ["PLANNER_CACHE_DIR"] = str(tmp_path_factory.mktemp("planner-cache"))


@pytest.fixture(scope="session")
def ray_local():
    """A real embedded Ray (4 logical CPUs so a few Serve replicas fit on a 2-core machine)."""
    from cluster.runtime import ensure_ray, shutdown_ray

    ensure_ray(num_cpus=4)
    yield
    shutdown_ray()


@pytest.fixture(scope="session")
def catalog():
    from planner.core.catalog import load_catalog

    return load_catalog()
