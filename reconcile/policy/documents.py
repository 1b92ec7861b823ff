"""Hostile-input-safe YAML: every document of a file as plain data plus a line for each JSON
pointer, so any later check can say ``file:line``.

PyYAML's safe loader alone is not enough for an unattended job reading files from a repository
that many people write to: it expands alias bombs, recurses on deep nesting, silently keeps the
last of duplicate keys and echoes source lines (which may hold a pasted secret) in its errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconcile.policy.problems import Problem

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 100_000  # per file, counting every alias expansion

_YAML = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_YAML}{t}" for t in ("str", "int", "float", "bool", "null")}
_MERGE_TAG = f"{_YAML}merge"


@dataclass(frozen=True)
class Document:
    """One YAML document: its data and where each part of it came from."""

    path: str
    index: int  # position in the file, from 0
    line: int
    body: Any
    lines: Mapping[str, int] = field(repr=False)  # JSON pointer -> 1-based line

    def line_of(self, pointer: str) -> int:
        """Line of the node at ``pointer``, or of its nearest ancestor that exists."""
        while True:
            if pointer in self.lines:
                return self.lines[pointer]
            if not pointer:
                return self.line
            pointer = pointer.rsplit("/", 1)[0]

    @property
    def kind(self) -> str | None:
        kind = self.body.get("kind") if isinstance(self.body, dict) else None
        return kind if isinstance(kind, str) else None

    @property
    def api_version(self) -> str | None:
        value = self.body.get("apiVersion") if isinstance(self.body, dict) else None
        return value if isinstance(value, str) else None

    @property
    def name(self) -> str | None:
        metadata = self.body.get("metadata") if isinstance(self.body, dict) else None
        name = metadata.get("name") if isinstance(metadata, dict) else None
        return name if isinstance(name, str) else None

    @property
    def subject(self) -> str | None:
        """``Kind/name`` as far as the document says it."""
        if self.kind is None:
            return None
        return f"{self.kind}/{self.name or '?'}"


def pointer_join(pointer: str, token: str | int) -> str:
    """Append one reference token to a JSON pointer (RFC 6901 escaping)."""
    return f"{pointer}/{str(token).replace('~', '~0').replace('/', '~1')}"


class _Refused(Exception):
    def __init__(self, line: int, message: str):
        self.line, self.message = line, message


def parse_documents(path: str, data: bytes) -> tuple[list[Document], list[Problem]]:
    """Parse every YAML document in ``data``; problems instead of exceptions, never a hang."""
    if len(data) > MAX_FILE_BYTES:
        return [], [Problem(path, 1, f"file is {len(data)} bytes, over the limit of "
                                      f"{MAX_FILE_BYTES} bytes for a policy file")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        return [], [Problem(path, line, f"not valid UTF-8 (byte 0x{data[e.start]:02x} at offset "
                                        f"{e.start}); policy files must be UTF-8")]
    try:
        _check_depth(text)
        roots = compose_all(text)
    except _Refused as e:
        return [], [Problem(path, e.line, e.message)]
    except yaml.MarkedYAMLError as e:
        return [], [_syntax_problem(path, text, e)]
    except yaml.YAMLError as e:  # unmarked errors are rare; keep the message, it has no source
        return [], [Problem(path, 1, f"YAML error: {e}")]

    documents: list[Document] = []
    problems: list[Problem] = []
    budget = _Budget(MAX_NODES)
    for index, root in enumerate(roots):
        builder = _Builder(path, budget)
        try:
            body = builder.build(root, "", 0)
        except _Refused as e:
            problems.append(Problem(path, e.line, e.message))
            continue
        problems.extend(builder.problems)
        if body is None:  # an empty document, e.g. a trailing '---'
            continue
        line = root.start_mark.line + 1
        documents.append(Document(path, index, line, body, builder.lines))
    return documents, problems


def _mark_line(error: yaml.MarkedYAMLError) -> int:
    mark = error.problem_mark or error.context_mark
    return mark.line + 1 if mark else 1


# Where a tab is indentation: nothing but spaces, tabs and block indicators ("- ", "? ", ": ")
# before it on its line.
_INDENTATION = re.compile(r"(?:[ \t]|[-?:](?=[ \t]))*\t")


def _syntax_problem(path: str, text: str, error: yaml.MarkedYAMLError) -> Problem:
    """``path:line:column: ...`` for a YAML syntax error; a tab, the usual cause, said in words."""
    mark = error.problem_mark or error.context_mark
    if mark is None:
        return Problem(path, 1, f"YAML syntax error: {_yaml_reason(error)}")
    line, column = mark.line + 1, mark.column + 1
    lines = text.splitlines()
    source = lines[mark.line] if mark.line < len(lines) else ""
    if "'\\t'" in (error.problem or "") and source[mark.column:mark.column + 1] == "\t":
        if _INDENTATION.fullmatch(source[:mark.column + 1]):
            message = "tabs are not allowed for indentation in YAML; use spaces"
        else:
            message = "a tab cannot separate values here (YAML reads only spaces between them); use spaces"
        return Problem(path, line, message, column=column)
    return Problem(path, line, f"YAML syntax error: {_yaml_reason(error)}", column=column)


def _yaml_reason(error: yaml.MarkedYAMLError) -> str:
    # Only the parser's own words: str(error) quotes the source line, which may hold a secret.
    parts = [p for p in (error.context, error.problem) if p]
    return "; ".join(parts) or "invalid YAML"


def _check_depth(text: str) -> None:
    """Refuse deep nesting from the event stream, before the recursive composer sees it."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                assert event.start_mark is not None  # the parser marks every event it emits
                raise _Refused(event.start_mark.line + 1,
                               f"nesting deeper than {MAX_DEPTH} levels; refusing to read further")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def compose_all(text: str) -> list[Node]:
    """The root node of each YAML document in ``text`` (composing expands no alias)."""
    loader = yaml.SafeLoader(text)
    try:
        roots = []
        while loader.check_node():
            node = loader.get_node()
            if node is not None:  # check_node() said there is one
                roots.append(node)
        return roots
    finally:
        loader.dispose()


