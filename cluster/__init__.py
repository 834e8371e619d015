"""Thin adapters from the planner's pure core to Ray, Ray Serve and HTTP load."""
from cluster.runtime import apply_serve_fast_path_env

# Before anything imports ray.serve: Serve reads its request-path settings once, at import.
apply_serve_fast_path_env()
