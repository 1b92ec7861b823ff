"""Conformance with peer tools: their documented and tested selection and retention cases, each
with its reconcile translation and reconcile's result computed by the real loader and planner.
``python -m tests.conformance.table > docs/conformance.md`` renders the table."""
