"""The manifest editor on plain text: files in (path -> bytes), the changed files' new bytes out.
No git and no directory: what the write-back does with a real repository is test_writeback's."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import pytest

from reconcile.adapters.git.editor import EditError, edit_manifests
from reconcile.adapters.git.writeback import WriteBackError
from reconcile.policy.model import Workload

REPO = "registry.example.com:5000/shop/web"
OLD = "sha256:" + "0123456789abcdef" * 4
NEW = "sha256:" + "c0ffee00" * 8
IMAGE = f"{REPO}:v1.3.0@{NEW}"

WEB = Workload("Deployment", "web", "web")

POD = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n"
BASE = POD + "      containers:\n        - name: web\n          image: web   # set by each overlay\n"


def edit(files: dict[str, str], workloads: list[Workload], image: str = IMAGE, *, namespace: str | None = None,
         below: str = "", elsewhere: Callable[[], Mapping[str, bytes]] | None = None) -> dict[str, str]:
    result = edit_manifests({name: text.encode() for name, text in files.items()}, workloads, image,
                            namespace=namespace, below=below, elsewhere=elsewhere)
    return {name: data.decode() for name, data in result.contents.items()}


def test_only_the_image_line_changes_and_its_comment_stays() -> None:
    text = POD + f"      containers:\n      - name: web\n        image: '{REPO}:v1.2.0@{OLD}'  # the app\n"
    assert edit({"d.yaml": text}, [WEB]) == {"d.yaml": text.replace(f"{REPO}:v1.2.0@{OLD}", IMAGE)}


def test_a_workload_already_at_the_image_is_no_change() -> None:
    result = edit_manifests({"d.yaml": (POD + f"      containers: [{{name: web, image: '{IMAGE}'}}]\n").encode()},
                            [WEB], IMAGE)
    assert (result.contents, result.files, result.before) == ({}, (), (IMAGE,))


def test_line_endings_and_a_byte_order_mark_are_kept() -> None:
    text = (POD + "      containers:\n      - name: web  # app\n        image: old\n").replace("\n", "\r\n")
    result = edit_manifests({"d.yaml": b"\xef\xbb\xbf" + text.encode()}, [WEB], IMAGE)
    assert result.contents == {"d.yaml": b"\xef\xbb\xbf" + text.replace("image: old", f"image: {IMAGE}").encode()}
    assert result.before == ("old",)


def test_new_kustomization_keys_follow_the_quote_style_and_a_numeric_tag_is_quoted() -> None:
    files = {"kustomization.yaml": "images:\n  - newTag: '1'   # first\n    name: 'web'\n",
             "d.yaml": POD + "      containers: [{name: web, image: web}]\n"}
    (text,) = edit(files, [WEB], f"{REPO}:1.10@{NEW}").values()
    assert text == (f"images:\n  - newTag: '1.10'   # first\n    name: 'web'\n    newName: '{REPO}'\n"
                    f"    digest: '{NEW}'\n")
    plain = {"kustomization.yaml": "images:\n- name: web\n  newTag: v1\n",
             "d.yaml": files["d.yaml"]}
    (text,) = edit(plain, [WEB], f"{REPO}:1.10@{NEW}").values()
    assert text == f'images:\n- name: web\n  newName: {REPO}\n  newTag: "1.10"\n  digest: {NEW}\n'
    (text,) = edit(files, [WEB], f"{REPO}@{NEW}").values()
    assert text == f"images:\n  - name: 'web'\n    newName: '{REPO}'\n    digest: '{NEW}'\n"


def test_a_flow_style_kustomization_stays_flow_style() -> None:
    files = {"overlay/kustomization.yaml": "images: [{name: web, newTag: v1.2.0}]\n",
             "overlay/d.yaml": BASE}
    assert edit(files, [WEB], below="overlay") == {
        "overlay/kustomization.yaml": f"images: [{{name: web, newName: {REPO}, newTag: v1.3.0, digest: {NEW}}}]\n"}


def test_the_base_an_overlay_patches_is_found_elsewhere_and_left_alone() -> None:
    asked: list[bool] = []

    def elsewhere() -> dict[str, bytes]:
        asked.append(True)
        return {"base/deployment.yaml": BASE.encode(), "base/broken.yaml": b"a: [\n"}  # unparsable: skipped

    overlay = {"envs/dev/kustomization.yml": "resources: [../../base]\nimages:\n- name: web\n  newTag: v1.2.0\n"}
    assert edit(overlay, [WEB], below="envs/dev", elsewhere=elsewhere) == {
        "envs/dev/kustomization.yml": (f"resources: [../../base]\nimages:\n- name: web\n  newName: {REPO}\n"
                                       f"  newTag: v1.3.0\n  digest: {NEW}\n")}
    assert asked == [True]
    with pytest.raises(EditError, match=r"Deployment 'web' is only in base/deployment\.yaml, outside envs/none, and "
                                        r"no kustomization under envs/none has an images entry for 'web'"):
        edit({"envs/none/kustomization.yaml": "resources: [../../base]\n"}, [WEB], below="envs/none",
             elsewhere=elsewhere)


def test_the_other_files_are_asked_for_only_when_a_workload_is_not_among_the_files() -> None:
    def elsewhere() -> dict[str, bytes]:
        raise AssertionError("not needed")

    changed = BASE.replace("image: web", f"image: {IMAGE}")
    assert edit({"d.yaml": BASE}, [WEB], elsewhere=elsewhere) == {"d.yaml": changed}


def test_the_namespace_narrows_the_documents_matched() -> None:
    def pod(namespace: str) -> str:
        return BASE.replace("metadata: {name: web}", f"metadata: {{name: web, namespace: {namespace}}}")

    files = {"a.yaml": pod("shop"), "b.yaml": pod("other")}
    assert list(edit(files, [WEB], namespace="shop")) == ["a.yaml"]
    with pytest.raises(EditError, match="Deployment 'web' in namespace 'nowhere' not found in any YAML file under "
                                        r"\. \(2 files\)"):
        edit(files, [WEB], namespace="nowhere")


def test_a_missing_container_names_the_ones_there() -> None:
    with pytest.raises(EditError, match=r"d\.yaml:1: Deployment 'web' has no container 'db' \(it has: web\)"):
        edit({"d.yaml": BASE}, [Workload("Deployment", "web", "db")])


def test_an_image_without_a_digest_is_refused() -> None:
    with pytest.raises(EditError, match="has no digest; write-back pins images by digest"):
        edit({"d.yaml": BASE}, [WEB], f"{REPO}:v1.3.0")


def test_a_refused_file_stops_the_edit_and_edit_errors_are_write_back_errors() -> None:
    with pytest.raises(WriteBackError, match=r"refusing to write back into envs"):
        edit({"envs/d.yaml": BASE, "envs/dup.yaml": "a: 1\na: 2\n"}, [WEB], below="envs")


def test_an_image_behind_an_anchor_or_a_merge_key_is_refused_not_guessed() -> None:
    anchored = POD + "      containers:\n      - {name: web, image: &img old}\n      - {name: b, image: *img}\n"
    with pytest.raises(EditError, match=r"d\.yaml:8: cannot edit .*/image surgically: its value has a YAML"):
        edit({"d.yaml": anchored}, [WEB])
    merged = "base: &base {name: web, image: old}\n" + POD + "      containers:\n      - <<: *base\n"
    with pytest.raises(EditError, match=r"cannot edit .*/image surgically"):
        edit({"d.yaml": merged}, [WEB])


def test_an_edit_that_would_change_more_than_the_image_is_refused() -> None:
    """The image scalar itself is plain, but its mapping is shared through an alias: the re-parse
    check sees the other copy change too."""
    shared = ("x-defaults: &web {name: web, image: old}\n" + POD + "      containers: [*web]\n")
    with pytest.raises(EditError, match=r"d\.yaml: the edit would change more than the image fields"):
        edit({"d.yaml": shared}, [WEB])


def test_a_workload_in_two_documents_among_the_files_is_ambiguous() -> None:
    pod = POD + "      containers: [{name: web, image: old}]\n"
    with pytest.raises(EditError, match=re.escape("Deployment 'web' is in more than one document under .: "
                                                  "a.yaml:1, b.yaml:1; narrow the path or set the namespace")):
        edit({"a.yaml": pod, "b.yaml": pod}, [WEB])
