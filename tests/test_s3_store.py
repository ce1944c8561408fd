"""S3Store on moto's S3 (conditional writes, errors, paging), the worker core on it, and the
worker role's IAM policy under moto's enforcement."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.retries.standard
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import Stubber
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

from infra.iam import POLICIES, PolicyTargets
from runtime.adapters.local_store import LocalContext, LocalStore
from runtime.adapters.s3 import S3Store, s3_client
from runtime.handlers.worker import WorkerDeps, record_failure, run_shard
from sweep_core.contract import ShardTask
from sweep_core.layout import Layout, new_run_id, run_date_of
from sweep_core.planning import plan_shards
from sweep_core.ports import NotFound, StoreAccessDenied, TransientStoreError
from sweep_core.records import read_outcome
from sweep_core.space import point_count
from sweep_core.validation import parse_request

REGION = "us-east-1"
BUCKET = "sweep-results-test"
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
RUN_ID = new_run_id(T0, "0a1b2c3d")
LAYOUT = Layout("results")


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake keys, so nothing can reach a real account even if a mock were missing."""
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture
def aws(aws_credentials: None) -> Iterator[None]:
    """moto in place of AWS: any client made from here on talks to it, never to a network."""
    with mock_aws():
        yield


@pytest.fixture
def s3(aws: None) -> Any:
    """A client on moto's S3 with an empty results bucket."""
    client = s3_client(REGION)
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def store(s3: Any) -> S3Store:
    return S3Store(s3, BUCKET)


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore retries at once instead of sleeping up to seconds between attempts."""
    monkeypatch.setattr(
        botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, context: 0
    )


def stubbed_store(**kwargs: Any) -> tuple[S3Store, Stubber, list[float]]:
    """A store on a real client whose answers are scripted (no botocore retries, no network)."""
    client = s3_client(REGION)
    sleeps: list[float] = []
    return S3Store(client, BUCKET, sleep=sleeps.append, **kwargs), Stubber(client), sleeps


def error_response(code: str, status: int) -> AWSResponse:
    """A raw S3 error answer as it comes off the wire, for botocore to parse and maybe retry."""
    body = f"<Error><Code>{code}</Code><Message>scripted</Message></Error>".encode()
    headers = {"content-type": "application/xml"}
    return AWSResponse("https://s3.amazonaws.com", status, headers, _Raw(body))


class _Raw(io.BytesIO):
    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self.getvalue()


# --- the ObjectStore contract ----------------------------------------------------------------


def test_put_if_absent_writes_once_and_keeps_the_first_body(store: S3Store, s3: Any) -> None:
    assert store.put_if_absent("results/a/one.json", b"first") is True
    assert store.put_if_absent("results/a/one.json", b"second") is False

    assert store.get("results/a/one.json") == b"first"
    objects = s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    assert [o["Key"] for o in objects] == ["results/a/one.json"]


def test_get_of_a_missing_key_raises_not_found(store: S3Store) -> None:
    with pytest.raises(NotFound) as caught:
        store.get("results/runs/absent.json")
    assert caught.value.args == ("results/runs/absent.json",)
    with pytest.raises(NotFound):
        store.get("results/nothing/here.json")


def test_exists_only_for_written_keys(store: S3Store) -> None:
    store.put_if_absent("results/a/one.json", b"x")

    assert store.exists("results/a/one.json")
    assert not store.exists("results/a/one")  # a prefix of a key is not a key
    assert not store.exists("results/a/two.json")


def test_existence_is_asked_by_listing_never_by_head_object(aws: None) -> None:
    store, stub, _ = stubbed_store()
    key = "results/outcomes/run_id=r/success/shard=00001.parquet"
    listed = {"Bucket": BUCKET, "Prefix": key, "MaxKeys": 1}
    with stub:  # a HeadObject would find no scripted answer and fail
        stub.add_response("list_objects_v2", {"Contents": [{"Key": key}], "KeyCount": 1}, listed)
        stub.add_response("list_objects_v2", {"Contents": [{"Key": key + ".x"}]}, listed)
        stub.add_response("list_objects_v2", {"KeyCount": 0}, listed)
        assert store.exists(key) is True
        assert store.exists(key) is False  # only a longer key starts with it
        assert store.exists(key) is False
        stub.assert_no_pending_responses()


def test_a_403_on_a_read_is_an_access_error_unless_a_listing_says_missing(aws: None) -> None:
    store, stub, _ = stubbed_store()
    key = "results/runs/run_date=2026-01-02/run_id=r/manifest.json"
    listed = {"Bucket": BUCKET, "Prefix": key, "MaxKeys": 1}
    with stub:
        # S3 hid a miss behind a 403; the listing (which the role may do) says it is missing
        stub.add_client_error("get_object", "AccessDenied", "Access Denied", 403)
        stub.add_response("list_objects_v2", {"KeyCount": 0}, listed)
        with pytest.raises(NotFound) as missing:
            store.get(key)
        assert missing.value.args == (key,)  # callers name the missing object from it
        # the object is there: the role may not read it
        stub.add_client_error("get_object", "AccessDenied", "Access Denied", 403)
        stub.add_response("list_objects_v2", {"Contents": [{"Key": key}]}, listed)
        with pytest.raises(StoreAccessDenied) as denied:
            store.get(key)
        assert str(denied.value) == (
            f"S3 GetObject s3://{BUCKET}/{key}: access denied although the object exists "
            "(the role lacks s3:GetObject on this key)"
        )
        # may not even list: unknown, and said so
        stub.add_client_error("get_object", "AccessDenied", "Access Denied", 403)
        stub.add_client_error("list_objects_v2", "AccessDenied", "Access Denied", 403)
        with pytest.raises(StoreAccessDenied, match=r"lacks s3:ListBucket .* is unknown"):
            store.get(key)
        stub.add_client_error("list_objects_v2", "AccessDenied", "Access Denied", 403)
        with pytest.raises(StoreAccessDenied, match="ListObjectsV2"):
            store.exists(key)
        stub.assert_no_pending_responses()


def test_a_wrong_bucket_is_an_error_not_a_missing_key(s3: Any) -> None:
    store = S3Store(s3, "no-such-bucket")
    with pytest.raises(ClientError, match="NoSuchBucket"):
        store.get("results/a.json")


KEYS = [f"runs/item-{i:04d}.json" for i in range(1100)] + [
    "runs/item-1/nested.json",
    "runs/itemz.json",
    "runs2/item-0000.json",
    "other/item-0000.json",
]
PREFIXES = ["", "runs/", "runs/item-10", "runs/item-1", "runs/item-0999", "runs", "runs/x", "ot"]


def test_list_pages_past_a_thousand_keys_and_agrees_with_the_local_store(
    store: S3Store, tmp_path: Path
) -> None:
    """Key order and prefixes that end mid-name, against LocalStore as the reference."""
    local = LocalStore(tmp_path)
    # Bulk keys go straight into moto's model: through the API they take ~5 ms each.
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for key in KEYS[:1000]:
        backend.put_object(BUCKET, key, b"{}")
    for key in KEYS[1000:]:
        assert store.put_if_absent(key, b"{}")
    for key in KEYS:
        assert local.put_if_absent(key, b"{}")
    pages: list[int] = []
    store.client.meta.events.register(
        "after-call.s3.ListObjectsV2", lambda **kwargs: pages.append(1)
    )

    keys = list(store.list("runs/item-"))

    assert len(pages) == 2  # S3 answers at most 1000 keys a page
    assert keys == sorted(k for k in KEYS if k.startswith("runs/item-"))
    assert len(keys) == 1101
    for prefix in PREFIXES:
        assert list(store.list(prefix)) == list(local.list(prefix)), prefix


# --- errors ---------------------------------------------------------------------------------


TRANSIENT = [
    ("SlowDown", 503),
    ("ServiceUnavailable", 503),
    ("InternalError", 500),
    ("RequestTimeout", 400),
    ("503", 503),  # HeadObject has no error body: its code is the bare status
    ("BadGateway", 502),
]


@pytest.mark.parametrize(("code", "status"), TRANSIENT)
def test_throttling_and_server_errors_become_transient_with_operation_and_key(
    aws: None, code: str, status: int
) -> None:
    store, stub, _ = stubbed_store()
    key = "results/points/k/shard=00001.parquet"
    calls: list[tuple[str, Callable[[], object]]] = [
        ("PutObject", lambda: store.put_if_absent(key, b"x")),
        ("GetObject", lambda: store.get(key)),
        ("ListObjectsV2", lambda: store.exists(key)),
        ("ListObjectsV2", lambda: list(store.list(key))),
    ]
    methods = ["put_object", "get_object", "list_objects_v2", "list_objects_v2"]
    with stub:
        for (operation, call), method in zip(calls, methods, strict=True):
            stub.add_client_error(method, code, "please slow down", status)
            with pytest.raises(TransientStoreError) as raised:
                call()
            assert str(raised.value).startswith(f"S3 {operation} s3://{BUCKET}/{key} failed ")
            assert code in str(raised.value)
            assert isinstance(raised.value.__cause__, ClientError)
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    "error",
    [
        EndpointConnectionError(endpoint_url="https://s3.amazonaws.com"),
        ReadTimeoutError(endpoint_url="https://s3.amazonaws.com"),
    ],
)
def test_connection_errors_become_transient(
    aws: None, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    store, _, _ = stubbed_store()

    def fail(**kwargs: Any) -> Any:
        raise error

    for method in ("put_object", "get_object", "list_objects_v2"):
        monkeypatch.setattr(store.client, method, fail)
    for call in (
        lambda: store.put_if_absent("results/a", b"x"),
        lambda: store.get("results/a"),
        lambda: store.exists("results/a"),
    ):
        with pytest.raises(TransientStoreError, match=type(error).__name__) as raised:
            call()
        assert "s3://sweep-results-test/results/a" in str(raised.value)


@pytest.mark.parametrize(("code", "status"), [("AccessDenied", 403), ("InvalidRequest", 400)])
def test_other_client_errors_propagate_as_they_are(aws: None, code: str, status: int) -> None:
    store, stub, _ = stubbed_store()
    with stub:
        stub.add_client_error("put_object", code, "no", status)
        with pytest.raises(ClientError) as raised:
            store.put_if_absent("results/runs/x.json", b"x")
    assert raised.value.response["Error"]["Code"] == code


def test_a_conditional_write_conflict_is_retried_then_succeeds(aws: None) -> None:
    store, stub, sleeps = stubbed_store()
    with stub:
        stub.add_client_error("put_object", "ConditionalRequestConflict", "busy", 409)
        stub.add_client_error("put_object", "ConditionalRequestConflict", "busy", 409)
        stub.add_response("put_object", {"ETag": '"abc"'})
        assert store.put_if_absent("results/outcomes/x.parquet", b"x") is True
        stub.assert_no_pending_responses()
    assert len(sleeps) == 2
    assert sleeps[1] > sleeps[0] * 0.5  # backing off, with jitter


def test_a_conflict_that_ends_in_412_means_the_other_writer_won(aws: None) -> None:
    store, stub, _ = stubbed_store()
    with stub:
        stub.add_client_error("put_object", "ConditionalRequestConflict", "busy", 409)
        stub.add_client_error("put_object", "PreconditionFailed", "exists", 412)
        assert store.put_if_absent("results/outcomes/x.parquet", b"x") is False


def test_a_conflict_that_persists_becomes_transient(aws: None) -> None:
    store, stub, sleeps = stubbed_store(conflict_retries=2)
    with stub:
        for _ in range(3):
            stub.add_client_error("put_object", "ConditionalRequestConflict", "busy", 409)
        with pytest.raises(TransientStoreError, match="ConditionalRequestConflict"):
            store.put_if_absent("results/outcomes/x.parquet", b"x")
        stub.assert_no_pending_responses()
    assert len(sleeps) == 2


@pytest.mark.usefixtures("no_backoff")
def test_botocore_retries_server_errors_before_the_store_sees_them(store: S3Store) -> None:
    answers = [error_response("InternalError", 500), error_response("ServiceUnavailable", 503)]
    store.client.meta.events.register_first(
        "before-send.s3.PutObject", lambda **kwargs: answers.pop(0) if answers else None
    )

    assert store.put_if_absent("results/points/a.parquet", b"body") is True

    assert answers == []
    assert store.get("results/points/a.parquet") == b"body"


@pytest.mark.usefixtures("no_backoff")
def test_a_server_error_that_outlasts_botocore_retries_is_transient(store: S3Store) -> None:
    sent: list[int] = []

    def always_failing(**kwargs: Any) -> AWSResponse:
        sent.append(1)
        return error_response("InternalError", 500)

    store.client.meta.events.register_first("before-send.s3.GetObject", always_failing)

    with pytest.raises(TransientStoreError, match=r"GetObject .* after 10 retries: InternalError"):
        store.get("results/points/a.parquet")
    # botocore's legacy ``max_attempts`` counts retries: 1 send + 10 retries.
    assert len(sent) == 11


@pytest.mark.usefixtures("no_backoff")
@pytest.mark.parametrize(("stored", "expected"), [(b"ours", True), (b"theirs", False)])
def test_a_412_after_a_resend_is_ours_only_if_the_stored_body_is(
    store: S3Store, stored: bytes, expected: bool
) -> None:
    """The first send wrote, its answer was lost (a 500), botocore resent and got 412."""
    key = "results/outcomes/x.parquet"
    writer = s3_client(REGION)
    first = [True]

    def lose_the_answer(**kwargs: Any) -> AWSResponse | None:
        if not first:
            return None
        first.clear()
        writer.put_object(Bucket=BUCKET, Key=key, Body=stored)
        return error_response("InternalError", 500)

    store.client.meta.events.register_first("before-send.s3.PutObject", lose_the_answer)

    assert store.put_if_absent(key, b"ours") is expected
    assert store.get(key) == stored


def test_a_412_on_the_first_send_does_not_read_the_object(aws: None) -> None:
    store, stub, _ = stubbed_store()
    with stub:  # no get_object answer is scripted: reading would fail the test
        stub.add_client_error("put_object", "PreconditionFailed", "exists", 412)
        assert store.put_if_absent("results/outcomes/x.parquet", b"x") is False
        stub.assert_no_pending_responses()


def test_the_412_check_reads_the_stored_body_when_botocore_resent(aws: None) -> None:
    store, stub, _ = stubbed_store()
    with stub:
        stub.add_client_error(
            "put_object", "PreconditionFailed", "exists", 412, response_meta={"RetryAttempts": 2}
        )
        stub.add_response("get_object", {"Body": StreamingBody(io.BytesIO(b"x"), 1)})
        assert store.put_if_absent("results/outcomes/x.parquet", b"x") is True


def test_a_resent_write_whose_object_is_gone_is_not_ours(aws: None) -> None:
    store, stub, _ = stubbed_store()
    with stub:
        stub.add_client_error(
            "put_object", "PreconditionFailed", "exists", 412, response_meta={"RetryAttempts": 1}
        )
        stub.add_client_error("get_object", "NoSuchKey", "gone", 404)
        assert store.put_if_absent("results/outcomes/x.parquet", b"x") is False
        stub.assert_no_pending_responses()


def test_s3_client_retries_adaptively_with_timeouts(aws: None) -> None:
    config = s3_client(REGION).meta.config
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 11}
    assert (config.connect_timeout, config.read_timeout) == (5, 30)


# --- the worker core on S3 ------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_task(raw: dict[str, Any], shard: int = 0) -> ShardTask:
    request = parse_request(raw)
    r = plan_shards(point_count(request), request.sharding)[shard]
    return ShardTask(RUN_ID, run_date_of(RUN_ID), r.shard, r.start, r.end, request)


@pytest.fixture
def gbm(gbm_request: dict[str, Any]) -> dict[str, Any]:
    gbm_request["params"]["paths"] = 200
    gbm_request["sharding"] = {"shard_size": 24}
    return gbm_request


def context() -> LocalContext:
    return LocalContext.with_timeout(300, request_id="req-1")


def snapshot(s3: Any) -> dict[str, tuple[str, bytes]]:
    """Every object in the bucket: its ETag and bytes."""
    objects = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", ()):
            body = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
            objects[item["Key"]] = (item["ETag"], body)
    return objects


class ThrottledPoints:
    """A real S3 client whose writes of points objects answer SlowDown, as after retries."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def put_object(self, **kwargs: Any) -> Any:
        if "/points/" in kwargs["Key"]:
            raise ClientError(
                {
                    "Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
                    "ResponseMetadata": {"HTTPStatusCode": 503, "RetryAttempts": 9},
                },
                "PutObject",
            )
        return self.inner.put_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_the_worker_writes_points_then_success_and_a_duplicate_is_a_no_op(
    s3: Any, gbm: dict[str, Any]
) -> None:
    task, clock = make_task(gbm, shard=1), FakeClock()
    deps = WorkerDeps(S3Store(s3, BUCKET), LAYOUT, clock)

    first = run_shard(task, context(), deps)
    before = snapshot(s3)
    clock.now = datetime(2026, 1, 3, tzinfo=UTC)
    second = run_shard(task, context(), deps)

    assert first.status == "success"
    assert second == first
    assert snapshot(s3) == before
    assert set(before) == {
        LAYOUT.points_key(task.spec.kernel, RUN_ID, 1),
        LAYOUT.success_key(RUN_ID, 1),
    }
    assert read_outcome(before[LAYOUT.success_key(RUN_ID, 1)][1], RUN_ID, "success") == first


