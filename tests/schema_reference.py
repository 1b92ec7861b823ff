"""docs/policy-reference.md, generated from the JSON schemas in schemas/: every field of every policy
kind, its type, default and description. tests/test_docs.py fails when the page is not what this
makes, so a schema field cannot go undocumented. Regenerate with

    .venv/bin/python -m tests.schema_reference > docs/policy-reference.md
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
KINDS = ("Registry", "Cluster", "RetentionPolicy", "PromotionPolicy", "DeployPolicy", "Notification")


def _load(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text())


def _resolve(node: dict[str, Any], document: str) -> tuple[dict[str, Any], str, str | None]:
    """A node with its $ref followed (the node's own keywords, a description, win), the file it is
    in, and the reference followed (None without one)."""
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return node, document, None
    file, _, pointer = ref.partition("#")
    file = file or document
    target: Any = _load(file)
    for part in [p for p in pointer.split("/") if p]:
        target = target[part]
    target, file, _ = _resolve(target, file)
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}, file, f"{file}#{pointer}"


def _type(node: dict[str, Any]) -> str:
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "enum" in node:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    kind = node.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        return "list"
    if kind:
        return str(kind)
    if "anyOf" in node or "oneOf" in node:
        return "one of several forms"
    return "any"


def fields(node: dict[str, Any], document: str, path: str,
           seen: tuple[str, ...] = ()) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, schema) of every field below ``node``, depth first, in the schema's order."""
    node, document, ref = _resolve(node, document)
    if ref is not None and ref in seen:
        return
    seen = (*seen, ref) if ref else seen
    for name, child in node.get("properties", {}).items():
        here = f"{path}.{name}" if path else name
        resolved, _, _ = _resolve(child, document)
        yield here, {**resolved, "description": child.get("description", resolved.get("description", ""))}
        yield from fields(child, document, here, seen)
    items = node.get("items")
    if isinstance(items, dict):
        yield from fields(items, document, f"{path}[]", seen)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        yield from fields(extra, document, f"{path}.*", seen)
    for form in node.get("anyOf", []) + node.get("oneOf", []):
        yield from fields(form, document, path, seen)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def reference() -> str:
    lines = ["# Policy reference", "",
             "<!-- generated from schemas/*.schema.json by tests/schema_reference.py; "
             "tests/test_docs.py keeps it the same:",
             "     .venv/bin/python -m tests.schema_reference > docs/policy-reference.md -->", "",
             "Every field of every kind, as its JSON Schema (2020-12, in [`schemas/`](../schemas)) defines it. `a.b[]`",
             "is an entry of the list `a.b`; `a.*` any key of the map `a`. Fields that take one of several forms",
             "(a secret reference, a keep rule's And/Or) list the fields of every form. What the schemas cannot",
             "say (cross-references, durations, RE2 patterns, semver ranges) `reconcile validate` checks too:",
             "see the README's `reconcile validate`.", ""]
    files = {_load(f.name)["title"]: f.name for f in SCHEMAS.glob("*.schema.json") if "title" in _load(f.name)}
    for kind in KINDS:
        schema = _load(files[kind])
        lines += [f"## {kind}", "", f"`schemas/{files[kind]}`. {_cell(schema.get('description', ''))}", "",
                  "| field | type | required | default | description |", "| --- | --- | --- | --- | --- |"]
        required_of: dict[str, set[str]] = {}
        for path, node in [("", schema), *fields(schema, files[kind], "")]:
            resolved, _, _ = _resolve(node, files[kind])
            required_of[path] = set(resolved.get("required", []))
        for path, node in fields(schema, files[kind], ""):
            parent, _, name = path.rpartition(".")
            required = "yes" if name in required_of.get(parent, set()) else ""
            default = f"`{json.dumps(node['default'])}`" if "default" in node else ""
            described = _cell(node.get("description", ""))
            lines.append(f"| `{path}` | {_type(node)} | {required} | {default} | {described} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference(), end="")
