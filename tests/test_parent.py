"""The parent core over a real folder store: what a submit writes, dispatches and answers."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from attrs import evolve

import runtime.handlers.parent as parent_module
from runtime.adapters.local_store import LocalContext, LocalStore
from runtime.handlers.parent import (
    Fanout,
    ParentDeps,
    ParentResponse,
    redrive_run,
    request_digest,
    submit_run,
)
from runtime.handlers.worker import WorkerDeps, record_failure, run_shard
from sweep_core import validation
from sweep_core.contract import AcceptedRun, DispatchSlice, ErrorResponse, ShardTask
from sweep_core.convert import dumps
from sweep_core.layout import Layout, new_run_id
from sweep_core.ports import NotFound
from sweep_core.runs import read_manifest
from sweep_core.validation import Limits, parse_request

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
TOKEN = "0a1b2c3d"
RUN_ID = "20260102T030405Z-0a1b2c3d"
LAYOUT = Layout("results")


class RecordingInvoker:
    """Keeps every task it is handed instead of running it."""

    def __init__(self) -> None:
        self.calls: list[list[ShardTask]] = []

    def invoke_async(self, tasks: Sequence[ShardTask]) -> None:
        self.calls.append(list(tasks))

    def dispatch_async(self, slices: Sequence[DispatchSlice]) -> None:
        raise AssertionError("these tests use Fanout.local(): no dispatcher slices")

    @property
    def tasks(self) -> list[ShardTask]:
        return [task for call in self.calls for task in call]


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Tokens:
    """Hands out the given tokens in order, as the injected entropy source."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens)

    def __call__(self) -> str:
        return self.tokens.pop(0)


class Parent:
    """A parent wired to a folder store, a recording invoker and a controllable clock."""

    def __init__(self, root: Path, *tokens: str, limits: Limits | None = None) -> None:
        self.store = LocalStore(root)
        self.invoker = RecordingInvoker()
        self.clock = FakeClock()
        self.deps = ParentDeps(
            store=self.store,
            layout=LAYOUT,
            invoker=self.invoker,
            clock=self.clock,
            new_token=Tokens(*(tokens or (TOKEN,))),
            limits=limits or Limits(),
            fanout=Fanout.local(),
        )

    def submit(self, raw: Any) -> ParentResponse:
        return submit_run(raw, self.deps)

    def snapshot(self) -> dict[str, bytes]:
        return {key: self.store.get(key) for key in self.store.list("")}


def accepted(response: ParentResponse) -> AcceptedRun:
    assert response.status_code == 202, response
    assert isinstance(response.body, AcceptedRun)
    return response.body


def rejected(response: ParentResponse, status: int) -> ErrorResponse:
    assert response.status_code == status, response
    assert isinstance(response.body, ErrorResponse)
    return response.body


def all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.fixture
def request_(gbm_request: dict[str, Any]) -> dict[str, Any]:
    """80 points in shards of 7: eleven of 7 and a last one of 3."""
    gbm_request["params"]["paths"] = 200
    gbm_request["sharding"] = {"shard_size": 7}
    return gbm_request


