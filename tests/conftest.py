"""Shared fixtures: one real local Ray per test session, isolated caches, quiet Ray.

Ray settings follow ../shared/reference/ray-notes.md: token auth and usage
stats off, a small object store, and CUDA_VISIBLE_DEVICES unset.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.pop("CUDA_VISIBLE_DEVICES", None)

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


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
