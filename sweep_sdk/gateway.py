"""``sweep serve``: API Gateway on this machine. Auth and body validation as API Gateway does
them, then each request as a proxy event to the router the Lambda parent answers with."""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import threading
import uuid
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from attrs import frozen

from runtime.handlers.api import ROUTES, handle_request
from runtime.handlers.parent import ParentDeps
from sweep_core._version import __version__
from sweep_core.contract import ErrorBody, ErrorResponse, Problem
from sweep_core.convert import unstructure
from sweep_core.openapi import INVALID_REQUEST_MESSAGE
from sweep_core.ports import Clock, utc_now
from sweep_core.validation import schema_problems, shape_problem
from sweep_sdk.embedded import EmbeddedTarget
from sweep_sdk.sigv4 import SERVICE, CredentialsLookup, static_lookup, verify_signature

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
MAX_BODY_BYTES = 1024 * 1024
# A client that sent too large a body still gets its 413 if we read (and drop) what it sent;
# beyond this we just close, rather than read without bound.
_MAX_DRAIN_BYTES = 16 * MAX_BODY_BYTES

_log = logging.getLogger("sweep.gateway")


@frozen
class Response:
    """An HTTP answer: status, a JSON-serialisable body, extra headers."""

    status: int
    body: Any
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_proxy(cls, reply: Mapping[str, Any]) -> Response:
        """From a proxy response (what ``handle_request`` answers, as Lambda would)."""
        headers = tuple((k, v) for k, v in reply["headers"].items() if k != "Content-Type")
        return cls(reply["statusCode"], json.loads(reply["body"]), headers)


def error(status: int, code: str, message: str, problems: tuple[Problem, ...] = ()) -> Response:
    """A response whose body is an ``ErrorResponse``."""
    return Response(status, unstructure(ErrorResponse(ErrorBody(code, message, problems))))


class Gateway:
    """What API Gateway does (SigV4 auth, resource matching, the request validator) before the
    API's router, over an ``EmbeddedTarget``; independent of sockets.

    Parameters
    ----------
    target
        Where runs are submitted, watched and redriven.
    credentials
        Access key id to secret (or a lookup returning credentials): when given, every request
        must carry a valid SigV4 signature for ``execute-api`` in ``region``, else 403.
    region
        The region signatures must be scoped to.
    clock
        The current time, UTC (signatures must be within five minutes of it).
    """

    def __init__(
        self,
        target: EmbeddedTarget,
        credentials: Mapping[str, str] | CredentialsLookup | None = None,
        region: str = "us-east-1",
        clock: Clock | None = None,
    ) -> None:
        self.target = target
        self.region = region
        self._lookup: CredentialsLookup | None = (
            static_lookup(credentials) if isinstance(credentials, Mapping) else credentials
        )
        self._clock: Clock = clock or utc_now
        # Submits and redrives start the target's worker pool lazily and hand it tasks; one at a
        # time keeps two requests from each starting a pool. Each holds it for milliseconds.
        self._dispatch_lock = threading.RLock()

    @property
    def requires_signature(self) -> bool:
        return self._lookup is not None

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Answer one request; never raises (an unexpected error is a 500 without details).

        ``headers`` are keyed by lowercase name; ``path`` is the request target (path and query).
        """
        try:
            return self._handle(method.upper(), path, headers, body)
        except Exception:
            _log.exception("unhandled error answering %s %s", method, path)
            return error(500, "INTERNAL_ERROR", "internal error; the gateway log has the details")

    def _handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        # What API Gateway does before the integration: auth, resource matching, the validator.
        if self._lookup is not None:
            host = headers.get("host", DEFAULT_HOST)
            reason = verify_signature(
                method, f"http://{host}{path}", headers, body, self._lookup, self.region,
                SERVICE, now=self._clock(),
            )  # fmt: skip
            if reason is not None:
                return error(403, "FORBIDDEN", reason)
        event = proxy_event(method, path, headers, body)
        if (event["resource"], method) == ("/runs", ROUTES["/runs"]):
            problems = _body_problems(body)
            if problems:
                return error(400, "INVALID_REQUEST", INVALID_REQUEST_MESSAGE, problems)
        if method == "GET":
            return Response.from_proxy(handle_request(event, self._parent_deps))
        with self._dispatch_lock:
            return Response.from_proxy(handle_request(event, self._parent_deps))

    def _parent_deps(self) -> ParentDeps:
        with self._dispatch_lock:  # one invoker, however many requests make it at once
            return self.target.parent_deps()


def proxy_event(
    method: str, target: str, headers: Mapping[str, str], body: bytes, request_id: str | None = None
) -> dict[str, Any]:
    """The API Gateway REST proxy event for an HTTP request (``target``: path and query), as
    API Gateway makes it: the resource of ``ROUTES`` the path matches (else the path itself),
    its path parameters, and a body that is not UTF-8 in base64."""
    parts = urlsplit(target)
    resource, parameters = _match_resource(parts.path)
    query = parse_qs(parts.query, keep_blank_values=True)
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode("ascii"), True
    request_id = request_id or uuid.uuid4().hex
    return {
        "resource": resource,
        "path": parts.path,
        "httpMethod": method,
        "headers": dict(headers),
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": parameters,
        "stageVariables": None,
        "requestContext": {
            "httpMethod": method,
            "path": parts.path,
            "requestId": request_id,
            "resourcePath": resource,
            "stage": "local",
        },
        "body": text or None,
        "isBase64Encoded": encoded,
    }


def _match_resource(path: str) -> tuple[str, dict[str, str] | None]:
    segments = path.split("/")
    for resource in ROUTES:
        template = resource.split("/")
        if len(template) != len(segments):
            continue
        parameters: dict[str, str] = {}
        for pattern, segment in zip(template, segments, strict=True):
            if pattern.startswith("{") and segment:
                parameters[pattern[1:-1]] = unquote(segment)
            elif pattern != segment:
                break
        else:
            return resource, parameters or None
    return path, None


def _body_problems(body: bytes) -> tuple[Problem, ...]:
    """What API Gateway's request validator finds: not JSON, or against the generated schema."""
    try:
        raw = strict_json(body)
    except ValueError as exc:
        return (Problem("$", f"is not valid JSON ({exc})"),)
    shape = shape_problem(raw)  # bounded, before any work per value
    if shape is not None:
        return (shape,)
    return tuple(schema_problems(raw))


