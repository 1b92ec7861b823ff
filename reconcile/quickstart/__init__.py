"""``reconcile quickstart``: a self-contained sandbox to try reconcile on, with no server.

``images`` builds realistic OCI images (layers, configs, multi-arch indexes, signatures) from a
seed and writes them through the registry adapter; ``sandbox`` lays out the CI registry, the
repo-of-record and prod's manifests in one directory.
"""
