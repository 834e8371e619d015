"""Stage 2, plan: candidates per workload, the CP-SAT formulation and its LP path, sharing,
packing, autoscaling, explanations, Pareto sweeps and the batch-job schedule.

May import planner.core (and OR-Tools, numpy); never torch, Ray, Serve or Streamlit.
"""
