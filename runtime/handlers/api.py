"""The HTTP API as one function: an API Gateway REST proxy event in, a proxy response out.
The Lambda parent and the local gateway (``sweep serve``) both answer through it."""

from __future__ import annotations

import base64
import logging
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from runtime.handlers.parent import KernelChanged, ParentDeps, redrive_run, submit_run
from sweep_core.contract import ErrorBody, ErrorResponse
from sweep_core.convert import ContractError, dumps, loads, structure
from sweep_core.layout import run_date_of
from sweep_core.openapi import RedriveAccepted, RedriveOptions
from sweep_core.ports import NotFound
from sweep_core.run_index import RunCancelled, cancel_run
from sweep_core.runs import CommitError, read_manifest, run_status

ROUTES: Mapping[str, str] = {
    "/runs": "POST",
    "/runs/{run_id}": "GET",
    "/runs/{run_id}/redrive": "POST",
    "/runs/{run_id}/cancel": "POST",
}
"""Each resource of the API and the one method it takes (as the OpenAPI document declares)."""

_log = logging.getLogger("sweep.api")


def handle_request(
    event: Mapping[str, Any], deps: Callable[[], ParentDeps], request_id: str | None = None
) -> dict[str, Any]:
    """Answer one API Gateway REST proxy event; never raises.

    Parameters
    ----------
    event
        The proxy event (``httpMethod``, ``resource``, ``pathParameters``, ``body``...).
    deps
        Makes the parent's adapters, called once per request that needs them (inside the
        error handling: a container that cannot build them answers 500 too).
    request_id
        Named in a 500's message and the log; by default the event's ``requestContext.requestId``.

    Returns
    -------
    dict
        A proxy response (``statusCode``, ``headers``, ``body`` as JSON text); an unexpected
        error is a 500 that names the request id and nothing of the internals.
    """
    try:
        return _route(event, deps)
    except CommitError as exc:
        # The run's own records are damaged: say which (a key, no internals), not "internal".
        return error_reply(500, "DAMAGED_RUN_RECORD", str(exc))
    except Exception:
        # the client gets no internals, the log gets everything
        request_id = request_id or (event.get("requestContext") or {}).get("requestId", "")
        _log.error("request %s failed:\n%s", request_id, traceback.format_exc())
        return error_reply(500, "INTERNAL_ERROR", f"internal error; request id {request_id}")


def _route(event: Mapping[str, Any], deps: Callable[[], ParentDeps]) -> dict[str, Any]:
    method, resource = event.get("httpMethod"), event.get("resource")
    allowed = ROUTES.get(str(resource))
    if allowed is None:
        return error_reply(
            404, "NOT_FOUND", f"no route for {method} {event.get('path') or resource}; the API "
            "has POST /runs, GET /runs/{run_id}, POST /runs/{run_id}/redrive and "
            "POST /runs/{run_id}/cancel",
        )  # fmt: skip
    if method != allowed:
        reply = error_reply(405, "METHOD_NOT_ALLOWED", f"use {allowed} here, not {method}")
        reply["headers"]["Allow"] = allowed
        return reply
    if resource == "/runs":
        response = submit_run(_body(event), deps())
        return reply_json(response.status_code, response.body)
    run_id = str((event.get("pathParameters") or {}).get("run_id") or "")
    if not _is_run_id(run_id):
        return _no_run(run_id)
    parent = deps()
    if resource == "/runs/{run_id}":
        manifest = read_manifest(parent.store, parent.layout, run_id)
        if manifest is None:
            return _no_run(run_id)
        return reply_json(200, run_status(parent.store, parent.layout, manifest).as_dict())
    if resource == "/runs/{run_id}/cancel":
        try:
            return reply_json(200, cancel_run(parent.store, parent.layout, run_id, parent.clock))
        except LookupError:
            return _no_run(run_id)
    options = _redrive_options(event)
    if isinstance(options, dict):
        return options
    try:
        shards = redrive_run(
            run_id, parent, force=options.force, allow_kernel_change=options.allow_kernel_change
        )
    except NotFound:
        return _no_run(run_id)
    except RunCancelled as exc:
        return error_reply(409, "RUN_CANCELLED", str(exc))
    except KernelChanged as exc:
        return error_reply(409, exc.code, exc.message)
    return reply_json(202, RedriveAccepted(run_id, tuple(shards)))


def _redrive_options(event: Mapping[str, Any]) -> RedriveOptions | dict[str, Any]:
    """The redrive's options from its (optional) body, or a 400 saying what is wrong."""
    body = _body(event)
    if not body or not body.strip():
        return RedriveOptions()
    try:
        return structure(loads(body), RedriveOptions)
    except ContractError as exc:
        error = ErrorBody("INVALID_REQUEST", "the redrive options are invalid", exc.problems)
        return reply_json(400, ErrorResponse(error))


def _body(event: Mapping[str, Any]) -> str | bytes:
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body


def _is_run_id(run_id: str) -> bool:
    try:
        run_date_of(run_id)
    except ValueError:
        return False
    return True


def _no_run(run_id: str) -> dict[str, Any]:
    return error_reply(404, "NOT_FOUND", f"no run {run_id}")


def error_reply(status: int, code: str, message: str) -> dict[str, Any]:
    """A proxy response whose body is an ``ErrorResponse``."""
    return reply_json(status, ErrorResponse(ErrorBody(code, message)))


def reply_json(status: int, body: Any) -> dict[str, Any]:
    """A proxy response carrying ``body`` (a contract object or plain data) as JSON."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": dumps(body),
        "isBase64Encoded": False,
    }
