"""The manifest editor: manifests in, edited manifests out. Pure: it is handed the YAML files
(repository-relative path -> bytes) and gives back the new bytes of the files it changes; it reads
no file and runs no git (``reconcile.adapters.git.writeback`` reads the checkout, commits and pushes).

For each workload it finds the YAML document (kind, name, and namespace when given) and the
container (in ``containers`` or ``initContainers``; a CronJob's pod spec is in its job template),
then changes exactly one thing per workload:

- a ``kustomization.yaml`` / ``kustomization.yml`` / ``Kustomization`` among the files with an
  ``images:`` entry whose ``name`` is the new image's repository (with or without its registry)
  or the name of the image the container has now: kustomize rewrites the container's image from
  that entry at build time, so the entry is what decides what runs and it **wins** over the
  workload's own ``image:`` line, which is then left alone. The entry gets ``newName`` (when the
  name alone would not give the new repository), ``newTag`` (the new tag, kept for people; removed
  for a digest-only image) and ``digest`` (kustomize's field for pinning), added when missing. The
  workload itself may then live outside the files (an overlay's base): ``elsewhere`` gives the
  repository's other YAML files to find it in.
- otherwise the workload's ``image:`` line, set to ``image`` as given (``registry/repo:tag@sha256:…``).

Edits are surgical: the exact characters of each scalar, located with the YAML composer's marks,
are replaced in the original text (keeping the scalar's quote style), so comments, key order,
indentation and quoting of everything else stay as they were. Every edited file is parsed again
and must differ from the original in the intended fields only; otherwise nothing is changed (an
image behind a YAML anchor, alias or merge key is refused that way, not edited). Files are parsed
with the repo-of-record's hostile-input limits (``reconcile.policy.documents``): any file handed in
that is refused (alias bomb, deep nesting, duplicate keys, over-size...) stops the edit, because a
workload could hide in it.
"""

from __future__ import annotations

import codecs
import contextlib
import copy
import itertools
import json
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconcile.adapters.cluster.references import DEFAULT_REGISTRY, parse_image
from reconcile.adapters.git.errors import WriteBackError
from reconcile.adapters.git.manifests import KUSTOMIZATION_FILES, POD_SPECS, kustomize_image
from reconcile.policy.documents import Document, compose_all, parse_documents
from reconcile.policy.model import Workload

_STR = "tag:yaml.org,2002:str"
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./@:+-]*(?<!:)")


class EditError(WriteBackError):
    """The manifests cannot be edited as asked (a workload or container missing, a file refused, an
    edit that cannot be made surgically); nothing is changed."""


# --- the image ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewImage:
    """The image to write, pinned by digest, and the names a kustomize ``images`` entry may call it."""

    text: str  # as given, written to workload image lines
    name: str  # without tag and digest, as given
    tag: str | None
    digest: str
    names: frozenset[str]  # what a kustomize images entry may call it

    @classmethod
    def parse(cls, image: str) -> NewImage:
        try:
            reference = parse_image(image)
        except ValueError as e:
            raise EditError(str(e)) from None
        if reference.digest is None:
            raise EditError(f"image {image!r} has no digest; write-back pins images by digest "
                              "(registry/repo:tag@sha256:...)")
        name, tag = _split_tag(image.partition("@")[0])
        return cls(image, name, tag, reference.digest, _names(image))


def _split_tag(name: str) -> tuple[str, str | None]:
    if name.rfind(":") > name.rfind("/"):
        name, tag = name.rsplit(":", 1)
        return name, tag
    return name, None


def _names(image: str) -> frozenset[str]:
    """``image``'s repository as written, with its registry and without (``docker.io`` images also
    by their short name)."""
    names = {_split_tag(image.partition("@")[0])[0]}
    try:
        reference = parse_image(image)
    except ValueError:
        return frozenset(names)
    names |= {f"{reference.registry}/{reference.repository}", reference.repository}
    if reference.registry == DEFAULT_REGISTRY and reference.repository.startswith("library/"):
        names.add(reference.repository.removeprefix("library/"))
    return frozenset(names)


# --- finding and editing -----------------------------------------------------------------------


@dataclass
class _File:
    path: str  # relative to the repository root
    text: str
    bom: bool
    documents: list[Document]
    roots: list[Node]  # the composed node of each document, by Document.index

    @classmethod
    def parse(cls, path: str, data: bytes) -> _File:
        documents, problems = parse_documents(path, data)
        if problems:
            raise EditError(f"{problems[0]}; refusing to write back into {posixpath.dirname(path) or '.'}")
        text = data.decode("utf-8-sig")
        roots = compose_all(text)  # parse_documents vetted the rest (depth, size, aliases)
        return cls(path, text, data.startswith(codecs.BOM_UTF8), documents, roots)

    @property
    def kustomization(self) -> bool:
        return posixpath.basename(self.path) in KUSTOMIZATION_FILES