def strict_json(body: bytes) -> Any:
    """Parse a request body as JSON proper: NaN and Infinity are not JSON.

    Raises
    ------
    ValueError
        Saying why it is not JSON (also for bytes that are not UTF-8).
    """

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not allowed in JSON")

    try:
        return json.loads(body, parse_constant=refuse)
    except RecursionError:
        raise ValueError("nested too deeply") from None


# --- HTTP ---------------------------------------------------------------------------------


class GatewayServer(ThreadingHTTPServer):
    """A threading HTTP server answering every request through one ``Gateway``."""

    daemon_threads = True
    request_queue_size = 256
    """The listen backlog: connections a burst may open before the accept loop takes them
    (the default of 5 reset some of 20 concurrent POSTs); each is then served on a thread."""

    def __init__(self, address: tuple[str, int], gateway: Gateway) -> None:
        self.gateway = gateway
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        """The base URL the server listens on, e.g. ``http://127.0.0.1:8080``."""
        host, port = self.server_address[:2]
        text = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://[{text}]:{port}" if ":" in text else f"http://{text}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: GatewayServer
    server_version = f"sweep-gateway/{__version__}"
    sys_version = ""  # do not advertise the Python version
    timeout = 60.0  # seconds a client may stall mid-request before its thread is freed

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        try:
            body = self._read_body()
            if isinstance(body, Response):
                self.close_connection = True
                self._send(body)
                return
            headers = {
                name.lower(): ",".join(self.headers.get_all(name) or [])
                for name in set(self.headers.keys())
            }
            self._send(self.server.gateway.handle(method, self.path, headers, body))
        except OSError:
            self.close_connection = True  # the client went away; nothing to answer
        except Exception:
            _log.exception("unhandled error serving %s %s", method, self.path)
            self.close_connection = True
            self._send(error(500, "INTERNAL_ERROR", "internal error"))

    def _read_body(self) -> bytes | Response:
        if self.headers.get("Transfer-Encoding"):
            return error(411, "LENGTH_REQUIRED", "send the body with a Content-Length")
        text = self.headers.get("Content-Length", "0")
        try:
            length = int(text)
            if length < 0:
                raise ValueError(text)
        except ValueError:
            return error(400, "INVALID_REQUEST", f"bad Content-Length {text!r}")
        if length > MAX_BODY_BYTES:
            if length <= _MAX_DRAIN_BYTES:
                self._drain(length)
            return error(
                413, "REQUEST_TOO_LARGE", f"the body is {length:,} bytes; at most "
                f"{MAX_BODY_BYTES:,} are accepted",
            )  # fmt: skip
        return self.rfile.read(length)

    def _drain(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 65536))
            if not chunk:
                return
            length -= len(chunk)

    def _send(self, response: Response) -> None:
        payload = json.dumps(response.body, separators=(",", ":"), allow_nan=False).encode()
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        _log.info("%s %s", self.address_string(), format % args)


def serve(
    target: EmbeddedTarget,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    credentials: Mapping[str, str] | CredentialsLookup | None = None,
    region: str = "us-east-1",
) -> GatewayServer:
    """A local gateway bound to ``host:port``, not yet serving (see ``run_forever``).

    Parameters
    ----------
    target
        The embedded target requests go to.
    host, port
        Where to listen; port 0 picks a free port (read it back from ``server.url``).
    credentials
        Access key id to secret: when given, every request must be signed with SigV4 for
        ``execute-api`` in ``region`` (as API Gateway's AWS_IAM auth requires), else 403.
        Without it anyone who can reach the port may submit, so bind to loopback.
    region
        The region signatures must name.

    Raises
    ------
    OSError
        When the address cannot be bound.
    """
    if credentials is None and not _is_loopback(host):
        _log.warning("serving on %s without credentials: anyone who can reach it may submit", host)
    return GatewayServer((host, port), Gateway(target, credentials, region))


def run_forever(server: GatewayServer) -> None:
    """Serve until interrupted (Ctrl-C), then close the socket."""
    _log.info("sweep gateway listening on %s", server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
