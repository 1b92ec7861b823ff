"""reconcile: declarative GitOps reconciliation for container images."""

__version__ = "0.1.0"