def test_a_failure_recorded_after_a_success_writes_nothing(s3: Any, gbm: dict[str, Any]) -> None:
    task = make_task(gbm)
    deps = WorkerDeps(S3Store(s3, BUCKET), LAYOUT, FakeClock())
    success = run_shard(task, context(), deps)
    before = snapshot(s3)

    outcome = record_failure(task, "TIMEOUT", "Task timed out after 900.00 seconds", deps)

    assert outcome == success
    assert snapshot(s3) == before


def test_a_throttled_store_records_the_attempt_and_reraises(s3: Any, gbm: dict[str, Any]) -> None:
    task = make_task(gbm)
    throttled = WorkerDeps(S3Store(ThrottledPoints(s3), BUCKET), LAYOUT, FakeClock())

    with pytest.raises(TransientStoreError, match="SlowDown"):
        run_shard(task, context(), throttled)

    assert set(snapshot(s3)) == {LAYOUT.failure_key(RUN_ID, 0, 1)}
    failure = read_outcome(
        S3Store(s3, BUCKET).get(LAYOUT.failure_key(RUN_ID, 0, 1)), RUN_ID, "failure"
    )
    assert (failure.attempt, failure.error_code) == (1, "TRANSIENT_ERROR")
    assert "PutObject" in (failure.error_message or "")

    # Lambda's async retry, with S3 healthy again: the success counts the failed attempt.
    retried = run_shard(task, context(), WorkerDeps(S3Store(s3, BUCKET), LAYOUT, FakeClock()))
    assert (retried.status, retried.attempt) == ("success", 2)


