"""AWS Signature Version 4 for the sweep API: sign a request as the SDK sends it, and verify one
as API Gateway's AWS_IAM auth does (what the local gateway uses when it requires signatures).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from attrs import frozen
from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.utils import normalize_url_path

from sweep_core.ports import utc_now

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "execute-api"
MAX_SKEW = timedelta(minutes=5)
"""How far X-Amz-Date may be from the verifier's clock (API Gateway allows five minutes)."""

_DEFAULT_PORTS = {"http": 80, "https": 443}


class AwsCredentials(Protocol):
    """What signing needs; botocore's ``ReadOnlyCredentials`` and ``StaticCredentials`` fit."""

    @property
    def access_key(self) -> str: ...

    @property
    def secret_key(self) -> str: ...

    @property
    def token(self) -> str | None: ...


@frozen(repr=False)
class StaticCredentials:
    """An access key, its secret and, for temporary credentials, a session token."""

    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:
        # never print a secret (tracebacks, logs, pytest assertion rewriting)
        return f"StaticCredentials(access_key={self.access_key!r}, secret_key=***)"


CredentialsLookup = Callable[[str], AwsCredentials | None]
"""The credentials of an access key id, or None when the key is unknown."""


def static_lookup(secrets: Mapping[str, str]) -> CredentialsLookup:
    """A lookup over a fixed mapping of access key id to secret key (no session tokens)."""
    table = {key: StaticCredentials(key, secret) for key, secret in secrets.items()}
    return table.get


def sign_request(
    method: str,
    url: str,
    body: bytes,
    credentials: AwsCredentials,
    region: str,
    service: str = SERVICE,
    *,
    headers: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """The headers that sign a request with SigV4, as botocore computes them.

    Parameters
    ----------
    method, url, body
        The request exactly as it will be sent.
    credentials
        Access key, secret key and optional session token.
    region, service
        The credential scope; ``execute-api`` for API Gateway.
    headers
        Headers to send and sign besides the ones added here (e.g. ``Content-Type``).
    now
        Signing time (UTC); defaults to the current time.

    Returns
    -------
    dict
        ``headers`` plus ``Host``, ``X-Amz-Date``, ``Authorization`` and, for temporary
        credentials, ``X-Amz-Security-Token``: send all of them. ``Host`` is included because it
        is signed, so the value sent must be the value signed.
    """
    request = AWSRequest(method=method.upper(), url=url, data=body, headers=dict(headers or {}))
    request.headers["Host"] = host_of(url)
    auth = SigV4Auth(credentials, service, region)
    # SigV4Auth.add_auth reads the wall clock itself; these are its steps with the time given.
    request.context["timestamp"] = _utc(now or utc_now()).strftime(SIGV4_TIMESTAMP)
    auth._modify_request_before_signing(request)
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    auth._inject_signature_to_request(request, signature)
    return {name: str(value) for name, value in request.headers.items()}


@frozen
class AuthorizationHeader:
    """The parts of a SigV4 ``Authorization`` header."""

    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str

    @classmethod
    def parse(cls, value: str) -> AuthorizationHeader:
        """Read ``AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...``.

        Raises
        ------
        ValueError
            Saying what is malformed.
        """
        algorithm, _, rest = value.strip().partition(" ")
        if algorithm != ALGORITHM:
            raise ValueError(f"unsupported signature algorithm {algorithm!r}; use {ALGORITHM}")
        fields: dict[str, str] = {}
        for part in rest.split(","):
            name, sep, item = part.strip().partition("=")
            if sep:
                fields[name] = item.strip()
        missing = [n for n in ("Credential", "SignedHeaders", "Signature") if not fields.get(n)]
        if missing:
            raise ValueError("malformed Authorization header: no " + ", ".join(missing))
        scope = fields["Credential"].split("/")
        if len(scope) != 5 or scope[4] != "aws4_request" or not all(scope):
            raise ValueError(
                "malformed Authorization header: Credential must be "
                "ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request"
            )
        return cls(
            access_key=scope[0],
            date=scope[1],
            region=scope[2],
            service=scope[3],
            signed_headers=tuple(fields["SignedHeaders"].split(";")),
            signature=fields["Signature"],
        )


def verify_signature(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials_lookup: CredentialsLookup,
    region: str,
    service: str = SERVICE,
    *,
    now: datetime,
    max_skew: timedelta = MAX_SKEW,
) -> str | None:
    """Why a request's SigV4 signature is not valid, or None when it is.

    Parameters
    ----------
    method, url, body
        The request as received; ``url`` supplies the path and query (the host comes from the
        signed ``Host`` header).
    headers
        The request headers; names in any case, repeated headers joined with ``,``.
    credentials_lookup
        The credentials of an access key id, None when the key is unknown.
    region, service
        The credential scope this endpoint accepts.
    now
        The verifier's clock (UTC); X-Amz-Date must be within ``max_skew`` of it.

    Returns
    -------
    str or None
        A reason fit for a 403 body, or None.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    authorization = lowered.get("authorization")
    if authorization is None:
        return "missing Authorization header (sign the request with SigV4)"
    try:
        auth = AuthorizationHeader.parse(authorization)
    except ValueError as exc:
        return str(exc)
    if auth.service != service:
        return f"credential scope names service {auth.service!r}; this API is {service!r}"
    if auth.region != region:
        return f"credential scope names region {auth.region!r}; this API is in {region!r}"
    reason = _date_problem(lowered.get("x-amz-date"), auth, _utc(now), max_skew)
    if reason is not None:
        return reason
    reason = _signed_headers_problem(auth.signed_headers, lowered)
    if reason is not None:
        return reason
    credentials = credentials_lookup(auth.access_key)
    if credentials is None:
        return f"unknown access key id {auth.access_key}"
    reason = _token_problem(lowered.get("x-amz-security-token"), credentials.token)
    if reason is not None:
        return reason
    payload_hash = hashlib.sha256(body).hexdigest()
    claimed = lowered.get("x-amz-content-sha256")
    # botocore signs the claimed hash instead of hashing the body when this header is present;
    # a body that differs from the claim must not ride on a valid signature.
    if claimed is not None and not _same(claimed, payload_hash):
        return "X-Amz-Content-SHA256 does not match the body"
    expected = _signature(method, url, lowered, auth, payload_hash, credentials)
    if not _same(expected, auth.signature):
        return (
            "signature does not match: check the secret key, and that the method, path, body "
            "and signed headers reach the server as they were signed"
        )
    return None


def _same(sent: str, expected: str) -> bool:
    """A constant-time comparison of two header values; ``hmac.compare_digest`` refuses
    non-ASCII text with a TypeError, and a forged header may hold any character."""
    return hmac.compare_digest(sent.encode("utf-8", "surrogateescape"), expected.encode())


def host_of(url: str) -> str:
    """The ``Host`` header for ``url``: lowercase, without a default port (as botocore signs)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme):
        return host
    return f"{host}:{port}"


