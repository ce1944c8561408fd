"""A success record is the commit of its shard's points: readers read committed objects only,
a compaction is published by its record, and a damaged committed object is reported (naming
run, shard and object), never answered. Faults are injected with real kills (SIGKILL of a
forked process at a chosen store call), not with sleeps."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import GRID_120, HeldRun
from moto import mock_aws

from runtime.adapters.local_store import LocalContext, LocalStore
from runtime.adapters.s3 import S3Store
from runtime.handlers.parent import redrive_run
from runtime.handlers.worker import WorkerDeps, record_failure, run_shard
from sweep_core.contract import ShardTask
from sweep_core.layout import Layout
from sweep_core.named_queries import QUERY_NAMES
from sweep_sdk.cli import main as cli_main
from sweep_sdk.client import Run
from sweep_sdk.compact import compact_run

SHARDS = 12
POINTS = 120  # 10 points per shard
KILLED = 4

SPEC = GRID_120
FORK = multiprocessing.get_context("fork")


class KilledAt:
    """A store that SIGKILLs its own process when a write matches ``when`` (the n-th such
    write, counting from 1): the process dies exactly there, as under kill -9 or the OOM killer.
    """

    def __init__(self, inner: Any, when: Callable[[str], bool], nth: int = 1) -> None:
        self.inner, self.when, self.nth, self.seen = inner, when, nth, 0

    def _maybe_die(self, key: str) -> None:
        if self.when(key):
            self.seen += 1
            if self.seen == self.nth:
                os.kill(os.getpid(), signal.SIGKILL)

    def put_if_absent(self, key: str, body: bytes) -> bool:
        self._maybe_die(key)
        return bool(self.inner.put_if_absent(key, body))

    def delete(self, key: str) -> None:
        self._maybe_die(key)
        self.inner.delete(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def killed(fn: Callable[[], object]) -> None:
    """Run ``fn`` in a forked process that must end by SIGKILL."""
    process = FORK.Process(target=fn)
    process.start()
    process.join()
    assert process.exitcode == -signal.SIGKILL


class Fixture(HeldRun):
    def take(self) -> list[ShardTask]:
        tasks, self.invoker.tasks = self.invoker.tasks, []
        return tasks

    def run_task(self, task: ShardTask, store: Any = None) -> None:
        deps = self.worker if store is None else WorkerDeps(store, self.layout, self.clock)
        run_shard(task, LocalContext.with_timeout(60), deps)

    def kill_between_points_and_success(self, task: ShardTask) -> None:
        """The worker dies after its points are written and before its success record."""
        store = KilledAt(self.store, lambda key: "/status=success/" in key)
        killed(lambda: self.run_task(task, store))

    def points_key(self, shard: int) -> str:
        return self.layout.points_key(SPEC["kernel"], self.run_id, shard)


def answers(run: Run) -> dict[str, Any]:
    """What a user can ask of a run, in comparable form."""
    found: dict[str, Any] = {
        "status": run.status().as_dict(),
        "results": run.results().to_pylist(),
        "outcomes": run.outcomes().to_pylist(),
        "points_query": run.query(
            "SELECT count(*) AS n, count(DISTINCT point_index) AS d, sum(point_index) AS s "
            "FROM points_gbm_european_option WHERE run_id = ?"
        ).to_pylist(),
    }
    for name in QUERY_NAMES:
        rows = run.named(name).to_pylist()
        found[name] = [{k: round(v, 9) if isinstance(v, float) else v for k, v in r.items()}
                       for r in rows]  # fmt: skip
    return found


def point_indexes(run: Run) -> list[int]:
    return [int(i) for i in run.results()["point_index"].to_pylist()]


# --- a worker killed between its points and its success --------------------------------------


def test_points_of_a_worker_killed_before_its_success_are_never_read(tmp_path: Path) -> None:
    fx = Fixture(tmp_path)
    tasks = fx.take()
    fx.kill_between_points_and_success(tasks[KILLED])
    assert fx.store.exists(fx.points_key(KILLED))  # the points object is there, uncommitted
    for task in tasks:
        if task.shard != KILLED:
            fx.run_task(task)
    # the local pool records the death as a failure, which settles the run
    record_failure(tasks[KILLED], "WORKER_DIED", "worker was ended by SIGKILL", fx.worker)
    expected = [i for i in range(POINTS) if i // 10 != KILLED]

    status = fx.run.status()
    assert (status.succeeded, status.failed, status.missing) == (SHARDS - 1, 1, 0)
    assert point_indexes(fx.run) == expected
    [count] = fx.run.query(
        "SELECT count(*) AS n FROM points_gbm_european_option WHERE run_id = ?"
    ).to_pylist()
    assert count["n"] == len(expected)

    compact_run(fx.store, fx.layout, fx.run_id)  # must not copy the uncommitted points
    assert point_indexes(fx.run) == expected

    assert redrive_run(fx.run_id, fx.parent) == [KILLED]
    for task in fx.take():
        fx.run_task(task)
    assert point_indexes(fx.run) == list(range(POINTS))  # each point once: 120 rows, not 130
    [count] = fx.run.query(
        "SELECT count(*) AS n, count(DISTINCT point_index) AS d "
        "FROM points_gbm_european_option WHERE run_id = ?"
    ).to_pylist()
    assert count == {"n": POINTS, "d": POINTS}
    assert fx.run.verify() == []


def test_a_truncated_points_object_left_by_a_dead_attempt_is_neither_read_nor_kept(
    tmp_path: Path,
) -> None:
    fx = Fixture(tmp_path)
    tasks = fx.take()
    # a disk that filled up: the object was published cut short, and no success followed
    fx.store.put_if_absent(fx.points_key(KILLED), b"PAR1" + b"\0" * 40)
    assert point_indexes(fx.run) == []  # nothing committed yet: nothing read, no traceback
    for task in tasks:
        fx.run_task(task)
    assert point_indexes(fx.run) == list(range(POINTS))
    assert fx.run.verify() == []
    assert fx.run.status().succeeded == SHARDS


# --- a damaged committed object ------------------------------------------------------------


@pytest.fixture
def finished(tmp_path: Path) -> Fixture:
    fx = Fixture(tmp_path / "data")
    for task in fx.take():
        fx.run_task(task)
    return fx


def replace_object(store: LocalStore, key: str, body: bytes) -> None:
    store.delete(key)
    assert store.put_if_absent(key, body)


def test_a_points_object_replaced_by_another_shards_is_reported_not_answered(
    finished: Fixture, capsys: pytest.CaptureFixture[str]
) -> None:
    from sweep_core.runs import CommitError

    fx = finished
    replace_object(fx.store, fx.points_key(3), fx.store.get(fx.points_key(5)))
    with pytest.raises(CommitError) as caught:
        fx.run.results()
    message = str(caught.value)
    assert f"run {fx.run_id} shard 3" in message
    assert fx.points_key(3) in message
    [problem] = fx.run.verify()
    assert (problem.run_id, problem.shard, problem.key) == (fx.run_id, 3, fx.points_key(3))

    out = tmp = fx.root.parent / "out.csv"
    code = cli_main(["results", fx.run_id, "--out", str(out), "--data-dir", str(fx.root)])
    assert code == 2
    assert not tmp.exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "shard 3" in err
    assert fx.points_key(3) in err
    assert "Traceback" not in err

    assert cli_main(["verify", fx.run_id, "--data-dir", str(fx.root)]) == 1
    assert fx.points_key(3) in capsys.readouterr().out


def test_a_truncated_committed_object_is_reported_by_every_reader(
    finished: Fixture, capsys: pytest.CaptureFixture[str]
) -> None:
    from sweep_core.runs import CommitError

    fx = finished
    body = fx.store.get(fx.points_key(7))
    replace_object(fx.store, fx.points_key(7), body[: len(body) // 2])
    with pytest.raises(CommitError, match="shard 7"):
        fx.run.results()
    with pytest.raises(CommitError, match="truncated"):
        fx.run.query("SELECT count(*) FROM points_gbm_european_option WHERE run_id = ?")
    sql = "SELECT sum(price) FROM points_gbm_european_option WHERE run_id = ?"
    assert cli_main(["query", fx.run_id, sql, "--data-dir", str(fx.root)]) == 2
    assert "shard 7" in capsys.readouterr().err
    fx.store.delete(fx.points_key(7))
    [problem] = fx.run.verify()
    assert (problem.shard, problem.reason) == (7, "missing")


def test_redrive_repair_reruns_the_shards_verify_names(
    finished: Fixture, capsys: pytest.CaptureFixture[str]
) -> None:
    fx = finished
    replace_object(fx.store, fx.points_key(3), fx.store.get(fx.points_key(5)))
    body = fx.store.get(fx.points_key(8))
    replace_object(fx.store, fx.points_key(8), body[:-10])
    args = ["redrive", fx.run_id, "--repair", "--wait", "--json", "--data-dir", str(fx.root)]
    assert cli_main(args) == 0
    assert point_indexes(fx.run) == list(range(POINTS))
    assert fx.run.verify() == []
    assert fx.run.status().succeeded == SHARDS


# --- an interrupted compaction -------------------------------------------------------------


def settled_with_failures(root: Path) -> Fixture:
    """12 shards: 10 succeeded (one after its worker died between points and success, one
    after a failed attempt), 2 failed for good; the dead attempt's points are still there."""
    fx = Fixture(root)
    for task in fx.take():
        if task.shard in (6, 9):
            record_failure(task, "TRANSIENT_ERROR", "SlowDown", fx.worker)
            continue
        if task.shard == 2:
            record_failure(task, "TRANSIENT_ERROR", "SlowDown", fx.worker)
        if task.shard == KILLED:
            fx.kill_between_points_and_success(task)
        fx.run_task(task)
    return fx


