# syntax=docker/dockerfile:1
#
# reconcile's container image: the CronJob of deploy/ runs it. Built and published by CI
# elsewhere (see "Run it as a CronJob" in README.md); tests/deploy/test_image.py checks here
# what can be checked without a container engine (hadolint, the pinned base, the wheel, the
# user, the paths).
#
#   docker build -t REGISTRY/reconcile:VERSION --build-arg VERSION=VERSION --build-arg REVISION="$(git rev-parse HEAD)" .
#
# The root filesystem is read-only at run time (the CronJob says so): reconcile writes only to
# /var/lib/reconcile (the PersistentVolumeClaim: audit trail and cache) and /tmp (an emptyDir).

# python:3.11.14-slim-bookworm, pinned by the digest of its multi-architecture index (amd64 and
# arm64). Renovate or a person updates tag and digest together.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

# ---- stage 1: build the wheel of this work tree, and the wheels of its dependencies ----
FROM ${PYTHON_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas/ schemas/
COPY reconcile/ reconcile/
# reconcile's wheel (hatchling from pyproject.toml, schemas included as reconcile/_schemas) and
# one wheel for every dependency, so the runtime stage installs with no index and no compiler.
RUN pip wheel --wheel-dir /wheels . \
    && test "$(find /wheels -name 'reconcile-*.whl' | wc -l)" -eq 1

# ---- stage 2: the runtime ----
FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="reconcile" \
      org.opencontainers.image.description="Declarative GitOps reconciliation for container images: retention, promotion by digest, deploys and rollbacks, with a hash-chained audit trail." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.14-slim-bookworm" \
      org.opencontainers.image.base.digest="sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d"

# git reads the repo-of-record (RECONCILE_REPO may be an https or ssh URL: openssh-client for the
# latter). Versions are not pinned (hadolint DL3008) on purpose: the base digest fixes the Debian
# release, and pinning a package version breaks the build as soon as a security update replaces
# it in the archive; a rebuild picks up bookworm's fixes.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client \
    && rm -rf /var/lib/apt/lists/*

# A fixed non-root user: UID/GID 10001, the runAsUser/runAsGroup/fsGroup of deploy/base/cronjob.yaml.
RUN groupadd --system --gid 10001 reconcile \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/reconcile \
       --shell /usr/sbin/nologin reconcile

# Only the wheels built above; --no-index: nothing else comes from the network.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/reconcile-*.whl \
    && reconcile --version

# Everything reconcile and git write goes to mounted paths: /var/lib/reconcile (the PVC) and
# /tmp (an emptyDir). HOME matters to git (it looks for ~/.gitconfig and ~/.ssh there).
ENV HOME=/var/lib/reconcile \
    XDG_CACHE_HOME=/var/lib/reconcile/cache \
    RECONCILE_CACHE_DIR=/var/lib/reconcile/cache \
    RECONCILE_AUDIT_DB=/var/lib/reconcile/audit/reconcile-audit.db \
    TMPDIR=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 10001:10001
WORKDIR /var/lib/reconcile
ENTRYPOINT ["reconcile"]
CMD ["--help"]
