"""Thin adapters from the planner's pure core to Ray, Ray Serve and HTTP load."""