@dataclass(frozen=True)
class _Change:
    """A span of the text to replace, and the data change it makes (to check the result)."""

    start: int
    end: int
    text: str
    document: int
    at: tuple[str | int, ...]  # the mapping changed
    key: str
    value: Any  # _DELETE to remove the key


_DELETE = object()


@dataclass
class Edit:
    """What an edit changes: the new bytes of each file changed, and the images replaced."""

    before: tuple[str, ...]
    contents: dict[str, bytes] = field(default_factory=dict)

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(sorted(self.contents))


def edit_manifests(files: Mapping[str, bytes], workloads: Sequence[Workload], image: str | NewImage, *,
                   namespace: str | None = None, below: str = "",
                   elsewhere: Callable[[], Mapping[str, bytes]] | None = None) -> Edit:
    """The edit setting ``workloads`` to ``image`` in ``files`` (repository-relative path -> bytes:
    the YAML files under the manifests path ``below``, kustomizations included); nothing is
    written. ``namespace`` narrows the documents matched: one that names another namespace is not
    the workload, one that names none is. ``elsewhere()`` gives the repository's other YAML files,
    asked for only when a workload is not in ``files``; one of those that cannot be parsed is
    skipped (it is not ours to refuse). :class:`EditError` when a workload or container is missing,
    a file is refused, or the change cannot be made surgically."""
    new = image if isinstance(image, NewImage) else NewImage.parse(image)
    parsed = [_File.parse(name, data) for name, data in sorted(files.items())]
    entries = [(f, d, i, entry) for f in parsed if f.kustomization for d in f.documents if isinstance(d.body, dict)
               for i, entry in enumerate(d.body.get("images") or [])
               if isinstance(entry, dict) and isinstance(entry.get("name"), str)]
    others: list[_File] | None = None
    changes: dict[str, list[_Change]] = {}
    before: list[str] = []
    done: set[tuple[str, int, tuple[str | int, ...]]] = set()
    for workload in workloads:
        found = [(f, d) for f in parsed for d in f.documents if _is_workload(d, workload, namespace)]
        outside = not found
        if outside:
            if others is None:
                others = list(_parsable(elsewhere() if elsewhere is not None else {}))
            found = [(f, d) for f in others for d in f.documents if _is_workload(d, workload, namespace)]
        where = f" in namespace {namespace!r}" if namespace else ""
        if not found:
            raise EditError(f"{workload.kind} {workload.name!r}{where} not found in any YAML file under "
                            f"{below or '.'} ({len(parsed)} files)")
        if len(found) > 1 and not outside:
            places = ", ".join(f"{f.path}:{d.line}" for f, d in found)
            raise EditError(f"{workload.kind} {workload.name!r} is in more than one document under "
                            f"{below or '.'}: {places}; narrow the path or set the namespace")
        containers = [(f, d, at) for f, d in found if (at := _container(d, workload.container)) is not None]
        if not containers:
            f, d = found[0]
            raise EditError(f"{f.path}:{d.line}: {workload.kind} {workload.name!r} has no container "
                            f"{workload.container!r} (it has: {', '.join(_container_names(d)) or 'none'})")
        file, document, at = containers[0]
        current = _dig(document.body, at).get("image")
        if not isinstance(current, str):
            raise EditError(f"{file.path}:{document.line_of(_pointer(at))}: {workload.kind} {workload.name!r} "
                            f"container {workload.container!r} has no image")
        names = new.names | _names(current)
        covering = [e for e in entries if e[3]["name"] in names]
        if not covering and outside:
            raise EditError(f"{workload.kind} {workload.name!r}{where} is only in {file.path}, outside "
                            f"{below or '.'}, and no kustomization under {below or '.'} has an images entry "
                            f"for {current!r}")
        targets = ([(f, d, ("images", i)) for f, d, i, _ in covering] if covering else [(file, document, at)])
        for f, d, location in targets:
            if (f.path, d.index, location) in done:
                continue
            done.add((f.path, d.index, location))
            if covering:
                before.append(kustomize_image(_dig(d.body, location)))
                changes.setdefault(f.path, []).extend(_kustomize_changes(f, d, location, new))
            else:
                before.append(current)
                changes.setdefault(f.path, []).extend(_set(f, d, location, "image", new.text))
    edit = Edit(tuple(before))
    by_path = {f.path: f for f in parsed}
    for name, file_changes in changes.items():
        if file_changes:
            edit.contents[name] = _apply(by_path[name], file_changes)
    return edit


def _parsable(files: Mapping[str, bytes]) -> list[_File]:
    parsed = []
    for name, data in sorted(files.items()):
        with contextlib.suppress(EditError):
            parsed.append(_File.parse(name, data))
    return parsed


