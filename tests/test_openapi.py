"""The OpenAPI document: valid OpenAPI 3.0, generated from the contract, ready for API Gateway."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from sweep_core.contract import ErrorResponse
from sweep_core.convert import structure
from sweep_core.openapi import (
    ERROR_HEADER,
    KEY_PATTERN_EXTENSION,
    UNSUPPORTED_IN_MODELS,
    component_schemas,
    gateway_model,
    gateway_responses,
    openapi_document,
    openapi_schema,
)
from sweep_core.runs import RunStatus
from sweep_core.schema import request_json_schema

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ARN = (
    "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/"
    "arn:aws:lambda:eu-west-1:123456789012:function:sweep-parent/invocations"
)
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


@pytest.mark.parametrize("args", [(), (ARN, "eu-west-1")])
def test_document_is_valid_openapi_3_0(args: tuple[str, ...]) -> None:
    doc = openapi_document(*args)
    assert doc["openapi"] == "3.0.1"
    validate(doc)


def test_request_schema_is_the_transformed_generated_schema() -> None:
    doc = openapi_document(ARN, "eu-west-1")
    assert doc["components"]["schemas"]["SweepRequest"] == gateway_model(
        openapi_schema(request_json_schema())
    )
    body = doc["paths"]["/runs"]["post"]["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SweepRequest"
    }


def test_every_operation_is_signed_and_proxied_to_the_parent() -> None:
    doc = openapi_document(ARN, "eu-west-1")
    ops = operations(doc)
    assert {(p, m) for p, m, _ in ops} == {
        ("/runs", "post"),
        ("/runs/{run_id}", "get"),
        ("/runs/{run_id}/redrive", "post"),
        ("/runs/{run_id}/cancel", "post"),
    }
    for _, _, op in ops:
        assert op["security"] == [{"sigv4": []}]
        assert op["x-amazon-apigateway-integration"] == {
            "type": "aws_proxy",
            "httpMethod": "POST",
            "uri": ARN,
        }
        assert op["responses"]["403"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorResponse"
        }
    scheme = doc["components"]["securitySchemes"]["sigv4"]
    assert scheme == {
        "type": "apiKey",
        "name": "Authorization",
        "in": "header",
        "x-amazon-apigateway-authtype": "awsSigv4",
    }


def test_submit_is_validated_by_the_body_validator() -> None:
    doc = openapi_document()
    assert doc["x-amazon-apigateway-request-validators"] == {
        "body": {"validateRequestBody": True, "validateRequestParameters": True}
    }
    post = doc["paths"]["/runs"]["post"]
    assert post["x-amazon-apigateway-request-validator"] == "body"
    assert set(post["responses"]) == {"202", "400", "403", "409"}
    assert set(doc["paths"]["/runs/{run_id}"]["get"]["responses"]) == {"200", "403", "404"}
    assert "202" in doc["paths"]["/runs/{run_id}/redrive"]["post"]["responses"]


def test_document_is_deterministic_and_fresh() -> None:
    first = openapi_document(ARN, "eu-west-1")
    text = json.dumps(first, sort_keys=True)
    first["components"]["schemas"]["SweepRequest"]["properties"].clear()
    assert json.dumps(openapi_document(ARN, "eu-west-1"), sort_keys=True) == text
    assert "properties" in request_json_schema()
    assert request_json_schema()["properties"]


def test_placeholders_are_left_for_infrastructure_to_fill() -> None:
    text = json.dumps(openapi_document())
    assert "${parent_invoke_arn}" in text
    assert "${region}" in text


# --- the draft-04 -> OpenAPI 3.0 transform ------------------------------------------------


def test_type_list_becomes_any_of_and_keeps_other_keywords() -> None:
    assert openapi_schema({"type": ["number", "string"], "description": "x"}) == {
        "anyOf": [{"type": "number"}, {"type": "string"}],
        "description": "x",
    }


def test_null_in_a_type_list_becomes_nullable() -> None:
    assert openapi_schema({"type": ["string", "null"]}) == {"type": "string", "nullable": True}


def test_pattern_properties_become_additional_properties_with_the_key_pattern() -> None:
    draft04 = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "patternProperties": {"^[a-z]+$": {"type": ["integer", "string"]}},
        "additionalProperties": False,
        "maxProperties": 3,
    }
    before = copy.deepcopy(draft04)
    assert openapi_schema(draft04) == {
        "type": "object",
        "additionalProperties": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        "maxProperties": 3,
        KEY_PATTERN_EXTENSION: {"pattern": "^[a-z]+$"},
    }
    assert draft04 == before


def test_nested_schemas_are_transformed() -> None:
    draft04 = {
        "type": "object",
        "properties": {"a": {"type": "array", "items": {"type": ["number", "string"]}}},
        "anyOf": [{"type": ["integer", "null"]}],
    }
    assert openapi_schema(draft04) == {
        "type": "object",
        "properties": {
            "a": {"type": "array", "items": {"anyOf": [{"type": "number"}, {"type": "string"}]}}
        },
        "anyOf": [{"type": "integer", "nullable": True}],
    }


@pytest.mark.parametrize(
    "draft04",
    [
        {"dependencies": {"a": ["b"]}},
        {"items": [{"type": "string"}]},
        {"patternProperties": {"^a": {}, "^b": {}}, "additionalProperties": False},
        {"patternProperties": {"^a": {}}},
        {"type": ["string", "integer"], "anyOf": [{"minLength": 1}]},
    ],
)
def test_what_openapi_3_0_cannot_say_is_refused(draft04: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"OpenAPI 3\.0|patternProperties|anyOf"):
        openapi_schema(draft04)


def test_no_generated_schema_keeps_a_draft_04_only_keyword() -> None:
    text = json.dumps(component_schemas())
    for keyword in ('"$schema"', '"patternProperties"', '"propertyNames"'):
        assert keyword not in text
    for schema in component_schemas().values():
        assert not _type_lists(schema)


def _type_lists(node: Any) -> bool:
    if isinstance(node, dict):
        return isinstance(node.get("type"), list) or any(_type_lists(v) for v in node.values())
    if isinstance(node, list):
        return any(_type_lists(v) for v in node)
    return False


# --- the schemas judge requests as the draft-04 schema does -------------------------------


def _oas_request_validator() -> OAS30Validator:
    return OAS30Validator(openapi_document()["components"]["schemas"]["SweepRequest"])


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.json")))
def test_shipped_examples_are_valid_under_the_openapi_schema(name: str) -> None:
    raw = json.loads((EXAMPLES / name).read_text())
    assert list(_oas_request_validator().iter_errors(raw)) == []


def _breakages() -> list[tuple[str, Any]]:
    return [
        ("seed", -1),
        ("seed", "7"),
        ("kernel", "Not A Name"),
        ("sampling", {"method": "lattice"}),
        ("sharding", {"shard_count": 2, "shard_size": 5}),
        ("axes", {"sigma": {"values": [0.1], "linspace": {"start": 0, "stop": 1, "num": 2}}}),
        ("axes", {"sigma": {"values": [[0.1]]}}),
        ("params", {"s0": [100]}),
        ("extra", 1),
    ]


@pytest.mark.parametrize(("field", "value"), _breakages())
def test_the_api_edge_never_refuses_what_the_contract_accepts_and_the_parent_decides_the_rest(
    gbm_request: dict[str, Any], field: str, value: Any
) -> None:
    valid = copy.deepcopy(gbm_request)
    gbm_request[field] = value
    draft04 = jsonschema.Draft4Validator(request_json_schema())
    assert draft04.is_valid(valid)
    assert _oas_request_validator().is_valid(valid)
    assert not draft04.is_valid(gbm_request)  # the parent refuses, whatever the edge did
    if (field, value) in (("seed", -1), ("seed", "7"), ("kernel", "Not A Name")):
        assert not _oas_request_validator().is_valid(gbm_request)  # types, bounds, patterns


def _keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node).union(*(_keys(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_keys(v) for v in node))
    return set()


def _schemas_in(node: Any, path: str = "$") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every Schema Object of the document: components, parameters, bodies, and their parts."""
    if isinstance(node, dict):
        if "schema" in node and isinstance(node["schema"], dict):
            yield from _schema_tree(node["schema"], f"{path}.schema")
        if path == "$.components.schemas":
            for name, schema in node.items():
                yield from _schema_tree(schema, f"{path}.{name}")
            return
        for key, value in node.items():
            yield from _schemas_in(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _schemas_in(value, f"{path}[{i}]")


def _schema_tree(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _schema_tree(sub, f"{path}.properties.{name}")
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), dict):
            yield from _schema_tree(schema[key], f"{path}.{key}")
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(schema.get(key, [])):
            yield from _schema_tree(sub, f"{path}.{key}[{i}]")


