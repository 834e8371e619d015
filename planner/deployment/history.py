"""Plan versions: every deploy records the plan it applied, so it can be rolled back.

A history folder (default ``.planner/deployments``, or ``--history DIR``) holds
``v0001.json``, ``v0002.json``, ... (the plans, as plan.json) and
``history.jsonl``, one line per event: ``{"version", "at", "status", "note"}``
with status ``healthy`` (deployed and passed its health checks), ``failed``
(did not), or ``rolled_back_to`` (a rollback redeployed an earlier version,
which is then recorded again as a new healthy version). Files are written
atomically, so an interrupted deploy never leaves a half-written version.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from planner.core.errors import InputError
from planner.core.plan import Plan, plan_from_dict, plan_to_dict
from planner.core.io import write_atomically

DEFAULT_HISTORY = Path(".planner") / "deployments"


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

    def previous_healthy(self) -> int | None:
        """The healthy version before the current (latest healthy) one, or None."""
        healthy = self.healthy_versions()
        return healthy[-2] if len(healthy) >= 2 else None

    def latest_healthy(self) -> int | None:
        healthy = self.healthy_versions()
        return healthy[-1] if healthy else None
