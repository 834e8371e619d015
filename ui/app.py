"""The planning UI: `planner ui --port 8501` (or `streamlit run ui/app.py`).

Five pages (tabs), each a thin layer over the same Python API a user calls
(planner/api.py); the tables and frames they show are built by the pure
functions in ui/*_view.py. A PlannerError (bad YAML, an unknown model, a profile
CSV with a bad cell) is shown as one message naming the field and the fix, never
as a traceback.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

# `streamlit run ui/app.py` puts ui/ (not the repository) on sys.path.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import altair as alt  # noqa: E402 - after the path fix above
import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from planner.core.catalog import Catalog, load_catalog  # noqa: E402
from planner.core.errors import InputError, PlannerError  # noqa: E402
from planner.core.plan import Plan, plan_to_dict  # noqa: E402
from planner.core.profiles import ProfileRow  # noqa: E402
from planner.core.workloads import PRECISIONS, WorkloadSet  # noqa: E402
from ui import plan_view, profiles_view, workloads_view  # noqa: E402

PAGES = ("Workloads", "Profiles", "Plan", "Deploy and verify", "Reports")
# Line style per profile source, fixed so an estimate never looks like a measurement.
SOURCE_DASHES = (["measured", "estimated", "imported"], [[1, 0], [6, 4], [2, 2]])


@st.cache_resource
def _catalog() -> Catalog:
    return load_catalog()


@st.cache_resource
def _default_rows() -> tuple[ProfileRow, ...]:
    return tuple(profiles_view.default_rows(_catalog()))


def show_error(exc: BaseException) -> None:
    if isinstance(exc, InputError):
        st.error(f"`{exc.field}` = `{exc.value!r}`: {exc.problem}.  \n**To fix:** {exc.fix}")
    elif isinstance(exc, PlannerError):
        st.error(str(exc))
    else:  # a bug, or Ray failing underneath: still one message, not a traceback
        st.error(f"unexpected {type(exc).__name__}: {exc}")


def guarded(page: Callable[..., object], *args: object) -> object:
    """Run one page; any error becomes a message on that page, and the other pages still render."""
    try:
        return page(*args)
    except Exception as exc:  # noqa: BLE001 - the UI boundary: show it, never a traceback
        show_error(exc)
        return None


# --- 1. Workloads -------------------------------------------------------------------------

def _set_text(text: str) -> None:
    st.session_state["yaml_editor"] = text
    st.session_state["table_version"] = st.session_state.get("table_version", 0) + 1


def _use_upload() -> None:
    upload = st.session_state.get("yaml_upload")
    if upload is not None:
        _set_text(upload.getvalue().decode("utf-8", errors="replace"))


def _apply_table_edits(key: str, rows: list[dict]) -> None:
    edited = workloads_view.apply_table_edits(rows, st.session_state.get(key) or {})
    _set_text(workloads_view.text_with_rows(st.session_state.get("yaml_editor", ""), edited))


def workloads_page(catalog: Catalog) -> WorkloadSet | None:
    st.subheader("Workloads")
    left, right = st.columns([1, 2])
    left.button("Load example workloads", key="load_example", on_click=_set_text,
                args=(workloads_view.example_text(),), type="primary")
    right.file_uploader("or upload a workloads YAML", type=["yaml", "yml"], key="yaml_upload",
                        on_change=_use_upload)
    text = st.text_area("Workloads YAML (edit, then click outside or press Ctrl+Enter)", key="yaml_editor",
                        height=320)
    if not text.strip():
        st.info("Load the example workloads, upload a file, or paste YAML above (layout: docs/formats.md).")
        return None
    workloads = None
    try:
        workloads = workloads_view.parse_text(text, catalog)
        st.success(f"Valid: {workloads_view.summary(workloads)}")
    except PlannerError as exc:
        show_error(exc)
    rows = workloads_view.table_rows(text)
    if rows:
        st.markdown("**Table editor**: edits are written back into the YAML (comments are dropped) "
                    "and validated again.")
        key = f"workload_table_{st.session_state.get('table_version', 0)}"
        frame = pd.DataFrame(rows, columns=list(workloads_view.TABLE_COLUMNS))
        for column in ("qps", "p99_ms", "items", "deadline_h", "max_quality_loss", "min_replicas"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
        st.data_editor(frame, key=key, num_rows="dynamic", hide_index=True, on_change=_apply_table_edits,
                       args=(key, rows), column_config={
                           "kind": st.column_config.SelectboxColumn(options=["online", "batch", "training"]),
                           "items": st.column_config.NumberColumn(format="%d"),
                           "min_replicas": st.column_config.NumberColumn(format="%d"),
                           "precisions": st.column_config.TextColumn(help=f"comma-separated: {', '.join(PRECISIONS)}")})
    st.radio("Inventory source", list(workloads_view.INVENTORY_SOURCES), key="inventory_source", horizontal=True,
             format_func=lambda s: f"{s}: {workloads_view.INVENTORY_SOURCES[s]}")
    if st.session_state.get("inventory_source") == "cluster":
        st.text_input("Ray cluster address", value="auto", key="ray_address")
    return workloads


# --- 2. Profiles --------------------------------------------------------------------------

def _line_chart(data: pd.DataFrame, column: str, title: str) -> alt.Chart:
    """One line per hardware x precision; the dash says whether it was measured, estimated or imported."""
    return alt.Chart(data, title=title).mark_line(point=True).encode(
        x=alt.X("batch_size:Q", scale=alt.Scale(type="log", base=2), title="batch size"),
        y=alt.Y(f"{column}:Q", scale=alt.Scale(type="log"), title=title),
        color=alt.Color("hardware:N"), shape=alt.Shape("precision:N"),
        strokeDash=alt.StrokeDash("source:N", scale=alt.Scale(domain=SOURCE_DASHES[0], range=SOURCE_DASHES[1])),
        detail="series:N",
        tooltip=["hardware", "precision", "source", "batch_size", column, "source_detail"],
    ).properties(height=320)


def _run_profiling(models: list[str], precisions: list[str], batch_sizes: list[int]) -> None:
    from planner import api

    total = len(models) * len(precisions)
    bar = st.progress(0.0, text="starting the local Ray cluster...")
    done = [0]

    def on_progress(outcome: object) -> None:
        done[0] += 1
        job = outcome.job  # type: ignore[attr-defined]
        bar.progress(done[0] / total, text=f"{job.model} {job.precision} on {job.hardware} ({done[0]}/{total})")

    result = api.profile(models, precisions=precisions, batch_sizes=batch_sizes, on_progress=on_progress)
    st.session_state["profiled_rows"] = [*st.session_state.get("profiled_rows", []), *result.rows]
    st.success(f"{result.points_measured} points measured ({result.ray}); {result.points_skipped} skipped")
    for error in result.errors:
        st.warning(error)


def profiles_page(catalog: Catalog) -> list[ProfileRow]:
    st.subheader("Profiles")
    uploaded: list[ProfileRow] = []
    upload = st.file_uploader("Add a profiles CSV (the planner's format)", type=["csv"], key="profiles_upload")
    if upload is not None:
        try:
            uploaded = profiles_view.rows_from_upload(upload.getvalue(), upload.name, catalog)
        except PlannerError as exc:
            show_error(exc)
    rows = profiles_view.merge(_default_rows(), uploaded, st.session_state.get("profiled_rows", []))
    counts = profiles_view.source_counts(rows)
    for column, (source, meaning) in zip(st.columns(len(counts)), profiles_view.SOURCE_MEANING.items()):
        column.metric(f"{source} rows", counts.get(source, 0), help=meaning)
    st.caption("Default: GPU rows measured on H100/H200 (profiles/reference), roofline estimates for L4, T4, "
               "A100, L40S and TPU v5e, and the committed CPU profile. "
               "Lines: solid measured, dashed estimated, dotted imported.")
    table = profiles_view.frame(rows)
    models = sorted(table["model"].unique())
    if not models:
        st.info("No profile rows.")
        return rows
    model = st.selectbox("Model", models, key="profile_model")
    data = profiles_view.chart_frame(table, model)
    left, right = st.columns(2)
    options = sorted(data["hardware"].unique())
    hardware = left.multiselect("Hardware", options, key="profile_hardware",
                                default=profiles_view.default_pick(options, profiles_view.DEFAULT_HARDWARE))
    options = sorted(data["precision"].unique())
    precisions = right.multiselect("Precisions", options, key="profile_precision",
                                   default=profiles_view.default_pick(options, profiles_view.DEFAULT_PRECISIONS))
    data = data[data["hardware"].isin(hardware) & data["precision"].isin(precisions)]
    left, right = st.columns(2)
    left.altair_chart(_line_chart(data, "latency_p99_ms", "p99 latency per batch (ms)"))
    right.altair_chart(_line_chart(data, "throughput_rps", "throughput per replica (items/s)"))
    left, right = st.columns(2)
    left.altair_chart(_line_chart(data[data["energy_j_per_item"] > 0], "energy_j_per_item", "energy per item (J)"))
    quality = data.groupby(["hardware", "precision", "source"], as_index=False)["quality_loss"].max()
    right.altair_chart(alt.Chart(quality, title="quality loss vs fp32").mark_bar().encode(
        x="precision:N", y="quality_loss:Q", color="hardware:N", xOffset="hardware:N",
        opacity=alt.Opacity("source:N", legend=alt.Legend(title="source")),
        tooltip=["hardware", "precision", "source", "quality_loss"]).properties(height=320))
    st.dataframe(data.drop(columns=["series"]), hide_index=True)
    with st.expander("Profile on the local Ray cluster"):
        from planner.models import builtin_model_names
        chosen = st.multiselect("Models", builtin_model_names(), default=["mlp_digits"], key="profile_models")
        precisions = st.multiselect("Precisions", list(PRECISIONS), default=["fp32", "bf16"], key="profile_precisions")
        sizes = st.text_input("Batch sizes", "1,4,16", key="profile_batch_sizes")
        if st.button("Start profiling run", key="start_profiling"):
            try:
                batch_sizes = [int(s) for s in sizes.split(",") if s.strip()]
            except ValueError:
                raise InputError("batch sizes", sizes, "not a comma-separated list of integers",
                                 "write e.g. 1,4,16") from None
            _run_profiling(chosen, precisions, batch_sizes)
    return rows


# --- 3. Plan ------------------------------------------------------------------------------

def _what_if_controls(workloads: WorkloadSet, rows: list[ProfileRow]) -> plan_view.WhatIf:
    st.markdown("**What if**: every change re-plans.")
    a, b, c = st.columns(3)
    qps_scale = a.slider("demand (qps) x", 0.25, 4.0, 1.0, 0.25, key="qps_scale")
    p99_scale = b.slider("p99 targets x", 0.25, 4.0, 1.0, 0.25, key="p99_scale")
    budget = c.number_input("budget $/h (0: none)", min_value=0.0, value=workloads.budget_usd_per_hour or 0.0,
                            step=0.5, key="budget")
    a, b, c = st.columns(3)
    usd_per_kwh = a.number_input("electricity $/kWh", min_value=0.0, value=workloads.electricity.usd_per_kwh,
                                 step=0.01, format="%.4f", key="usd_per_kwh")
    carbon = b.number_input("carbon price $/kg CO2e (> 0: cost+carbon)", min_value=0.0,
                            value=workloads.electricity.carbon_usd_per_kg, step=0.05, key="carbon")
    options = sorted({r.hardware for r in rows})
    allowed = c.multiselect("allowed hardware", options, default=options, key="allowed_hardware")
    return plan_view.WhatIf(qps_scale, p99_scale, budget or None, usd_per_kwh, carbon,
                            None if set(allowed) == set(options) else tuple(allowed))


def _inventory_source() -> tuple[str, str | None]:
    source = st.session_state.get("inventory_source", "file")
    return source, (st.session_state.get("ray_address") or None) if source == "cluster" else None


def _planned(workloads: WorkloadSet, rows: list[ProfileRow], what_if: plan_view.WhatIf) -> Plan:
    """The plan for these inputs, re-solved only when one of them changed."""
    from planner import api

    source, address = _inventory_source()
    key = (st.session_state.get("yaml_editor"), what_if, source, address, len(rows), hash(tuple(r.key for r in rows)))
    cached = st.session_state.get("plan_cache")
    if cached is None or cached[0] != key:
        plan = api.plan(plan_view.apply_what_if(workloads, what_if), plan_view.allowed_rows(rows, what_if),
                        catalog=_catalog(), time_limit_s=plan_view.UI_TIME_LIMIT_S, inventory=source,
                        address=address)
        st.session_state["plan_cache"] = cached = (key, plan)
    return cached[1]


def _pareto(workloads: WorkloadSet, rows: list[ProfileRow], what_if: plan_view.WhatIf, axis: str) -> list[dict]:
    from planner import api
    from planner.planning.optimizer import SolverSettings
    from planner.planning.pareto import cost_vs_energy, cost_vs_p99

    source, address = _inventory_source()
    context = api.planning_context(plan_view.apply_what_if(workloads, what_if), source, _catalog(), address)
    settings = SolverSettings(time_limit_s=1.0, num_workers=2)
    sweep = cost_vs_p99 if axis == "p99" else cost_vs_energy
    return plan_view.pareto_rows(sweep(context, plan_view.allowed_rows(rows, what_if), _catalog(), settings=settings))


def _show_pareto(workloads: WorkloadSet, rows: list[ProfileRow], what_if: plan_view.WhatIf) -> None:
    st.markdown("**Pareto frontier**: the cheapest plan at each p99 scale, or under each power cap.")
    left, right = st.columns(2)
    for column, axis, label in ((left, "p99", "Sweep cost vs p99"), (right, "energy", "Sweep cost vs energy")):
        if column.button(label, key=f"pareto_{axis}"):
            st.session_state["pareto"] = (axis, _pareto(workloads, rows, what_if, axis))
    if "pareto" not in st.session_state:
        return
    axis, points = st.session_state["pareto"]
    data = pd.DataFrame(points)
    x = "value:Q" if axis == "p99" else "wall_power_w:Q"
    title = "p99 target scale" if axis == "p99" else "power at the wall (W)"
    feasible = data.dropna(subset=["usd_per_hour"])
    st.altair_chart(alt.Chart(feasible, title=f"cost vs {title}").mark_line(point=True).encode(
        x=alt.X(x, title=title), y=alt.Y("usd_per_hour:Q", title="$/h"),
        tooltip=list(data.columns)).properties(height=260))
    st.dataframe(data, hide_index=True)


def plan_page(workloads: WorkloadSet | None, rows: list[ProfileRow]) -> Plan | None:
    st.subheader("Plan")
    if workloads is None:
        st.info("Load valid workloads on the Workloads page first.")
        return None
    what_if = _what_if_controls(workloads, rows)
    if st.button("Plan", key="plan", type="primary"):
        st.session_state["planned"] = True
    if not st.session_state.get("planned"):
        st.info("Press Plan to choose hardware, precision, batch size and replicas for every workload.")
        return None
    plan = _planned(workloads, rows, what_if)
    for column, (label, value) in zip(st.columns(4), plan_view.headline(plan).items()):
        column.metric(label, value)
    for diagnosis in plan.infeasible:
        st.warning(f"not placed: {diagnosis}")
    if not plan.workloads:
        return plan
    st.table(pd.DataFrame(plan_view.plan_rows(plan)).set_index("workload"))
    st.caption("source: " + "; ".join(plan_view.source_details(plan)))
    costs = pd.DataFrame(plan_view.cost_breakdown(plan))
    st.altair_chart(alt.Chart(costs, title="cost breakdown ($/h)").mark_bar().encode(
        x=alt.X("usd_per_hour:Q", title="$/h"), y=alt.Y("workload:N", sort="-x"), color="hardware:N",
        tooltip=["workload", "hardware", "usd_per_hour"]).properties(height=40 + 30 * len(costs)))
    with st.expander("Why each workload got its configuration"):
        for name, lines in plan_view.explanation_lines(plan).items():
            st.markdown(f"**{name}**")
            st.text("\n".join(lines))
    _show_pareto(workloads, rows, what_if)
    return plan


# --- 4. Deploy and verify -----------------------------------------------------------------

def deploy_page(plan: Plan | None) -> None:
    st.subheader("Deploy and verify")
    if plan is None or not plan.workloads:
        st.info("Make a plan on the Plan page first.")
        return
    st.caption("Deploys the plan's locally deployable workloads on Ray Serve (an embedded local Ray unless an "
               "address is given), drives each with Poisson load at its planned qps, and shows the measurement "
               "beside the prediction.")
    a, b, c = st.columns(3)
    address = a.text_input("Ray address (blank: embedded local Ray)", "", key="deploy_address")
    port = b.number_input("Serve HTTP port", 1024, 65535, 8000, key="deploy_port")
    duration = c.slider("seconds of load per workload", 3, 30, 8, key="verify_duration")
    if st.button("Deploy and verify", key="deploy", type="primary"):
        from planner import api
        with st.status("Deploying on Ray Serve...", expanded=True) as status:
            deployment = api.deploy(plan, catalog=_catalog(), address=address or None, http_port=int(port))
            st.write(f"deployed: {', '.join(deployment.urls) or 'nothing deployable here'}")
            for name, reason in deployment.skipped.items():
                st.write(f"not deployed here: {name}: {reason}")
            status.update(label="Driving load...")
            st.session_state["verification"] = api.verify(plan, deployment, duration_s=float(duration))
            st.session_state["verified_plan"] = plan  # a later re-plan must not borrow these measurements
            status.update(label="Verified", state="complete")
    result = st.session_state.get("verification")
    if result is not None:
        st.markdown(f"**Predicted vs measured** ({result.source})")
        st.table(pd.DataFrame(plan_view.verification_rows(result)).set_index("workload"))
        for name, reason in result.skipped:
            st.caption(f"not deployed here: {name}: {reason}")


# --- 5. Reports ---------------------------------------------------------------------------

def reports_page(plan: Plan | None) -> None:
    st.subheader("Reports")
    if plan is None or not plan.workloads:
        st.info("Make a plan on the Plan page first.")
        return
    verification = (st.session_state.get("verification")
                    if st.session_state.get("verified_plan") is plan else None)
    st.caption("Costs per workload, per hardware type and in total, in every format `planner report` writes"
               + (", with plan vs actual from the last verification." if verification
                  else "; deploy and verify the plan to add plan vs actual."))
    formats = plan_view.report_formats()
    for column, fmt in zip(st.columns(len(formats) + 1), formats):
        try:
            data = plan_view.report_bytes(plan, fmt, verification)
        except Exception as exc:  # noqa: BLE001 - one format failing (e.g. a missing writer) spares the others
            column.warning(f"{fmt}: {exc}")
            continue
        column.download_button(f"Download {fmt}", data, file_name=f"cost_report.{fmt}", key=f"download_{fmt}",
                               mime=plan_view.MIME_TYPES.get(fmt, "application/octet-stream"), on_click="ignore")
    st.download_button("Download plan.json", json.dumps(plan_to_dict(plan), indent=2), file_name="plan.json",
                       mime="application/json", key="download_plan", on_click="ignore")
    from dataclasses import asdict

    from planner.reports.cost_report import cost_rows
    st.dataframe(pd.DataFrame([asdict(r) for r in cost_rows(plan)]), hide_index=True)


def main() -> None:
    st.set_page_config(page_title="cost-planner", layout="wide")
    st.title("cost-planner")
    catalog = _catalog()
    tabs = dict(zip(PAGES, st.tabs(list(PAGES))))
    with tabs["Workloads"]:
        workloads = guarded(workloads_page, catalog)
    with tabs["Profiles"]:
        rows = guarded(profiles_page, catalog) or []
    with tabs["Plan"]:
        plan = guarded(plan_page, workloads, rows)
    with tabs["Deploy and verify"]:
        guarded(deploy_page, plan)
    with tabs["Reports"]:
        guarded(reports_page, plan)


main()
