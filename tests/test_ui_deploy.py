"""The UI's Deploy and verify page, pressed for real: Ray Serve deploys the example plan's CPU
workloads, Poisson load drives them over HTTP, and the page shows predicted beside measured;
the Reports page then carries plan vs actual."""
from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from tests.conftest import REPO, SESSION_SERVE_PORT


def test_deploy_and_verify_page_measures_the_plan(ray_local) -> None:
    from ray import serve

    at = AppTest.from_file(str(REPO / "ui" / "app.py"), default_timeout=240)
    at.run()
    at.button(key="load_example").click().run()
    at.button(key="plan").click().run()
    plan = at.session_state["plan_cache"][1]
    try:
        at.number_input(key="deploy_port").set_value(SESSION_SERVE_PORT)  # the port Serve keeps once the suite started it
        at.slider(key="verify_duration").set_value(3)
        at.button(key="deploy").click().run()
        assert not at.exception, at.exception
        assert not at.error, [e.value for e in at.error]
        verification = at.session_state["verification"]
        measured = {w.name for w in verification.workloads}
        local = {w.name for w in plan.workloads if w.chosen.hardware == "cpu-x86"}
        assert measured == local and all(w.errors == 0 and w.p50_ms for w in verification.workloads)
        assert any("Predicted vs measured" in m.value for m in at.markdown)
        from ui import plan_view
        report = json.loads(plan_view.report_bytes(plan, "json", verification))
        assert {w["name"] for w in report["plan_vs_actual"]["workloads"]} == local
    finally:
        for name in list(serve.status().applications):
            if name in {w.name for w in plan.workloads}:
                serve.delete(name)