def _mutations(key: str) -> bool:
    return True  # every put and delete compaction makes


def _count_mutations(root: Path) -> int:
    fx = settled_with_failures(root)
    counter = KilledAt(fx.store, _mutations, nth=0)
    compact_run(counter, fx.layout, fx.run_id)
    return counter.seen


@pytest.fixture(scope="module")
def compaction_steps(tmp_path_factory: pytest.TempPathFactory) -> int:
    return _count_mutations(tmp_path_factory.mktemp("count"))


MOMENTS = ["first file", "all files, no record", "record, nothing deleted", "half deleted", "last"]


def _moment(name: str, steps: int) -> int:
    # killed before the n-th write: 1-3 the compacted points, success and failure files,
    # 4 the compaction record, 5 and on the deletes of the objects it replaced
    return {
        "first file": 2,
        "all files, no record": 4,
        "record, nothing deleted": 5,
        "half deleted": 5 + (steps - 4) // 2,
        "last": steps,
    }[name]


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_compaction_killed_at_any_moment_changes_no_answer(
    tmp_path: Path, moment: str, compaction_steps: int
) -> None:
    fx = settled_with_failures(tmp_path)
    before = answers(fx.run)
    assert len(before["results"]) == 100

    nth = _moment(moment, compaction_steps)
    store = KilledAt(fx.store, _mutations, nth=nth)
    killed(lambda: compact_run(store, fx.layout, fx.run_id))
    assert answers(fx.run) == before  # while interrupted: old objects or new ones, not both

    compact_run(fx.store, fx.layout, fx.run_id)  # resumed
    assert answers(fx.run) == before
    assert all(Layout.is_compacted(k) for k in fx.store.list("results/") if "/runs/" not in k)
    assert fx.run.verify() == []