def test_a_submit_counts_the_points_once_and_plans_the_shards_once(
    tmp_path: Path, request_: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: Counter[str] = Counter()

    def counted(module: Any, name: str) -> None:
        real = getattr(module, name)

        def call(*args: Any) -> Any:
            calls[name] += 1
            return real(*args)

        monkeypatch.setattr(module, name, call)

    counted(validation, "point_count")
    counted(parent_module, "plan_shards")
    body = accepted(Parent(tmp_path).submit(request_))
    assert (body.point_count, body.shard_count) == (80, 12)
    assert calls == {"point_count": 1, "plan_shards": 1}


def test_a_valid_request_writes_one_manifest_and_dispatches_every_shard_once(
    tmp_path: Path, request_: dict[str, Any]
) -> None:
    parent = Parent(tmp_path)
    body = accepted(parent.submit(request_))

    assert body.run_id == RUN_ID
    assert (body.run_date, body.kernel) == ("2026-01-02", "gbm_european_option")
    assert (body.point_count, body.shard_count, body.existing) == (80, 12, False)
    assert body.manifest_key == LAYOUT.manifest_key(RUN_ID)
    assert list(parent.store.list(f"{LAYOUT.prefix}/runs/")) == [body.manifest_key]
    assert set(parent.store.list("")) == {
        body.manifest_key,
        LAYOUT.token_key(request_["client_token"]),
    }
    manifest = read_manifest(parent.store, LAYOUT, RUN_ID)
    assert manifest is not None
    assert manifest.spec == parse_request(request_)
    assert (manifest.point_count, manifest.shard_count) == (80, 12)
    assert manifest.created_at == T0.isoformat()

    assert len(parent.invoker.calls) == 1
    tasks = parent.invoker.tasks
    assert [t.shard for t in tasks] == list(range(12))
    assert {(t.run_id, t.run_date) for t in tasks} == {(RUN_ID, "2026-01-02")}
    assert all(t.spec == manifest.spec for t in tasks)
    covered = [i for t in tasks for i in range(t.start, t.end)]
    assert covered == list(range(80))  # every point once, in order, no gaps
    assert [t.end - t.start for t in tasks] == [7] * 11 + [3]


def test_without_a_client_token_only_the_manifest_is_written(
    tmp_path: Path, request_: dict[str, Any]
) -> None:
    del request_["client_token"]
    parent = Parent(tmp_path)
    body = accepted(parent.submit(request_))
    assert list(parent.store.list("")) == [body.manifest_key]
    assert len(parent.invoker.tasks) == 12


def test_an_invalid_request_lists_every_problem_and_leaves_no_trace(
    tmp_path: Path, request_: dict[str, Any]
) -> None:
    request_["axes"]["sigma"]["linspace"]["num"] = 0
    request_["colour"] = "blue"
    request_["seed"] = -1
    request_["sharding"] = {"shard_size": 10, "shard_count": 3}
    del request_["sampling"]
    parent = Parent(tmp_path)
    error = rejected(parent.submit(request_), 400).error

    assert error.code == "INVALID_REQUEST"
    assert sorted(p.path for p in error.problems) == [
        "$.axes.sigma.linspace.num",
        "$.colour",
        "$.sampling",
        "$.seed",
        "$.sharding",
    ]
    assert all(p.message for p in error.problems)
    assert all_files(tmp_path) == []
    assert parent.invoker.calls == []


@pytest.mark.parametrize(
    ("change", "code", "paths"),
    [
        (
            {"params": {"s0": -1.0, "rate": 0.02, "maturity": 1.0, "volatility": 0.2}},
            "INVALID_REQUEST",
            ["$.params.s0", "$.params.volatility"],
        ),
        ({"kernel": "heston"}, "INVALID_REQUEST", ["$.kernel"]),
        ({"schema_version": "2.0"}, "UNSUPPORTED_SCHEMA_VERSION", ["$.schema_version"]),
    ],
)
def test_requests_the_schema_cannot_reject_are_refused_before_any_write(
    tmp_path: Path,
    request_: dict[str, Any],
    change: dict[str, Any],
    code: str,
    paths: list[str],
) -> None:
    parent = Parent(tmp_path)
    error = rejected(parent.submit({**request_, **change}), 400).error
    assert error.code == code
    assert sorted(p.path for p in error.problems) == paths
    assert all_files(tmp_path) == []
    assert parent.invoker.calls == []


@pytest.mark.parametrize(
    ("limits", "path", "says"),
    [
        (Limits(max_points=79), "$.axes", "at most 79"),
        (Limits(max_shards=11), "$.sharding.shard_size", ""),
    ],
)
def test_a_run_over_the_limits_is_refused_before_any_write(
    tmp_path: Path, request_: dict[str, Any], limits: Limits, path: str, says: str
) -> None:
    parent = Parent(tmp_path, limits=limits)
    error = rejected(parent.submit(request_), 400).error
    assert [p.path for p in error.problems] == [path]
    assert says in error.problems[0].message
    assert all_files(tmp_path) == []
    assert parent.invoker.calls == []


def _strikes(count: int) -> list[float]:
    return [round(1.0 + i * 0.123456789, 9) for i in range(count)]


def test_a_request_whose_shard_tasks_would_not_fit_an_async_invoke_is_refused(
    tmp_path: Path, request_: dict[str, Any]
) -> None:
    # 20,000 strikes of ~13 characters: a task carries the request, ~300 KB > 256 KiB.
    request_["axes"]["strike"] = {"values": _strikes(20_000)}
    request_["sharding"] = {"shard_count": 4}
    assert len(json.dumps(request_)) > 256 * 1024
    parent = Parent(tmp_path)
    error = rejected(parent.submit(request_), 400).error
    assert error.code == "REQUEST_TOO_LARGE"
    assert error.message == "the sweep request is too large"
    [problem] = error.problems
    assert problem.path == "$.axes"
    assert "over the 262,144-byte limit of an asynchronous invocation" in problem.message
    assert all_files(tmp_path) == []
    assert parent.invoker.calls == []


def test_a_request_whose_shard_tasks_fit_an_async_invoke_is_accepted(
    tmp_path: Path, request_: dict[str, Any]
) -> None:
    request_["axes"]["strike"] = {"values": _strikes(17_500)}
    request_["sharding"] = {"shard_count": 4}
    parent = Parent(tmp_path)
    assert accepted(parent.submit(request_)).shard_count == 4
    sizes = [len(dumps(task).encode()) for task in parent.invoker.tasks]
    assert len(sizes) == 4
    assert 240 * 1024 < max(sizes) <= 256 * 1024


def test_repeating_a_client_token_answers_with_the_first_run_and_dispatches_nothing(
    tmp_path: Path, request_: dict[str, Any]
) -> None:
    parent = Parent(tmp_path, TOKEN, "ffffffff")
    first = accepted(parent.submit(request_))
    before = parent.snapshot()

    parent.clock.now = T0 + timedelta(days=1)  # a fresh run id would differ in date and token
    again = accepted(parent.submit(request_))

    assert again.existing is True
    assert again.run_id == first.run_id == RUN_ID
    assert (again.point_count, again.shard_count, again.manifest_key) == (
        first.point_count,
        first.shard_count,
        first.manifest_key,
    )
    assert len(parent.invoker.calls) == 1
    assert parent.snapshot() == before


def test_reusing_a_client_token_for_another_request_is_a_conflict_that_writes_nothing(
    tmp_path: Path, request_: dict[str, Any]
) -> None:
    parent = Parent(tmp_path, TOKEN, "ffffffff")
    accepted(parent.submit(request_))
    before = parent.snapshot()

    error = rejected(parent.submit({**request_, "seed": 43}), 409).error

    assert error.code == "CLIENT_TOKEN_REUSED"
    assert error.message == "this client_token already started a different request; use a new token"
    assert parent.snapshot() == before
    assert len(parent.invoker.calls) == 1


def test_redrive_dispatches_exactly_the_shards_without_a_success_under_the_same_run(
    tmp_path: Path, request_: dict[str, Any]
) -> None:
    parent = Parent(tmp_path)
    run_id = accepted(parent.submit(request_)).run_id
    original = {t.shard: t for t in parent.invoker.tasks}
    worker = WorkerDeps(parent.store, LAYOUT, parent.clock)
    for shard in (0, 2, 5, 11):
        outcome = run_shard(original[shard], LocalContext.with_timeout(300), worker)
        assert outcome.status == "success"
    record_failure(original[3], "TIMEOUT", "Task timed out after 900.00 seconds", worker)
    record_failure(original[5], "TIMEOUT", "late failure of a succeeded shard", worker)
    manifest = parent.store.get(LAYOUT.manifest_key(run_id))
    outcomes = {k: v for k, v in parent.snapshot().items() if "/outcomes/" in k}

    missing = redrive_run(run_id, parent.deps)

    expected = [1, 3, 4, 6, 7, 8, 9, 10]
    assert missing == expected
    assert len(parent.invoker.calls) == 2
    redriven = parent.invoker.calls[1]
    assert [t.shard for t in redriven] == expected
    assert redriven == [original[k] for k in expected]  # same run id, ranges and spec
    assert {t.run_id for t in redriven} == {run_id}
    assert parent.store.get(LAYOUT.manifest_key(run_id)) == manifest
    assert {k: v for k, v in parent.snapshot().items() if "/outcomes/" in k} == outcomes


def test_redrive_of_a_complete_run_dispatches_nothing(
    tmp_path: Path, request_: dict[str, Any]
) -> None:
    request_["sharding"] = {"shard_count": 2}
    parent = Parent(tmp_path)
    run_id = accepted(parent.submit(request_)).run_id
    worker = WorkerDeps(parent.store, LAYOUT, parent.clock)
    for task in parent.invoker.tasks:
        run_shard(task, LocalContext.with_timeout(300), worker)

    assert redrive_run(run_id, parent.deps) == []
    assert [t for call in parent.invoker.calls[1:] for t in call] == []


def test_redrive_of_an_unknown_run_raises_not_found(tmp_path: Path) -> None:
    parent = Parent(tmp_path)
    with pytest.raises(NotFound) as caught:
        redrive_run(RUN_ID, parent.deps)
    assert caught.value.args == (f"no run {RUN_ID}",)
    assert parent.invoker.calls == []


class RecordingPartitions:
    def __init__(self) -> None:
        self.runs: list[tuple[str, str]] = []

    def register_run(self, run_id: str, kernel: str) -> None:
        self.runs.append((run_id, kernel))


def test_each_redrive_writes_the_next_numbered_record_of_what_it_dispatched(
    tmp_path: Path, request_: dict[str, Any]
) -> None:
    request_["sharding"] = {"shard_count": 3}
    parent = Parent(tmp_path)
    partitions = RecordingPartitions()
    parent.deps = attrs.evolve(parent.deps, partitions=partitions)
    run_id = accepted(parent.submit(request_)).run_id
    tasks = {t.shard: t for t in parent.invoker.tasks}
    worker = WorkerDeps(parent.store, LAYOUT, parent.clock)
    run_shard(tasks[0], LocalContext.with_timeout(300), worker)
    record_failure(tasks[2], "TIMEOUT", "timed out", worker)

    def redrive_record(number: int) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(parent.store.get(LAYOUT.redrive_key(run_id, number)))
        return loaded

    parent.clock.now = T0 + timedelta(minutes=5)
    assert redrive_run(run_id, parent.deps) == [1, 2]
    first = redrive_record(1)
    assert (first["run_id"], first["number"]) == (run_id, 1)
    assert first["created_at"] == "2026-01-02T03:09:05+00:00"
    assert first["shards"] == [
        {"shard": 1, "failed_attempts": 0},
        {"shard": 2, "failed_attempts": 1},
    ]
    # a concurrent redrive took number 2 first: this one takes 3, and 2 is left as it was
    taken = b'{"taken": true}'
    assert parent.store.put_if_absent(LAYOUT.redrive_key(run_id, 2), taken)
    assert redrive_run(run_id, parent.deps) == [1, 2]
    assert parent.store.get(LAYOUT.redrive_key(run_id, 2)) == taken
    assert redrive_record(3)["number"] == 3
    assert not parent.store.exists(LAYOUT.redrive_key(run_id, 4))
    assert sorted(parent.store.list(LAYOUT.redrive_prefix(run_id))) == [
        LAYOUT.redrive_key(run_id, n) for n in (1, 2, 3)
    ]
    # every redrive registers the run's partitions again (a new day's may be missing)
    kernel = request_["kernel"]
    assert partitions.runs == [(run_id, kernel)] * 3


def test_the_request_digest_ignores_the_client_token_only(request_: dict[str, Any]) -> None:
    one = parse_request({**request_, "client_token": "one"})
    assert request_digest(one) == request_digest(evolve(one, client_token="two"))
    assert request_digest(one) == request_digest(evolve(one, client_token=None))
    assert request_digest(one) != request_digest(evolve(one, seed=one.seed + 1))


def test_injected_clock_and_token_make_the_run_id_and_manifest_deterministic(
    tmp_path: Path, request_: dict[str, Any]
) -> None:
    runs = [Parent(tmp_path / name) for name in ("a", "b")]
    bodies = [accepted(p.submit(request_)) for p in runs]

    assert bodies[0] == bodies[1]
    assert bodies[0].run_id == new_run_id(T0, TOKEN) == RUN_ID
    assert runs[0].snapshot() == runs[1].snapshot()
    assert runs[0].invoker.tasks == runs[1].invoker.tasks
    manifest = read_manifest(runs[0].store, LAYOUT, RUN_ID)
    assert runs[0].store.get(LAYOUT.manifest_key(RUN_ID)) == dumps(manifest).encode()


def test_a_submit_checks_and_versions_the_kernel_against_the_parents_own_catalog(
    tmp_path: Path, request_: dict[str, Any]
) -> None:
    from sweep_core.kernels import catalog

    deployed = catalog()
    without_gbm = {name: spec for name, spec in deployed.items() if name != request_["kernel"]}
    parent = Parent(tmp_path)
    parent.deps = attrs.evolve(parent.deps, catalog=without_gbm)
    error = rejected(parent.submit(request_), 400).error
    assert error.code == "INVALID_REQUEST"
    assert error.message == "the sweep request is invalid"
    assert [p.path for p in error.problems] == ["$.kernel"]
    assert parent.snapshot() == {}
    assert parent.invoker.calls == []

    bumped = {
        **deployed,
        "gbm_european_option": attrs.evolve(deployed["gbm_european_option"], version="7.1"),
    }
    parent.deps = attrs.evolve(parent.deps, catalog=bumped)
    body = accepted(parent.submit(request_))
    manifest = read_manifest(parent.store, LAYOUT, body.run_id)
    assert manifest is not None
    assert manifest.kernel_version == "7.1"


class RacingStore(LocalStore):
    """A folder store where, just before the manifest is written, ``other`` runs to its end:
    the submit it makes is the concurrent one that wins the manifest."""

    other: Any = None

    def put_if_absent(self, key: str, body: bytes) -> bool:
        if self.other is not None and key == LAYOUT.manifest_key(RUN_ID):
            other, self.other = self.other, None
            other()
        return super().put_if_absent(key, body)


def test_a_concurrent_repeat_that_writes_the_manifest_first_is_answered_as_the_same_run(
    tmp_path: Path, request_: dict[str, Any]
) -> None:
    parent = Parent(tmp_path)
    parent.store = RacingStore(tmp_path)
    parent.deps = attrs.evolve(parent.deps, store=parent.store, new_token=Tokens(TOKEN, TOKEN))
    first: list[ParentResponse] = []
    parent.store.other = lambda: first.append(parent.submit(request_))

    second = accepted(parent.submit(request_))

    winner = accepted(first[0])
    assert (winner.run_id, winner.existing) == (RUN_ID, False)
    assert (second.run_id, second.existing) == (RUN_ID, True)
    assert (second.point_count, second.shard_count, second.manifest_key) == (
        80,
        12,
        LAYOUT.manifest_key(RUN_ID),
    )
    assert len(parent.invoker.calls) == 1  # only the winner dispatches
    assert [t.shard for t in parent.invoker.tasks] == list(range(12))


def test_a_run_id_that_is_already_taken_is_a_collision_that_changes_nothing(
    tmp_path: Path, request_: dict[str, Any]
) -> None:
    del request_["client_token"]
    parent = Parent(tmp_path, TOKEN, TOKEN)  # the same entropy twice, at the same instant
    accepted(parent.submit(request_))
    before = parent.snapshot()

    error = rejected(parent.submit({**request_, "seed": 43}), 500).error

    assert error.code == "RUN_ID_COLLISION"
    assert error.message == f"run {RUN_ID} already exists; retry"
    assert parent.snapshot() == before
    assert len(parent.invoker.calls) == 1


def _half_done(parent: Parent, request_: dict[str, Any]) -> str:
    """A run of 3 shards: shard 0 succeeded, 1 never ran, 2 failed once."""
    request_["sharding"] = {"shard_count": 3}
    run_id = accepted(parent.submit(request_)).run_id
    tasks = {t.shard: t for t in parent.invoker.tasks}
    worker = WorkerDeps(parent.store, LAYOUT, parent.clock)
    run_shard(tasks[0], LocalContext.with_timeout(300), worker)
    record_failure(tasks[2], "TIMEOUT", "timed out", worker)
    return run_id


class RedriveRacingStore(LocalStore):
    """A folder store where a concurrent redrive writes the record number this one listed as
    free, between the listing and the write (a real race no listing can show)."""

    concurrent: bytes | None = None

    def put_if_absent(self, key: str, body: bytes) -> bool:
        if self.concurrent is not None and "/redrive-" in key:
            taken, self.concurrent = self.concurrent, None
            assert super().put_if_absent(key, taken)
        return super().put_if_absent(key, body)


def test_a_redrive_whose_record_number_is_taken_meanwhile_writes_the_next_one(
    tmp_path: Path, request_: dict[str, Any]
) -> None:
    parent = Parent(tmp_path)
    store = RedriveRacingStore(tmp_path)
    parent.store, parent.deps = store, attrs.evolve(parent.deps, store=store)
    run_id = _half_done(parent, request_)
    assert redrive_run(run_id, parent.deps) == [1, 2]  # record 1

    store.concurrent = b'{"taken": true}'
    assert redrive_run(run_id, parent.deps) == [1, 2]
    assert store.get(LAYOUT.redrive_key(run_id, 2)) == b'{"taken": true}'
    mine = json.loads(store.get(LAYOUT.redrive_key(run_id, 3)))
    assert (mine["number"], [s["shard"] for s in mine["shards"]]) == (3, [1, 2])
    assert sorted(store.list(LAYOUT.redrive_prefix(run_id))) == [
        LAYOUT.redrive_key(run_id, n) for n in (1, 2, 3)
    ]


def test_a_cancelled_run_is_redriven_only_when_forced(
    tmp_path: Path, request_: dict[str, Any]
) -> None:
    from sweep_core.run_index import RunCancelled, cancel_run

    parent = Parent(tmp_path)
    run_id = _half_done(parent, request_)
    cancel_run(parent.store, LAYOUT, run_id, parent.clock)
    before = parent.snapshot()

    with pytest.raises(RunCancelled) as caught:
        redrive_run(run_id, parent.deps)
    assert str(caught.value) == (
        f"run {run_id} was cancelled; redrive it with --force (force=True) to run its "
        "shards without a success again"
    )
    assert parent.snapshot() == before
    assert len(parent.invoker.calls) == 1  # the submit's

    assert redrive_run(run_id, parent.deps, force=True) == [1, 2]
    assert [t.shard for t in parent.invoker.calls[1]] == [1, 2]


def test_a_redrive_refuses_a_kernel_registered_at_another_version_unless_allowed(
    tmp_path: Path, request_: dict[str, Any]
) -> None:
    from runtime.handlers.parent import KernelChanged
    from sweep_core.kernels import catalog

    deployed = catalog()
    name = request_["kernel"]
    parent = Parent(tmp_path)
    parent.deps = attrs.evolve(parent.deps, catalog=deployed)
    run_id = _half_done(parent, request_)
    version = deployed[name].version
    before = parent.snapshot()

    parent.deps = attrs.evolve(
        parent.deps, catalog={**deployed, name: attrs.evolve(deployed[name], version="99.0")}
    )
    with pytest.raises(KernelChanged) as changed:
        redrive_run(run_id, parent.deps)
    assert changed.value.code == "KERNEL_CHANGED"
    assert changed.value.message == (
        f"run {run_id} was made by {name} version {version!r}, and version '99.0' is "
        "registered now: a redrive would mix two versions of the model in one run. Nothing was "
        "dispatched; to redrive anyway (each outcome record names the version that made it) "
        "allow the kernel change (sweep redrive --allow-kernel-change)"
    )
    assert str(changed.value) == changed.value.message

    others = {k: v for k, v in deployed.items() if k != name} | {"zeta": deployed[name]}
    parent.deps = attrs.evolve(parent.deps, catalog=others)
    with pytest.raises(KernelChanged) as gone:
        redrive_run(run_id, parent.deps, allow_kernel_change=True)
    assert gone.value.code == "KERNEL_UNAVAILABLE"
    assert gone.value.message == (
        f"run {run_id} evaluates kernel {name!r}, which is not registered here "
        f"(registered: {', '.join(sorted(others))}); nothing was dispatched"
    )
    parent.deps = attrs.evolve(parent.deps, catalog={})
    with pytest.raises(KernelChanged, match=r"\(registered: none\)"):
        redrive_run(run_id, parent.deps)
    assert parent.snapshot() == before
    assert len(parent.invoker.calls) == 1

    parent.deps = attrs.evolve(
        parent.deps, catalog={**deployed, name: attrs.evolve(deployed[name], version="99.0")}
    )
    assert redrive_run(run_id, parent.deps, allow_kernel_change=True) == [1, 2]
    assert [t.shard for t in parent.invoker.calls[1]] == [1, 2]
    parent.deps = attrs.evolve(parent.deps, catalog=deployed)
    assert redrive_run(run_id, parent.deps) == [1, 2]  # the run's own version again


def test_a_dispatcher_whose_run_is_gone_names_it_and_dispatches_nothing(tmp_path: Path) -> None:
    from runtime.handlers.parent import handle_dispatch

    parent = Parent(tmp_path)
    with pytest.raises(NotFound) as caught:
        handle_dispatch(DispatchSlice(RUN_ID, (0, 1)), parent.deps)
    assert caught.value.args == (f"no run {RUN_ID}",)
    assert parent.invoker.calls == []


def test_a_request_whose_largest_task_is_exactly_the_limit_is_accepted(
    tmp_path: Path, request_: dict[str, Any]
) -> None:
    from sweep_core.planning import largest_task_bytes

    largest = largest_task_bytes(parse_request(request_))
    parent = Parent(tmp_path)
    parent.deps = attrs.evolve(parent.deps, max_task_bytes=largest)
    accepted(parent.submit(request_))
    parent = Parent(tmp_path / "one-byte-less")
    parent.deps = attrs.evolve(parent.deps, max_task_bytes=largest - 1)
    assert rejected(parent.submit(request_), 400).error.code == "REQUEST_TOO_LARGE"
