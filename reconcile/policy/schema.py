"""Validation of documents against ``schemas/*.schema.json`` (JSON Schema 2020-12), with messages
that point at a line and never echo a value that sits where a secret belongs."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from reconcile.policy import durations, patterns, semver
from reconcile.policy.documents import Document, pointer_join
from reconcile.policy.problems import Problem

API_VERSION = "reconcile/v1"
KINDS = ("Registry", "Cluster", "RetentionPolicy", "PromotionPolicy", "DeployPolicy", "Notification")
_SECRET_REF = "common.schema.json#/$defs/secretRef"
SECRET_FORMS = "{env: NAME}, {file: PATH} or {kubernetes: {namespace: NS, name: NAME, key: KEY}}"


def schemas_dir() -> Path:
    """``schemas/`` of a source checkout, or the copy packaged into the wheel."""
    packaged = resources.files("reconcile") / "_schemas"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "schemas"


@cache
def _schemas() -> tuple[dict[str, dict[str, Any]], Registry]:
    by_kind: dict[str, dict[str, Any]] = {}
    registry: Registry = Registry()
    for path in sorted(schemas_dir().glob("*.schema.json")):
        schema = json.loads(path.read_text())
        registry = registry.with_resource(schema["$id"], Resource.from_contents(schema))
        if schema.get("title") in KINDS:
            by_kind[schema["title"]] = schema
    return by_kind, registry


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    for name, parse in (("duration", durations.parse_duration), ("regex", patterns.compile_pattern),
                        ("semver-range", semver.SemverRange.parse)):
        checker.checks(name, raises=ValueError)(_accepts(parse))
    return checker


def _accepts(parse: Callable[[str], object]) -> Callable[[object], bool]:
    """A format check from a parser: non-strings are the type keyword's business, and a parse
    result that happens to be falsy (``timedelta(0)`` for '0s') still means valid."""

    def check(instance: object) -> bool:
        if isinstance(instance, str):
            parse(instance)
        return True

    return check


@cache
def validator(kind: str) -> Draft202012Validator:
    by_kind, registry = _schemas()
    return Draft202012Validator(by_kind[kind], registry=registry, format_checker=_format_checker())


@cache
def secret_pointers(kind: str) -> tuple[frozenset[str], frozenset[str]]:
    """(pointers that must hold a secret reference, pointers whose subtree holds one), with '*'
    for array items; derived from the schema so a new secret field is covered by adding it."""
    by_kind, registry = _schemas()
    refs: set[str] = set()
    containers: set[str] = set()
    def walk(schema: Any, pointer: str, depth: int, resolver: Any) -> bool:
        if not isinstance(schema, dict) or depth > 20:
            return False
        found = False
        if "$ref" in schema:
            if schema["$ref"] == _SECRET_REF:
                refs.add(pointer)
                found = True
            else:
                resolved = resolver.lookup(schema["$ref"])
                found |= walk(resolved.contents, pointer, depth + 1, resolved.resolver)
        for key, sub in schema.get("properties", {}).items():
            found |= walk(sub, pointer_join(pointer, key), depth + 1, resolver)
        if "items" in schema:
            found |= walk(schema["items"], pointer + "/*", depth + 1, resolver)
        for branch in schema.get("anyOf", []) + schema.get("oneOf", []):
            found |= walk(branch, pointer, depth + 1, resolver)
        if found:
            containers.add(pointer)
        return found

    walk(by_kind[kind], "", 0, registry.resolver(base_uri=by_kind[kind]["$id"]))
    return frozenset(refs), frozenset(containers)


def check_document(document: Document) -> list[Problem]:
    """Problems of one document against the envelope and its kind's schema."""
    subject = document.subject
    body = document.body
    if not isinstance(body, dict):
        return [Problem(document.path, document.line,
                        "a policy document must be a mapping with apiVersion, kind, metadata "
                        "and spec", subject)]
    if document.kind not in KINDS:
        line = document.line_of("/kind")
        shown = f"unknown kind {document.kind!r}" if "kind" in body else "missing 'kind'"
        return [Problem(document.path, line,
                        f"/kind: {shown}; expected one of {', '.join(KINDS)}", subject)]
    problems = []
    for error in validator(document.kind).iter_errors(body):
        pointer, message = _explain(document.kind, error)
        problems.append(Problem(document.path, document.line_of(pointer),
                                f"{pointer or '/'}: {message}", subject))
    return problems


def _pointer(path: Any) -> str:
    pointer = ""
    for token in path:
        pointer = pointer_join(pointer, token)
    return pointer


def _matches(pointer: str, patterns_: frozenset[str], *, exact: bool = False) -> bool:
    """Is ``pointer`` at (or, unless exact, below) one of ``patterns_`` ('*' = any array index)?"""
    parts = pointer.split("/")
    for pattern in patterns_:
        pattern_parts = pattern.split("/")
        fits = len(pattern_parts) == len(parts) if exact else len(pattern_parts) <= len(parts)
        if fits and all(p in ("*", q) for p, q in zip(pattern_parts, parts, strict=False)):
            return True
    return False


def _explain(kind: str, error: jsonschema.ValidationError) -> tuple[str, str]:
    pointer = _pointer(error.absolute_path)
    schema = error.schema if isinstance(error.schema, Mapping) else {}  # a bool schema (or unset) says nothing
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = schema.get("properties", {})
        unexpected = sorted(k for k in error.instance if k not in allowed)
        if unexpected:  # point at the first stray key, and say what would have been accepted
            where = pointer_join(pointer, unexpected[0])
            names = ", ".join(repr(k) for k in unexpected)
            return where, (f"unknown field{'s' if len(unexpected) > 1 else ''} {names}; "
                           f"allowed here: {', '.join(allowed)}")
    refs, containers = secret_pointers(kind)
    if _matches(pointer, refs) or _matches(pointer, containers, exact=True):
        return pointer, _secret_message(pointer, error, refs)
    if error.validator == "format" and isinstance(error.cause, ValueError):
        return pointer, str(error.cause)
    if error.validator == "const" and pointer == "/apiVersion":
        return pointer, f"unsupported apiVersion {error.instance!r}; this version reads {API_VERSION}"
    if error.validator == "enum" and isinstance(error.validator_value, list):
        allowed = ", ".join(str(v) for v in error.validator_value)
        return pointer, f"{error.instance!r} is not one of: {allowed}"
    if error.validator == "pattern" and schema.get("description"):
        return pointer, f"{error.instance!r} is not valid here: {schema['description']}"
    return pointer, error.message


def _secret_message(pointer: str, error: jsonschema.ValidationError, refs: frozenset[str]) -> str:
    """Explain without quoting the instance: it may be the very secret someone pasted."""
    field = pointer.rsplit("/", 1)[-1]
    literal = not isinstance(error.instance, dict)
    if literal and error.validator == "anyOf":
        return "must be plain text or a secret reference"
    if literal and _matches(pointer, refs, exact=True):
        return (f"a literal value is not allowed in '{field}'; reference the secret instead: "
                f"{field}: {SECRET_FORMS}")
    if literal:
        return "must be a mapping of secret references, not a literal value"
    if error.validator in ("minProperties", "maxProperties"):
        return "a secret reference has exactly one of env, file, kubernetes, dockerConfig"
    if error.validator == "required":
        return error.message  # names the missing property only
    return f"not valid here ({error.validator}: {error.validator_value!r})"
