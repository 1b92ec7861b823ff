"""Benchmark of promotion at apply: ``--images`` images copied by digest from one registry to
another, by ``reconcile apply`` against ``skopeo copy --all --preserve-digests`` in a loop and in
``xargs -P8``, at 0 ms and at ``--rtt-ms`` of added round trip.

    python bench/promote_bench.py [--images 100] [--layer-kib 256] [--rtt-ms 20] [--quick] [--keep]

Two ``docker-registry`` processes on 127.0.0.1 (``a`` holds the images, ``b`` receives them),
each behind its own delaying proxy (``plan_bench.DelayProxy``). ``--images`` repositories
``svc/img-NN`` in ``a``, each one image tagged ``v1`` (a random ``--layer-kib`` KiB layer and a
config of its own). reconcile's repo-of-record has one PromotionPolicy per image (stage ``build``
tracking ``^v1$`` in ``a``, stage ``prod`` in ``b`` tagged ``v1``): ``reconcile apply --yes``
promotes all of them in one run, each an audited action. Every tool copies into a fresh
registry ``b`` (so nothing is skipped as already there), and the digests in ``b`` are checked
afterwards. ``--quick``: 20 images, 0 and 20 ms, about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.plan_bench import MEASURE, DelayProxy
from bench.registry_bench import RunningRegistry, start_registry, stop
from tests.adapters.registry.oci import Layout, push


def seed(directory: Path, registry: RunningRegistry, images: int, layer_kib: int) -> dict[str, str]:
    layout = Layout(directory)
    digests = {}
    for n in range(images):
        built = layout.image(layer_sizes=(layer_kib * 1024,), labels={"n": str(n)})
        layout.tag(built, "v1")
        push(layout, "v1", registry.host, f"svc/img-{n:03d}")
        digests[f"svc/img-{n:03d}"] = built.digest
    return digests


def repo_of_record(directory: Path, source: str, dest: str, repositories: list[str]) -> Path:
    directory.mkdir(parents=True)
    documents = [f"""apiVersion: reconcile/v1
kind: Registry
metadata: {{name: {name}}}
spec: {{url: "{url}"}}""" for name, url in (("a", source), ("b", dest))]
    for n, repository in enumerate(repositories):
        documents.append(f"""apiVersion: reconcile/v1
kind: PromotionPolicy
metadata: {{name: img-{n:03d}}}
spec:
  stages:
    - {{name: build, registry: a, repository: {repository}, track: {{tags: '^v1$'}}}}
    - {{name: prod, from: build, registry: b, repository: {repository}, tags: [v1]}}""")
    (directory / "policies.yaml").write_text("\n---\n".join(documents) + "\n")
    return directory


def timed(command: list[str], env: dict[str, str]) -> float:
    wrapper = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, env=env,
                             check=True)
    result = json.loads(wrapper.stdout)
    if result["returncode"] != 0:
        raise SystemExit(f"{command[:2]} failed ({result['returncode']}): {result['stderr']}")
    return float(result["wall"])


def check(registry: RunningRegistry, digests: dict[str, str]) -> list[str]:
    wrong = []
    for repository, digest in digests.items():
        answer = requests.head(f"{registry.url}/v2/{repository}/manifests/v1", timeout=30, headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json"})
        if answer.headers.get("Docker-Content-Digest") != digest:
            wrong.append(f"{repository}: {answer.status_code} {answer.headers.get('Docker-Content-Digest')}")
    return wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--layer-kib", type=int, default=256)
    parser.add_argument("--rtt-ms", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="20 images")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.images = 20
    workdir = Path(tempfile.mkdtemp(prefix="promote-bench-"))
    source = start_registry(workdir, "a")
    problems: list[str] = []
    try:
        digests = seed(workdir / "layout", source, args.images, args.layer_kib)
        print(f"promotion benchmark: {args.images} images of {args.layer_kib} KiB, a -> b by digest, "
              f"{os.cpu_count()} CPUs")
        print(f"{'':6} {'reconcile apply':>16} {'skopeo loop':>12} {'xargs -P8':>10} {'vs loop':>8} {'vs xargs':>9}")
        for rtt in (0.0, args.rtt_ms / 1000):
            walls: dict[str, float] = {}
            for tool in ("reconcile", "loop", "xargs"):
                dest = start_registry(workdir, f"b-{tool}-{int(rtt * 1000)}")
                proxies = [DelayProxy(int(r.url.rsplit(":", 1)[1]), rtt) for r in (source, dest)]
                a, b = (f"127.0.0.1:{p.port}" for p in proxies)
                cache = workdir / f"cache-{tool}-{rtt}"
                env = {**os.environ, "RECONCILE_LOCK": "none", "RECONCILE_CACHE_DIR": str(cache)}
                repositories = sorted(digests)
                if tool == "reconcile":
                    root = repo_of_record(workdir / f"policies-{int(rtt * 1000)}", f"http://{a}", f"http://{b}",
                                          repositories)
                    command = [str(Path(sys.executable).with_name("reconcile")), "apply", "--yes", "--repo", str(root),
                               "--audit-db", str(workdir / f"audit-{int(rtt * 1000)}.db")]
                else:
                    copy = ("skopeo copy -q --all --preserve-digests --src-tls-verify=false --dest-tls-verify=false "
                            f"docker://{a}/$r:v1 docker://{b}/$r:v1")
                    names = " ".join(repositories)
                    command = ["sh", "-c", f"for r in {names}; do {copy}; done"] if tool == "loop" else \
                        ["sh", "-c", f"printf '%s\\n' {names} | xargs -P8 -I{{}} sh -c 'r={{}}; {copy}'"]
                walls[tool] = timed(command, env)
                problems += [f"{tool}: {p}" for p in check(dest, digests)]
                for proxy in proxies:
                    proxy.close()
                stop(dest)
            print(f"{rtt * 1000:4.0f}ms {walls['reconcile']:15.1f}s {walls['loop']:11.1f}s {walls['xargs']:9.1f}s "
                  f"{walls['loop'] / walls['reconcile']:7.1f}x {walls['xargs'] / walls['reconcile']:8.1f}x")
        print("targets: >= 2x the loop and faster than xargs -P8, at 0 and at 20 ms")
        for problem in problems[:10]:
            print("WRONG", problem)
        return 1 if problems else 0
    finally:
        stop(source)
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
