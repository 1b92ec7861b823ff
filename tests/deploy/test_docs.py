"""README's "Run it as a CronJob" and deploy/README.md name what the package has: paths that exist,
overlays that render, the Secrets the pod references, the trail where the image writes it."""

from __future__ import annotations

import re

from tests.deploy.tools import DEPLOY, OVERLAYS, ROOT, container, one, render


def section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Run it as a CronJob\n")
    return text[start:text.index("\n## ", start + 1)]


def commands() -> list[str]:
    return [line for block in re.findall(r"```bash\n(.*?)```", section(), flags=re.S) for line in block.splitlines()]


def test_the_three_commands_build_push_and_apply_the_image_the_package_names() -> None:
    build, push, apply = commands()[:3]
    image = container(render("base"))["image"]
    assert build.startswith("docker build ") and build.endswith(f" -t {image} .")
    assert push == f"docker push {image}"
    assert apply == "kubectl apply -k deploy/overlays/dry-run"


def test_every_path_named_exists() -> None:
    for text in (section(), (DEPLOY / "README.md").read_text()):
        for path in set(re.findall(r"\bdeploy/[\w./-]*\w", text)):
            assert (ROOT / path).exists(), path
    for overlay in OVERLAYS:
        assert f"overlays/{overlay}" in (DEPLOY / "README.md").read_text()


def test_the_secrets_it_creates_are_the_ones_the_pod_references() -> None:
    created = [re.search(r"create secret generic (\S+)", line)[1] for line in commands()  # type: ignore[index]
               if "create secret" in line]
    objects = render("apply")
    referenced = set(re.findall(r"'(?:secretName|name)': '([\w-]+)'", repr(container(objects)["env"])))
    pod = one(objects, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    referenced |= set(re.findall(r"'(?:secretName|name)': '([\w-]+)'", repr(pod["volumes"])))
    referenced |= {name for o in objects if o["kind"] == "Role" for rule in o["rules"]
                   for name in rule.get("resourceNames", ())}
    assert created and set(created) <= referenced, (created, referenced)
    for line in commands():
        if "create secret" in line:
            assert "--from-literal=password" not in line and "--from-literal=token" not in line  # files, not history


def test_the_audit_commands_read_the_trail_where_the_cronjob_writes_it() -> None:
    audit_db = {e["name"]: e.get("value") for e in container(render("apply"))["env"]}["RECONCILE_AUDIT_DB"]
    lines = [line for line in commands() if "audit-shell" in line]
    assert any(line.endswith("-- reconcile audit runs") for line in lines)
    assert any(f"file:{audit_db}?mode=ro" in line and ".backup(" in line for line in lines)
    assert lines[0] == "kubectl -n reconcile apply -f deploy/tools/audit-shell.yaml"
    assert lines[-1] == "kubectl -n reconcile delete pod reconcile-audit-shell"