# --- the same rules on S3 ------------------------------------------------------------------

BUCKET = "sweep-commits-test"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        client.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        yield client


class Interrupted(BaseException):
    """The worker stops dead (nothing of it runs after this, as under a kill)."""


class StopAtSuccess:
    def __init__(self, inner: S3Store) -> None:
        self.inner = inner

    def put_if_absent(self, key: str, body: bytes) -> bool:
        if "/status=success/" in key:
            raise Interrupted(key)
        return self.inner.put_if_absent(key, body)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_on_s3_readers_see_committed_objects_only_and_report_damage(
    s3: Any, tmp_path: Path
) -> None:
    from sweep_core.runs import CommitError
    from sweep_sdk.cloud import RemoteConfig, RemoteTarget

    store = S3Store(s3, BUCKET)
    fx = Fixture(tmp_path, store)
    tasks = fx.take()
    with pytest.raises(Interrupted):
        fx.run_task(tasks[KILLED], StopAtSuccess(store))
    for task in tasks:
        if task.shard != KILLED:
            fx.run_task(task)
    config = RemoteConfig("https://api.invalid", "eu-west-1", BUCKET)
    target = RemoteTarget.from_config(config)
    target._store = store
    run = Run(fx.run_id, target)
    status = run.status()
    assert (status.succeeded, status.missing) == (SHARDS - 1, 1)
    assert point_indexes(run) == [i for i in range(POINTS) if i // 10 != KILLED]

    fx.run_task(tasks[KILLED])  # the retry commits the same bytes
    assert point_indexes(run) == list(range(POINTS))
    assert run.verify() == []

    key = fx.points_key(2)
    s3.put_object(Bucket=BUCKET, Key=key, Body=store.get(fx.points_key(3)))  # overwritten
    with pytest.raises(CommitError, match=f"run {fx.run_id} shard 2: {key}"):
        run.results()
    [problem] = run.verify()
    assert (problem.shard, problem.key) == (2, key)
