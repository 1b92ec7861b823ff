"""The planner: a pure, deterministic function of (desired, observed, audit history) to an
ordered list of actions, each with its reason. No I/O here.

Filled by the reconciler issue.
"""
