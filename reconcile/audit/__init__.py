"""The audit trail: an append-only, hash-chained SQLite store and its views.

Filled by the audit issue.
"""
