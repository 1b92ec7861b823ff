"""The quickstart sandbox: a CI registry, a repo-of-record and a cluster's manifests, in one
directory, with no server.

    DIR/
      registries/ci/team-a/{web,api}   an OCI image-layout registry ("ci"), one layout per repository
      registries/{staging,prod}/       two more, holding the team-a/web build each stage got before
                                       (125, 124); the pipeline promotes build-126 into them
      policies/                        the repo-of-record (git): Registries, Cluster, RetentionPolicy,
                                       PromotionPolicy, DeployPolicies and an approval file
      manifests.git/                   what staging and prod run, as a (bare) GitOps repository says it
      audit.db, cache/                 written by the reconcile commands run in the sandbox

The policies follow the project's example repo-of-record (``policies/``), pointed at the
sandbox: the registry is ``oci-layout:DIR/registries/ci`` and the cluster ``prod`` is known by its
manifests. The images are seeded so that a plan shows every kind of decision: releases kept by
version, builds kept by count or age, moving tags kept by pattern, a build kept only because prod
runs it, a signature pruned with its image and one kept with it, a tag removed from a digest that
stays, and two tags going with one digest. The pipeline ``web`` promotes the newest build (by its
number) to staging, then, approved, to prod, each deployed by committing its digest to the manifests
(GitOps write-back), then rolled back in prod to the build it ran before (still in prod's registry);
api stays as it is in prod, so what prod runs keeps being protected.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import git

from reconcile.adapters.registry import RegistryError, copy_image, open_registry
from reconcile.adapters.registry.content import cosign_tag
from reconcile.policy.model import Registry
from reconcile.quickstart.images import ImageSpec, ImageWriter, revision_of, rfc3339

MARKER = ".reconcile-quickstart"
REGISTRY_HOST = "registry.ci.example.com"  # how the manifests name the ci registry's images
SOURCE = "https://git.example.com/team-a/{app}"
AUTHOR = git.Actor("reconcile quickstart", "quickstart@reconcile.invalid")

DAY, HOUR = timedelta(days=1), timedelta(hours=1)


class SandboxError(Exception):
    """Building the sandbox failed; ``stage`` says at which step."""

    def __init__(self, stage: str, problem: str) -> None:
        super().__init__(f"{stage}: {problem}")
        self.stage = stage


class DirectoryInUse(Exception):
    """DIR cannot take a sandbox: it holds one already (rebuilt only with force), or something else."""


@dataclass(frozen=True)
class Seed:
    """One pushed image: its tags (the first names it), its age, and what it is."""

    tags: tuple[str, ...]
    age: timedelta
    multi_arch: bool = False  # an index for linux/amd64 and linux/arm64
    signed: bool = False  # a cosign signature tagged sha256-<hex>.sig
    commit_tag: bool = False  # also tagged sha-<7 hex of its revision>, as CI does for commits

    @property
    def name(self) -> str:
        return self.tags[0]


# What CI pushed over the past weeks. With the sandbox's RetentionPolicy (releases: the 3 highest;
# builds: the 3 newest, or younger than 7 days; latest) and prod running web build-124 and api
# build-58, a plan prunes web v1.0.0 (and its signature), v1.1.0, build-118, build-119, build-120
# (two tags, one digest), build-121 and build-122 (with the platform manifests of the two multi-arch
# ones among them), and api v2.3.0 and build-57; it keeps the rest,
# build-58 only because prod runs it, and v1.3.0's signature with it; build-126's sha- tag is
# untagged (untagOthers: its digest stays for build-126, and layouts can delete a tag alone). The pipeline promotes
# web build-126 (the highest build number) to staging and prod; api is not in it, so build-58 stays
# protected.
SEEDS: dict[str, tuple[Seed, ...]] = {
    "team-a/web": (
        Seed(("v1.0.0",), 84 * DAY, multi_arch=True, signed=True),
        Seed(("v1.1.0",), 63 * DAY, multi_arch=True),
        Seed(("v1.2.0",), 42 * DAY, multi_arch=True),
        Seed(("v1.2.1",), 27 * DAY, multi_arch=True),
        Seed(("v1.3.0", "latest"), 9 * DAY, multi_arch=True, signed=True),
        Seed(("build-118",), 33 * DAY),
        Seed(("build-119",), 26 * DAY),
        Seed(("build-120",), 19 * DAY, commit_tag=True),
        Seed(("build-121",), 12 * DAY),
        Seed(("build-122",), 8 * DAY),
        Seed(("build-123",), 5 * DAY),
        Seed(("build-124",), 3 * DAY),
        Seed(("build-125",), 26 * HOUR),
        Seed(("build-126",), 2 * HOUR, commit_tag=True),  # its sha- tag shares a kept digest: untagged
    ),
    "team-a/api": (
        Seed(("v2.3.0",), 50 * DAY),
        Seed(("v2.4.0",), 30 * DAY),
        Seed(("v2.4.1",), 16 * DAY),
        Seed(("v2.5.0",), 4 * DAY),
        Seed(("build-57",), 20 * DAY),
        Seed(("build-58",), 13 * DAY),
        Seed(("build-59",), 9 * DAY),
        Seed(("build-60",), 6 * DAY),
        Seed(("build-61", "latest"), 1 * DAY),
    ),
}
# What prod runs: web through its Deployment, api through a kustomization `images:` override.
RUNNING = {"team-a/web": "build-124", "team-a/api": "build-58"}
STAGING_RUNS = "build-125"  # what staging's web Deployment runs before the pipeline deploys it
PROMOTED = "build-126"  # the newest candidate of the pipeline's build stage: what it promotes
APPROVER = "alice"


@dataclass(frozen=True)
class Seeded:
    """An image as pushed: every tag on it (signature tags included) and its digest."""

    repository: str
    tags: tuple[str, ...]
    digest: str
    created: datetime
    kind: str  # "index" (multi-arch), "image" or "signature"


@dataclass(frozen=True)
class Sandbox:
    root: Path
    images: tuple[Seeded, ...] = ()
    running: dict[str, Seeded] = field(default_factory=dict)  # repository -> the image prod runs
    policies_commit: str = ""

    @property
    def registry(self) -> Path:
        return self.root / "registries" / "ci"

    def stage_registry(self, name: str) -> Path:
        """The OCI layout registry of a later stage of the pipeline (``staging``, ``prod``)."""
        return self.root / "registries" / name

    @property
    def policies(self) -> Path:
        return self.root / "policies"

    @property
    def manifests(self) -> Path:
        """A bare git repository, as a GitOps tool would watch: write-back pushes to it."""
        return self.root / "manifests.git"

    @property
    def audit_db(self) -> Path:
        return self.root / "audit.db"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def tagged(self, repository: str) -> list[Seeded]:
        return [image for image in self.images if image.repository == repository]


# --- the directory --------------------------------------------------------------------------------

def is_sandbox(root: Path) -> bool:
    """Whether ``root`` holds a sandbox this command built (its marker file says so)."""
    try:
        marker = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("builtBy") == "reconcile quickstart"


def prepare(root: Path, *, force: bool, now: datetime) -> None:
    """Make ``root`` an empty sandbox directory. A previous sandbox is emptied only with ``force``;
    a directory with anything else in it is never touched, force or not."""
    if any(c.isspace() for c in str(root.absolute())):
        # oci-layout:PATH URLs cannot hold whitespace (the Registry schema refuses it).
        raise DirectoryInUse(f"{root.absolute()}: the sandbox path must not contain whitespace")
    if root.exists() and not root.is_dir():
        raise DirectoryInUse(f"{root} exists and is not a directory")
    if root.is_dir() and any(root.iterdir()):
        if not is_sandbox(root):
            raise DirectoryInUse(f"{root} is not empty and is not a quickstart sandbox; nothing was changed there "
                                 "(--force only rebuilds a previous sandbox): choose a new or empty DIR")
        if not force:
            raise DirectoryInUse(f"{root} already holds a quickstart sandbox; rebuild it with --force (its images, "
                                 "policy edits and audit trail are replaced), or choose another DIR")
        for child in root.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    root.mkdir(parents=True, exist_ok=True)
    # First, so that a build that fails half-way can be rebuilt with --force.
    (root / MARKER).write_text(json.dumps({"builtBy": "reconcile quickstart", "builtAt": rfc3339(now)}) + "\n")


@contextmanager
def _stage(name: str) -> Iterator[None]:
    try:
        yield
    except (OSError, RegistryError, git.GitError, ValueError, RuntimeError) as e:
        raise SandboxError(name, str(e) or type(e).__name__) from e


def build(root: Path, now: datetime) -> Sandbox:
    """Seed the registry, write and commit the repo-of-record and the manifests, in ``root``
    (made ready by :func:`prepare`). Creation times are relative to ``now``."""
    root = root.absolute()
    sandbox = Sandbox(root)
    with _stage("seeding the ci registry"):
        images = seed_registry(sandbox.registry, now)
    running = {repository: next(i for i in images if i.repository == repository and tag in i.tags)
               for repository, tag in RUNNING.items()}
    staging = next(i for i in images if i.repository == "team-a/web" and STAGING_RUNS in i.tags)
    with _stage("seeding the staging and prod registries"):
        # What the pipeline promoted before: what each stage runs, and what a rollback goes back to.
        for stage, image in (("staging", staging), ("prod", running["team-a/web"])):
            promote_earlier(sandbox.registry, sandbox.stage_registry(stage), image, stage)
    with _stage("writing the manifests"):
        message = "prod runs " + ", ".join(f"{r.rsplit('/', 1)[-1]} {t}" for r, t in RUNNING.items())
        commit_bare(sandbox.manifests, manifests(running, staging), f"{message}; staging runs web {STAGING_RUNS}")
    with _stage("writing the repo-of-record"):
        write_files(sandbox.policies, policies(sandbox))
        policies_commit = commit(sandbox.policies, "Retention for the ci registry, protecting what prod runs")
    with _stage("writing the sandbox README"):
        (root / "README.md").write_text(README)
    return Sandbox(root, tuple(images), running, policies_commit)


# --- the registry ---------------------------------------------------------------------------------

def seed_registry(directory: Path, now: datetime) -> list[Seeded]:
    """Push :data:`SEEDS` into the OCI layout registry at ``directory``, through the registry adapter."""
    directory.mkdir(parents=True, exist_ok=True)
    registry = Registry(name="ci", url=f"oci-layout:{directory}", credentials=None, allowed_hosts=())
    client = open_registry(registry, None)
    seeded: list[Seeded] = []
    try:
        for repository, seeds in SEEDS.items():
            writer = ImageWriter(client, repository, registry_host=REGISTRY_HOST)
            for seed in seeds:
                created = now - seed.age
                version = seed.name.removeprefix("v")
                spec = ImageSpec(repository, version, created, revision_of(f"{repository}@{seed.name}"),
                                 source=SOURCE.format(app=repository.rsplit("/", 1)[-1]))
                manifest = writer.index(spec) if seed.multi_arch else writer.image(spec)
                tags = seed.tags + ((f"sha-{spec.revision[:7]}",) if seed.commit_tag else ())
                writer.tag(manifest, *tags)
                seeded.append(Seeded(repository, tags, manifest.digest, created,
                                     "index" if seed.multi_arch else "image"))
                if seed.signed:
                    signature = writer.sign(manifest)
                    seeded.append(Seeded(repository, (cosign_tag(manifest.digest, "sig"),), signature.digest,
                                         created, "signature"))
    finally:
        client.close()
    return seeded


def promote_earlier(ci: Path, directory: Path, image: Seeded, stage: str) -> None:
    """Copy ``image`` into the stage registry at ``directory`` as the pipeline would have, tagged
    ``STAGE`` and its build number."""
    directory.mkdir(parents=True, exist_ok=True)
    source = open_registry(Registry(name="ci", url=f"oci-layout:{ci}", credentials=None, allowed_hosts=()), None)
    dest = open_registry(Registry(name=stage, url=f"oci-layout:{directory}", credentials=None, allowed_hosts=()),
                         None)
    try:
        copy_image(source, image.repository, image.digest, dest, image.repository,
                   (stage, image.tags[0].removeprefix("build-")))
    finally:
        source.close()
        dest.close()


# --- git repositories -----------------------------------------------------------------------------

def write_files(directory: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def commit(directory: Path, message: str) -> str:
    """``git init`` (branch main) and commit everything in ``directory``; the commit SHA.
    The repository gets its own committer identity, so later commits work on a fresh machine."""
    repo = git.Repo.init(directory, initial_branch="main")
    with repo:
        with repo.config_writer() as config:
            config.set_value("user", "name", AUTHOR.name).set_value("user", "email", AUTHOR.email)
        files = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*")
                       if p.is_file() and ".git" not in p.relative_to(directory).parts)
        repo.index.add(files)
        made = repo.index.commit(message, author=AUTHOR, committer=AUTHOR, skip_hooks=True)
        return made.hexsha


def commit_bare(directory: Path, files: dict[str, str], message: str) -> str:
    """A bare repository at ``directory`` (branch main) whose one commit holds ``files``; the SHA.
    Bare, as the remote a GitOps tool watches: write-back pushes to it, never into a working tree."""
    work = directory.with_name(directory.name + ".work")
    try:
        write_files(work, files)
        made = commit(work, message)
        git.Repo.clone_from(str(work), str(directory), bare=True).close()
        with git.Repo(directory) as bare:
            bare.delete_remote(bare.remote("origin"))
            with bare.config_writer() as config:
                config.set_value("user", "name", AUTHOR.name).set_value("user", "email", AUTHOR.email)
        return made
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _quoted(text: str) -> str:
    return json.dumps(text)  # a JSON string is a YAML double-quoted scalar


def policies(sandbox: Sandbox) -> dict[str, str]:
    """The repo-of-record, in the style of the project's ``policies/``, pointed at the sandbox."""
    return {
        "registries.yaml": f"""\
# Registries: where images live. Here `ci` is an OCI image-layout directory (one layout per
# repository), so no server is needed. A real one is https://HOST with credentials as secret
# references ({{env: ...}}, {{file: ...}}, ...), never values.
apiVersion: reconcile/v1
kind: Registry
metadata:
  name: ci
  description: Registry CI pushes every build to (a directory in this sandbox).
spec:
  url: {_quoted(f"oci-layout:{sandbox.registry}")}
  concurrency: 8
---
apiVersion: reconcile/v1
kind: Registry
metadata:
  name: staging
  description: Where the pipeline promotes what staging runs (a directory in this sandbox).
spec:
  url: {_quoted(f"oci-layout:{sandbox.stage_registry('staging')}")}
---
apiVersion: reconcile/v1
kind: Registry
metadata:
  name: prod
  description: Where the pipeline promotes what prod runs (a directory in this sandbox).
spec:
  url: {_quoted(f"oci-layout:{sandbox.stage_registry('prod')}")}
""",
        "clusters.yaml": f"""\
# Clusters: where images run. `prod` is known by the manifests a GitOps tool (Argo CD, Flux)
# syncs to it: every image they reference counts as running, and is never pruned. A reachable
# cluster would say `inCluster: true` or name a kubeconfig instead.
apiVersion: reconcile/v1
kind: Cluster
metadata:
  name: prod
  description: Production, as its GitOps manifests describe it.
spec:
  manifests:
    repo: {_quoted(sandbox.manifests.as_uri())}
    path: envs/prod
    branch: main
""",
        "retention/ci-cleanup.yaml": """\
# Prune the CI registry: a tag survives if ANY keep rule keeps it, and nothing protected is
# ever deleted whatever the keep rules say.
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata:
  name: ci-cleanup
spec:
  registry: ci
  repositories: ["team-a/*"]
  keep:
    # Releases: the three highest versions, by semantic version order.
    - tags: '^v\\d+\\.\\d+\\.\\d+$'
      last: 3
    # Builds: the last three, or anything from the past week.
    - tags: '^build-(\\d+)$'   # the group is what 'numeric' compares
      last: 3
      order: numeric
      newerThan: 168h
      operator: Or
    # Moving tags people pull by hand.
    - tags: '^(latest|stable)$'
  untagOthers: true    # a kept image loses the tags no rule keeps (by default it keeps them all)
  protect:
    inUse: [prod]      # running there (its manifests say so): never pruned
  maxDeletions: 25     # more than this in one run: delete nothing, say why
""",
        "promotion/web.yaml": """\
# The pipeline: the newest CI build of team-a/web (by its number), copied digest for digest to
# staging, then, once approved, to prod. Each apply moves it one stage on.
apiVersion: reconcile/v1
kind: PromotionPolicy
metadata:
  name: web
spec:
  stages:
    - name: build
      registry: ci
      repository: team-a/web
      track: {tags: '^build-(?P<version>\\d+)$', order: numeric}
    - name: staging
      from: build
      registry: staging
      repository: team-a/web
      tags: [staging, "{version}"]
    - name: prod
      from: staging
      registry: prod
      repository: team-a/web
      tags: [prod, "{version}"]
      gates:
        soak: 0s                          # how long it must have been in staging first
        approval: approvals/web-prod.yaml # reviewed like any change to this repository
""",
        "approvals/web-prod.yaml": f"""\
# Versions of web approved for prod, and by whom.
approvals:
  - version: "{PROMOTED.removeprefix('build-')}"
    approvedBy: {APPROVER}
""",
        "deploy/web.yaml": f"""\
# Deploy each stage's image by GitOps write-back: a commit pinning the digest in the manifests a
# GitOps tool (Argo CD, Flux) syncs, pushed to their repository.
apiVersion: reconcile/v1
kind: DeployPolicy
metadata:
  name: staging-web
spec:
  stage: web/staging
  manifests: {{repo: {_quoted(sandbox.manifests.as_uri())}, path: envs/staging, branch: main}}
  workloads: [{{kind: Deployment, name: web, container: web}}]
---
apiVersion: reconcile/v1
kind: DeployPolicy
metadata:
  name: prod-web
spec:
  stage: web/prod
  manifests: {{repo: {_quoted(sandbox.manifests.as_uri())}, path: envs/prod, branch: main}}
  workloads: [{{kind: Deployment, name: web, container: web}}]
""",
    }