# --- the worker role's policy under IAM enforcement -----------------------------------------


def worker_policy(bucket: str, prefix: str) -> dict[str, Any]:
    """The worker role's policy document as the stack deploys it (``infra.iam``), for ``bucket``
    and ``prefix``: S3, and the Lambda and logs grants moto's S3 never asks about.

    moto checks actions and resources, not conditions (the ``s3:prefix`` of ListBucket);
    tests/test_iam_policies.py evaluates those.
    """
    targets = PolicyTargets(
        partition="aws",
        region=REGION,
        account=DEFAULT_ACCOUNT_ID,
        bucket=bucket,
        prefix=prefix,
        parent_function="sweep-test-parent",
        worker_function="sweep-test-worker",
        recorder_function="sweep-test-recorder",
        database="sweep_test",
        tables=("outcomes", "manifests"),
    )
    return POLICIES["worker"](targets)


SETUP_CALLS = 4
"""Calls moto lets through unauthenticated: the bucket, the user, its policy, its keys."""


@set_initial_no_auth_action_count(SETUP_CALLS)
def test_the_worker_policy_allows_the_worker_core_and_nothing_else(
    aws_credentials: None, gbm: dict[str, Any]
) -> None:
    with mock_aws():
        admin_s3, iam = s3_client(REGION), _iam()
        admin_s3.create_bucket(Bucket=BUCKET)
        iam.create_user(UserName="worker")
        iam.put_user_policy(
            UserName="worker",
            PolicyName="worker",
            PolicyDocument=json.dumps(worker_policy(BUCKET, LAYOUT.prefix)),
        )
        keys = iam.create_access_key(UserName="worker")["AccessKey"]
        worker_s3 = _client_as(keys)
        store = S3Store(worker_s3, BUCKET)
        deps = WorkerDeps(store, LAYOUT, FakeClock())

        task = make_task(gbm)
        assert run_shard(task, context(), deps).status == "success"
        assert run_shard(task, context(), deps).status == "success"  # duplicate: reads back
        failed = record_failure(make_task(gbm, shard=2), "TIMEOUT", "timed out", deps)
        assert (failed.status, failed.attempt) == ("failure", 1)

        points = LAYOUT.points_key(task.spec.kernel, RUN_ID, 0)
        denied: list[Callable[[], object]] = [
            lambda: store.put_if_absent(LAYOUT.manifest_key(RUN_ID), b"{}"),
            lambda: store.put_if_absent("results/tokens/x.json", b"{}"),
            lambda: store.put_if_absent("elsewhere/x.json", b"{}"),
            lambda: worker_s3.get_object(Bucket=BUCKET, Key=LAYOUT.manifest_key(RUN_ID)),
            lambda: worker_s3.delete_object(Bucket=BUCKET, Key=points),
            lambda: worker_s3.list_objects_v2(Bucket="another-bucket"),
        ]
        for call in denied:
            with pytest.raises(ClientError) as raised:
                call()
            assert raised.value.response["Error"]["Code"] == "AccessDenied"

        # A batch delete answers 200 with a per-key AccessDenied; the objects stay.
        batch = worker_s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": points}]})
        assert [e["Code"] for e in batch["Errors"]] == ["AccessDenied"]
        assert store.exists(points)