def _is_workload(document: Document, workload: Workload, namespace: str | None) -> bool:
    if document.kind != workload.kind or document.name != workload.name:
        return False
    written = _dig(document.body, ("metadata",)).get("namespace")
    return namespace is None or written in (None, namespace)


def _dig(body: Any, at: Sequence[str | int]) -> Any:
    for step in at:
        if isinstance(step, int):
            body = body[step] if isinstance(body, list) and step < len(body) else None
        else:
            body = body.get(step) if isinstance(body, dict) else None
    return body if body is not None else {}


def _pointer(at: Sequence[str | int]) -> str:
    return "".join(f"/{step}" for step in at)


def _pod_spec(document: Document) -> tuple[str, ...]:
    return POD_SPECS.get(document.kind or "", ())


def _container(document: Document, name: str) -> tuple[str | int, ...] | None:
    spec = _pod_spec(document)
    for field_name in ("containers", "initContainers"):
        for i, container in enumerate(_dig(document.body, (*spec, field_name)) or []):
            if isinstance(container, dict) and container.get("name") == name:
                return (*spec, field_name, i)
    return None


def _container_names(document: Document) -> list[str]:
    spec = _pod_spec(document)
    return [str(c.get("name")) for field_name in ("containers", "initContainers")
            for c in _dig(document.body, (*spec, field_name)) or [] if isinstance(c, dict)]


def _kustomize_changes(file: _File, document: Document, at: tuple[str | int, ...], new: NewImage) -> list[_Change]:
    """kustomize's own fields (``kustomize edit set image name=repo:tag@digest``): the repository
    in ``newName`` unless ``name`` already is it, ``newTag`` for people, ``digest`` for the runtime."""
    entry = _dig(document.body, at)
    changes: list[_Change] = []
    if "newName" in entry or entry["name"] != new.name:
        changes += _set(file, document, at, "newName", new.name, after=("name",))
    if new.tag is not None:
        changes += _set(file, document, at, "newTag", new.tag, after=("name", "newName"))
    elif "newTag" in entry:
        changes += _remove(file, document, at, "newTag")
    kept = ("newTag",) if new.tag is not None else ()  # never next to a key that goes
    changes += _set(file, document, at, "digest", new.digest, after=("name", "newName", *kept))
    return changes


def _mapping_node(file: _File, document: Document, at: Sequence[str | int]) -> MappingNode:
    node: Node | None = file.roots[document.index]
    for step in at:
        if isinstance(step, int):
            node = node.value[step] if isinstance(node, SequenceNode) and step < len(node.value) else None
        else:
            node = _value_node(node, step)
    if not isinstance(node, MappingNode):
        raise _cannot(file, document, at, "it is not written as a plain mapping (an alias or merge key?)")
    return node


def _value_node(node: Node | None, key: str) -> Node | None:
    if not isinstance(node, MappingNode):
        return None
    pairs: list[tuple[Node, Node]] = node.value
    for key_node, value_node in pairs:
        if isinstance(key_node, ScalarNode) and key_node.tag == _STR and key_node.value == key:
            return value_node
    return None


def _cannot(file: _File, document: Document, at: Sequence[str | int], why: str) -> EditError:
    return EditError(f"{file.path}:{document.line_of(_pointer(at))}: cannot edit {_pointer(at)} "
                       f"surgically: {why}; edit it by hand")


def _set(file: _File, document: Document, at: tuple[str | int, ...], key: str, value: str,
         after: Sequence[str] = ()) -> list[_Change]:
    """Set ``key`` of the mapping at ``at`` to ``value``: replace its scalar, or add the key."""
    current = _dig(document.body, at)
    if key in current and current[key] == value:
        return []
    mapping = _mapping_node(file, document, at)
    where = (*at, key)
    if key not in current:
        start, text = _insertion(file.text, mapping, key, value, after)
        return [_Change(start, start, text, document.index, at, key, value)]
    node = _value_node(mapping, key)
    if not isinstance(node, ScalarNode):
        raise _cannot(file, document, where, "its value is not a scalar, or comes from a merge key")
    start, end = node.start_mark.index, node.end_mark.index
    span = file.text[start:end]
    if span[:1] in ("&", "*", "!"):
        raise _cannot(file, document, where, "its value has a YAML anchor, alias or tag")
    if node.start_mark.line != node.end_mark.line or node.style in ("|", ">"):
        raise _cannot(file, document, where, "its value spans several lines")
    text = _render(value, node.style)
    if not span and file.text[start - 1:start] == ":":
        text = " " + text  # 'key:' with an empty value
    return [_Change(start, end, text, document.index, at, key, value)]


