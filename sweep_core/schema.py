"""JSON Schema (draft-04, the dialect API Gateway models accept) generated from contract types.

Never edit a schema by hand: change the attrs class and its field metadata instead.
"""

from __future__ import annotations

import copy
import functools
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

import attrs

from sweep_core.contract import SweepRequest
from sweep_core.kernel_spec import KernelSpec, ParamSpec

DRAFT_04 = "http://json-schema.org/draft-04/schema#"
MAX_SAFE_INTEGER = 2**53 - 1
"""Every integer of a request is within this (JSON's exact integers): nothing downstream, from
a 64-bit planner to Athena's bigint, can overflow on one."""
_PRIMITIVES: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer", "minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER},
    float: {"type": "number"},
    bool: {"type": "boolean"},
}


def json_schema(cls: type) -> dict[str, Any]:
    """The draft-04 JSON Schema of an attrs contract class, self-contained (no ``$ref``)."""
    return {"$schema": DRAFT_04, "title": cls.__name__, **_object_schema(cls)}


@functools.cache
def request_json_schema() -> dict[str, Any]:
    """The JSON Schema every gateway and the SDK validate a sweep request against."""
    return json_schema(SweepRequest)


def kernel_request_json_schema(kernel: KernelSpec) -> dict[str, Any]:
    """The request schema narrowed to one kernel: its name, and each of its parameters typed
    (kind, bounds or choices, default, doc) under ``params`` and ``axes``. Bounds on swept
    values and cross-field rules are still the validator's."""
    schema = copy.deepcopy(request_json_schema())
    schema["title"] = f"SweepRequest for {kernel.name}"
    properties = schema["properties"]
    properties["kernel"] = {"type": "string", "enum": [kernel.name], "description": kernel.doc}
    properties["params"] = {
        "type": "object",
        "description": "fixed values of parameters that are not swept",
        "properties": {p.name: _param_schema(p) for p in kernel.params},
        "additionalProperties": False,
    }
    axis = properties["axes"].pop("patternProperties")
    (axis_schema,) = axis.values()
    properties["axes"]["properties"] = {
        p.name: {**axis_schema, "description": f"how {p.name} is swept: {p.doc}"}
        for p in kernel.params
    }
    return schema


def _param_schema(param: ParamSpec) -> dict[str, Any]:
    schema: dict[str, Any] = {"description": param.doc}
    if param.kind == "choice":
        schema.update(type="string", enum=list(param.choices))
    else:
        schema["type"] = "integer" if param.kind == "int" else "number"
        if param.low is not None:
            schema["minimum"] = param.low
        if param.high is not None:
            schema["maximum"] = param.high
    if param.default is not None:
        schema["default"] = param.default
    return schema


def _object_schema(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for a in attrs.fields(cls):
        keywords = dict(a.metadata.get("schema", {}))
        if keywords.pop("required", False) or a.default is attrs.NOTHING:
            required.append(a.name)
        properties[a.name] = _with_keywords(_type_schema(hints[a.name]), keywords)
    schema: dict[str, Any] = {
        "type": "object",
        "description": _first_line(cls.__doc__),
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    if getattr(cls, "__one_of__", False):
        schema["minProperties"] = 1
        schema["maxProperties"] = 1
    return schema


def _type_schema(tp: Any) -> dict[str, Any]:
    if tp in _PRIMITIVES:
        return dict(_PRIMITIVES[tp])
    if attrs.has(tp):
        return _object_schema(tp)
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return {"type": "string", "enum": list(args)}
    if origin in (Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if len(members) == 1:
            return _type_schema(members[0])
        return _union_schema(members)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return {"type": "array", "items": _type_schema(args[0])}
    if origin is dict and args[0] is str:
        return {"type": "object", "additionalProperties": _type_schema(args[1])}
    raise TypeError(f"no JSON Schema for {tp!r}")


def _union_schema(members: list[Any]) -> dict[str, Any]:
    if all(m in _PRIMITIVES for m in members):
        names: list[str] = [_PRIMITIVES[m]["type"] for m in members]
        if "number" in names and "integer" in names:
            names.remove("integer")  # every integer is a number
        return {"type": names}
    return {"anyOf": [_type_schema(m) for m in members]}


def _with_keywords(schema: dict[str, Any], keywords: dict[str, Any]) -> dict[str, Any]:
    pattern = keywords.pop("propertyNames", None)
    if pattern is not None:
        # draft-04 has no propertyNames: restrict keys through patternProperties instead
        schema["patternProperties"] = {pattern: schema.pop("additionalProperties")}
        schema["additionalProperties"] = False
    return {**schema, **keywords}


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if doc else ""
