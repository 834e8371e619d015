"""Plans pinned across refactors: the same hardware, precision, batch size, replicas and $/h per
workload for examples/workloads.yaml and variants of it, planned from the committed profiles.

A change that should move a plan regenerates the golden file on purpose
(`python -m tests.pinned_plans`) and says why in its commit.
"""
from __future__ import annotations

import json

from tests.pinned_plans import GOLDEN, plan_scenarios


def test_plans_match_the_pinned_plans(tmp_path):
    pinned = json.loads(GOLDEN.read_text())
    now = json.loads(json.dumps(plan_scenarios(tmp_path), sort_keys=True))
    assert sorted(now) == sorted(pinned)
    for name in pinned:
        assert now[name] == pinned[name], name
