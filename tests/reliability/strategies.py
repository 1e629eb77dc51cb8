"""Hypothesis strategies: JSON values, JSON-RPC envelopes, batches, and the params of every
registered method (from each params Struct's JSON schema, plus junk), and hostile file names.
"""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import strategies as st

from camsvc.rpc.registry import Registry

__all__ = [
    "HOSTILE_NAMES",
    "envelopes",
    "ids",
    "json_values",
    "messages",
    "params_for",
    "schema_values",
]

#: Names that must never reach outside the media folders (API.md §1.1).
HOSTILE_NAMES: list[str] = [
    "..",
    ".",
    "../x.jpg",
    "..\\x.jpg",
    "a/../../etc/passwd",
    "/etc/passwd",
    "/",
    "\\",
    "C:\\Windows\\win.ini",
    "camera0/x.jpg",
    "%2e%2e%2fx.jpg",
    "%252e%252e%252fx.jpg",
    "..%2fx.jpg",
    "..%c0%afx.jpg",
    "x.jpg\x00.png",
    "\x00",
    "x\n.jpg",
    "x\r.jpg",
    "x\t.jpg",
    "x\x7f.jpg",
    "x\x1b[31m.jpg",
    "\u2024\u2024\u2215etc\u2215passwd",  # one dot leader, division slash
    "\u2025\uff0fetc\uff0fpasswd",  # two dot leader, fullwidth solidus
    "\uff0e\uff0e\uff0fx.jpg",  # fullwidth full stops
    "x\u202ejpg.exe",  # right-to-left override
    "\ufeffx.jpg",
    "x.jpg.",
    "x.jpg ",
    "x.jpg...",
    " ",
    "...",
    "a" * 256,
    "a" * 252 + ".jpg",
    "\u00e9" * 128,  # 256 bytes of UTF-8
    "con.jpg",
    "x.jpg:stream",
    "",
]

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)

#: Any JSON value, small.
json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=8,
)

#: Every kind of `id`, valid and not.
ids = (
    st.integers(min_value=-(2**63), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
    | st.none()
    | st.booleans()
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def schema_values(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values that fit a JSON schema as msgspec writes them (and often just miss it)."""
    schema = _resolve(schema, defs)
    if "anyOf" in schema:
        return st.one_of([schema_values(s, defs) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | st.text(max_size=8)
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        fields = {k: schema_values(v, defs) for k, v in props.items()}
        values = st.fixed_dictionaries(
            {k: v for k, v in fields.items() if k in required},
            optional={k: v for k, v in fields.items() if k not in required},
        )
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            values = values | st.dictionaries(
                st.text(max_size=8), schema_values(extra, defs), max_size=3
            )
        return values
    if kind == "array":
        items = schema_values(schema.get("items", {}), defs)
        low = schema.get("minItems", 0)
        high = schema.get("maxItems", low + 4)
        return st.lists(items, min_size=low, max_size=min(high, low + 4) + 1)
    if kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        edges = [v + d for v in (low, high) if v is not None for d in (-1, 0, 1)]
        if high is None:  # past SQLite's and C's 64-bit integers
            edges += [2**63 - 1, 2**63, 2**64, 10**30]
        ints = st.integers(min_value=low, max_value=high) | st.sampled_from(edges or [0])
        return ints | ints.map(float)
    if kind == "number":
        return st.floats(
            min_value=schema.get("minimum"),
            max_value=schema.get("maximum"),
            allow_nan=False,
            allow_infinity=False,
        ) | st.integers(-5, 10**6)
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        text: st.SearchStrategy[str] = st.text(max_size=schema.get("maxLength", 20) + 2)
        if "pattern" in schema:
            text = text | st.from_regex(schema["pattern"], fullmatch=True)
        return (
            text
            | st.sampled_from(HOSTILE_NAMES)
            | st.sampled_from(
                ["camera0", "camera01", "camera999999999999999999", "ext_a", "ext_", "foo"]
            )
        )
    if kind == "null":
        return st.none()
    return json_values


def params_for(params_type: type[msgspec.Struct]) -> st.SearchStrategy[Any]:
    """Params of one method: from its schema, with junk mixed in now and then."""
    schema = msgspec.json.schema(params_type)
    fitted = schema_values(schema, schema.get("$defs", {}))
    mangled = st.tuples(fitted, st.dictionaries(st.text(max_size=8), json_values, max_size=2)).map(
        lambda pair: {**pair[0], **pair[1]} if isinstance(pair[0], dict) else pair[0]
    )
    return fitted | mangled | json_values


def envelopes(registry: Registry) -> st.SearchStrategy[Any]:
    """Request objects: mostly well formed for a registered method, each member possibly off."""
    methods = [spec.name for spec in registry]
    per_method = [st.tuples(st.just(s.name), params_for(s.params)) for s in registry]
    named = st.one_of(per_method) | st.tuples(
        st.sampled_from(["nope", "rpc.other", "rpc.discover", "", "PING", *methods]), json_values
    )

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        method, params = draw(named)
        obj: dict[str, Any] = {}
        if draw(st.integers(0, 9)):
            obj["jsonrpc"] = "2.0"
        else:
            obj["jsonrpc"] = draw(st.sampled_from(["1.0", 2.0, None, "2.00"]) | json_values)
        obj["method"] = method if draw(st.integers(0, 9)) else draw(json_values)
        if draw(st.integers(0, 4)):
            obj["params"] = params
        choice = draw(st.integers(0, 4))
        if choice == 0:
            pass  # a notification
        elif choice == 1:
            obj["id"] = draw(ids)
        else:
            obj["id"] = draw(st.integers(0, 10**6) | st.text(max_size=6))
        if not draw(st.integers(0, 9)):
            del obj[draw(st.sampled_from(sorted(obj)))]
        return obj

    return build()


def messages(registry: Registry, max_batch: int) -> st.SearchStrategy[Any]:
    """Whole messages: one envelope, a batch mixing envelopes and junk, or any JSON value."""
    one = envelopes(registry)
    element = one | one | json_values
    return (
        one
        | st.lists(element, min_size=1, max_size=max_batch)
        | st.lists(one, min_size=max_batch + 1, max_size=max_batch + 2)
        | st.just([])
        | json_values
    )
