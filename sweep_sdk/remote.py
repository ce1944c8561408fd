"""The sweep HTTP API (API Gateway, or ``sweep serve``) called with SigV4: pure request and answer
handling, plus ``RemoteApi`` (urllib, fresh signatures, retries made safe by client tokens).
"""

from __future__ import annotations

import http.client
import json
import random
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import attrs
from attrs import field, frozen

from sweep_core.contract import AcceptedRun, CancelRecord, ErrorBody, ErrorResponse, Problem
from sweep_core.convert import ContractError, structure
from sweep_core.openapi import ERROR_HEADER, RedriveAccepted
from sweep_core.ports import Clock, utc_now
from sweep_sdk.errors import SubmitError
from sweep_sdk.sigv4 import SERVICE, AwsCredentials, sign_request

DEFAULT_TIMEOUT = 30.0
BACKOFF_BASE = 0.25
BACKOFF_CAP = 8.0
JSON = "application/json"
T = TypeVar("T")

CredentialsProvider = Callable[[], AwsCredentials | None]
"""Current credentials, or None to send requests unsigned (a local gateway without auth)."""


@frozen
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str] = field(factory=dict)
    body: bytes = b""


@frozen
class HttpResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(factory=dict)
    """Header names in lower case."""


Transport = Callable[[HttpRequest], HttpResponse]
"""Sends a request and returns the answer whatever its status; raises only when there is none."""

_CODES = {403: "FORBIDDEN", 404: "NOT_FOUND", 413: "REQUEST_TOO_LARGE", 429: "THROTTLED"}


# --- pure pieces --------------------------------------------------------------------------


def with_client_token(raw: Any, new_token: Callable[[], str]) -> Any:
    """``raw`` with a client token (a copy, when one had to be added).

    A token makes a retried submit return the run the first attempt started instead of
    starting another; a request that is not an object is returned as is for the API to reject.
    """
    if isinstance(raw, Mapping) and raw.get("client_token") is None:
        return {**raw, "client_token": new_token()}
    return raw


def encode_json(raw: Any) -> bytes:
    """The request body, or a ``ContractError`` for values JSON cannot carry (NaN, Infinity)."""
    try:
        return json.dumps(raw, separators=(",", ":"), allow_nan=False).encode()
    except ValueError as exc:
        raise ContractError(
            [Problem("$", f"cannot be sent as JSON ({exc}): NaN and Infinity are not allowed")]
        ) from exc
    except TypeError as exc:
        raise ContractError([Problem("$", f"cannot be sent as JSON ({exc})")]) from exc


def build_request(
    method: str,
    url: str,
    body: bytes,
    credentials: AwsCredentials | None,
    region: str,
    now: datetime,
) -> HttpRequest:
    """The request to send: JSON content type, signed for ``execute-api`` when credentials are
    given (the signed headers include ``Host``, so the value sent is the value signed)."""
    headers = {"Accept": JSON}
    if method != "GET":
        headers["Content-Type"] = JSON
    if credentials is not None:
        headers = sign_request(
            method, url, body, credentials, region, SERVICE, headers=headers, now=now
        )
    return HttpRequest(method, url, headers, body)


def is_retryable(status: int) -> bool:
    """Throttling and server errors may pass; anything else will answer the same again."""
    return status == 429 or status >= 500


def backoff_delay(
    attempt: int, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP, jitter: float = 1.0
) -> float:
    """Seconds before retry number ``attempt + 1``: exponential, capped, with ``jitter`` in
    [0, 1] picking a point in the upper half (so clients that failed together spread out)."""
    ceiling = min(cap, base * 2.0**attempt)
    return ceiling * (0.5 + 0.5 * jitter)