@set_initial_no_auth_action_count(SETUP_CALLS)
def test_enforcement_is_real_a_worker_without_points_access_is_denied(
    aws_credentials: None, gbm: dict[str, Any]
) -> None:
    """The same set-up with the points/ resource left out: the first points write fails."""
    policy = worker_policy(BUCKET, LAYOUT.prefix)
    [write] = [s for s in policy["Statement"] if s["Sid"] == "WriteShardResults"]
    points = f"arn:aws:s3:::{BUCKET}/{LAYOUT.prefix}/points/*"
    assert points in write["Resource"]
    write["Resource"] = [r for r in write["Resource"] if r != points]
    with mock_aws():
        s3_client(REGION).create_bucket(Bucket=BUCKET)
        iam = _iam()
        iam.create_user(UserName="worker")
        iam.put_user_policy(
            UserName="worker", PolicyName="worker", PolicyDocument=json.dumps(policy)
        )
        keys = iam.create_access_key(UserName="worker")["AccessKey"]
        deps = WorkerDeps(S3Store(_client_as(keys), BUCKET), LAYOUT, FakeClock())

        with pytest.raises(ClientError, match="AccessDenied"):
            run_shard(make_task(gbm), context(), deps)


def _iam() -> Any:
    return boto3.session.Session().client("iam", region_name=REGION)


