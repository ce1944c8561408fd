"""LambdaInvoker against a fake Lambda client, alone and under the parent core's dispatch tree."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from attrs import evolve
from botocore.exceptions import ClientError

from runtime.adapters.lambda_invoker import (
    InvokeError,
    LambdaInvoker,
    UnexpectedStatus,
    lambda_client,
)
from runtime.adapters.local_store import LocalStore
from runtime.handlers.parent import Fanout, ParentDeps, handle_dispatch, shard_tasks, submit_run
from sweep_core.contract import AcceptedRun, DispatchSlice, RunManifest, ShardTask
from sweep_core.convert import dumps, structure
from sweep_core.layout import Layout, new_run_id, run_date_of
from sweep_core.runs import read_manifest
from sweep_core.validation import parse_request

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
RUN_ID = new_run_id(T0, "0a1b2c3d")
LAYOUT = Layout("results")
WORKER, DISPATCHER = "sweep-worker", "sweep-dispatcher"


class FakeLambda:
    """Records every ``invoke``; may sleep like a network round trip, wait at a barrier until
    ``meet.parties`` calls are in flight together, or fail chosen calls."""

    def __init__(
        self,
        delay_s: float = 0.0,
        fails: Callable[[str, bytes], bool] = lambda function, payload: False,
        status: int = 202,
        meet: threading.Barrier | None = None,
    ) -> None:
        self.delay_s = delay_s
        self.meet = meet
        self.fails = fails
        self.status = status
        self.calls: list[tuple[str, str, bytes]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    def invoke(self, *, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:  # noqa: N803 (boto3's names)
        with self._lock:
            self.calls.append((FunctionName, InvocationType, Payload))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.meet is not None:
                self.meet.wait(timeout=10)  # broken (and the test failed) unless all arrive
            if self.delay_s:
                time.sleep(self.delay_s)
            if self.fails(FunctionName, Payload):
                raise ClientError(
                    {
                        "Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"},
                        "ResponseMetadata": {"HTTPStatusCode": 429, "RetryAttempts": 9},
                    },
                    "Invoke",
                )
            return {"StatusCode": self.status, "Payload": _Empty()}
        finally:
            with self._lock:
                self.in_flight -= 1

    def payloads(self, function: str) -> list[bytes]:
        return [payload for name, _, payload in self.calls if name == function]


class _Empty:
    def read(self) -> bytes:
        return b""


class FakeClock:
    def __call__(self) -> datetime:
        return T0


def request(points_per_axis: int = 4, shards: int = 16) -> dict[str, Any]:
    return {
        "schema_version": "1.0",
        "kernel": "gbm_european_option",
        "params": {"s0": 100.0, "rate": 0.02, "maturity": 1.0, "paths": 1000, "option": "call"},
        "axes": {
            "sigma": {"linspace": {"start": 0.05, "stop": 0.8, "num": points_per_axis}},
            "strike": {"linspace": {"start": 50.0, "stop": 150.0, "num": points_per_axis}},
        },
        "sampling": {"method": "grid"},
        "sharding": {"shard_count": shards},
        "seed": 42,
    }


def tasks(n: int = 16) -> list[ShardTask]:
    spec = parse_request(request(points_per_axis=10, shards=1))
    return [ShardTask(RUN_ID, run_date_of(RUN_ID), k, k, k + 1, spec) for k in range(n)]


def shard_of(payload: bytes) -> int:
    return structure(payload, ShardTask).shard


# --- the invoker alone ----------------------------------------------------------------------


def test_one_event_invoke_per_task_whose_payload_is_the_task() -> None:
    fake = FakeLambda()
    given = tasks(40)

    LambdaInvoker(fake, WORKER, DISPATCHER, threads=8).invoke_async(given)

    assert len(fake.calls) == 40
    assert {(name, kind) for name, kind, _ in fake.calls} == {(WORKER, "Event")}
    received = sorted(
        (structure(p, ShardTask) for p in fake.payloads(WORKER)), key=lambda t: t.shard
    )
    assert received == given


def test_dispatch_slices_go_to_the_dispatcher_function() -> None:
    fake = FakeLambda()
    slices = [DispatchSlice(RUN_ID, (0, 1, 2)), DispatchSlice(RUN_ID, (3, 4))]

    LambdaInvoker(fake, WORKER, DISPATCHER).dispatch_async(slices)

    assert {(name, kind) for name, kind, _ in fake.calls} == {(DISPATCHER, "Event")}
    received = [structure(p, DispatchSlice) for p in fake.payloads(DISPATCHER)]
    assert sorted(received, key=lambda s: s.shards) == slices


def test_invokes_run_concurrently_but_never_more_than_the_threads() -> None:
    # Each call waits until four are in flight together: with fewer threads the barrier
    # breaks; with more, a fifth call is in flight while four wait.
    meet = threading.Barrier(4)
    fake = FakeLambda(meet=meet)

    LambdaInvoker(fake, WORKER, DISPATCHER, threads=4).invoke_async(tasks(40))

    assert not meet.broken
    assert len(fake.calls) == 40
    assert fake.most_in_flight == 4


def test_an_oversize_payload_is_refused_before_any_invoke() -> None:
    fake = FakeLambda()
    given = tasks(5)
    # The contract caps a label at 256 characters; the invoker must not rely on that.
    spec = evolve(given[0].spec, label="x" * (256 * 1024))
    huge = ShardTask(RUN_ID, run_date_of(RUN_ID), 5, 5, 6, spec)

    with pytest.raises(ValueError, match="shard 5") as raised:
        LambdaInvoker(fake, WORKER, DISPATCHER).invoke_async([*given, huge])

    assert "262,144-byte limit" in str(raised.value)
    assert fake.calls == []


def test_a_payload_exactly_at_the_limit_is_sent() -> None:
    fake = FakeLambda()
    task = tasks(1)[0]
    size = len(dumps(task).encode())

    LambdaInvoker(fake, WORKER, DISPATCHER, max_payload=size).invoke_async([task])

    assert len(fake.calls) == 1


def test_a_partial_failure_raises_after_attempting_every_invoke() -> None:
    failing = {3, 7, 11}
    fake = FakeLambda(fails=lambda function, payload: shard_of(payload) in failing)

    with pytest.raises(InvokeError) as raised:
        LambdaInvoker(fake, WORKER, DISPATCHER, threads=4).invoke_async(tasks(20))

    assert sorted(shard_of(p) for p in fake.payloads(WORKER)) == list(range(20))
    error = raised.value
    assert [label for label, _ in error.failures] == ["shard 3", "shard 7", "shard 11"]
    assert (error.function, error.total) == (WORKER, 20)
    assert str(error).startswith(f"3 of 20 invokes of {WORKER} failed; first: shard 3:")
    assert "TooManyRequestsException" in str(error)


def test_a_status_other_than_202_is_a_failure() -> None:
    fake = FakeLambda(status=200)

    with pytest.raises(InvokeError) as raised:
        LambdaInvoker(fake, WORKER, DISPATCHER).dispatch_async([DispatchSlice(RUN_ID, (0, 1))])

    assert isinstance(raised.value.failures[0][1], UnexpectedStatus)
    assert "status 200" in str(raised.value)


def test_nothing_to_invoke_makes_no_call() -> None:
    fake = FakeLambda()
    invoker = LambdaInvoker(fake, WORKER, DISPATCHER)
    invoker.invoke_async([])
    invoker.dispatch_async([])
    assert fake.calls == []


def test_threads_must_be_positive() -> None:
    with pytest.raises(ValueError, match="threads"):
        LambdaInvoker(FakeLambda(), WORKER, DISPATCHER, threads=0)


def test_lambda_client_has_a_connection_per_thread_and_adaptive_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)

    config = lambda_client(threads=64, region="us-east-1").meta.config

    assert config.max_pool_connections >= 64
    assert config.retries["mode"] == "adaptive"


# --- through the parent core ----------------------------------------------------------------


def parent(root: Path, fake: FakeLambda, leaf: int | None = 250) -> ParentDeps:
    return ParentDeps(
        store=LocalStore(root),
        layout=LAYOUT,
        invoker=LambdaInvoker(fake, WORKER, DISPATCHER),
        clock=FakeClock(),
        new_token=lambda: "0a1b2c3d",
        fanout=Fanout(leaf=leaf),
    )


def drain(fake: FakeLambda, deps: ParentDeps) -> int:
    """Run every dispatcher invoke (and those they make) as Lambda would; return tree depth."""
    depth, level = 1, fake.payloads(DISPATCHER)
    while level:
        depth += 1
        seen = len(fake.calls)
        for payload in level:
            handle_dispatch(structure(payload, DispatchSlice), deps)
        level = [p for name, _, p in fake.calls[seen:] if name == DISPATCHER]
    return depth


def test_a_10000_shard_run_fans_out_through_dispatchers_one_invoke_per_shard(
    tmp_path: Path,
) -> None:
    fake = FakeLambda()
    deps = parent(tmp_path, fake, leaf=250)

    response = submit_run(request(points_per_axis=100, shards=10_000), deps)

    assert response.status_code == 202
    assert isinstance(response.body, AcceptedRun)
    assert response.body.shard_count == 10_000
    # The parent only hands out slices: at most `leaf` dispatcher invokes, no worker invoke.
    assert {name for name, _, _ in fake.calls} == {DISPATCHER}
    assert len(fake.calls) <= 250
    slices = [structure(p, DispatchSlice) for p in fake.payloads(DISPATCHER)]
    assert all(len(s.shards) <= 250 for s in slices)

    dispatcher = FakeLambda()
    for job in slices:
        handle_dispatch(job, parent(tmp_path, dispatcher, leaf=250))

    assert {name for name, _, _ in dispatcher.calls} == {WORKER}
    counts = Counter(shard_of(p) for p in dispatcher.payloads(WORKER))
    assert sorted(counts) == list(range(10_000))
    assert set(counts.values()) == {1}
    # Each task is the shard the plan says, down to its point range.
    manifest_tasks = {t.shard: t for t in shard_tasks(_manifest(deps, response.body.run_id))}
    for payload in dispatcher.payloads(WORKER)[::997]:
        task = structure(payload, ShardTask)
        assert task == manifest_tasks[task.shard]


def test_a_narrow_tree_is_deeper_and_still_invokes_each_shard_once(tmp_path: Path) -> None:
    fake = FakeLambda()
    deps = parent(tmp_path, fake, leaf=10)

    response = submit_run(request(points_per_axis=40, shards=1_000), deps)
    depth = drain(fake, deps)

    assert response.status_code == 202
    assert depth == 3  # 1,000 shards, 10 per leaf: parent → 10 → 100 dispatchers → workers
    counts = Counter(shard_of(p) for p in fake.payloads(WORKER))
    assert sorted(counts) == list(range(1_000))
    assert set(counts.values()) == {1}
    assert len(fake.payloads(DISPATCHER)) == 10 + 100


def test_a_small_run_invokes_workers_directly(tmp_path: Path) -> None:
    fake = FakeLambda()

    response = submit_run(request(shards=16), parent(tmp_path, fake, leaf=250))

    assert response.status_code == 202
    assert sorted(shard_of(p) for p in fake.payloads(WORKER)) == list(range(16))
    assert fake.payloads(DISPATCHER) == []


def test_an_invalid_request_is_a_400_with_no_invoke_and_no_object(tmp_path: Path) -> None:
    fake = FakeLambda()
    bad = request(shards=10_000)
    bad["sharding"] = {"shard_count": 0}
    bad["axes"]["sigma"] = {"linspace": {"start": 0.1, "stop": 0.2}}

    response = submit_run(bad, parent(tmp_path, fake))

    assert response.status_code == 400
    assert fake.calls == []
    assert list(LocalStore(tmp_path).list("")) == []


def _manifest(deps: ParentDeps, run_id: str) -> RunManifest:
    manifest = read_manifest(deps.store, deps.layout, run_id)
    assert manifest is not None
    return manifest
