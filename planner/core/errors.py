"""The project's exceptions.

Every user-facing failure is a ``PlannerError``: its message says what is wrong
and how to fix it, and the CLI prints it as one line (no traceback). Anything
else that escapes is a bug.
"""
from __future__ import annotations


class PlannerError(Exception):
    """Base of every user-facing error: the message says what is wrong and how to fix it."""


class InputError(PlannerError):
    """A value in a user's file or argument is wrong; names the field, the value and the fix."""

    def __init__(self, field: str, value: object, problem: str, fix: str):
        self.field, self.value, self.problem, self.fix = field, value, problem, fix
        super().__init__(f"{field}={value!r}: {problem}. To fix: {fix}")


class UnknownModelError(InputError):
    pass


class UnknownHardwareError(InputError):
    pass


class UnsupportedPrecision(PlannerError):
    pass


class InfeasiblePlanError(PlannerError):
    """No plan satisfies every workload; carries the per-workload diagnoses."""

    def __init__(self, message: str, diagnoses: list[str]):
        self.diagnoses = diagnoses
        super().__init__(message)


class ClusterError(PlannerError):
    """Ray, Serve or the load generator could not do what was asked."""


class MeterError(PlannerError):
    """An energy meter (NVML, RAPL) could not be opened or read; ``select_meter`` falls back to the estimate."""

    def __init__(self, reason: str, fix: str):
        self.reason, self.fix = reason, fix
        super().__init__(f"{reason}. To fix: {fix}")