def _client_as(keys: dict[str, str]) -> Any:
    """An S3 client signing with the IAM user's keys; one attempt, as denials are final."""
    return boto3.session.Session(
        aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"],
        aws_session_token=None,
    ).client(
        "s3", region_name=REGION, config=Config(retries={"mode": "standard", "max_attempts": 1})
    )


class RaisingClient:
    """An S3 client whose every call raises the given error, as botocore would after its own
    retries; a call nobody scripted fails the test."""

    def __init__(self, **errors: ClientError) -> None:
        self.errors = errors

    def __getattr__(self, operation: str) -> Callable[..., Any]:
        def call(**kwargs: Any) -> Any:
            if operation not in self.errors:
                raise AssertionError(f"unexpected {operation}")
            raise self.errors[operation]

        return call


def test_an_error_answer_without_code_or_metadata_propagates_as_it_is() -> None:
    """A proxy or endpoint answering without S3's error body: nothing to map it to, so the
    caller sees the error itself rather than a crash in the mapping."""
    bare = ClientError({}, "PutObject")
    store = S3Store(RaisingClient(put_object=bare, get_object=bare), BUCKET)
    with pytest.raises(ClientError) as raised:
        store.put_if_absent("results/runs/x.json", b"x")
    assert raised.value is bare
    with pytest.raises(ClientError) as raised:
        store.get("results/runs/x.json")
    assert raised.value is bare


