"""The worker core over a real folder store: what each way a shard can end leaves behind."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from attrs import evolve

from runtime.adapters.local_store import LocalContext, LocalStore
from runtime.handlers.worker import WorkerDeps, record_failure, run_shard
from sweep_core.contract import ShardTask
from sweep_core.kernels import KERNELS, evaluate
from sweep_core.layout import Layout, new_run_id, run_date_of
from sweep_core.planning import plan_shards
from sweep_core.ports import TransientStoreError
from sweep_core.records import outcome_parquet, read_outcome
from sweep_core.space import PointSpace, point_count
from sweep_core.tables import points_table
from sweep_core.validation import parse_request

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
RUN_ID = new_run_id(T0, "0a1b2c3d")
LAYOUT = Layout("results")

SIR_TOO_SHORT: dict[str, Any] = {
    "schema_version": "1.0",
    "kernel": "sir_epidemic",
    "params": {"population": 100_000, "gamma": 0.05, "initial_infected": 10, "days": 30},
    "axes": {"r0": {"values": [1.3, 1.4]}},
    "sampling": {"method": "grid"},
    "sharding": {"shard_count": 1},
    "seed": 7,
}


class FakeClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class SpyStore:
    """A LocalStore that records puts and can misbehave on purpose.

    ``failing``: points writes raise ``TransientStoreError`` (throttling). ``hidden``: keys that
    ``exists`` misses once, as when a concurrent delivery writes between a check and a write.
    """

    def __init__(self, inner: LocalStore, failing: bool = False) -> None:
        self.inner = inner
        self.failing = failing
        self.hidden: set[str] = set()
        self.puts: list[str] = []

    def put_if_absent(self, key: str, body: bytes) -> bool:
        self.puts.append(key)
        if self.failing and "/points/" in key:
            raise TransientStoreError("SlowDown: please reduce your request rate")
        return self.inner.put_if_absent(key, body)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def exists(self, key: str) -> bool:
        if key in self.hidden:
            self.hidden.discard(key)
            return False
        return self.inner.exists(key)

    def list(self, prefix: str) -> Iterator[str]:
        return self.inner.list(prefix)


class ScriptedContext:
    """A context whose remaining time follows a script, then stays at its last value."""

    aws_request_id = "req-scripted"

    def __init__(self, *remaining_ms: int) -> None:
        self.remaining = list(remaining_ms)

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining.pop(0) if len(self.remaining) > 1 else self.remaining[0]


def make_task(raw: dict[str, Any], shard: int = 0) -> ShardTask:
    request = parse_request(raw)
    r = plan_shards(point_count(request), request.sharding)[shard]
    return ShardTask(RUN_ID, run_date_of(RUN_ID), r.shard, r.start, r.end, request)


def context() -> LocalContext:
    return LocalContext.with_timeout(300, request_id="req-1")


@pytest.fixture
def gbm(gbm_request: dict[str, Any]) -> dict[str, Any]:
    gbm_request["params"]["paths"] = 200
    gbm_request["sharding"] = {"shard_size": 24}  # 80 points: shards of 24, 24, 24, 8
    return gbm_request


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path)


@pytest.fixture
def deps(store: LocalStore) -> WorkerDeps:
    return WorkerDeps(store=store, layout=LAYOUT, clock=FakeClock())


def snapshot(store: LocalStore) -> dict[str, bytes]:
    return {key: store.get(key) for key in store.list("")}


def points_key(task: ShardTask) -> str:
    return LAYOUT.points_key(task.spec.kernel, task.run_id, task.shard)


def test_a_success_writes_one_row_per_point_then_the_success_record(
    gbm: dict[str, Any], store: LocalStore
) -> None:
    task = make_task(gbm, shard=1)
    recording = SpyStore(store)
    outcome = run_shard(task, context(), WorkerDeps(recording, LAYOUT, FakeClock()))

    assert recording.puts == [points_key(task), LAYOUT.success_key(RUN_ID, 1)]
    assert (outcome.status, outcome.attempt, outcome.start, outcome.end) == ("success", 1, 24, 48)
    assert (outcome.point_count, outcome.error_code, outcome.error_message) == (24, None, None)
    assert outcome.started_at == outcome.finished_at == T0.isoformat()
    stored = read_outcome(store.get(LAYOUT.success_key(RUN_ID, 1)), RUN_ID, "success")
    assert stored == outcome

    table = pq.read_table(io.BytesIO(store.get(points_key(task))))
    kernel = KERNELS["gbm_european_option"]
    expected_columns = ["point_index"] + [p.name for p in kernel.spec.params]
    expected_columns += [m.name for m in kernel.spec.metrics]
    assert table.column_names == expected_columns
    assert table.schema == points_table(kernel.spec).arrow_schema
    index = np.arange(24, 48, dtype=np.int64)
    assert table.column("point_index").to_pylist() == index.tolist()
    params = PointSpace(task.spec, kernel.spec).decode(index)
    for name, values in params.items():
        assert table.column(name).to_pylist() == values.tolist(), name
    # The grid, by hand: strike varies fastest (the last axis), sigma slowest.
    assert table.column("strike").to_pylist() == [[80, 90, 100, 110, 120][i % 5] for i in index]
    sigmas = np.linspace(0.05, 0.8, 16)
    assert table.column("sigma").to_pylist() == [sigmas[i // 5] for i in index]
    assert set(table.column("option").to_pylist()) == {"call"}
    for name, values in evaluate(kernel, params, index, task.spec.seed).items():
        assert table.column(name).to_pylist() == values.tolist(), name
    assert set(store.list("")) == {points_key(task), LAYOUT.success_key(RUN_ID, 1)}


def test_a_duplicate_task_leaves_the_success_untouched_and_returns_it(
    gbm: dict[str, Any], store: LocalStore
) -> None:
    task, clock = make_task(gbm), FakeClock()
    deps = WorkerDeps(store, LAYOUT, clock)
    first = run_shard(task, context(), deps)
    before = snapshot(store)

    clock.now = T0 + timedelta(hours=1)  # a re-run would record this time
    second = run_shard(task, context(), deps)

    assert second == first
    assert second.started_at == T0.isoformat()
    assert snapshot(store) == before
    assert list(store.list(LAYOUT.outcomes_prefix(RUN_ID))) == [LAYOUT.success_key(RUN_ID, 0)]


def test_a_duplicate_that_loses_the_race_for_the_success_write_returns_the_winner(
    gbm: dict[str, Any], store: LocalStore
) -> None:
    task, clock, spy = make_task(gbm), FakeClock(), SpyStore(store)
    deps = WorkerDeps(spy, LAYOUT, clock)
    first = run_shard(task, context(), deps)
    before = snapshot(store)

    clock.now = T0 + timedelta(hours=1)
    spy.hidden.add(LAYOUT.success_key(RUN_ID, 0))  # both deliveries saw no success yet
    second = run_shard(task, context(), deps)

    assert spy.puts.count(LAYOUT.success_key(RUN_ID, 0)) == 2  # it did try to write
    assert second == first
    assert snapshot(store) == before


def test_a_failure_arriving_after_a_success_writes_nothing(
    gbm: dict[str, Any], store: LocalStore, deps: WorkerDeps
) -> None:
    task = make_task(gbm, shard=2)
    success = run_shard(task, context(), deps)
    before = snapshot(store)

    answer = record_failure(task, "TIMEOUT", "Task timed out after 900.00 seconds", deps)

    assert answer == success
    assert answer.status == "success"
    assert snapshot(store) == before
    assert list(store.list(LAYOUT.failure_prefix(RUN_ID, 2))) == []


def test_a_kernel_error_records_a_failure_without_points_or_success(
    store: LocalStore, deps: WorkerDeps
) -> None:
    task = make_task(SIR_TOO_SHORT)
    outcome = run_shard(task, context(), deps)

    assert (outcome.status, outcome.attempt, outcome.error_code) == (
        "failure",
        1,
        "EPIDEMIC_NOT_OVER",
    )
    assert outcome.error_message is not None
    assert "still infected after days=30" in outcome.error_message
    # the kernel ran: the record says which version of it failed
    assert outcome.kernel_version == KERNELS["sir_epidemic"].spec.version
    assert list(store.list("")) == [LAYOUT.failure_key(RUN_ID, 0, 1)]
    stored = read_outcome(store.get(LAYOUT.failure_key(RUN_ID, 0, 1)), RUN_ID, "failure")
    assert stored == outcome
    assert not store.exists(LAYOUT.success_key(RUN_ID, 0))


def test_each_failing_attempt_gets_the_next_attempt_number(
    store: LocalStore, deps: WorkerDeps
) -> None:
    task = make_task(SIR_TOO_SHORT)
    attempts = [run_shard(task, context(), deps).attempt for _ in range(3)]

    assert attempts == [1, 2, 3]
    assert list(store.list(LAYOUT.failure_prefix(RUN_ID, 0))) == [
        LAYOUT.failure_key(RUN_ID, 0, k) for k in (1, 2, 3)
    ]
    recorded = [
        read_outcome(store.get(LAYOUT.failure_key(RUN_ID, 0, k)), RUN_ID, "failure")
        for k in (1, 2, 3)
    ]
    assert [(o.attempt, o.error_code) for o in recorded] == [
        (k, "EPIDEMIC_NOT_OVER") for k in (1, 2, 3)
    ]


def test_too_little_time_left_ends_in_deadline_exceeded_without_points(
    gbm: dict[str, Any], store: LocalStore, deps: WorkerDeps
) -> None:
    task = make_task(gbm)
    short = LocalContext("req-short", time.monotonic() + (deps.safety_ms - 1000) / 1000)
    outcome = run_shard(task, short, deps)

    assert (outcome.status, outcome.error_code, outcome.attempt) == (
        "failure",
        "DEADLINE_EXCEEDED",
        1,
    )
    assert list(store.list("")) == [LAYOUT.failure_key(RUN_ID, 0, 1)]


def test_a_deadline_reached_mid_shard_leaves_no_partial_points(
    gbm: dict[str, Any], store: LocalStore
) -> None:
    task = make_task(gbm)  # 24 points, batches of 5: the clock runs out before the third
    deps = WorkerDeps(store, LAYOUT, FakeClock(), batch_points=5, safety_ms=3000)
    outcome = run_shard(task, ScriptedContext(600_000, 600_000, 2_000), deps)

    assert outcome.error_code == "DEADLINE_EXCEEDED"
    assert outcome.error_message is not None
    assert "stopped at point 10 of [0, 24)" in outcome.error_message
    assert list(store.list("")) == [LAYOUT.failure_key(RUN_ID, 0, 1)]


def test_a_transient_store_error_records_the_attempt_reraises_and_a_retry_succeeds_once(
    gbm: dict[str, Any], store: LocalStore
) -> None:
    task = make_task(gbm, shard=3)
    flaky = SpyStore(store, failing=True)
    deps = WorkerDeps(flaky, LAYOUT, FakeClock())

    with pytest.raises(TransientStoreError, match="SlowDown"):
        run_shard(task, context(), deps)
    failure = read_outcome(store.get(LAYOUT.failure_key(RUN_ID, 3, 1)), RUN_ID, "failure")
    assert (failure.attempt, failure.error_code) == (1, "TRANSIENT_ERROR")
    assert failure.error_message is not None
    assert "SlowDown" in failure.error_message
    assert list(store.list("")) == [LAYOUT.failure_key(RUN_ID, 3, 1)]

    flaky.failing = False
    success = run_shard(task, context(), deps)
    assert (success.status, success.attempt) == ("success", 2)
    after_success = snapshot(store)
    assert set(after_success) == {
        LAYOUT.failure_key(RUN_ID, 3, 1),
        LAYOUT.success_key(RUN_ID, 3),
        points_key(task),
    }

    assert run_shard(task, context(), deps) == success  # Lambda's retry after all
    assert snapshot(store) == after_success


def test_batching_does_not_change_a_single_value(gbm: dict[str, Any], tmp_path: Path) -> None:
    task = make_task(gbm, shard=1)
    tables: list[pa.Table] = []
    row_groups: list[int] = []
    for batch in (5, 4096):
        store = LocalStore(tmp_path / f"batch-{batch}")
        outcome = run_shard(
            task, context(), WorkerDeps(store, LAYOUT, FakeClock(), batch_points=batch)
        )
        assert outcome.status == "success"
        body = store.get(points_key(task))
        tables.append(pq.read_table(io.BytesIO(body)))
        row_groups.append(pq.ParquetFile(io.BytesIO(body)).num_row_groups)

    assert row_groups == [5, 1]  # 24 points in batches of 5, or in one
    assert tables[0].num_rows == 24
    assert tables[0].equals(tables[1])


def test_a_failure_records_its_duration_and_a_bounded_message(
    gbm: dict[str, Any], deps: WorkerDeps, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("runtime.handlers.worker.time.perf_counter", lambda: 100.2505)
    task = make_task(gbm)
    started = T0 - timedelta(seconds=1)
    failed = record_failure(task, "WORKER_ERROR", "x" * 5000, deps, started=started, t0=100.0)
    stored = read_outcome(store.get(LAYOUT.failure_key(RUN_ID, 0, 1)), RUN_ID, "failure")
    for outcome in (failed, stored):
        assert outcome.status == "failure"
        assert outcome.duration_ms == 250.5
        assert outcome.error_message == "x" * 4096
        assert outcome.started_at == started.isoformat()
        assert outcome.worker_version
    # the failure recorder knows no start: the attempt lasted 0 ms as far as it can tell
    assert record_failure(task, "TIMEOUT", "timed out", deps).duration_ms == 0.0


def test_an_attempt_number_a_concurrent_attempt_took_is_skipped(
    gbm: dict[str, Any], store: LocalStore
) -> None:
    class Racing(SpyStore):
        """Another attempt writes the first failure number between our count and our put."""

        def put_if_absent(self, key: str, body: bytes) -> bool:
            if key == LAYOUT.failure_key(RUN_ID, 0, 1) and not self.inner.exists(key):
                self.inner.put_if_absent(key, b"theirs")
            return super().put_if_absent(key, body)

    racing = Racing(store)
    deps = WorkerDeps(racing, LAYOUT, FakeClock())
    assert record_failure(make_task(gbm), "TIMEOUT", "timed out", deps).attempt == 2
    assert store.get(LAYOUT.failure_key(RUN_ID, 0, 1)) == b"theirs"
    assert read_outcome(store.get(LAYOUT.failure_key(RUN_ID, 0, 2)), RUN_ID, "failure").attempt == 2
    assert not store.exists(LAYOUT.failure_key(RUN_ID, 0, 3))


def test_a_shard_of_a_cancelled_run_records_a_cancelled_failure_and_runs_nothing(
    gbm: dict[str, Any], store: LocalStore, deps: WorkerDeps
) -> None:
    from sweep_core.run_index import cancel_run

    task = make_task(gbm, shard=2)
    store.put_if_absent(LAYOUT.manifest_key(RUN_ID), b"{}")  # the run exists
    cancel_run(store, LAYOUT, RUN_ID, FakeClock())
    before = set(store.list(""))

    outcome = run_shard(task, context(), deps)

    assert (outcome.status, outcome.shard, outcome.attempt) == ("failure", 2, 1)
    assert (outcome.start, outcome.end, outcome.point_count) == (48, 72, 24)
    assert outcome.error_code == "CANCELLED"
    assert outcome.error_message == "the run was cancelled before this shard started"
    assert (outcome.started_at, outcome.duration_ms) == (T0.isoformat(), 0.0)
    assert set(store.list("")) - before == {LAYOUT.failure_key(RUN_ID, 2, 1)}
    stored = read_outcome(store.get(LAYOUT.failure_key(RUN_ID, 2, 1)), RUN_ID, "failure")
    assert stored == outcome


def test_a_success_records_its_duration_and_the_versions_that_made_it(
    gbm: dict[str, Any], store: LocalStore, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the attempt starts at 100.0 s on the performance counter; every later reading is 0.75 s on
    ticks = iter([100.0])
    monkeypatch.setattr("runtime.handlers.worker.time.perf_counter", lambda: next(ticks, 100.75))
    task = make_task(gbm, shard=3)

    outcome = run_shard(task, context(), deps)

    stored = read_outcome(store.get(LAYOUT.success_key(RUN_ID, 3)), RUN_ID, "success")
    for recorded in (outcome, stored):
        assert (recorded.status, recorded.shard, recorded.attempt) == ("success", 3, 1)
        assert (recorded.start, recorded.end, recorded.point_count) == (72, 80, 8)
        assert recorded.duration_ms == 750.0
        assert recorded.worker_version == version("sweep")  # the installed build's version
        assert recorded.kernel_version == KERNELS["gbm_european_option"].spec.version
        assert recorded.points_rows == 8


def _batches_of_125_ms(monkeypatch: pytest.MonkeyPatch) -> None:
    """The performance counter as a worker sees it when every batch takes exactly 125 ms:
    the attempt starts at 0 s, batch k runs from k s to k + 0.125 s (binary-exact values)."""
    readings = iter([0.0] + [t for k in range(1, 10) for t in (float(k), k + 0.125)])
    monkeypatch.setattr("runtime.handlers.worker.time.perf_counter", lambda: next(readings, 20.0))


def test_a_batch_runs_while_the_safety_margin_and_two_slowest_batches_are_left(
    gbm: dict[str, Any], store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exactly enough left is enough: the margin alone before the first batch (none measured
    yet), the margin and twice the slowest (125 ms) batch before the next ones."""
    _batches_of_125_ms(monkeypatch)
    deps = WorkerDeps(store, LAYOUT, FakeClock(), batch_points=8, safety_ms=3000)
    task = make_task(gbm)  # points [0, 24): three batches of 8

    outcome = run_shard(task, ScriptedContext(3000, 3250, 3250), deps)

    assert (outcome.status, outcome.error_code) == ("success", None)
    assert outcome.points_rows == 24