def parse_error(response: HttpResponse) -> ErrorResponse:
    """The ``ErrorResponse`` in an error answer, or one made from whatever body came instead
    (API Gateway's own ``{"message": ...}``, a proxy's HTML page). API Gateway's reason for a
    refusal of its own comes in the ``X-Sweep-Error`` header; it becomes the problem listed."""
    try:
        parsed_error = structure(response.body, ErrorResponse)
    except ContractError:
        pass
    else:
        reason = response.headers.get(ERROR_HEADER.lower())
        if reason and not parsed_error.error.problems:
            body = attrs.evolve(parsed_error.error, problems=(Problem("$", reason),))
            return attrs.evolve(parsed_error, error=body)
        return parsed_error
    code = _CODES.get(response.status, f"HTTP_{response.status}")
    message = f"HTTP {response.status}"
    try:
        parsed = json.loads(response.body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        text = parsed.get("message") or parsed.get("Message")
        if isinstance(text, str) and text:
            message = text
    elif response.body:
        message = response.body[:200].decode("utf-8", "replace").strip() or message
    return ErrorResponse(ErrorBody(code, message))


def parse_submit(response: HttpResponse) -> AcceptedRun:
    """The accepted run in a submit's answer.

    Raises
    ------
    ContractError
        On 400: the request is invalid; ``problems`` lists every reason the API gave.
    SubmitError
        On any other refusal (403 signature, 409 reused client token, 5xx), with the status
        code and the ``ErrorResponse``.
    """
    if response.status == 400:
        body = parse_error(response).error
        problems = body.problems or (Problem("$", body.message),)
        raise ContractError(problems, code=body.code)
    if not 200 <= response.status < 300:
        raise SubmitError(response.status, parse_error(response))
    return _parse_ok(response, AcceptedRun)


def parse_status(response: HttpResponse, run_id: str) -> dict[str, Any]:
    """The status JSON of a run (``LookupError`` on 404, ``SubmitError`` on other errors)."""
    _raise_for_status(response, run_id)
    try:
        body = json.loads(response.body)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise SubmitError(response.status, _unexpected("the status is not a JSON object"))
    return body


def parse_redrive(response: HttpResponse, run_id: str) -> list[int]:
    """The shards a redrive dispatched again (``LookupError`` on 404)."""
    _raise_for_status(response, run_id)
    return list(_parse_ok(response, RedriveAccepted).shards)


def _raise_for_status(response: HttpResponse, run_id: str) -> None:
    if response.status == 404:
        raise LookupError(f"no run {run_id}: {parse_error(response).error.message}")
    if not 200 <= response.status < 300:
        raise SubmitError(response.status, parse_error(response))


def _parse_ok(response: HttpResponse, cls: type[T]) -> T:
    try:
        return structure(response.body, cls)
    except ContractError as exc:
        raise SubmitError(
            response.status, _unexpected(f"the answer is not a {cls.__name__}: {exc}")
        ) from exc


def _unexpected(message: str) -> ErrorResponse:
    return ErrorResponse(ErrorBody("UNEXPECTED_RESPONSE", message))


# --- I/O ----------------------------------------------------------------------------------


def urllib_transport(
    opener: urllib.request.OpenerDirector | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Transport:
    """A transport over ``urllib`` (the default opener honours the usual proxy variables)."""
    chosen = opener or urllib.request.build_opener()

    def send(request: HttpRequest) -> HttpResponse:
        data = None if request.method == "GET" else request.body
        req = urllib.request.Request(
            request.url, data=data, headers=request.headers, method=request.method
        )
        try:
            with chosen.open(req, timeout=timeout) as answer:
                return HttpResponse(answer.status, answer.read(), _headers(answer.headers))
        except urllib.error.HTTPError as answer:
            with answer:
                return HttpResponse(answer.code, answer.read(), _headers(answer.headers))

    return send


def _headers(message: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in (message.items() if message else ())}


class RemoteApi:
    """Submit, watch and redrive runs through the sweep HTTP API.

    Parameters
    ----------
    base_url
        The API's URL including its stage, e.g. ``https://abc.execute-api.eu-west-1.amazonaws.com/v1``
        or ``http://127.0.0.1:8080`` for ``sweep serve``.
    region
        The region requests are signed for.
    credentials_provider
        Returns the credentials to sign with (None: send unsigned). Default: botocore's usual
        chain (environment, profile, SSO, instance role) through ``session``.
    session
        A ``botocore.session.Session`` to take credentials from; a new one by default.
    retries
        How many times to retry after a connection error, 429 or 5xx; each retry is re-signed
        and sends the same body (with the same client token).
    timeout
        Seconds to wait for each answer.
    transport, sleep, clock, new_token, jitter
        Injected I/O, time and randomness (tests replace them).
    """

    def __init__(
        self,
        base_url: str,
        region: str,
        credentials_provider: CredentialsProvider | None = None,
        session: Any = None,
        retries: int = 3,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: Transport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock | None = None,
        new_token: Callable[[], str] | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.region = region
        self.retries = retries
        self._credentials = credentials_provider or _botocore_chain(session)
        self._transport = transport or urllib_transport(timeout=timeout)
        self._sleep = sleep
        self._clock = clock or utc_now
        self._new_token = new_token or _new_client_token
        self._jitter = jitter

    def submit(self, raw: Mapping[str, Any]) -> AcceptedRun:
        """Submit a sweep request (its JSON form) and return the accepted run.

        A request without ``client_token`` gets a random one first, so a retry after a lost
        answer returns the same run instead of starting a second one.

        Raises
        ------
        ContractError
            The request is invalid (400); ``problems`` lists every reason.
        SubmitError
            The API refused it otherwise (403, 409, 5xx after the retries).
        OSError
            No answer at all after the retries (``urllib.error.URLError``, timeouts).
        """
        body = encode_json(with_client_token(raw, self._new_token))
        return parse_submit(self.call("POST", "/runs", body))

    def status(self, run_id: str) -> dict[str, Any]:
        """Where the run stands: ``run_id``, ``points``, ``shards``, ``succeeded``,
        ``failed``, ``missing``, ``failed_attempts`` (``LookupError`` if there is no run)."""
        return parse_status(self.call("GET", f"/runs/{quote(run_id, safe='')}"), run_id)

    def redrive(
        self, run_id: str, force: bool = False, allow_kernel_change: bool = False
    ) -> list[int]:
        """Dispatch again every shard without a success; returns their numbers. A cancelled
        run is redriven only with ``force``, and a run whose kernel is registered at another
        version than it was made with only with ``allow_kernel_change`` (a 409 otherwise)."""
        path = f"/runs/{quote(run_id, safe='')}/redrive"
        options = {"force": force, "allow_kernel_change": allow_kernel_change}
        wanted = {name: True for name, value in options.items() if value}
        body = encode_json(wanted) if wanted else b""
        return parse_redrive(self.call("POST", path, body), run_id)

    def cancel(self, run_id: str) -> CancelRecord:
        """Record that no more shards of the run may start; returns the cancel record."""
        response = self.call("POST", f"/runs/{quote(run_id, safe='')}/cancel")
        _raise_for_status(response, run_id)
        return _parse_ok(response, CancelRecord)

    def call(self, method: str, path: str, body: bytes = b"") -> HttpResponse:
        """One API call with retries; returns the last answer, whatever its status.

        Raises
        ------
        OSError
            When every attempt failed without an answer.
        """
        attempt = 0
        while True:
            request = build_request(
                method, self.base_url + path, body, self._credentials(), self.region,
                self._clock(),
            )  # fmt: skip
            try:
                response = self._transport(request)
            except (OSError, http.client.HTTPException):
                if attempt >= self.retries:
                    raise
            else:
                if not is_retryable(response.status) or attempt >= self.retries:
                    return response
            self._sleep(backoff_delay(attempt, jitter=self._jitter()))
            attempt += 1


def _botocore_chain(session: Any) -> CredentialsProvider:
    import botocore.session

    chosen = session or botocore.session.Session()

    def provide() -> AwsCredentials | None:
        found = chosen.get_credentials()  # cached by the session; refreshed when temporary
        if found is None:
            return None
        # one consistent (key, secret, token) triple, even if a refresh happens meanwhile
        frozen_credentials: AwsCredentials = found.get_frozen_credentials()
        return frozen_credentials

    return provide


def _new_client_token() -> str:
    return "sdk-" + secrets.token_urlsafe(24)