def test_a_server_error_without_a_code_is_transient_and_invents_no_code() -> None:
    key = "results/runs/x.json"
    error = ClientError({"ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject")
    store = S3Store(RaisingClient(get_object=error), BUCKET)
    with pytest.raises(TransientStoreError) as raised:
        store.get(key)
    assert (
        str(raised.value)
        == f"S3 GetObject s3://{BUCKET}/{key} failed after 0 retries:  (HTTP 503): "
    )


@pytest.mark.parametrize("attempts", [None, "1"])
def test_a_412_whose_retry_count_is_not_a_number_is_the_other_writers_object(
    attempts: object,
) -> None:
    """Only a resend known from botocore's count can have written the object itself; without
    one, the 412 means another writer won, and no read is made to compare bodies."""
    error = ClientError(
        {
            "Error": {"Code": "PreconditionFailed", "Message": "At least one precondition failed"},
            "ResponseMetadata": {"HTTPStatusCode": 412, "RetryAttempts": attempts},
        },
        "PutObject",
    )
    store = S3Store(RaisingClient(put_object=error), BUCKET)
    assert store.put_if_absent("results/outcomes/x.parquet", b"x") is False


def test_a_403_under_another_code_is_still_an_access_question() -> None:
    """S3 also answers 403 with codes such as AllAccessDisabled: still a refusal, so the read
    asks the listing whether the key exists before saying which it is."""
    key = "results/runs/x.json"
    error = ClientError(
        {
            "Error": {
                "Code": "AllAccessDisabled",
                "Message": "All access to this object has been disabled",
            },
            "ResponseMetadata": {"HTTPStatusCode": 403},
        },
        "GetObject",
    )
    listed: list[dict[str, Any]] = []

    class Client(RaisingClient):
        def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]:
            listed.append(kwargs)
            return {"KeyCount": 0}

    store = S3Store(Client(get_object=error), BUCKET)
    with pytest.raises(NotFound):
        store.get(key)
    assert listed == [{"Bucket": BUCKET, "Prefix": key, "MaxKeys": 1}]


