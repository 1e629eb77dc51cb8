"""MediaMTX's published OpenAPI file as a checker for requests and responses in tests."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

CONTRACTS = Path(__file__).resolve().parents[3] / "shared" / "contracts"
SPEC_URI = "urn:mediamtx-openapi"


@functools.cache
def spec() -> dict[str, Any]:
    """The parsed mediamtx-openapi.yaml."""
    return yaml.safe_load((CONTRACTS / "mediamtx-openapi.yaml").read_text())


def _nullable_all_of(node: Any) -> Any:
    """`nullable` next to `allOf` admits null (MediaMTX's intent; a strict OAS 3.0 reading
    applies `allOf` to null too, which would reject MediaMTX's own `"source": null`)."""
    if isinstance(node, dict):
        node = {k: _nullable_all_of(v) for k, v in node.items()}
        if node.get("nullable") and "allOf" in node:
            rest = {k: v for k, v in node.items() if k != "nullable"}
            return {"anyOf": [{"enum": [None]}, rest]}
        return node
    if isinstance(node, list):
        return [_nullable_all_of(v) for v in node]
    return node


@functools.cache
def _registry() -> Registry:
    contents = _nullable_all_of(spec())
    resource = Resource.from_contents(contents, default_specification=DRAFT4)
    return Registry().with_resource(SPEC_URI, resource)


def _validator(schema: dict[str, Any]) -> OAS30Validator:
    return OAS30Validator(schema, registry=_registry())


def _fix_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (SPEC_URI + v if k == "$ref" and v.startswith("#") else _fix_refs(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_fix_refs(v) for v in node]
    return node


def operation(method: str, url_path: str) -> tuple[str, dict[str, Any]]:
    """The spec's path template and operation for a request; AssertionError if none."""
    for template, item in spec()["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "(.+)", re.escape(template)) + "$"
        if re.match(pattern, url_path) and method.lower() in item:
            return template, item[method.lower()]
    raise AssertionError(f"{method} {url_path} is not in mediamtx-openapi.yaml")


def check_request(method: str, url: str, body: bytes | None) -> None:
    """Assert a request matches an operation, its query parameters and its body schema."""
    parts = urlsplit(url)
    template, op = operation(method, parts.path)
    params = {p["name"]: p for p in op.get("parameters", [])}
    for pair in filter(None, parts.query.split("&")):
        name, _, value = pair.partition("=")
        assert name in params, f"{template}: unknown query parameter {name}"
        if params[name].get("schema", {}).get("type") == "integer":
            assert re.fullmatch(r"\d+", value), f"{template}: {name}={value} is not an integer"
    req = op.get("requestBody")
    if req is None:
        assert not body, f"{template} takes no body"
        return
    schema = req["content"]["application/json"]["schema"]
    errors = list(_validator(_fix_refs(schema)).iter_errors(json.loads(body or b"null")))
    assert not errors, f"{template} request: {errors[0].message}"
    _check_known_fields(schema, json.loads(body or b"null"), template)


def _check_known_fields(schema: dict[str, Any], value: Any, where: str) -> None:
    """MediaMTX rejects unknown fields, so a request must use only declared properties."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = spec()["components"]["schemas"][name]
    if isinstance(value, dict) and "properties" in schema:
        for key in value:
            assert key in schema["properties"], f"{where}: unknown field {key}"


def check_response(method: str, url: str, status: int, body: bytes) -> Any:
    """Assert a response's status is declared and its JSON body matches; return the JSON."""
    template, op = operation(method, urlsplit(url).path)
    responses = op["responses"]
    assert str(status) in responses, f"{template}: status {status} not declared"
    content = responses[str(status)].get("content")
    if content is None:
        return None
    data = json.loads(body)
    schema = content["application/json"]["schema"]
    errors = list(_validator(_fix_refs(_nullable_all_of(schema))).iter_errors(data))
    assert not errors, f"{template} {status}: {errors[0].message} in {data!r}"[:2000]
    return data
