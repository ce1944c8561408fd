"""The local gateway and the remote client, end to end over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
from conftest import tiny_request
from openapi_schema_validator import OAS30Validator

from runtime import lambda_entry
from runtime.adapters.local_store import LocalContext
from runtime.handlers.parent import ParentDeps
from runtime.handlers.worker import WorkerDeps
from runtime.lambda_entry import CloudAdapters, CloudConfig
from sweep_core.contract import AcceptedRun, ErrorBody, ErrorResponse, Problem
from sweep_core.convert import ContractError, dumps
from sweep_core.openapi import ERROR_HEADER, component_schemas, gateway_responses
from sweep_core.validation import parse_request
from sweep_sdk.embedded import EmbeddedTarget
from sweep_sdk.errors import SubmitError
from sweep_sdk.gateway import MAX_BODY_BYTES, Gateway, GatewayServer, Response
from sweep_sdk.remote import (
    HttpResponse,
    RemoteApi,
    backoff_delay,
    encode_json,
    is_retryable,
    parse_error,
    parse_submit,
    urllib_transport,
    with_client_token,
)
from sweep_sdk.sigv4 import AwsCredentials, StaticCredentials

REGION = "eu-west-1"
KEY = StaticCredentials("AKIDLOCAL", "local-secret")
# Straight to 127.0.0.1 whatever proxy the environment names.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


StartGateway = Callable[..., GatewayServer]


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[StartGateway]:
    """Starts gateways on ephemeral ports in threads; stops them (and their workers) after."""
    running: list[tuple[GatewayServer, threading.Thread]] = []

    def start(
        credentials: Mapping[str, str] | None = None,
        gateway_class: type[Gateway] = Gateway,
        target: EmbeddedTarget | None = None,
    ) -> GatewayServer:
        chosen = target or EmbeddedTarget(tmp_path / "data", workers=1)
        server = GatewayServer(("127.0.0.1", 0), gateway_class(chosen, credentials, REGION))
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        running.append((server, thread))
        return server

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join(5)
        target = server.gateway.target
        # Only a target that dispatched has workers to wait for (a pool never handed a task
        # reports busy until its timeout).
        if any(target.data_dir.rglob("manifest.json")):
            assert target.join(30)


def remote(
    server: GatewayServer,
    credentials: AwsCredentials | None = KEY,
    retries: int = 0,
    sleeps: list[float] | None = None,
) -> RemoteApi:
    return RemoteApi(
        server.url, REGION, lambda: credentials, retries=retries,
        transport=urllib_transport(DIRECT, timeout=10),
        sleep=(sleeps.append if sleeps is not None else lambda _: None),
    )  # fmt: skip


def wait_settled(api: RemoteApi, run_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = api.status(run_id)
        if status["missing"] == 0:
            return status
        assert time.monotonic() < deadline, f"run {run_id} not settled after {timeout} s: {status}"
        time.sleep(0.1)


# --- end to end ---------------------------------------------------------------------------


def test_a_submitted_sweep_runs_and_reports_its_status(start_gateway: StartGateway) -> None:
    api = remote(start_gateway(), credentials=None)
    accepted = api.submit(tiny_request())
    assert isinstance(accepted, AcceptedRun)
    assert (accepted.point_count, accepted.shard_count, accepted.existing) == (4, 2, False)
    status = wait_settled(api, accepted.run_id)
    assert status == {
        "run_id": accepted.run_id, "points": 4, "shards": 2, "succeeded": 2, "failed": 0,
        "missing": 0, "failed_attempts": 0, "cancelled": 0, "lost": 0,
    }  # fmt: skip
    assert list(OAS30Validator(component_schemas()["RunStatus"]).iter_errors(status)) == []
    assert api.redrive(accepted.run_id) == []


REMOTE_SUBMIT = """
import json, sys
from sweep_sdk import submit
run = submit(json.loads(sys.argv[2]), target=sys.argv[1])
heavy = ("numpy", "pyarrow", "scipy", "duckdb", "runtime", "sweep_kernels")
print(json.dumps({"run_id": run.run_id, "loaded": [m for m in heavy if m in sys.modules]}))
"""


def test_a_remote_submit_imports_no_numpy_nor_the_runtime(
    start_gateway: StartGateway, tmp_path: Path
) -> None:
    server = start_gateway()
    outputs = tmp_path / "stack.json"
    outputs.write_text(json.dumps({"api_url": server.url, "region": REGION, "bucket": "b"}))
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "AKIDLOCAL",
        "AWS_SECRET_ACCESS_KEY": "local-secret",  # pragma: allowlist secret
        "NO_PROXY": "127.0.0.1",
        "no_proxy": "127.0.0.1",
    }
    done = subprocess.run(
        [sys.executable, "-c", REMOTE_SUBMIT, str(outputs), json.dumps(tiny_request())],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    answer = json.loads(done.stdout)
    assert answer["loaded"] == []
    assert wait_settled(remote(server), answer["run_id"])["succeeded"] == 2


def test_a_run_is_cancelled_over_http_and_redriven_only_with_force(
    start_gateway: StartGateway,
) -> None:
    api = remote(start_gateway(), credentials=None)
    accepted = api.submit(tiny_request())
    assert isinstance(accepted, AcceptedRun)
    record = api.cancel(accepted.run_id)
    assert (record.run_id, record.generation) == (accepted.run_id, 0)
    assert api.cancel(accepted.run_id) == record  # once
    wait_settled(api, accepted.run_id)
    with pytest.raises(SubmitError) as refused:
        api.redrive(accepted.run_id)
    assert refused.value.status_code == 409
    assert refused.value.error.error.code == "RUN_CANCELLED"
    api.redrive(accepted.run_id, force=True)
    assert wait_settled(api, accepted.run_id)["succeeded"] == 2
    with pytest.raises(LookupError):
        api.cancel("20261123T000000Z-00000000")


@pytest.mark.parametrize(
    "breakage",
    [
        {"seed": -1, "kernel": "Not A Kernel", "extra": True},  # the schema rejects it
        {"kernel": "no_such_kernel"},  # the parent rejects it
        {"params": {"s0": -5.0, "rate": 0.02, "maturity": 1.0, "paths": 200, "option": "call"}},
    ],
)
def test_an_invalid_request_lists_the_problems_parse_request_finds(
    start_gateway: StartGateway, breakage: dict[str, Any]
) -> None:
    raw = {**tiny_request("token-invalid"), **breakage}
    with pytest.raises(ContractError) as expected:
        parse_request(raw)
    with pytest.raises(ContractError) as got:
        remote(start_gateway(), credentials=None).submit(raw)
    assert got.value.problems == expected.value.problems
    assert got.value.code == expected.value.code == "INVALID_REQUEST"


def test_signatures_are_required_when_credentials_are_configured(
    start_gateway: StartGateway,
) -> None:
    server = start_gateway(credentials={KEY.access_key: KEY.secret_key})
    with pytest.raises(SubmitError) as unsigned:
        remote(server, credentials=None).submit(tiny_request())
    assert unsigned.value.status_code == 403
    assert unsigned.value.error.error.code == "FORBIDDEN"
    assert "missing Authorization" in unsigned.value.error.error.message

    wrong = StaticCredentials(KEY.access_key, "not-the-secret")
    with pytest.raises(SubmitError) as forged:
        remote(server, credentials=wrong).submit(tiny_request())
    assert forged.value.status_code == 403
    assert "signature does not match" in forged.value.error.error.message
    with pytest.raises(SubmitError, match="FORBIDDEN"):
        remote(server, credentials=wrong).status("20261123T152100Z-1a2b3c4d")

    api = remote(server)
    accepted = api.submit(tiny_request())
    assert wait_settled(api, accepted.run_id)["succeeded"] == 2


def test_a_repeated_client_token_returns_the_same_run(start_gateway: StartGateway) -> None:
    api = remote(start_gateway(), credentials=None)
    first = api.submit(tiny_request("token-repeat"))
    again = api.submit(tiny_request("token-repeat"))
    assert again.run_id == first.run_id
    assert again.existing
    assert not first.existing
    other = {**tiny_request("token-repeat"), "seed": 8}
    with pytest.raises(SubmitError) as reused:
        api.submit(other)
    assert reused.value.status_code == 409
    assert reused.value.error.error.code == "CLIENT_TOKEN_REUSED"


class FlakyGateway(Gateway):
    """Answers the first submit with 503, as a throttled or restarting API would."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.tokens: list[str] = []

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        if method == "POST" and path == "/runs":
            self.tokens.append(json.loads(body)["client_token"])
            if len(self.tokens) == 1:
                return Response(503, {"message": "Service Unavailable"})
        return super().handle(method, path, headers, body)