@pytest.mark.parametrize(
    ("remaining", "stopped_at"), [((2999,), 0), ((3000, 3249), 8), ((3000, 3250, 3249), 16)]
)
def test_a_batch_that_might_not_finish_before_the_margin_ends_the_shard_in_deadline_exceeded(
    gbm: dict[str, Any],
    store: LocalStore,
    monkeypatch: pytest.MonkeyPatch,
    remaining: tuple[int, ...],
    stopped_at: int,
) -> None:
    _batches_of_125_ms(monkeypatch)
    deps = WorkerDeps(store, LAYOUT, FakeClock(), batch_points=8, safety_ms=3000)
    task = make_task(gbm)

    outcome = run_shard(task, ScriptedContext(*remaining), deps)

    assert (outcome.status, outcome.error_code) == ("failure", "DEADLINE_EXCEEDED")
    assert outcome.error_message == (
        f"stopped at point {stopped_at} of [0, 24) with {remaining[-1]} ms left: "
        "the shard does not fit the time limit; use smaller shards"
    )
    assert not store.exists(LAYOUT.success_key(RUN_ID, 0))
    assert list(store.list(LAYOUT.points_prefix("gbm_european_option", RUN_ID))) == []


def test_the_point_space_is_built_once_per_request_a_worker_sees(
    gbm: dict[str, Any], deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shard after shard of one run reuse its space; another run's request gets its own."""
    import runtime.handlers.worker as worker_module

    built: list[int] = []

    class CountedSpace(PointSpace):
        def __init__(self, *args: Any) -> None:
            built.append(1)
            super().__init__(*args)

    monkeypatch.setattr(worker_module, "PointSpace", CountedSpace)
    monkeypatch.setattr(worker_module, "_SPACES", {})
    first = [make_task(gbm, shard) for shard in range(4)]
    first = [first[0], *(evolve(t, spec=first[0].spec) for t in first[1:])]
    other = evolve(make_task({**gbm, "seed": gbm["seed"] + 1}), run_id=new_run_id(T0, "ffffffff"))

    for task in (first[0], first[1], other, first[2], first[3]):
        assert run_shard(task, context(), deps).status == "success"

    assert len(built) == 2


def test_attempts_count_on_from_every_compacted_file_of_the_shard(
    store: LocalStore, deps: WorkerDeps, tmp_path: Path
) -> None:
    """Compacted twice (compact, redrive, compact again): the shard's three earlier failures
    lie in two compacted files and no loose object, so the next attempt is the fourth."""
    task = make_task(SIR_TOO_SHORT)
    scratch = LocalStore(tmp_path / "scratch")
    scratch_deps = WorkerDeps(scratch, LAYOUT, FakeClock())
    failures = [record_failure(task, "EPIDEMIC_NOT_OVER", "x", scratch_deps) for _ in range(3)]
    other_shard = record_failure(evolve(task, shard=1), "EPIDEMIC_NOT_OVER", "x", scratch_deps)
    assert [f.attempt for f in failures] == [1, 2, 3]

    def compacted(*outcomes: Any) -> bytes:
        table = pa.concat_tables(pq.read_table(io.BytesIO(outcome_parquet(o))) for o in outcomes)
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()

    partition = LAYOUT.status_prefix(RUN_ID, "failure")
    store.put_if_absent(
        Layout.compacted_key(partition, 0), compacted(failures[0], other_shard, failures[1])
    )
    store.put_if_absent(Layout.compacted_key(partition, 1), compacted(failures[2]))

    outcome = run_shard(task, context(), deps)

    assert (outcome.status, outcome.attempt) == ("failure", 4)
    assert list(store.list(LAYOUT.failure_prefix(RUN_ID, 0))) == [LAYOUT.failure_key(RUN_ID, 0, 4)]


class _NoUsableKernels(dict[str, Any]):
    """A registry where every name is registered but its plugin failed to load."""

    def __getitem__(self, name: str) -> Any:
        from sweep_core.kernels import UnavailableKernel

        raise UnavailableKernel(f"{name}: the plugin failed to import (ModuleNotFoundError: x)")


GBM_VERSION = KERNELS["gbm_european_option"].spec.version


@pytest.mark.parametrize(
    ("why", "code", "message", "kernel_version"),
    [
        (
            "unknown kernel",
            "UNKNOWN_KERNEL",
            "no kernel 'gbm_european_option' is registered where this worker runs",
            None,
        ),
        (
            "unusable kernel",
            "KERNEL_UNAVAILABLE",
            "gbm_european_option: the plugin failed to import (ModuleNotFoundError: x)",
            None,
        ),
        ("deadline", "DEADLINE_EXCEEDED", None, GBM_VERSION),
        ("throttled", "TRANSIENT_ERROR", "SlowDown: please reduce your request rate", GBM_VERSION),
    ],
)
def test_a_failed_attempt_records_when_it_started_how_long_it_took_and_what_ran(
    gbm: dict[str, Any],
    store: LocalStore,
    monkeypatch: pytest.MonkeyPatch,
    why: str,
    code: str,
    message: str | None,
    kernel_version: str | None,
) -> None:
    from conftest import Ticking

    # the attempt starts at 100.0 s on the performance counter; every later reading is 0.75 s
    # on; the wall clock ticks a second at each reading, so only the start's reading is T0 + 1 s
    ticks = iter([100.0])
    monkeypatch.setattr("runtime.handlers.worker.time.perf_counter", lambda: next(ticks, 100.75))
    spy = SpyStore(store, failing=why == "throttled")
    deps = WorkerDeps(store=spy, layout=LAYOUT, clock=Ticking(T0))
    if why == "unknown kernel":
        deps = evolve(deps, kernels={})
    elif why == "unusable kernel":
        deps = evolve(deps, kernels=_NoUsableKernels())
    task = make_task(gbm)
    ctx = (
        LocalContext("req-short", time.monotonic() + (deps.safety_ms - 1000) / 1000)
        if why == "deadline"
        else context()
    )

    if why == "throttled":
        with pytest.raises(TransientStoreError):
            run_shard(task, ctx, deps)
    else:
        run_shard(task, ctx, deps)

    recorded = read_outcome(store.get(LAYOUT.failure_key(RUN_ID, 0, 1)), RUN_ID, "failure")
    assert (recorded.status, recorded.attempt, recorded.error_code) == ("failure", 1, code)
    if message is not None:
        assert recorded.error_message == message
    assert recorded.started_at == (T0 + timedelta(seconds=1)).isoformat()
    assert recorded.duration_ms == 750.0
    assert recorded.kernel_version == kernel_version
    assert not store.exists(LAYOUT.success_key(RUN_ID, 0))


def test_points_never_overwrite_leftovers_and_reuse_their_own_identical_bytes(
    gbm: dict[str, Any], store: LocalStore, deps: WorkerDeps
) -> None:
    task = make_task(gbm)
    kernel = task.spec.kernel
    usual = points_key(task)
    # two dead attempts left other bytes at the usual key and at attempt 1's own key
    assert store.put_if_absent(usual, b"left by a dead attempt")
    assert store.put_if_absent(LAYOUT.points_attempt_key(kernel, RUN_ID, 0, 1), b"and another")

    outcome = run_shard(task, context(), deps)

    assert outcome.points_object == "shard=00000-attempt=0002.parquet"
    written = store.get(LAYOUT.points_attempt_key(kernel, RUN_ID, 0, 2))
    assert pq.read_table(io.BytesIO(written)).num_rows == 24
    assert store.get(usual) == b"left by a dead attempt"

    # a second delivery of the same shard to a fresh store: identical bytes are reused as they are
    again = LocalStore(store.root / "again")
    assert again.put_if_absent(usual, written)
    outcome = run_shard(task, context(), evolve(deps, store=again))
    assert outcome.points_object == "shard=00000.parquet"
    assert list(again.list(LAYOUT.points_prefix(kernel, RUN_ID))) == [usual]


def test_a_kernel_that_fails_mid_shard_records_its_start_and_duration_to_the_microsecond(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import Ticking

    ticks = iter([100.0])  # then 1.23456 ms later: recorded as 1.235 ms
    monkeypatch.setattr(
        "runtime.handlers.worker.time.perf_counter", lambda: next(ticks, 100.00123456)
    )
    deps = WorkerDeps(store=store, layout=LAYOUT, clock=Ticking(T0))
    outcome = run_shard(make_task(SIR_TOO_SHORT), context(), deps)
    assert outcome.error_code == "EPIDEMIC_NOT_OVER"
    assert outcome.started_at == (T0 + timedelta(seconds=1)).isoformat()
    assert outcome.duration_ms == 1.235
