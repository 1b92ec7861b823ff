"""The executor: runs a plan's actions through the adapters, one audit record before and after
each.

Filled by the reconciler issue.
"""