def _date_problem(
    amz_date: str | None, auth: AuthorizationHeader, now: datetime, max_skew: timedelta
) -> str | None:
    if amz_date is None:
        return "missing X-Amz-Date header"
    try:
        signed_at = datetime.strptime(amz_date, SIGV4_TIMESTAMP).replace(tzinfo=UTC)
    except ValueError:
        return f"X-Amz-Date {amz_date!r} is not a timestamp like 20260101T000000Z"
    if amz_date[:8] != auth.date:
        return f"credential scope date {auth.date} does not match X-Amz-Date {amz_date}"
    skew = abs((now - signed_at).total_seconds())
    if skew > max_skew.total_seconds():
        return (
            f"signature expired or not yet valid: X-Amz-Date {amz_date} is {skew:.0f} s from "
            f"the server's clock {now.strftime(SIGV4_TIMESTAMP)} (at most "
            f"{max_skew.total_seconds():.0f} s allowed)"
        )
    return None


def _signed_headers_problem(signed: tuple[str, ...], headers: Mapping[str, str]) -> str | None:
    for required in ("host", "x-amz-date"):
        if required not in signed:
            return f"the {required} header must be signed"
    if "x-amz-security-token" in headers and "x-amz-security-token" not in signed:
        return "the x-amz-security-token header must be signed"
    for name in signed:
        if name not in headers:
            return f"signed header {name!r} is missing from the request"
    return None


def _token_problem(sent: str | None, expected: str | None) -> str | None:
    if expected is None:
        return None if sent is None else "unexpected X-Amz-Security-Token for this access key"
    if sent is None:
        return "missing X-Amz-Security-Token (these are temporary credentials)"
    if not _same(sent, expected):
        return "the security token is invalid"
    return None


def _signature(
    method: str,
    url: str,
    headers: Mapping[str, str],
    auth: AuthorizationHeader,
    payload_hash: str,
    credentials: AwsCredentials,
) -> str:
    # The canonical request is built over exactly the headers the client listed as signed:
    # SigV4Auth.canonical_request would sign every header present (less its blacklist), which
    # is right for a sender but not for a receiver that also sees unsigned headers.
    signer = SigV4Auth(credentials, auth.service, auth.region)
    request = AWSRequest(method=method.upper(), url=url)
    request.context["timestamp"] = headers["x-amz-date"]
    signed = HTTPHeaders()
    for name in auth.signed_headers:
        signed[name] = headers[name]
    canonical = "\n".join(
        [
            method.upper(),
            quote(normalize_url_path(urlsplit(url).path), safe="/~"),
            signer.canonical_query_string(request),
            signer.canonical_headers(signed) + "\n",
            ";".join(auth.signed_headers),
            payload_hash,
        ]
    )
    result: Any = signer.signature(signer.string_to_sign(request, canonical), request)
    return str(result)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware (UTC)")
    return moment.astimezone(UTC)
