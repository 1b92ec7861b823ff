"""Adapters that read the world: registries (OCI Distribution API, OCI image layouts) and
clusters (Kubernetes API). The only code that talks to the network.

Filled by the registry and cluster issues.
"""
