"""The OpenAPI 3.0.1 document API Gateway imports: paths, IAM auth, the Lambda proxy integration,
and schemas generated from the contract types (never written by hand).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from attrs import frozen

from sweep_core._version import __version__
from sweep_core.contract import SCHEMA_VERSION, AcceptedRun, CancelRecord, ErrorResponse
from sweep_core.layout import RUN_ID_PATTERN
from sweep_core.schema import json_schema, request_json_schema

OPENAPI_VERSION = "3.0.1"
REQUEST_VALIDATOR = "body"
SECURITY_SCHEME = "sigv4"
INVALID_REQUEST_MESSAGE = "the sweep request is invalid"


# --- response bodies the contract module does not declare --------------------------------


@frozen
class RunStatusBody:
    """Where a run stands: its size and how many shards succeeded, failed or are missing."""

    run_id: str
    points: int
    shards: int
    succeeded: int
    failed: int
    missing: int
    failed_attempts: int
    cancelled: int
    lost: int
    """Missing shards nothing runs any more (a local runner that is gone); 0 in the cloud."""


@frozen
class RedriveOptions:
    """The optional body of a redrive: ``force`` redrives a cancelled run;
    ``allow_kernel_change`` redrives a run whose kernel is now registered at another version
    (each outcome record names the version that made it)."""

    force: bool = False
    allow_kernel_change: bool = False


@frozen
class RedriveAccepted:
    """The answer to a redrive (HTTP 202): the shards dispatched again."""

    run_id: str
    shards: tuple[int, ...]


# --- draft-04 JSON Schema -> OpenAPI 3.0 Schema Object ------------------------------------

# What an OpenAPI 3.0 Schema Object may hold besides ``x-`` extensions; anything else in a
# generated schema is a keyword this transform does not know how to carry, so it refuses.
_OPENAPI_KEYWORDS = frozenset(
    {
        "title", "description", "type", "format", "enum", "default", "nullable",
        "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
        "maxLength", "minLength", "pattern",
        "items", "maxItems", "minItems", "uniqueItems",
        "properties", "additionalProperties", "required", "maxProperties", "minProperties",
        "allOf", "oneOf", "anyOf", "not",
        "readOnly", "writeOnly", "deprecated", "example", "externalDocs", "discriminator", "xml",
    }
)  # fmt: skip
_SUBSCHEMA_LISTS = ("allOf", "oneOf", "anyOf")
KEY_PATTERN_EXTENSION = "x-propertyNames"
"""Where a map's key pattern goes: OpenAPI 3.0 has neither patternProperties nor propertyNames."""


def openapi_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAPI 3.0 Schema Object for a draft-04 JSON Schema made by ``sweep_core.schema``.

    Pure; the input is not modified. ``$schema`` is dropped; a ``type`` list becomes an
    ``anyOf`` of single types (``"null"`` becomes ``nullable``); a map whose keys are
    restricted by one ``patternProperties`` entry (with ``additionalProperties: false``) takes
    that entry's schema as ``additionalProperties`` and keeps the key pattern in the
    ``x-propertyNames`` extension. Validators of OpenAPI 3.0, API Gateway's among them, then
    accept any key; the parent still checks names against the draft-04 schema.

    Raises
    ------
    ValueError
        For a keyword or shape OpenAPI 3.0 cannot express (so a new generator feature fails
        here, not at deploy time).
    """
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$schema" or key == "patternProperties":
            continue
        if key == "type" and isinstance(value, list):
            _type_list(value, out)
        elif key == "properties":
            out[key] = {name: openapi_schema(sub) for name, sub in value.items()}
        elif key in ("additionalProperties", "items", "not"):
            if isinstance(value, list):
                raise ValueError(f"OpenAPI 3.0 has no list form of {key!r}")
            out[key] = openapi_schema(value) if isinstance(value, Mapping) else value
        elif key in _SUBSCHEMA_LISTS:
            if key in out:
                raise ValueError(f"{key!r} given alongside a type list")
            out[key] = [openapi_schema(sub) for sub in value]
        elif key in _OPENAPI_KEYWORDS or key.startswith("x-"):
            out[key] = copy.deepcopy(value)
        else:
            raise ValueError(f"OpenAPI 3.0 schemas have no {key!r} keyword")
    if "patternProperties" in schema:
        _pattern_properties(schema, out)
    return out


def _type_list(types: list[str], out: dict[str, Any]) -> None:
    if "anyOf" in out:
        raise ValueError("'anyOf' given alongside a type list")
    concrete = [t for t in types if t != "null"]
    if len(concrete) < len(types):
        out["nullable"] = True
    if len(concrete) == 1:
        out["type"] = concrete[0]
    else:
        out["anyOf"] = [{"type": t} for t in concrete]


def _pattern_properties(schema: Mapping[str, Any], out: dict[str, Any]) -> None:
    patterns = schema["patternProperties"]
    if len(patterns) != 1 or schema.get("additionalProperties") is not False:
        raise ValueError(
            "only one patternProperties entry with additionalProperties: false maps to OpenAPI 3.0"
        )
    ((pattern, value_schema),) = patterns.items()
    out["additionalProperties"] = openapi_schema(value_schema)
    out[KEY_PATTERN_EXTENSION] = {"pattern": pattern}


# --- what API Gateway's models support -----------------------------------------------------

UNSUPPORTED_IN_MODELS = frozenset(
    {
        "anyOf", "oneOf", "not", "additionalProperties", "exclusiveMinimum", "exclusiveMaximum",
        "discriminator", "example", "readOnly", "writeOnly", "xml", "externalDocs",
        "nullable", KEY_PATTERN_EXTENSION,
    }
)  # fmt: skip
"""Schema keywords left out of the models API Gateway imports. AWS's "important notes for REST
APIs" list ``anyOf``, ``oneOf``, ``additionalProperties`` (in models), ``exclusiveMinimum``,
``discriminator``, ``example`` and ``readOnly`` as unsupported; ``exclusiveMaximum``, ``not``,
``writeOnly``, ``xml``, ``externalDocs``, ``nullable`` and our own extension go too, since
nothing documents that API Gateway's draft-04 validator reads them as OpenAPI means them."""


