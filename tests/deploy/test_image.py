"""The Dockerfile, as far as it can be checked without a container engine: hadolint finds
nothing, the base is pinned by digest, the wheel the first stage builds holds the package and its
schemas and runs once installed, and the image's user and paths are the CronJob's."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.deploy.tools import ROOT, container, one, render, tool

DOCKERFILE = ROOT / "Dockerfile"
TEXT = DOCKERFILE.read_text()
UID = 10001
OCI_LABELS = ("title", "description", "version", "revision", "created", "licenses", "base.name", "base.digest")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for line in TEXT.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in lines]


def env() -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction, args in instructions():
        if instruction == "ENV":
            values.update(dict(pair.split("=", 1) for pair in args.split()))
    return values


def test_hadolint_finds_nothing_at_any_level() -> None:
    run = subprocess.run([tool("hadolint"), "--failure-threshold", "style", "--no-color", str(DOCKERFILE)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    # The one rule turned off, for the reason the Dockerfile gives (apt versions are not pinned).
    assert re.findall(r"hadolint ignore=(\S+)", TEXT) == ["DL3008"]


def test_the_image_has_its_oci_labels() -> None:
    runtime = TEXT[TEXT.rindex("FROM "):]
    labels = dict(re.findall(r"(org\.opencontainers\.image\.[a-z.]+)=\"([^\"]*)\"", runtime))
    assert set(labels) == {f"org.opencontainers.image.{label}" for label in OCI_LABELS}
    assert labels["org.opencontainers.image.title"] == "reconcile"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert re.search(r"^ARG VERSION=" + re.escape(__import__("reconcile").__version__) + "$", runtime, re.M)


def test_hadolint_does_fail_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install git\nUSER root\n")
    run = subprocess.run([tool("hadolint"), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "DL3007" in run.stdout, run.stdout


def test_the_base_is_python_3_11_slim_pinned_by_digest_in_both_stages() -> None:
    (base,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", TEXT, re.M)
    match = re.fullmatch(r"python:3\.11(?:\.\d+)?-slim(?:-bookworm)?@sha256:([0-9a-f]{64})", base)
    assert match, base
    froms = [args for instruction, args in instructions() if instruction == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    assert f'org.opencontainers.image.base.digest="sha256:{match[1]}"' in TEXT
    assert f'org.opencontainers.image.base.name="docker.io/library/{base.split("@")[0]}"' in TEXT


def test_the_runtime_installs_git_and_the_wheel_of_the_first_stage_and_nothing_from_an_index() -> None:
    runtime = TEXT[TEXT.rindex("FROM "):]
    assert re.search(r"apt-get install -y --no-install-recommends git\b", runtime)
    assert "rm -rf /var/lib/apt/lists/*" in runtime
    (install,) = [args for instruction, args in instructions() if instruction == "RUN" and "pip install" in args]
    assert "--mount=type=bind,from=build,source=/wheels,target=/wheels" in install
    assert "--no-index" in install and "--find-links=/wheels" in install and "/wheels/reconcile-*.whl" in install
    assert "pip wheel --wheel-dir /wheels ." in TEXT[:TEXT.rindex("FROM ")]


def test_it_runs_reconcile_as_the_fixed_non_root_user_of_the_cronjob() -> None:
    assert ("ENTRYPOINT", '["reconcile"]') in instructions()
    assert json.loads(dict(instructions())["ENTRYPOINT"]) == ["reconcile"]
    users = [args for instruction, args in instructions() if instruction == "USER"]
    assert users == [f"{UID}:{UID}"]  # numeric, so runAsNonRoot can check it without /etc/passwd
    assert f"--uid {UID} --gid {UID}" in TEXT and f"--gid {UID} reconcile" in TEXT
    pod = one(render("base"), "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert {pod["securityContext"][k] for k in ("runAsUser", "runAsGroup", "fsGroup")} == {UID}


def test_everything_it_writes_is_on_a_mounted_path_of_the_cronjob() -> None:
    values = env()
    written = {name: values[name] for name in ("HOME", "XDG_CACHE_HOME", "RECONCILE_CACHE_DIR", "TMPDIR")}
    written["RECONCILE_AUDIT_DB"] = str(Path(values["RECONCILE_AUDIT_DB"]).parent)
    for overlay in ("base", "dry-run", "apply", "sharded"):
        main = container(render(overlay))
        assert main["securityContext"]["readOnlyRootFilesystem"] is True
        writable = [m["mountPath"] for m in main["volumeMounts"] if not m.get("readOnly")]
        assert sorted(writable) == ["/tmp", "/var/lib/reconcile"], overlay
        for name, path in written.items():
            assert any(Path(path).is_relative_to(mount) for mount in writable), (overlay, name, path)
        # The CronJob says the same paths as the image (so an image built otherwise still fits).
        given = {e["name"]: e.get("value") for e in main["env"]}
        assert {name: given[name] for name in values if name in given} == \
               {name: values[name] for name in values if name in given}
        assert {"RECONCILE_AUDIT_DB", "RECONCILE_CACHE_DIR", "HOME"} <= given.keys()
    assert values["PYTHONDONTWRITEBYTECODE"] == "1"  # no .pyc next to the read-only site-packages


def test_the_build_context_is_what_the_dockerfile_copies_and_nothing_else() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*"  # everything is left out, then what is needed is let back in
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = set()
    for instruction, args in instructions():
        if instruction == "COPY" and "--from" not in args:
            copied |= {source.rstrip("/") for source in args.split()[:-1]}
    assert allowed == copied == {"pyproject.toml", "README.md", "schemas", "reconcile"}
    assert not allowed & {".git", ".venv", "tests", "bench", "deploy", "policies", ".ci"}
    for name in allowed:
        assert (ROOT / name).exists(), name


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the Dockerfile's first stage builds: ``pip wheel --wheel-dir /wheels .``, the wheel of
    this work tree and one of every dependency."""
    out = tmp_path_factory.mktemp("wheels")
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(out), "."],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    return out