@pytest.mark.parametrize(
    "response",
    [
        {"Error": {"Code": "412"}, "ResponseMetadata": {"HTTPStatusCode": 412}},  # no body
        {"Error": {"Code": "PreconditionFailed"}},  # no metadata
    ],
)
def test_a_failed_precondition_is_known_by_its_code_or_its_status_alone(
    response: dict[str, Any],
) -> None:
    store = S3Store(RaisingClient(put_object=ClientError(response, "PutObject")), BUCKET)
    assert store.put_if_absent("results/outcomes/x.parquet", b"x") is False


def test_a_persistent_conflict_backs_off_doubling_and_says_how_often_it_tried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Five attempts by default, 50 ms doubling between them, each delay jittered within
    half to one and a half of itself (the jitter drawn here at both of its ends)."""
    draws: list[tuple[float, float]] = []
    ends = iter([0.5, 1.5, 0.5, 1.5])

    def uniform(low: float, high: float) -> float:
        draws.append((low, high))
        return next(ends)

    monkeypatch.setattr("runtime.adapters.s3.random.uniform", uniform)
    conflict = ClientError(
        {
            "Error": {"Code": "ConditionalRequestConflict"},
            "ResponseMetadata": {"HTTPStatusCode": 409},
        },
        "PutObject",
    )
    calls: list[str] = []

    class Client(RaisingClient):
        def put_object(self, **kwargs: Any) -> None:
            calls.append(kwargs["Key"])
            raise conflict

    sleeps: list[float] = []
    store = S3Store(Client(), BUCKET, sleep=sleeps.append)
    key = "results/outcomes/x.parquet"
    with pytest.raises(TransientStoreError) as raised:
        store.put_if_absent(key, b"x")

    assert str(raised.value) == (
        f"S3 PutObject s3://{BUCKET}/{key}: ConditionalRequestConflict persisted through 5 attempts"
    )
    assert calls == [key] * 5
    assert draws == [(0.5, 1.5)] * 4
    assert sleeps == pytest.approx([0.05 * 0.5, 0.1 * 1.5, 0.2 * 0.5, 0.4 * 1.5])


def test_the_client_is_made_for_the_region_asked_for(aws_credentials: None) -> None:
    assert s3_client("eu-west-1").meta.region_name == "eu-west-1"
    assert s3_client("ap-southeast-2").meta.region_name == "ap-southeast-2"