def manifests(running: dict[str, Seeded], staging: Seeded) -> dict[str, str]:
    """prod's manifests: web pinned by digest in its Deployment, api by a kustomization override;
    staging's: web's Deployment."""
    web, api = running["team-a/web"], running["team-a/api"]
    return {
        "envs/staging/web.yaml": deployment(
            "web", 1, f"team-a/web:{STAGING_RUNS.removeprefix('build-')}@{staging.digest}"),
        "envs/prod/kustomization.yaml": f"""\
# What Argo CD syncs to prod. reconcile reads these files (at branch main) to know which images
# prod runs; kustomize's `images:` overrides count too.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [web.yaml, api.yaml]
images:
  - name: {REGISTRY_HOST}/team-a/api
    newTag: {RUNNING["team-a/api"]}
    digest: {api.digest}
""",
        "envs/prod/web.yaml": deployment(
            "web", 3, f"team-a/web:{RUNNING['team-a/web'].removeprefix('build-')}@{web.digest}",
            "          ports: [{containerPort: 8080}]\n"),
        "envs/prod/api.yaml": deployment("api", 2, f"{REGISTRY_HOST}/team-a/api:{RUNNING['team-a/api']}"),
    }


def deployment(app: str, replicas: int, image: str, more: str = "") -> str:
    """A Deployment of one container, ``app``, in namespace ``app``; ``more`` ends the container."""
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {app}
  namespace: {app}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {app}}}
  template:
    metadata:
      labels: {{app: {app}}}
    spec:
      containers:
        - name: {app}
          image: {image}
