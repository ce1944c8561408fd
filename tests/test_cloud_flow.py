"""A cloud-shaped run: API Gateway event → parent → captured invokes → workers and the failure
recorder → the layout in (moto) S3 → the shipped queries on DuckDB over that layout."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from runtime import lambda_entry
from runtime.adapters.local_store import LocalContext
from runtime.handlers import api
from runtime.lambda_entry import CloudConfig, build_adapters, use_adapters
from sweep_core.kernels import catalog
from sweep_core.layout import Layout
from sweep_core.named_queries import named_query
from sweep_core.settings import ConfigError
from sweep_sdk.query.local import LocalQueryEngine

EVENTS = Path(__file__).parent / "events"
BUCKET = "sweep-results-test"
CRASHING_SHARD = 1


def event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


class CapturedLambda:
    """A Lambda client that keeps every asynchronous invoke instead of running it."""

    def __init__(self) -> None:
        self.invokes: list[tuple[str, dict[str, Any]]] = []

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:  # noqa: N803
        assert InvocationType == "Event"
        self.invokes.append((FunctionName, json.loads(Payload)))
        return {"StatusCode": 202}


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, CapturedLambda]]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        captured = CapturedLambda()
        config = CloudConfig(
            bucket=BUCKET,
            prefix="results",
            worker_function="sweep-worker",
            dispatcher_function="sweep-parent",
            max_points=10_000,
            max_shards=100,
            fanout_leaf=4,  # small, so this 6-shard run goes through the tree
            invoke_threads=4,
        )
        use_adapters(build_adapters(config, s3=s3, lambda_=captured))
        try:
            yield s3, captured
        finally:
            use_adapters(None)


def context() -> LocalContext:
    return LocalContext.with_timeout(900)


def drain(captured: CapturedLambda) -> dict[str, int]:
    """Deliver every captured invoke the way Lambda would; one worker 'crashes' instead."""
    counts = {"dispatchers": 0, "workers": 0, "crashes": 0}
    while captured.invokes:
        function, payload = captured.invokes.pop(0)
        if function == "sweep-parent":
            counts["dispatchers"] += 1
            assert lambda_entry.parent(payload, context()) is None
        elif payload["shard"] == CRASHING_SHARD:
            counts["crashes"] += 1
            record = event("lambda_on_failure_killed.json")
            record["requestPayload"] = payload
            lambda_entry.failure_recorder(record, context())
        else:
            counts["workers"] += 1
            lambda_entry.worker(payload, context())
    return counts


def download(s3: Any, root: Path) -> list[str]:
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            keys.append(obj["Key"])
            target = root / obj["Key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read())
    return keys


def test_a_run_from_api_gateway_to_athena_sql(
    cloud: tuple[Any, CapturedLambda], tmp_path: Path
) -> None:
    s3, captured = cloud
    response = lambda_entry.parent(event("apigw_post_runs.json"), context())
    assert response is not None
    assert response["statusCode"] == 202
    accepted = json.loads(response["body"])
    run_id, shards = accepted["run_id"], accepted["shard_count"]
    assert (accepted["point_count"], shards) == (24, 6)
    assert {f for f, _ in captured.invokes} == {"sweep-parent"}  # the tree's first level

    counts = drain(captured)
    assert counts == {"dispatchers": 2, "workers": shards - 1, "crashes": 1}

    keys = download(s3, tmp_path)
    assert any(k.endswith("manifest.json") for k in keys)
    engine = LocalQueryEngine(tmp_path, Layout("results"), catalog().values())
    outcomes = engine.run(
        "SELECT shard, status, error_code FROM outcomes WHERE run_id = ?", [run_id]
    ).to_pylist()
    assert sorted({r["shard"] for r in outcomes}) == list(range(shards))  # complete coverage
    crashed = [r for r in outcomes if r["shard"] == CRASHING_SHARD]
    assert crashed == [{"shard": CRASHING_SHARD, "status": "failure", "error_code": "WORKER_DIED"}]
    failed = {r["shard"] for r in outcomes if r["status"] == "failure"}
    assert len(failed) >= 2  # the crash, and the epidemics still spreading on day 120

    [rate] = engine.run(named_query("failure_rate_by_run")).to_pylist()
    assert rate["shards_settled"] == shards
    assert rate["shards_failed"] == len(failed)
    [summary] = engine.run(named_query("run_summary"), [run_id]).to_pylist()
    assert summary["shards_succeeded"] == shards - len(failed)

    get = event("apigw_get_run.json")
    get["pathParameters"] = {"run_id": run_id}
    get["path"] = f"/runs/{run_id}"
    status_response = lambda_entry.parent(get, context())
    assert status_response is not None
    status = json.loads(status_response["body"])
    assert (status["succeeded"], status["failed"], status["missing"]) == (
        shards - len(failed), len(failed), 0,
    )  # fmt: skip


def test_repeating_the_api_call_dispatches_nothing_new(cloud: tuple[Any, CapturedLambda]) -> None:
    _, captured = cloud
    first = lambda_entry.parent(event("apigw_post_runs.json"), context())
    invokes = len(captured.invokes)
    again = lambda_entry.parent(event("apigw_post_runs.json"), context())
    assert first is not None
    assert again is not None
    assert json.loads(again["body"])["run_id"] == json.loads(first["body"])["run_id"]
    assert json.loads(again["body"])["existing"] is True
    assert len(captured.invokes) == invokes


def test_invalid_body_is_a_400_with_every_problem_and_touches_nothing(
    cloud: tuple[Any, CapturedLambda],
) -> None:
    s3, captured = cloud
    bad = event("apigw_post_runs.json")
    body = json.loads(bad["body"])
    body["seed"] = -1
    body["axes"]["r0"]["linspace"]["num"] = 0
    bad["body"] = json.dumps(body)
    response = lambda_entry.parent(bad, context())
    assert response is not None
    assert response["statusCode"] == 400
    problems = json.loads(response["body"])["error"]["problems"]
    assert {p["path"] for p in problems} == {"$.seed", "$.axes.r0.linspace.num"}
    assert captured.invokes == []
    assert s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0


def test_unknown_run_and_route_are_404_and_internals_never_leak(
    cloud: tuple[Any, CapturedLambda], monkeypatch: pytest.MonkeyPatch
) -> None:
    get = event("apigw_get_run.json")
    response = lambda_entry.parent(get, context())
    assert response is not None
    assert response["statusCode"] == 404

    def explode(*_: Any) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(api, "submit_run", explode)
    response = lambda_entry.parent(event("apigw_post_runs.json"), context())
    assert response is not None
    assert response["statusCode"] == 500
    assert "secret" not in response["body"]
    assert json.loads(response["body"])["error"]["code"] == "INTERNAL_ERROR"


@pytest.mark.parametrize(
    ("fixture", "code", "message"),
    [
        (
            "lambda_on_failure_killed.json",
            "WORKER_DIED",
            "the worker was killed, most likely out of memory (after 3 attempts): RequestId: "
            "e4b46cbf-b738-4a4e-8880-a18cdf61200e Error: Runtime exited with error: signal: killed",
        ),
        (
            "lambda_on_failure_timeout.json",
            "TIMEOUT",
            "the worker ran out of time (after 3 attempts): 2026-11-23T12:16:59.100Z "
            "e4b46cbf-b738-4a4e-8880-a18cdf61200e Task timed out after 900.00 seconds",
        ),
        (
            # never run: it waited in the async queue past the maximum event age
            "lambda_on_failure_expired.json",
            "EVENT_EXPIRED",
            "the invocation waited too long in the queue: ",
        ),
        (
            # an unhandled error on every attempt, not a crash or timeout
            "lambda_on_failure_retries.json",
            "RETRIES_EXHAUSTED",
            "every attempt failed (after 3 attempts): ClientError: An error occurred (SlowDown) "
            "when calling the PutObject operation (reached max retries: 4): Please reduce your "
            "request rate.",
        ),
    ],
)
def test_failure_recorder_turns_destination_records_into_failures(
    cloud: tuple[Any, CapturedLambda], fixture: str, code: str, message: str
) -> None:
    s3, _ = cloud
    result = lambda_entry.failure_recorder(event(fixture), context())
    assert result["code"] == code
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == [
        "results/outcomes/run_date=2026-11-23/run_id=20261123T120000Z-0a1b2c3d/"
        "status=failure/shard=00003-attempt=0001.parquet"
    ]
    body = s3.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read()
    [row] = pq.read_table(io.BytesIO(body)).to_pylist()
    assert (row["shard"], row["error_code"], row["error_message"]) == (3, code, message)


def test_environment_is_validated_at_cold_start() -> None:
    with pytest.raises(ConfigError) as caught:
        CloudConfig.from_env({"SWEEP_MAX_SHARDS": "many"})
    message = str(caught.value)
    assert "SWEEP_BUCKET is not set" in message
    assert "SWEEP_WORKER_FUNCTION is not set" in message
    assert "SWEEP_MAX_SHARDS must be a positive integer, not 'many'" in message


def test_a_cancel_on_s3_stops_pending_invocations_and_runs_lists_the_run(
    cloud: tuple[Any, CapturedLambda],
) -> None:
    from runtime.adapters.s3 import S3Store
    from sweep_core.run_index import list_runs

    s3, captured = cloud
    response = lambda_entry.parent(event("apigw_post_runs.json"), context())
    assert response is not None
    run_id = json.loads(response["body"])["run_id"]
    cancel = event("apigw_get_run.json")
    cancel.update(httpMethod="POST", resource="/runs/{run_id}/cancel",
                  path=f"/runs/{run_id}/cancel", pathParameters={"run_id": run_id})  # fmt: skip
    answer = lambda_entry.parent(cancel, context())
    assert answer is not None
    assert answer["statusCode"] == 200
    counts = drain(captured)  # every invocation still pending, retried ones included
    assert counts["workers"] == 5
    store, layout = S3Store(s3, BUCKET), Layout("results")
    [row] = list_runs(store, layout)
    assert (row.run_id, row.state, row.succeeded) == (run_id, "cancelled", 0)
    assert row.cancelled == 5  # the crash is a WORKER_DIED failure, not a cancelled shard
    assert list_runs(store, layout) == [row]  # from the summary it recorded
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=layout.summary_key(run_id, 0))["KeyCount"]