def gateway_model(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` (an OpenAPI 3.0 Schema Object) in the subset API Gateway models support.

    Every keyword dropped only removes a constraint, so the API edge accepts at least what the
    contract accepts and the parent, which validates the whole contract, decides the rest: the
    edge may validate less, never differently. A nullable value loses its ``type`` too (a
    validator that ignored ``nullable`` would refuse the null the contract allows).
    """
    out: dict[str, Any] = {}
    nullable = schema.get("nullable") is True
    for key, value in schema.items():
        if key in UNSUPPORTED_IN_MODELS or (nullable and key == "type"):
            continue
        if key == "properties":
            out[key] = {name: gateway_model(sub) for name, sub in value.items()}
        elif key == "items" and isinstance(value, Mapping):
            out[key] = gateway_model(value)
        elif key == "allOf":
            out[key] = [gateway_model(sub) for sub in value]
        else:
            out[key] = copy.deepcopy(value)
    return out


def component_schemas() -> dict[str, dict[str, Any]]:
    """Every schema the document names, by component name, generated from attrs types."""
    generated = {
        "AcceptedRun": json_schema(AcceptedRun),
        "ErrorResponse": json_schema(ErrorResponse),
        "RunStatus": json_schema(RunStatusBody),
        "RedriveAccepted": json_schema(RedriveAccepted),
        "RedriveOptions": json_schema(RedriveOptions),
        "CancelRecord": json_schema(CancelRecord),
    }
    schemas = {"SweepRequest": openapi_schema(request_json_schema())}
    for name, schema in generated.items():
        schemas[name] = {**openapi_schema(schema), "title": name}
    return schemas


# --- the document -------------------------------------------------------------------------


def openapi_document(
    parent_invoke_arn: str = "${parent_invoke_arn}", region: str = "${region}"
) -> dict[str, Any]:
    """The API as API Gateway imports it (a REST API, OpenAPI 3.0.1).

    Parameters
    ----------
    parent_invoke_arn
        Invoke ARN of the parent function (``arn:aws:apigateway:...:lambda:path/...``); the
        default is a placeholder for infrastructure code to substitute.
    region
        The API's region, used in the ``servers`` URL; a placeholder by default.

    Returns
    -------
    dict
        A fresh JSON-serialisable document; equal for equal arguments.
    """
    schemas = {name: gateway_model(schema) for name, schema in component_schemas().items()}
    run_id = {
        "name": "run_id",
        "in": "path",
        "required": True,
        "description": "A run id such as 20261123T152100Z-1a2b3c4d.",
        "schema": {"type": "string", "pattern": RUN_ID_PATTERN.pattern},
    }

    def operation(
        operation_id: str, summary: str, responses: dict[str, Any], **extra: Any
    ) -> dict[str, Any]:
        return {
            "operationId": operation_id,
            "summary": summary,
            **extra,
            "security": [{SECURITY_SCHEME: []}],
            "responses": {
                "403": _json_response("Missing or invalid SigV4 signature.", "ErrorResponse"),
                **responses,
            },
            "x-amazon-apigateway-integration": {
                "type": "aws_proxy",
                "httpMethod": "POST",  # Lambda is always invoked with POST, whatever the route
                "uri": parent_invoke_arn,
            },
        }

    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "sweep",
            "version": __version__,
            "description": (
                "Numeric parameter sweeps fanned out over AWS Lambda. Requests and responses "
                f"carry schema_version {SCHEMA_VERSION}; every call is signed with SigV4."
            ),
        },
        "servers": [
            {
                "url": f"https://{{restApiId}}.execute-api.{region}.amazonaws.com/{{stage}}",
                "variables": {
                    "restApiId": {"default": "example"},
                    "stage": {"default": "v1"},
                },
            }
        ],
        "paths": {
            "/runs": {
                "post": operation(
                    "submitRun",
                    "Submit a sweep; answers as soon as every shard is dispatched.",
                    {
                        "202": _json_response("The run was accepted.", "AcceptedRun"),
                        "400": _json_response(
                            "The request is invalid; problems lists every reason.",
                            "ErrorResponse",
                        ),
                        "409": _json_response(
                            "The client_token already started a different request.",
                            "ErrorResponse",
                        ),
                    },
                    requestBody={
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/SweepRequest"}
                            }
                        },
                    },
                    **{"x-amazon-apigateway-request-validator": REQUEST_VALIDATOR},
                )
            },
            "/runs/{run_id}": {
                "get": operation(
                    "getRunStatus",
                    "Shards succeeded, failed and missing.",
                    {
                        "200": _json_response("Where the run stands.", "RunStatus"),
                        "404": _json_response("There is no such run.", "ErrorResponse"),
                    },
                    parameters=[copy.deepcopy(run_id)],
                )
            },
            "/runs/{run_id}/redrive": {
                "post": operation(
                    "redriveRun",
                    "Dispatch again every shard without a success, under the same run id.",
                    {
                        "202": _json_response("The shards dispatched again.", "RedriveAccepted"),
                        "400": _json_response("The options are invalid.", "ErrorResponse"),
                        "404": _json_response("There is no such run.", "ErrorResponse"),
                        "409": _json_response(
                            "The run was cancelled and force is not given (RUN_CANCELLED), or "
                            "its kernel is registered at another version and "
                            "allow_kernel_change is not given (KERNEL_CHANGED), or not at all "
                            "(KERNEL_UNAVAILABLE); nothing was dispatched.",
                            "ErrorResponse",
                        ),
                    },
                    parameters=[copy.deepcopy(run_id)],
                    requestBody={
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/RedriveOptions"}
                            }
                        },
                    },
                )
            },
            "/runs/{run_id}/cancel": {
                "post": operation(
                    "cancelRun",
                    "Stop the run: no more of its shards start; running ones finish.",
                    {
                        "200": _json_response("The run's cancel record.", "CancelRecord"),
                        "404": _json_response("There is no such run.", "ErrorResponse"),
                    },
                    parameters=[copy.deepcopy(run_id)],
                )
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "apiKey",
                    "name": "Authorization",
                    "in": "header",
                    "x-amazon-apigateway-authtype": "awsSigv4",
                }
            },
        },
        "x-amazon-apigateway-request-validators": {
            REQUEST_VALIDATOR: {"validateRequestBody": True, "validateRequestParameters": True}
        },
        "x-amazon-apigateway-gateway-responses": gateway_responses(),
    }


ERROR_HEADER = "X-Sweep-Error"
"""Where API Gateway's own reason for a refusal goes: a header, never the JSON body."""


def gateway_responses() -> dict[str, Any]:
    """Responses API Gateway makes itself (validator, auth, throttling), in the ErrorResponse
    shape, so a client parses every error the same way whoever produced it.

    Gateway response templates only substitute variables, with no escaping:
    ``validationErrorString`` and ``message`` may hold quotes or backslashes (a request's own
    text), which inside a JSON string would break the body. So the body holds only fixed text
    and ``responseType`` (a bare word), and the reason goes in the ``X-Sweep-Error`` header,
    which the SDK reads back.
    """
    return {
        "BAD_REQUEST_BODY": {
            "statusCode": "400",
            "responseParameters": {
                f"gatewayresponse.header.{ERROR_HEADER}": "context.error.validationErrorString"
            },
            "responseTemplates": {
                "application/json": error_template(
                    code='"INVALID_REQUEST"',
                    message=json.dumps(INVALID_REQUEST_MESSAGE),
                    problems="[]",
                )
            },
        },
        **{
            kind: {
                "responseParameters": {
                    f"gatewayresponse.header.{ERROR_HEADER}": "context.error.message"
                },
                "responseTemplates": {
                    "application/json": error_template(
                        code='"$context.error.responseType"',
                        message=json.dumps(f"refused by the API ({ERROR_HEADER} says why)"),
                        problems="[]",
                    )
                },
            }
            for kind in ("DEFAULT_4XX", "DEFAULT_5XX")
        },
    }


def error_template(code: str, message: str, problems: str) -> str:
    """An ErrorResponse body with its fields given as JSON text (or API Gateway variables)."""
    return (
        f'{{"error":{{"code":{code},"message":{message},"problems":{problems}}},'
        f'"schema_version":{json.dumps(SCHEMA_VERSION)}}}'
    )


def _json_response(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }
