"""Renderings of a plan: rich for terminals, markdown for pull requests, JSON for machines.

Filled by the reconciler issue.
"""
