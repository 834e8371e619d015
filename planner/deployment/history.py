"""Plan versions: every deploy records the plan it applied, so it can be rolled back.

A history folder (default ``.planner/deployments``, or ``--history DIR``) holds
``v0001.json``, ``v0002.json``, ... (the plans, as plan.json) and
``history.jsonl``, one line per event: ``{"version", "at", "status", "note"}``
with status ``healthy`` (deployed and passed its health checks), ``failed``
(did not), or ``rolled_back_to`` (a rollback redeployed an earlier version,
which is then recorded again as a new healthy version). Files are written
atomically, so an interrupted deploy never leaves a half-written version.

`deploy_recorded` is the policy around a deploy (record it; on failed health checks record
the failure and restore the last healthy version); the Serve calls it makes are passed in,
so the policy stays pure and the `cluster` package stays the only one that touches Serve.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, TypeVar

from planner.core.errors import ClusterError, InputError
from planner.core.io import write_atomically
from planner.core.plan import Plan, plan_from_dict, plan_to_dict

DEFAULT_HISTORY = Path(".planner") / "deployments"
Deployed = TypeVar("Deployed")


@dataclass(frozen=True)
class Event:
    version: int
    at: str
    status: str
    note: str = ""


class DeployHistory:
    def __init__(self, path: str | Path = DEFAULT_HISTORY):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise InputError("--history", str(self.path), "is a file, not a folder", "pass a folder")

    @property
    def log_path(self) -> Path:
        return self.path / "history.jsonl"

    def events(self) -> list[Event]:
        if not self.log_path.exists():
            return []
        return [Event(**json.loads(line)) for line in self.log_path.read_text().splitlines() if line.strip()]

    def _append(self, event: Event) -> None:
        lines = [json.dumps(e.__dict__) for e in self.events()] + [json.dumps(event.__dict__)]
        write_atomically(self.log_path, "\n".join(lines) + "\n")

    def record(self, plan: Plan, status: str, note: str = "") -> int:
        """Store the plan as the next version with its status; returns the version number."""
        self.path.mkdir(parents=True, exist_ok=True)
        version = max((e.version for e in self.events()), default=0) + 1
        write_atomically(self.path / f"v{version:04d}.json", json.dumps(plan_to_dict(plan), indent=2) + "\n")
        self._append(Event(version, datetime.now(timezone.utc).isoformat(timespec="seconds"), status, note))
        return version

    def plan(self, version: int) -> Plan:
        path = self.path / f"v{version:04d}.json"
        if not path.exists():
            raise InputError("version", version, f"not in {self.path}", "list versions with `planner rollback --list`")
        return plan_from_dict(json.loads(path.read_text()), str(path))

    def healthy_versions(self) -> list[int]:
        return [e.version for e in self.events() if e.status == "healthy"]

    def rollback_target(self, version: int | None = None) -> int:
        """`version`, or else the healthy version before the current one; InputError when there is none."""
        target = version if version is not None else self.previous_healthy()
        if target is None:
            raise InputError("--history", str(self.path), "has no earlier healthy version to roll back to",
                             "deploy with --history first; list versions with `planner rollback --list`")
        return target

    def previous_healthy(self) -> int | None:
        """The healthy version before the current (latest healthy) one, or None."""
        healthy = self.healthy_versions()
        return healthy[-2] if len(healthy) >= 2 else None

    def latest_healthy(self) -> int | None:
        healthy = self.healthy_versions()
        return healthy[-1] if healthy else None


def deploy_recorded(log: DeployHistory, plan: Plan, deploy: Callable[[Plan], Deployed],
                    health_check: Callable[[Deployed], None],
                    remove_workloads_not_in: Callable[[Plan, Plan], None]) -> Deployed:
    """Deploy `plan` and record it as the next version: healthy, or failed and rolled back.

    `deploy` applies a plan, `health_check` probes what it deployed, and both raise ClusterError
    on failure. Then the failure is recorded, the workloads only the failed plan has are removed,
    the last healthy version is deployed again and recorded as a new healthy version, and
    ClusterError says so (with nothing healthy to go back to, it says that instead).
    """
    try:
        deployed = deploy(plan)
        health_check(deployed)
    except ClusterError as exc:
        failed = log.record(plan, "failed", str(exc))
        last = log.latest_healthy()
        if last is None:
            raise ClusterError(f"{exc} (recorded as version {failed}; no healthy version to roll back to)") from None
        restored = log.plan(last)
        remove_workloads_not_in(plan, restored)
        deploy(restored)
        version = log.record(restored, "healthy", f"automatic rollback to v{last} after v{failed} failed")
        raise ClusterError(f"deploy of version {failed} failed its health checks ({exc}); rolled back to "
                           f"version {last} (now recorded as version {version}). To fix: see `planner rollback "
                           f"--list --history {log.path}` and the Serve logs") from None
    log.record(plan, "healthy")
    return deployed
