"""Deploy history (planner/deployment/history.py): versions, and the roll-back policy around a deploy.

The policy takes the Serve calls as arguments; here they are plain functions that record what they
were asked to do (tests/test_serving.py runs the same policy against a real Serve).
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from planner.core.errors import ClusterError, InputError
from planner.deployment.history import DeployHistory, deploy_recorded
from tests.test_report import fixed_plan


class FakeServe:
    """Deploys anything except plans whose first workload's model is `broken`; remembers every call."""

    def __init__(self):
        self.deployed: list[str] = []
        self.removed: list[tuple[str, str]] = []

    def deploy(self, plan):
        model = plan.workloads[0].model
        if model == "broken":
            raise ClusterError("Serve could not start the replica")
        self.deployed.append(model)
        return model

    def health_check(self, deployed) -> None:
        if deployed == "sick":
            raise ClusterError("probe request failed")

    def remove_workloads_not_in(self, current, restored) -> None:
        self.removed.append((current.workloads[0].model, restored.workloads[0].model))


def _plan(model: str):
    plan = fixed_plan()
    return replace(plan, workloads=(replace(plan.workloads[0], model=model),) + plan.workloads[1:])


def _deploy(log: DeployHistory, serve: FakeServe, model: str):
    return deploy_recorded(log, _plan(model), serve.deploy, serve.health_check, serve.remove_workloads_not_in)


def test_a_healthy_deploy_is_recorded_as_the_next_version(tmp_path):
    log, serve = DeployHistory(tmp_path / "h"), FakeServe()
    assert _deploy(log, serve, "mlp_digits") == "mlp_digits"
    assert [(e.version, e.status) for e in log.events()] == [(1, "healthy")]
    assert log.plan(1).workloads[0].model == "mlp_digits"


@pytest.mark.parametrize("bad", ["broken", "sick"])   # Serve cannot start it, or its probe fails
def test_a_failed_deploy_is_recorded_and_the_last_healthy_version_deployed_again(tmp_path, bad):
    log, serve = DeployHistory(tmp_path / "h"), FakeServe()
    _deploy(log, serve, "mlp_digits")
    with pytest.raises(ClusterError, match=r"version 2 failed its health checks.*rolled back to version 1 "
                                           r"\(now recorded as version 3\)"):
        _deploy(log, serve, bad)
    assert [(e.version, e.status) for e in log.events()] == [(1, "healthy"), (2, "failed"), (3, "healthy")]
    assert serve.removed == [(bad, "mlp_digits")] and serve.deployed[-1] == "mlp_digits"
    assert log.events()[-1].note == "automatic rollback to v1 after v2 failed"


def test_a_failed_first_deploy_has_nothing_to_roll_back_to(tmp_path):
    log, serve = DeployHistory(tmp_path / "h"), FakeServe()
    with pytest.raises(ClusterError, match="recorded as version 1; no healthy version to roll back to"):
        _deploy(log, serve, "broken")
    assert [(e.version, e.status) for e in log.events()] == [(1, "failed")] and not serve.removed


def test_the_rollback_target_is_the_healthy_version_before_the_current_one(tmp_path):
    log, serve = DeployHistory(tmp_path / "h"), FakeServe()
    _deploy(log, serve, "mlp_digits")
    with pytest.raises(InputError, match="has no earlier healthy version"):
        log.rollback_target()
    _deploy(log, serve, "resnet_small")
    assert log.rollback_target() == 1 and log.rollback_target(2) == 2