def test_a_503_is_retried_with_the_same_client_token(start_gateway: StartGateway) -> None:
    server = start_gateway(credentials={KEY.access_key: KEY.secret_key}, gateway_class=FlakyGateway)
    sleeps: list[float] = []
    accepted = remote(server, retries=3, sleeps=sleeps).submit(tiny_request())
    gateway = server.gateway
    assert isinstance(gateway, FlakyGateway)
    assert len(gateway.tokens) == 2
    assert gateway.tokens[0] == gateway.tokens[1]
    assert len(sleeps) == 1
    assert not accepted.existing


class LostAnswerGateway(Gateway):
    """Accepts the first submit, then loses the answer: the client sees a 503 for a request
    that was processed (a gateway timeout after the backend did the work)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.processed: list[Response] = []

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        response = super().handle(method, path, headers, body)
        if method == "POST" and path == "/runs":
            self.processed.append(response)
            if len(self.processed) == 1:
                return Response(503, {"message": "Service Unavailable"})
        return response


def test_a_retry_after_a_lost_answer_finds_the_run_and_starts_no_second(
    start_gateway: StartGateway,
) -> None:
    server = start_gateway(gateway_class=LostAnswerGateway)
    sleeps: list[float] = []
    accepted = remote(server, retries=3, sleeps=sleeps).submit(tiny_request())
    gateway = server.gateway
    assert isinstance(gateway, LostAnswerGateway)
    assert [r.status for r in gateway.processed] == [202, 202]
    first = gateway.processed[0].body
    assert first["run_id"] == accepted.run_id
    assert not first["existing"]
    assert accepted.existing  # the retry found the run the lost answer was about
    assert len(sleeps) == 1
    manifests = sorted(gateway.target.data_dir.rglob("manifest.json"))
    assert [m.parent.name for m in manifests] == [f"run_id={accepted.run_id}"]


def test_retries_give_up_with_the_last_answer(start_gateway: StartGateway) -> None:
    class Down(Gateway):
        def handle(self, *args: Any) -> Response:
            return Response(503, {"message": "Service Unavailable"})

    sleeps: list[float] = []
    with pytest.raises(SubmitError) as down:
        remote(start_gateway(gateway_class=Down), retries=2, sleeps=sleeps).submit(tiny_request())
    assert down.value.status_code == 503
    assert down.value.error.error.message == "Service Unavailable"
    assert len(sleeps) == 2


def test_connection_errors_are_retried_then_raised() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps: list[float] = []
    api = RemoteApi(
        f"http://127.0.0.1:{port}", REGION, lambda: KEY, retries=2,
        transport=urllib_transport(DIRECT, timeout=5), sleep=sleeps.append,
    )  # fmt: skip
    with pytest.raises(urllib.error.URLError):
        api.submit(tiny_request())
    assert len(sleeps) == 2


# --- what the gateway answers to bad requests ---------------------------------------------


def test_bad_requests_get_error_responses(start_gateway: StartGateway) -> None:
    api = remote(start_gateway(), credentials=None)
    cases: list[tuple[str, str, bytes, int, str]] = [
        ("POST", "/runs", b"{not json", 400, "INVALID_REQUEST"),
        ("POST", "/runs", b'{"seed": NaN}', 400, "INVALID_REQUEST"),
        ("POST", "/runs", b"x" * (MAX_BODY_BYTES + 1), 413, "REQUEST_TOO_LARGE"),
        ("GET", "/runs", b"", 405, "METHOD_NOT_ALLOWED"),
        ("DELETE", "/runs/20261123T152100Z-1a2b3c4d", b"", 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/status", b"", 404, "NOT_FOUND"),
        ("GET", "/runs/20261123T152100Z-1a2b3c4d", b"", 404, "NOT_FOUND"),
        ("POST", "/runs/not-a-run-id/redrive", b"", 404, "NOT_FOUND"),
    ]
    for method, path, body, status, code in cases:
        response = api.call(method, path, body)
        assert (response.status, parse_error(response).error.code) == (status, code), path
    invalid = parse_error(api.call("POST", "/runs", b"{not json")).error
    assert invalid.problems[0].path == "$"
    assert invalid.problems[0].message.startswith("is not valid JSON")
    with pytest.raises(LookupError):
        api.status("20261123T152100Z-1a2b3c4d")
    with pytest.raises(LookupError):
        api.redrive("20261123T152100Z-1a2b3c4d")


EVENTS = Path(__file__).parent / "events"


def test_the_gateway_answers_as_the_lambda_parent_does(
    start_gateway: StartGateway, tmp_path: Path
) -> None:
    """One router: each request to the gateway, and as the API Gateway event Lambda would get,
    on the same data folder, gives the same status, headers and body."""
    server = start_gateway()
    target = server.gateway.target
    api = remote(server, credentials=None)
    run_id = api.submit(tiny_request("token-same")).run_id
    wait_settled(api, run_id)
    config = CloudConfig.from_env(
        {"SWEEP_BUCKET": "b", "SWEEP_WORKER_FUNCTION": "w", "SWEEP_DISPATCHER_FUNCTION": "d"}
    )
    parent = target.parent_deps()
    lambda_entry.use_adapters(
        CloudAdapters(config, parent, WorkerDeps(parent.store, parent.layout, parent.clock))
    )
    unknown = "20261123T152100Z-1a2b3c4d"
    cases: list[tuple[str, str, str, dict[str, str] | None, Any]] = [
        ("GET", f"/runs/{run_id}", "/runs/{run_id}", {"run_id": run_id}, None),
        ("GET", f"/runs/{unknown}", "/runs/{run_id}", {"run_id": unknown}, None),
        ("GET", "/runs/not-a-run-id", "/runs/{run_id}", {"run_id": "not-a-run-id"}, None),
        ("POST", f"/runs/{unknown}/redrive", "/runs/{run_id}/redrive", {"run_id": unknown}, None),
        ("POST", f"/runs/{run_id}/redrive", "/runs/{run_id}/redrive", {"run_id": run_id}, None),
        ("POST", "/runs", "/runs", None, {**tiny_request("token-same"), "seed": 8}),
        ("POST", "/runs", "/runs", None, {**tiny_request(), "kernel": "no_such_kernel"}),
        ("POST", "/runs", "/runs", None, tiny_request("token-same")),
        ("GET", "/runs", "/runs", None, None),
        ("DELETE", f"/runs/{unknown}", "/runs/{run_id}", {"run_id": unknown}, None),
        ("GET", "/status", "/status", None, None),
    ]
    try:
        for method, path, resource, parameters, body in cases:
            text = None if body is None else json.dumps(body)
            raw = b"" if text is None else text.encode()
            answer = server.gateway.handle(method, path, {"host": "127.0.0.1"}, raw)
            event = json.loads((EVENTS / "apigw_get_run.json").read_text())
            event |= {"httpMethod": method, "resource": resource, "path": path, "body": text}
            event["pathParameters"] = parameters
            reply = lambda_entry.parent(event, LocalContext.with_timeout(60))
            assert reply is not None
            assert answer.status == reply["statusCode"], path
            assert dict(answer.headers).get("Allow") == reply["headers"].get("Allow"), path
            assert answer.body == json.loads(reply["body"]), path
    finally:
        lambda_entry.use_adapters(None)


def test_a_body_json_accepts_but_not_in_utf8_reaches_the_router_intact(
    start_gateway: StartGateway,
) -> None:
    # API Gateway hands such a body over in base64; the router decodes it
    server = start_gateway()
    body = json.dumps(tiny_request("token-utf16")).encode("utf-16")
    answer = server.gateway.handle("POST", "/runs", {"host": "127.0.0.1"}, body)
    assert answer.status == 202, answer.body
    assert answer.body["point_count"] == 4


class BrokenTarget(EmbeddedTarget):
    def parent_deps(self) -> ParentDeps:
        def explode() -> str:
            raise RuntimeError("disk /srv/secret-path exploded")

        return attrs.evolve(super().parent_deps(), new_token=explode)


def test_a_handler_exception_is_a_500_without_internals(
    start_gateway: StartGateway, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = remote(start_gateway(target=BrokenTarget(tmp_path / "broken")), credentials=None)
    response = api.call("POST", "/runs", encode_json(tiny_request("token-broken")))
    assert response.status == 500
    assert parse_error(response).error.code == "INTERNAL_ERROR"
    assert b"secret-path" not in response.body
    assert "secret-path" in caplog.text  # the operator still sees why
    assert api.call("GET", "/runs/20261123T152100Z-1a2b3c4d").status == 404  # still serving


# --- the client's pure pieces -------------------------------------------------------------


def test_a_client_token_is_added_only_when_missing() -> None:
    raw = tiny_request()
    tokened = with_client_token(raw, lambda: "fresh")
    assert tokened["client_token"] == "fresh"
    assert "client_token" not in raw
    assert with_client_token(tiny_request("mine"), lambda: "fresh")["client_token"] == "mine"


def test_a_submit_answer_is_read_into_the_contract_errors() -> None:
    invalid = ErrorResponse(
        ErrorBody("INVALID_REQUEST", "bad", (Problem("$.seed", "must be >= 0"),))
    )
    with pytest.raises(ContractError) as contract:
        parse_submit(HttpResponse(400, dumps(invalid).encode()))
    assert contract.value.problems == (Problem("$.seed", "must be >= 0"),)
    with pytest.raises(SubmitError) as refused:
        parse_submit(HttpResponse(403, b'{"message":"Missing Authentication Token"}'))
    assert refused.value.status_code == 403
    assert refused.value.error.error == ErrorBody("FORBIDDEN", "Missing Authentication Token")
    with pytest.raises(SubmitError, match="UNEXPECTED_RESPONSE"):
        parse_submit(HttpResponse(202, b"<html>hello</html>"))


def test_api_gateway_validator_messages_become_a_problem() -> None:
    # what the BAD_REQUEST_BODY gateway response of the OpenAPI document renders
    body = (
        b'{"error":{"code":"INVALID_REQUEST","message":"the sweep request is invalid",'
        b'"problems":[{"path":"$","message":"[object has missing required properties]"}]},'
        b'"schema_version":"1.0"}'
    )
    with pytest.raises(ContractError) as invalid:
        parse_submit(HttpResponse(400, body))
    assert invalid.value.problems == (Problem("$", "[object has missing required properties]"),)


def test_backoff_grows_exponentially_to_a_cap() -> None:
    delays = [backoff_delay(k, base=0.25, cap=2.0, jitter=1.0) for k in range(6)]
    assert delays == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert backoff_delay(3, base=0.25, cap=2.0, jitter=0.0) == 1.0
    assert [is_retryable(s) for s in (400, 403, 409, 429, 500, 503)] == [
        False, False, False, True, True, True,
    ]  # fmt: skip


def test_values_json_cannot_carry_are_refused_before_sending() -> None:
    with pytest.raises(ContractError, match="NaN"):
        encode_json({"seed": float("nan")})


def test_api_gateways_own_refusal_reason_reaches_the_user_from_its_header() -> None:
    """What the BAD_REQUEST_BODY gateway response sends: a fixed body, the reason in a header
    (any text, quotes included)."""
    template = gateway_responses()["BAD_REQUEST_BODY"]["responseTemplates"]["application/json"]
    reason = 'instance value ("guess") not found in enum'
    answer = HttpResponse(400, template.encode(), {ERROR_HEADER.lower(): reason})

    with pytest.raises(ContractError) as refused:
        parse_submit(answer)

    assert [p.message for p in refused.value.problems] == [reason]


BURST = 100


def test_a_burst_of_100_concurrent_requests_is_answered_without_a_reset(
    start_gateway: StartGateway,
) -> None:
    """Loopback only, 100 requests, each bounded by a 30 s socket timeout: every connection
    gets an answer (202 for the valid ones, one run for their shared token; 400 for the rest),
    none is reset by a full listen backlog."""
    import http.client

    server = start_gateway()
    host, port = server.server_address[:2]
    valid = json.dumps(tiny_request("burst-token")).encode()
    invalid = b'{"schema_version": "1.0"}'
    start = threading.Barrier(BURST)
    answers: list[int | str] = [0] * BURST

    def send(i: int) -> None:
        connection = http.client.HTTPConnection(str(host), port, timeout=30)
        try:
            start.wait(30)  # all connect at once
            body = valid if i % 2 else invalid
            connection.request("POST", "/runs", body, {"Content-Type": "application/json"})
            answers[i] = connection.getresponse().status
        except OSError as exc:
            answers[i] = type(exc).__name__
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert answers.count(202) == BURST // 2, answers
    assert answers.count(400) == BURST // 2, answers