DOCUMENTED_UNSUPPORTED = ("anyOf", "oneOf", "additionalProperties", "exclusiveMinimum",
                          "discriminator", "example", "readOnly")  # fmt: skip
"""AWS's "important notes for REST APIs": schema keywords API Gateway models do not support."""


def test_the_imported_document_keeps_api_gateways_documented_model_rules() -> None:
    document = openapi_document(ARN, "eu-west-1")
    schemas = list(_schemas_in(document))
    assert len(schemas) > 50  # the walk reaches nested schemas
    for path, schema in schemas:
        found = set(schema) & (set(DOCUMENTED_UNSUPPORTED) | UNSUPPORTED_IN_MODELS)
        assert not found, (path, found)
    assert not {"example", "discriminator"} & _keys(document)
    # the contract itself does use them: the subset is a real transform, not a no-op
    full = json.dumps(component_schemas())
    assert '"anyOf"' in full
    assert '"additionalProperties"' in full


def test_key_names_are_left_to_the_parent_under_openapi(gbm_request: dict[str, Any]) -> None:
    # OpenAPI 3.0 cannot restrict map keys; the parent applies the draft-04 schema again.
    gbm_request["params"]["Bad Name"] = 1.0
    assert not jsonschema.Draft4Validator(request_json_schema()).is_valid(gbm_request)
    assert _oas_request_validator().is_valid(gbm_request)


