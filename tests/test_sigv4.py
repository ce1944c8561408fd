"""SigV4: signing matches AWS's published test vectors; verification refuses every tampering."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from sweep_sdk.sigv4 import (
    AuthorizationHeader,
    AwsCredentials,
    StaticCredentials,
    host_of,
    sign_request,
    static_lookup,
    verify_signature,
)

# AWS's Signature Version 4 test suite (get-vanilla, post-vanilla).
SUITE_KEY = StaticCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SUITE_TIME = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)

KEY = StaticCredentials("AKIDLOCAL", "local-secret")
TEMPORARY = StaticCredentials("ASIATEMP", "temp-secret", "session-token-123")
NOW = datetime(2026, 11, 23, 15, 21, tzinfo=UTC)
URL = "http://127.0.0.1:8080/runs"
BODY = b'{"kernel":"gbm_european_option"}'
REGION = "eu-west-1"


@pytest.mark.parametrize(
    ("method", "signature"),
    [
        ("GET", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        ("POST", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ],
)
def test_signing_reproduces_the_aws_test_suite(method: str, signature: str) -> None:
    headers = sign_request(
        method, "https://example.amazonaws.com/", b"", SUITE_KEY, "us-east-1", "service",
        now=SUITE_TIME,
    )  # fmt: skip
    assert headers["X-Amz-Date"] == "20150830T123600Z"
    assert headers["Host"] == "example.amazonaws.com"
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}"
    )


def signed(
    credentials: AwsCredentials = KEY,
    body: bytes = BODY,
    region: str = REGION,
    service: str = "execute-api",
    now: datetime = NOW,
) -> dict[str, str]:
    return sign_request(
        "POST", URL, body, credentials, region, service,
        headers={"Content-Type": "application/json"}, now=now,
    )  # fmt: skip


def verify(
    headers: dict[str, str],
    body: bytes = BODY,
    url: str = URL,
    lookup: Callable[[str], AwsCredentials | None] | None = None,
    now: datetime = NOW,
    method: str = "POST",
) -> str | None:
    chosen = lookup or static_lookup({KEY.access_key: KEY.secret_key})
    return verify_signature(method, url, headers, body, chosen, REGION, now=now)


def test_a_signed_request_verifies() -> None:
    assert verify(signed()) is None


def test_header_names_may_arrive_in_any_case_with_unsigned_extras() -> None:
    headers = {name.lower(): value for name, value in signed().items()}
    headers["user-agent"] = "Python-urllib/3.11"
    headers["content-length"] = str(len(BODY))
    assert verify(headers) is None


def test_temporary_credentials_sign_and_verify_their_token() -> None:
    headers = signed(TEMPORARY)
    assert headers["X-Amz-Security-Token"] == "session-token-123"
    assert (
        "x-amz-security-token" in AuthorizationHeader.parse(headers["Authorization"]).signed_headers
    )

    def lookup(key: str) -> AwsCredentials | None:
        return TEMPORARY if key == TEMPORARY.access_key else None

    assert verify(headers, lookup=lookup) is None
    assert "security token is invalid" in str(
        verify({**headers, "X-Amz-Security-Token": "other"}, lookup=lookup)
    )
    unsent = _without(headers, "X-Amz-Security-Token")
    assert "'x-amz-security-token' is missing" in str(verify(unsent, lookup=lookup))
    never_signed = signed(StaticCredentials(TEMPORARY.access_key, TEMPORARY.secret_key))
    assert "missing X-Amz-Security-Token" in str(verify(never_signed, lookup=lookup))


def test_a_token_the_key_does_not_have_is_refused() -> None:
    token_for_known_key = StaticCredentials(KEY.access_key, KEY.secret_key, "made-up")
    assert "unexpected X-Amz-Security-Token" in str(verify(signed(token_for_known_key)))


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda h: (h, b'{"kernel":"sir_epidemic"}', URL), "signature does not match"),
        (lambda h: (h, BODY, "http://127.0.0.1:8080/runs/x"), "signature does not match"),
        (lambda h: ({**h, "Content-Type": "text/plain"}, BODY, URL), "signature does not match"),
        (lambda h: ({**h, "Host": "evil.example"}, BODY, URL), "signature does not match"),
        (lambda h: (_without(h, "Authorization"), BODY, URL), "missing Authorization"),
        (lambda h: (_without(h, "X-Amz-Date"), BODY, URL), "missing X-Amz-Date"),
        (lambda h: (_without(h, "Content-Type"), BODY, URL), "'content-type' is missing"),
        (lambda h: ({**h, "X-Amz-Date": "yesterday"}, BODY, URL), "not a timestamp"),
        (lambda h: ({**h, "Authorization": "Basic dXNlcg=="}, BODY, URL), "unsupported"),
        (
            lambda h: (
                {**h, "Authorization": h["Authorization"].split(", Signature")[0]},
                BODY,
                URL,
            ),
            "no Signature",
        ),
        (
            lambda h: ({**h, "X-Amz-Content-SHA256": "0" * 64}, BODY, URL),
            "X-Amz-Content-SHA256 does not match",
        ),
    ],
)
def test_tampered_requests_are_refused(
    tamper: Callable[[dict[str, str]], tuple[dict[str, str], bytes, str]], reason: str
) -> None:
    headers, body, url = tamper(signed())
    assert reason in str(verify(headers, body=body, url=url))


def test_a_wrong_secret_is_refused() -> None:
    headers = signed(StaticCredentials(KEY.access_key, "not-the-secret"))
    assert "signature does not match" in str(verify(headers))


def test_an_unknown_access_key_is_refused() -> None:
    headers = signed(StaticCredentials("AKIDSTRANGER", KEY.secret_key))
    assert verify(headers) == "unknown access key id AKIDSTRANGER"


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_a_stale_or_future_date_is_refused(offset: timedelta) -> None:
    assert "expired or not yet valid" in str(verify(signed(now=NOW + offset)))
    assert verify(signed(now=NOW + offset / 2)) is None


def test_a_wrong_region_or_service_is_refused() -> None:
    assert "region 'us-east-1'" in str(verify(signed(region="us-east-1")))
    assert "service 's3'" in str(verify(signed(service="s3")))


def test_scope_date_must_be_the_signing_date() -> None:
    headers = signed()
    headers["Authorization"] = headers["Authorization"].replace("/20261123/", "/20261122/")
    assert "does not match X-Amz-Date" in str(verify(headers))


def test_host_and_date_must_be_signed() -> None:
    headers = signed()
    headers["Authorization"] = headers["Authorization"].replace(
        "SignedHeaders=content-type;host;x-amz-date", "SignedHeaders=content-type;x-amz-date"
    )
    assert verify(headers) == "the host header must be signed"


def test_host_drops_default_ports_only() -> None:
    assert host_of("https://API.example.com:443/v1") == "api.example.com"
    assert host_of("http://127.0.0.1:80/runs") == "127.0.0.1"
    assert host_of("http://127.0.0.1:8080/runs") == "127.0.0.1:8080"
    assert host_of("http://[::1]:8080/") == "[::1]:8080"


def test_credentials_never_print_their_secret() -> None:
    assert "local-secret" not in repr(KEY)


def _without(headers: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k != name}


# --- the exact reasons a 403 body gives ----------------------------------------------------------


def _authorization(headers: dict[str, str], value: str) -> dict[str, str]:
    return {**headers, "Authorization": value}


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (
            lambda h: _without(h, "Authorization"),
            "missing Authorization header (sign the request with SigV4)",
        ),
        (lambda h: _without(h, "X-Amz-Date"), "missing X-Amz-Date header"),
        (
            lambda h: {**h, "X-Amz-Content-SHA256": "0" * 64},
            "X-Amz-Content-SHA256 does not match the body",
        ),
        (
            # a lone surrogate, as a JSON "\udcff" escape in an event's headers decodes
            lambda h: {**h, "X-Amz-Content-SHA256": "\udcff" * 64},
            "X-Amz-Content-SHA256 does not match the body",
        ),
        (
            lambda h: {**h, "Content-Type": "text/plain"},
            "signature does not match: check the secret key, and that the method, path, body "
            "and signed headers reach the server as they were signed",
        ),
        (
            lambda h: _authorization(h, h["Authorization"].split(", Signature")[0]),
            "malformed Authorization header: no Signature",
        ),
        (
            lambda h: _authorization(h, "AWS4-HMAC-SHA256 Signature=abc"),
            "malformed Authorization header: no Credential, SignedHeaders",
        ),
        (
            lambda h: _authorization(
                h, h["Authorization"].replace("/aws4_request", "/aws4_request/extra")
            ),
            "malformed Authorization header: Credential must be "
            "ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request",
        ),
        (
            lambda h: _authorization(h, h["Authorization"].replace("/aws4_request", "/aws4")),
            "malformed Authorization header: Credential must be "
            "ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request",
        ),
        (
            lambda h: _authorization(h, h["Authorization"].replace("AKIDLOCAL/", "/")),
            "malformed Authorization header: Credential must be "
            "ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request",
        ),
    ],
)
def test_each_refusal_says_exactly_why(
    tamper: Callable[[dict[str, str]], dict[str, str]], reason: str
) -> None:
    assert verify(tamper(signed())) == reason


def test_token_refusals_say_exactly_why() -> None:
    def lookup(key: str) -> AwsCredentials | None:
        return TEMPORARY if key == TEMPORARY.access_key else None

    headers = signed(TEMPORARY)
    wrong = {**headers, "X-Amz-Security-Token": "other"}
    assert verify(wrong, lookup=lookup) == "the security token is invalid"
    never_sent = signed(StaticCredentials(TEMPORARY.access_key, TEMPORARY.secret_key))
    assert verify(never_sent, lookup=lookup) == (
        "missing X-Amz-Security-Token (these are temporary credentials)"
    )
    made_up = signed(StaticCredentials(KEY.access_key, KEY.secret_key, "made-up"))
    assert verify(made_up) == "unexpected X-Amz-Security-Token for this access key"
    # a token sent but left out of the signed headers could be swapped in transit
    unsigned = signed(KEY)
    unsigned["x-amz-security-token"] = "rides-along"
    assert verify(unsigned) == "the x-amz-security-token header must be signed"


def test_the_skew_limit_is_inclusive() -> None:
    assert verify(signed(now=NOW - timedelta(minutes=5))) is None
    assert verify(signed(now=NOW + timedelta(minutes=5))) is None
    assert "expired or not yet valid" in str(verify(signed(now=NOW - timedelta(seconds=301))))


def test_the_query_string_is_signed() -> None:
    url = "http://127.0.0.1:8080/runs/20261123T152100Z-1a2b3c4d?wait=1&b=2"
    headers = sign_request("GET", url, b"", KEY, REGION, "execute-api", now=NOW)
    assert verify(headers, body=b"", url=url, method="GET") is None
    assert verify(headers, body=b"", url=url.replace("wait=1", "wait=2"), method="GET") == (
        "signature does not match: check the secret key, and that the method, path, body "
        "and signed headers reach the server as they were signed"
    )
    # the method is compared in upper case, however the server spells it
    assert verify(headers, body=b"", url=url, method="get") is None


def test_times_must_be_timezone_aware() -> None:
    naive = datetime(2026, 11, 23, 15, 21)
    with pytest.raises(ValueError, match=r"^times must be timezone-aware \(UTC\)$"):
        sign_request("GET", URL, b"", KEY, REGION, now=naive)
    with pytest.raises(ValueError, match=r"^times must be timezone-aware \(UTC\)$"):
        verify(signed(), now=naive)


def test_a_time_in_another_zone_is_the_same_instant() -> None:
    paris = NOW.astimezone(timezone(timedelta(hours=1)))
    assert signed(now=paris) == signed(now=NOW)
    assert verify(signed(), now=paris) is None


def test_signing_does_not_depend_on_the_machines_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    expected = signed(now=NOW)
    monkeypatch.setenv("TZ", "IST-5:30")  # POSIX form: needs no time zone database
    time.tzset()
    try:
        assert signed(now=NOW.astimezone(timezone(timedelta(hours=1)))) == expected
    finally:
        monkeypatch.undo()
        time.tzset()


def test_static_lookup_answers_with_the_key_it_was_asked_for() -> None:
    lookup = static_lookup({"AKIDONE": "one", "AKIDTWO": "two"})
    found = lookup("AKIDTWO")
    assert found is not None
    assert (found.access_key, found.secret_key, found.token) == ("AKIDTWO", "two", None)
    assert lookup("AKIDTHREE") is None


def test_a_url_without_a_host_has_an_empty_host() -> None:
    assert host_of("/runs") == ""
