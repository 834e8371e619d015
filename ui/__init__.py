"""The planning UI (`planner ui`): a thin Streamlit layer over the planner's Python API.

- ui/app.py: the Streamlit script (pages as tabs); only layout and widgets.
- ui/workloads_view.py, ui/profiles_view.py, ui/plan_view.py: pure functions that turn the
  API's records into the tables and frames the pages show (no Streamlit imports), so they
  are tested like any other planner code.
"""
