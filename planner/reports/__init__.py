"""Stage 5, report: the cost report's content (pure), its six file formats, and terminal tables.

May import planner.core, planner.planning and planner.deployment.
"""