# --- responses ----------------------------------------------------------------------------


def test_status_schema_describes_what_the_status_answer_holds() -> None:
    body = RunStatus("20261123T152100Z-1a2b3c4d", 10, 7, 2, 3, 1000).as_dict()
    schema = component_schemas()["RunStatus"]
    assert set(schema["properties"]) == set(body)
    assert set(schema["required"]) == set(body)
    assert list(OAS30Validator(schema).iter_errors(body)) == []


NASTY_MESSAGES = (
    'Invalid request body: [object has missing required properties (["seed"])]',
    'instance value ("gu\\"ess") not found in enum',
    'a backslash \\ and a quote " and a newline\n and a tab\t',
    '"}, "injected": {"x": "',
)


@pytest.mark.parametrize("message", NASTY_MESSAGES)
def test_gateway_responses_are_valid_json_whatever_the_message(message: str) -> None:
    for kind, response in gateway_responses().items():
        template = response["responseTemplates"]["application/json"]
        rendered = (
            template.replace("$context.error.validationErrorString", message)
            .replace("$context.error.messageString", json.dumps(message)[:-1] + message + '"')
            .replace("$context.error.message", message)
            .replace("$context.error.responseType", "BAD_REQUEST_BODY")
        )
        error = structure(rendered, ErrorResponse)  # json.loads, then the contract type
        assert json.loads(rendered)["error"]["code"] in ("INVALID_REQUEST", "BAD_REQUEST_BODY")
        assert message not in error.error.message, kind
        header = response["responseParameters"][f"gatewayresponse.header.{ERROR_HEADER}"]
        assert header in ("context.error.validationErrorString", "context.error.message")


def test_gateway_responses_render_as_error_responses() -> None:
    responses = gateway_responses()
    error = structure(
        responses["BAD_REQUEST_BODY"]["responseTemplates"]["application/json"], ErrorResponse
    )
    assert error.error.code == "INVALID_REQUEST"
    assert responses["BAD_REQUEST_BODY"]["statusCode"] == "400"
    for kind in ("DEFAULT_4XX", "DEFAULT_5XX"):
        template = responses[kind]["responseTemplates"]["application/json"]
        rendered = template.replace("$context.error.responseType", "ACCESS_DENIED")
        error = structure(rendered, ErrorResponse)
        assert error.error.code == "ACCESS_DENIED"
        assert ERROR_HEADER in error.error.message
