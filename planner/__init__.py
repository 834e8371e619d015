"""Cost-aware workload scheduler and hardware planner for ML serving.

The Python API (see planner.api): ``profile``, ``plan``, ``deploy``, ``verify``,
``report``, ``schedule``. Imported lazily so ``import planner`` does not pull in torch or Ray.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["profile", "plan", "deploy", "verify", "report", "schedule", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("profile", "plan", "deploy", "verify", "report", "schedule"):
        from planner import api
        return getattr(api, name)
    raise AttributeError(f"module 'planner' has no attribute {name!r}")
