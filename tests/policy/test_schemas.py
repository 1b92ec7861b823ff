"""The schemas themselves: valid JSON Schema 2020-12, one per kind, every field documented."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from reconcile.policy.schema import KINDS, schemas_dir, secret_pointers

SCHEMAS = sorted(schemas_dir().glob("*.schema.json"))


def test_one_schema_per_kind() -> None:
    titles = {json.loads(p.read_text()).get("title") for p in SCHEMAS}
    assert set(KINDS) <= titles


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.name)
def test_schema_is_valid_2020_12(path: Path) -> None:
    schema = json.loads(path.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def _fields(schema: Any, where: str) -> Iterator[tuple[str, Any]]:
    if isinstance(schema, dict):
        for name, sub in schema.get("properties", {}).items():
            yield f"{where}/{name}", sub
            yield from _fields(sub, f"{where}/{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                yield from _fields(schema[key], f"{where}/{key}")
        for name, sub in schema.get("$defs", {}).items():
            yield f"{where}/$defs/{name}", sub
            yield from _fields(sub, f"{where}/$defs/{name}")
        for branch in schema.get("anyOf", []):
            yield from _fields(branch, where)


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.name)
def test_every_field_is_documented(path: Path) -> None:
    schema = json.loads(path.read_text())
    undocumented = [where for where, sub in _fields(schema, path.name)
                    if not sub.get("description") and not (set(sub) <= {"$ref"} and sub)]
    # a bare $ref inherits the description of what it refers to; everything else says what it is
    assert undocumented == []


def test_secret_fields_are_derived_from_the_schemas() -> None:
    refs, containers = secret_pointers("Registry")
    assert refs == {"/spec/credentials/username", "/spec/credentials/password", "/spec/credentials/token",
                    "/spec/listing/credentials/accessKeyId", "/spec/listing/credentials/secretAccessKey",
                    "/spec/listing/credentials/sessionToken"}  # an ecr listing's IAM access key
    assert {"/spec", "/spec/credentials", "/spec/listing", "/spec/listing/credentials"} <= containers
    assert secret_pointers("Cluster")[0] == {"/spec/kubeconfig"}