@pytest.fixture(scope="module")
def wheel(wheelhouse: Path) -> Path:
    (built,) = wheelhouse.glob("reconcile-*.whl")
    return built


def test_every_dependency_comes_as_a_wheel_the_slim_image_can_install(wheelhouse: Path) -> None:
    """The runtime stage has no compiler and installs with --no-index: nothing may need building."""
    for name in sorted(path.name for path in wheelhouse.glob("*.whl")):
        platform = name.removesuffix(".whl").split("-")[-1]
        assert platform == "any" or "manylinux" in platform, name  # plain linux_*: built here from an sdist


def test_the_wheel_holds_the_package_its_schemas_and_the_command(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in (ROOT / "reconcile").rglob("*.py"):
        assert module.relative_to(ROOT).as_posix() in names, module
    schemas = {f"reconcile/_schemas/{schema.name}" for schema in (ROOT / "schemas").glob("*.json")}
    assert schemas and schemas <= names
    assert not any(name.startswith(("tests/", "deploy/", "policies/", "bench/")) for name in names)
    (entry_points,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
    assert "reconcile = reconcile.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_wheels_installed_as_the_dockerfile_does_run_outside_this_work_tree(wheelhouse: Path,
                                                                                 tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    (wheel,) = wheelhouse.glob("reconcile-*.whl")
    # Only the wheelhouse, as in the image: no pip configuration of this machine (find-links, indexes).
    alone = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {"PIP_CONFIG_FILE": os.devnull}
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--no-cache-dir", "--no-index",
                              f"--find-links={wheelhouse}", str(wheel)], capture_output=True, text=True, timeout=600,
                             env=alone)
    assert install.returncode == 0, install.stdout + install.stderr
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies)  # a plain directory: schemas come from the wheel
    clean = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
             "RECONCILE_CACHE_DIR": str(tmp_path / "cache")}
    help_ = subprocess.run(["reconcile", "--help"], cwd=tmp_path, env=clean, capture_output=True, text=True,
                           timeout=60)
    assert help_.returncode == 0 and "Usage: reconcile" in help_.stdout, help_.stderr
    valid = subprocess.run(["reconcile", "validate", "--repo", str(policies)], cwd=tmp_path, env=clean,
                           capture_output=True, text=True, timeout=120)
    assert valid.returncode == 0 and "valid: " in valid.stdout + valid.stderr, valid.stdout + valid.stderr
    located = subprocess.run([str(venv / "bin" / "python"), "-c", "import reconcile; print(reconcile.__file__)"],
                             cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=60)
    assert Path(located.stdout.strip()).is_relative_to(venv), located.stdout
    # The whole walk-through (registries, validate, plan, apply, rollback, audit) from the installed
    # wheel, with bytecode off as in the image: it writes to its sandbox and nowhere in the install.
    files = sorted(venv.rglob("*"))
    walk = subprocess.run(["reconcile", "quickstart", str(tmp_path / "sandbox")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, env=clean | {"PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": str(tmp_path)})
    assert walk.returncode == 0 and "Done: " in walk.stdout, walk.stdout + walk.stderr
    assert sorted(venv.rglob("*")) == files
    installed = subprocess.run([str(venv / "bin" / "pip"), "list", "--format=freeze"], capture_output=True,
                               text=True, env=alone, check=True).stdout
    assert {line.split("==")[0].lower().replace("_", "-") for line in installed.split()} >= {"reconcile", "kubernetes"}
