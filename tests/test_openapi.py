"""The OpenAPI document: valid OpenAPI 3.0, generated from the contract, ready for API Gateway."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from sweep_core.contract import ErrorResponse
from sweep_core.convert import structure
from sweep_core.openapi import (
    KEY_PATTERN_EXTENSION,
    component_schemas,
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
    assert doc["components"]["schemas"]["SweepRequest"] == openapi_schema(request_json_schema())
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
def test_openapi_and_draft_04_schemas_reject_the_same_requests(
    gbm_request: dict[str, Any], field: str, value: Any
) -> None:
    gbm_request[field] = value
    draft04 = jsonschema.Draft4Validator(request_json_schema())
    assert not draft04.is_valid(gbm_request)
    assert not _oas_request_validator().is_valid(gbm_request)


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


def test_gateway_responses_render_as_error_responses() -> None:
    responses = gateway_responses()
    rendered = (
        responses["BAD_REQUEST_BODY"]["responseTemplates"]["application/json"]
        .replace("$context.error.validationErrorString", "[instance failed to match]")
    )  # fmt: skip
    error = structure(rendered, ErrorResponse)
    assert error.error.code == "INVALID_REQUEST"
    assert error.error.problems[0].message == "[instance failed to match]"
    assert responses["BAD_REQUEST_BODY"]["statusCode"] == "400"
    for kind in ("DEFAULT_4XX", "DEFAULT_5XX"):
        template = responses[kind]["responseTemplates"]["application/json"]
        rendered = template.replace("$context.error.responseType", "ACCESS_DENIED").replace(
            "$context.error.messageString", '"Forbidden"'
        )
        error = structure(rendered, ErrorResponse)
        assert (error.error.code, error.error.message) == ("ACCESS_DENIED", "Forbidden")
