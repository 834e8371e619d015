"""Stage 1, profile: measure models (timing windows, energy meters, efficiency), store and
import profile rows, flag regressions, and estimate rows for hardware nobody measured.

May import planner.core and planner.models; device-specific execution lives in planner.backends.
"""
