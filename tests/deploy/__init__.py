"""The container image and the kustomize package of deploy/, checked without a container engine
or a cluster: hadolint, the wheel the image installs, ``kubectl kustomize`` and the Kubernetes
OpenAPI schemas (kubernetes-validate)."""