class _Budget:
    def __init__(self, nodes: int):
        self.left = nodes


class _Builder:
    """Turns a node graph into plain data, counting every node it visits (aliases included)."""

    def __init__(self, path: str, budget: _Budget):
        self.path = path
        self.budget = budget
        self.lines: dict[str, int] = {}
        self.problems: list[Problem] = []
        self._scalars = yaml.SafeLoader("")  # only its scalar constructors are used

    def build(self, node: Node, pointer: str, depth: int) -> Any:
        line = node.start_mark.line + 1
        self.budget.left -= 1
        if self.budget.left < 0:
            # Report where the expansion is used (a top-level key), not where the anchor is.
            top = "/".join(pointer.split("/")[:2])
            raise _Refused(self.lines.get(top, line), f"document expands to more than {MAX_NODES} nodes (an alias "
                                 "bomb?); refusing to read further")
        if depth > MAX_DEPTH:  # aliases can nest documents deeper than their text does
            raise _Refused(line, f"nesting deeper than {MAX_DEPTH} levels; refusing to read further")
        self.lines.setdefault(pointer, line)
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        if isinstance(node, SequenceNode):
            if node.tag != f"{_YAML}seq":
                raise _Refused(line, f"unsupported YAML tag {node.tag!r}")
            return [self.build(item, pointer_join(pointer, i), depth + 1)
                    for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            if node.tag != f"{_YAML}map":
                raise _Refused(line, f"unsupported YAML tag {node.tag!r}")
            return self._mapping(node, pointer, depth)
        raise _Refused(line, f"unsupported YAML node {type(node).__name__}")

    def _scalar(self, node: ScalarNode) -> Any:
        if node.tag == f"{_YAML}timestamp":  # dates stay text; the schemas say what they mean
            return node.value
        if node.tag not in _SCALAR_TAGS:
            raise _Refused(node.start_mark.line + 1, f"unsupported YAML tag {node.tag!r}")
        return self._scalars.construct_object(node, deep=True)

    def _mapping(self, node: MappingNode, pointer: str, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                raise _Refused(key_line, "mapping keys must be plain strings")
            key = self._scalar(key_node)
            if not isinstance(key, str):
                self.problems.append(Problem(
                    self.path, key_line,
                    f"key {key_node.value!r} is read as {type(key).__name__}, not text; quote it"))
                key = key_node.value
            if key in first_line:
                self.problems.append(Problem(
                    self.path, key_line,
                    f"duplicate key {key!r} (first on line {first_line[key]}); "
                    "YAML would silently keep only one of them"))
                continue
            first_line[key] = key_line
            child = pointer_join(pointer, key)
            self.lines[child] = key_line
            result[key] = self.build(value_node, child, depth + 1)
        for merge in merges:  # '<<: *defaults' fills in only keys not written explicitly
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            for source in sources:
                merged = self.build(source, pointer, depth + 1)
                if not isinstance(merged, dict):
                    raise _Refused(source.start_mark.line + 1, "'<<' merges only mappings")
                for key, value in merged.items():
                    result.setdefault(key, value)
        return result