def _remove(file: _File, document: Document, at: tuple[str | int, ...], key: str) -> list[_Change]:
    mapping = _mapping_node(file, document, at)
    pairs = mapping.value
    index = next((i for i, (k, _) in enumerate(pairs) if isinstance(k, ScalarNode) and k.value == key), None)
    if index is None or len(pairs) < 2:
        raise _cannot(file, document, (*at, key), "the key is not written in the mapping itself")
    key_node, value_node = pairs[index]
    text = file.text
    following = pairs[index + 1][0].start_mark.index if index + 1 < len(pairs) else None
    if mapping.flow_style:
        if following is not None:  # '{newTag: v1, name: x}': up to the next key
            return [_Change(key_node.start_mark.index, following, "", document.index, at, key, _DELETE)]
        previous = pairs[index - 1][1].end_mark.index  # '{name: x, newTag: v1}': from the previous value
        return [_Change(previous, value_node.end_mark.index, "", document.index, at, key, _DELETE)]
    line_start = text.rfind("\n", 0, key_node.start_mark.index) + 1
    indent = text[line_start:key_node.start_mark.index]
    if not indent.strip():  # the key starts its line: drop its lines
        return [_Change(line_start, _line_end(text, value_node), "", document.index, at, key, _DELETE)]
    if indent.strip() == "-" and following is not None:  # '- newTag: v1': the next key moves up
        return [_Change(key_node.start_mark.index, following, "", document.index, at, key, _DELETE)]
    raise _cannot(file, document, (*at, key), "unusual layout")


def _line_end(text: str, node: Node) -> int:
    """Just past the end of the line ``node`` ends on (with its comment and line break)."""
    end = node.end_mark.index
    if node.end_mark.column == 0 and end > 0:  # a block scalar ends after its line break
        return end
    newline = text.find("\n", end)
    return len(text) if newline < 0 else newline + 1


def _insertion(text: str, mapping: MappingNode, key: str, value: str, after: Sequence[str]) -> tuple[int, str]:
    """Where and what to insert to add ``key: value`` to ``mapping``: after the last of the keys
    ``after`` it has, the one written last (else after its last key), in the mapping's own style and
    indentation."""
    pairs = mapping.value
    anchor = max((p for p in pairs if isinstance(p[0], ScalarNode) and p[0].value in after),
                 key=pairs.index, default=pairs[-1])
    name_node = _value_node(mapping, "name")
    style = name_node.style if isinstance(name_node, ScalarNode) and name_node.style in ("'", '"') else None
    rendered = f"{key}: {_render(value, style)}"
    if mapping.flow_style:
        return anchor[1].end_mark.index, f", {rendered}"
    eol = "\r\n" if "\r\n" in text else "\n"
    indent = " " * pairs[0][0].start_mark.column
    position = _line_end(text, anchor[1])
    if position == len(text) and not text.endswith("\n"):
        return position, f"{eol}{indent}{rendered}"
    return position, f"{indent}{rendered}{eol}"


# The tag a plain scalar resolves to; typed here because types-PyYAML leaves BaseResolver.resolve unannotated.
_RESOLVE: Callable[[type[Node], str, tuple[bool, bool]], str] = yaml.SafeLoader("").resolve


def _render(value: str, style: str | None) -> str:
    """``value`` as a YAML scalar in ``style`` (plain when it reads back as the same string)."""
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style is None and _PLAIN.fullmatch(value) and _RESOLVE(ScalarNode, value, (True, False)) == _STR:
        return value
    return json.dumps(value)  # a JSON string is a YAML double-quoted scalar


def _apply(file: _File, changes: list[_Change]) -> bytes:
    """The file with ``changes`` made; EditError unless it reads back as exactly the original
    data with those changes (the safety net under every surgical edit)."""
    ordered = sorted(changes, key=lambda c: (c.start, c.end))
    for first, second in itertools.pairwise(ordered):
        if first.end > second.start:
            raise EditError(f"{file.path}: overlapping edits; edit it by hand")
    text = file.text
    for change in reversed(ordered):
        text = text[:change.start] + change.text + text[change.end:]
    data = (codecs.BOM_UTF8 if file.bom else b"") + text.encode()
    expected = {d.index: copy.deepcopy(d.body) for d in file.documents}
    for change in changes:
        mapping = _dig(expected[change.document], change.at)
        if change.value is _DELETE:
            mapping.pop(change.key, None)
        else:
            mapping[change.key] = change.value
    documents, problems = parse_documents(file.path, data)
    if problems or _canonical({d.index: d.body for d in documents}) != _canonical(expected):
        raise EditError(f"{file.path}: the edit would change more than the image fields (a YAML anchor, alias "
                          "or merge key shared with something else?); nothing written, edit it by hand")
    return data


def _canonical(documents: Mapping[int, Any]) -> str:
    return json.dumps(documents, sort_keys=True, default=str)
