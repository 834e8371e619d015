"""Stages 3-4, deploy and verify, the pure half: plan versions, verification statistics and
verify.json, the feedback of measured overhead into planning, and drift. The Ray and Serve
half is the `cluster` package.

May import planner.core.
"""