""" + more


README = """\
# reconcile quickstart sandbox

Built by `reconcile quickstart`; `reconcile quickstart --force DIR` builds it afresh.

- `registries/ci/`: the `ci` registry, one OCI image layout per repository (`team-a/web`,
  `team-a/api`); other tools read it too: `skopeo inspect oci:registries/ci/team-a/web:latest`.
- `registries/staging/`, `registries/prod/`: where the pipeline promotes team-a/web; each holds
  the build it got before (125, 124), which is what its manifests pin and what a rollback goes
  back to (`skopeo inspect --raw oci:registries/prod/team-a/web:prod`).
- `policies/`: the repo-of-record (git, branch main): Registries `ci`, `staging`, `prod`; Cluster
  `prod`; RetentionPolicy `ci-cleanup`; PromotionPolicy `web`; DeployPolicies `staging-web`,
  `prod-web`; the approval file `approvals/web-prod.yaml`.
- `manifests.git/`: the GitOps manifests (a bare git repository, branch main): what staging
  (`envs/staging`) and prod (`envs/prod`) run, pinned by digest; deploys are commits to it
  (`git -C manifests.git log`).
- `audit.db`: the audit trail the commands write (`reconcile audit ... --audit-db audit.db`).
- `cache/`: reconcile's cache (`RECONCILE_CACHE_DIR`), when it needs one.

Policies and manifests are read at their commit, not from the working tree: commit an edit
(`git -C policies commit -am '...'`) before planning with it.
"""
