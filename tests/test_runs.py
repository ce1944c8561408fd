"""Where a run stands, read side: a success beats earlier failures, a redrive awaits one newer
record per shard, an attempt seen twice counts once. Expected counts are written out here."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import attrs
import pytest

from runtime.adapters.local_store import LocalStore
from sweep_core.contract import RedrivenShard, RedriveRecord, RunManifest, ShardOutcome
from sweep_core.convert import dumps
from sweep_core.layout import Layout
from sweep_core.records import outcome_parquet
from sweep_core.runs import (
    CommitError,
    ShardRecords,
    failed_shards,
    find_manifest,
    run_status,
    shard_records,
    tally,
)
from sweep_core.validation import parse_request

RUN = "20261123T152100Z-1a2b3c4d"


def records(*entries: tuple[str, int, int | None]) -> ShardRecords:
    return ShardRecords.from_entries(entries)


def redrive(number: int, **failed_attempts: int) -> RedriveRecord:
    shards = tuple(
        RedrivenShard(shard=int(name.removeprefix("s")), failed_attempts=count)
        for name, count in failed_attempts.items()
    )
    return RedriveRecord(RUN, number, "2026-11-23T15:30:00+00:00", shards)


def test_a_success_beats_earlier_failures() -> None:
    seen = records(("failure", 3, 1), ("failure", 3, 2), ("success", 3, None), ("failure", 4, 1))
    assert seen.succeeded == frozenset({3})
    assert seen.failed_attempts == Counter({3: 2, 4: 1})
    status = tally(RUN, total=5, points_total=50, records=seen)
    assert (status.succeeded, status.failed, status.missing) == (1, 1, 3)
    assert status.failed_attempts == 3
    assert status.failed_shards == frozenset({4})
    assert not status.settled
    assert status.as_dict() == {
        "run_id": RUN,
        "points": 50,
        "shards": 5,
        "succeeded": 1,
        "failed": 1,
        "missing": 3,
        "failed_attempts": 3,
        "cancelled": 0,
        "lost": 0,
    }


def test_a_success_after_a_failure_in_any_order_is_a_success() -> None:
    seen = records(("success", 0, None), ("failure", 0, 1))
    assert failed_shards(seen) == set()
    assert tally(RUN, 1, 10, seen).settled


def test_an_attempt_seen_twice_counts_once() -> None:
    # A compaction copies records before deleting the shard objects: both can be listed.
    seen = records(("failure", 1, 1), ("failure", 1, 1), ("failure", 1, 2), ("success", 2, None))
    assert seen.failed_attempts == Counter({1: 2})
    status = tally(RUN, 2, 20, seen)
    assert (status.succeeded, status.failed, status.failed_attempts) == (1, 1, 2)
    assert status.settled


def test_a_redriven_shard_is_missing_until_it_has_a_newer_record() -> None:
    seen = records(("failure", 0, 1), ("failure", 1, 1), ("failure", 2, 1), ("failure", 2, 2))
    drives = [redrive(1, s0=1, s2=1)]
    # shard 0: redriven with one failure, none newer yet -> awaited; shard 1: never redriven;
    # shard 2: redriven at one failure and has failed again since -> failed for good.
    assert failed_shards(seen, drives) == {1, 2}
    status = tally(RUN, 3, 30, seen, drives)
    assert (status.succeeded, status.failed, status.missing) == (0, 2, 1)
    assert status.failed_shards == frozenset({1, 2})
    assert status.failed_attempts == 4


def test_the_latest_redrive_of_a_shard_decides() -> None:
    seen = records(("failure", 0, 1), ("failure", 0, 2))
    assert failed_shards(seen, [redrive(1, s0=1)]) == {0}
    assert failed_shards(seen, [redrive(1, s0=1), redrive(2, s0=2)]) == set()
    assert failed_shards(seen, [redrive(2, s0=2), redrive(1, s0=1)]) == set()


def test_a_redrive_listing_no_failures_awaits_nothing() -> None:
    # A shard redriven before it had any failure record (an older redrive) still counts as
    # failed once it has one: 1 > 0.
    seen = records(("failure", 5, 1))
    assert failed_shards(seen, [redrive(1, s5=0)]) == {5}
    assert failed_shards(seen, [redrive(1, s6=3)]) == {5}


def test_shard_records_read_success_and_failure_keys_of_the_run(tmp_path: Path) -> None:
    store, layout = LocalStore(tmp_path), Layout("results")
    for key in (
        layout.failure_key(RUN, 7, 1),
        layout.failure_key(RUN, 7, 2),
        layout.success_key(RUN, 7),
        layout.failure_key(RUN, 9, 1),
        layout.success_key(RUN, 12),
    ):
        assert store.put_if_absent(key, b"")
    seen = shard_records(store, layout, RUN)
    assert seen.succeeded == frozenset({7, 12})
    assert seen.failed_attempts == Counter({7: 2, 9: 1})


def test_a_stray_object_among_the_outcomes_is_an_error_naming_it(tmp_path: Path) -> None:
    store, layout = LocalStore(tmp_path), Layout("results")
    stray = f"{layout.outcomes_prefix(RUN)}status=success/notes.txt"
    store.put_if_absent(stray, b"")
    with pytest.raises(ValueError, match=r"notes\.txt"):
        shard_records(store, layout, RUN)


def test_find_manifest_names_the_run_and_where_it_looked(tmp_path: Path) -> None:
    store, layout = LocalStore(tmp_path), Layout("results")
    with pytest.raises(LookupError, match=f"^no run {RUN} in the data folder$"):
        find_manifest(store, layout, RUN, "the data folder")
    with pytest.raises(LookupError, match=r"^'nope' is not a run id \(like"):
        find_manifest(store, layout, "nope", "the data folder")


def _outcome(shard: int, attempt: int | None, error_code: str | None = None) -> ShardOutcome:
    return ShardOutcome(
        run_id=RUN,
        shard=shard,
        attempt=attempt or 1,
        status="success" if error_code is None else "failure",
        start=shard * 10,
        end=shard * 10 + 10,
        point_count=10,
        started_at="2026-11-23T15:21:01+00:00",
        finished_at="2026-11-23T15:21:02+00:00",
        duration_ms=1000.0,
        worker_version="0.1.0",
        error_code=error_code,
        error_message=None if error_code is None else f"{error_code} at point 0",
    )


def _put(
    store: LocalStore, layout: Layout, shard: int, attempt: int | None, code: str | None
) -> None:
    key = (
        layout.success_key(RUN, shard)
        if code is None or attempt is None
        else layout.failure_key(RUN, shard, attempt)
    )
    assert store.put_if_absent(key, outcome_parquet(_outcome(shard, attempt, code)))


@pytest.fixture
def cancelled_run(
    tmp_path: Path, gbm_request: dict[str, Any]
) -> tuple[LocalStore, Layout, RunManifest]:
    """5 shards: 0 succeeded, 1 failed, 2 and 4 failed last because the run was cancelled (2
    after a timeout), 3 missing."""
    store, layout = LocalStore(tmp_path), Layout("results")
    manifest = RunManifest(
        RUN, "2026-11-23", "2026-11-23T15:21:00+00:00", 50, 5, parse_request(gbm_request), "0.1.0"
    )
    assert store.put_if_absent(layout.manifest_key(RUN), dumps(manifest).encode())
    _put(store, layout, 0, None, None)
    _put(store, layout, 1, 1, "NON_FINITE_RESULT")
    _put(store, layout, 2, 1, "TIMEOUT")
    _put(store, layout, 2, 2, "CANCELLED")
    _put(store, layout, 4, 1, "CANCELLED")
    assert store.put_if_absent(layout.cancel_key(RUN, 0), b"{}")
    return store, layout, manifest


def test_run_status_counts_shards_a_cancel_stopped(
    cancelled_run: tuple[LocalStore, Layout, RunManifest],
) -> None:
    store, layout, manifest = cancelled_run
    for runner_alive in (None, lambda run_id: True):
        status = run_status(store, layout, manifest, runner_alive)
        assert (status.run_id, status.total, status.points_total) == (RUN, 5, 50)
        assert (status.succeeded, status.failed, status.missing) == (1, 3, 1)
        assert status.failed_shards == frozenset({1, 2, 4})
        assert status.failed_attempts == 4
        assert (status.cancelled, status.lost, status.stalled) == (2, 0, False)


def test_a_cancel_before_a_redrive_no_longer_counts(
    cancelled_run: tuple[LocalStore, Layout, RunManifest],
) -> None:
    store, layout, manifest = cancelled_run
    record = RedriveRecord(RUN, 1, "2026-11-23T15:30:00+00:00", (RedrivenShard(2, 2),))
    assert store.put_if_absent(layout.redrive_key(RUN, 1), dumps(record).encode())
    status = run_status(store, layout, manifest)
    assert (status.succeeded, status.failed, status.missing, status.cancelled) == (1, 2, 2, 0)
    # A cancel of the redrive's generation counts the shards it stopped again.
    _put(store, layout, 2, 3, "CANCELLED")
    assert store.put_if_absent(layout.cancel_key(RUN, 1), b"{}")
    status = run_status(store, layout, manifest)
    assert (status.succeeded, status.failed, status.missing, status.cancelled) == (1, 3, 1, 2)


def test_missing_shards_of_a_run_whose_runners_are_gone_are_lost(
    cancelled_run: tuple[LocalStore, Layout, RunManifest],
) -> None:
    store, layout, manifest = cancelled_run
    asked: list[str] = []

    def gone(run_id: str) -> bool:
        asked.append(run_id)
        return False

    status = run_status(store, layout, manifest, gone)
    assert asked == [RUN]
    assert (status.missing, status.lost, status.stalled) == (1, 1, True)


def test_a_shard_written_just_before_its_runner_went_is_not_lost(
    cancelled_run: tuple[LocalStore, Layout, RunManifest],
) -> None:
    store, layout, manifest = cancelled_run

    def finished_then_gone(run_id: str) -> bool:
        _put(store, layout, 3, None, None)  # the runner's last write, then it exits
        return False

    status = run_status(store, layout, manifest, finished_then_gone)
    assert (status.succeeded, status.missing, status.lost, status.stalled) == (2, 0, 0, False)
    assert status.settled


def test_a_corrupt_redrive_record_is_an_error_naming_the_run_and_its_key(
    cancelled_run: tuple[LocalStore, Layout, RunManifest],
) -> None:
    store, layout, manifest = cancelled_run
    key = layout.redrive_key(RUN, 1)
    assert store.put_if_absent(key, b'{"run_id": "x"}')
    with pytest.raises(CommitError, match=f"^run {RUN}: {key}: corrupt record") as caught:
        run_status(store, layout, manifest)
    assert [(p.run_id, p.key) for p in caught.value.problems] == [(RUN, key)]


def test_an_unreadable_compaction_record_is_an_error_naming_the_run_and_its_key(
    cancelled_run: tuple[LocalStore, Layout, RunManifest],
) -> None:
    store, layout, manifest = cancelled_run
    key = layout.compaction_key(RUN, 1)
    assert store.put_if_absent(key, b'{"partitions": [{}]}')
    with pytest.raises(CommitError, match=f"^run {RUN}: {key}: unreadable compaction record"):
        run_status(store, layout, manifest)


# --- what a reader tells the user about damaged commits --------------------------------------


def test_a_commit_error_names_the_first_problem_and_counts_the_rest() -> None:
    from sweep_core.runs import CommitProblem

    first = CommitProblem(RUN, 3, "results/points/x/shard=00003.parquet", "missing")
    other = CommitProblem(RUN, None, "results/runs/x/compaction-0001.json", "unreadable")
    assert str(first) == f"run {RUN} shard 3: results/points/x/shard=00003.parquet: missing"
    assert str(other) == f"run {RUN}: results/runs/x/compaction-0001.json: unreadable"
    assert str(CommitError([first])) == str(first)
    assert str(CommitError([first, other])) == (f"{first} (and 1 more; `sweep verify` lists them)")
    assert str(CommitError([first, other, other])) == (
        f"{first} (and 2 more; `sweep verify` lists them)"
    )
    assert CommitError([first, other]).problems == [first, other]
    # what `sweep verify --json` prints for each
    assert first.as_dict() == {
        "run_id": RUN, "shard": 3, "object": "results/points/x/shard=00003.parquet",
        "reason": "missing",
    }  # fmt: skip


def test_a_success_record_reads_back_with_its_commit_and_its_own_versions() -> None:
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    from sweep_core.records import commit_entries, read_outcome

    points = b"the points object"
    success = attrs.evolve(
        _outcome(4, 2),
        points_object="shard=00004-attempt=0002.parquet",
        points_rows=10,
        points_bytes=len(points),
        points_sha256=hashlib.sha256(points).hexdigest(),
        schema_version="0.9",
        kernel_version="3.1",
    )
    body = outcome_parquet(success)
    assert commit_entries(body) == [
        (4, "shard=00004-attempt=0002.parquet", 10, len(points), hashlib.sha256(points).hexdigest())
    ]
    assert read_outcome(body, RUN, "success") == success

    # a success written before commits carried their object: read as unchecked, not refused
    table = pq.read_table(pa.BufferReader(body))
    old = table.drop_columns(["points_object", "points_rows", "points_bytes", "points_sha256"])
    sink = pa.BufferOutputStream()
    pq.write_table(old, sink)
    assert commit_entries(sink.getvalue().to_pybytes()) == [(4, None, None, None, None)]


def _points(indices: list[int], index_type: Any = None) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"point_index": pa.array(indices, index_type or pa.int64())})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def test_a_points_commit_says_exactly_what_is_wrong_with_an_object() -> None:
    import hashlib

    from sweep_core.runs import CommitProblem, FileSum, PointsCommit

    key = "results/points/k/run_date=2026-11-23/run_id=x/shard=00003-attempt=0002.parquet"
    body = _points([30, 31, 32])
    commit = PointsCommit(key, 3, FileSum(3, len(body), hashlib.sha256(body).hexdigest()))
    assert commit.check(RUN, body) is None
    assert commit.check(RUN, None) == CommitProblem(RUN, 3, key, "missing")
    assert commit.check(RUN, body[:-1]) == CommitProblem(
        RUN,
        3,
        key,
        f"{len(body) - 1} bytes where its commit says {len(body)} (truncated or replaced)",
    )
    same_size = _points([30, 31, 33])
    assert len(same_size) == len(body)
    assert commit.check(RUN, same_size) == CommitProblem(
        RUN, 3, key, "content differs from its commit (replaced)"
    )
    assert PointsCommit(key, 3).check(RUN, same_size) is None  # a record before sums: unchecked


def test_committed_points_are_read_as_one_table_in_the_schema_or_refused_naming_each() -> None:
    import pyarrow as pa

    from sweep_core.runs import CommitProblem, FileSum, PointsCommit, points_table_of

    schema = pa.schema([pa.field("point_index", pa.int64())])
    a, b = "results/points/a.parquet", "results/points/b.parquet"
    # an object written with another integer width is read in the table's schema
    table = points_table_of(
        [_points([5, 6]), _points([1, 2], pa.int32())], schema, RUN,
        [PointsCommit(a, 0), PointsCommit(b, 1)],
    )  # fmt: skip
    assert table.schema.equals(schema)
    assert table["point_index"].to_pylist() == [1, 2, 5, 6]
    assert points_table_of([], schema, RUN, []).equals(schema.empty_table())

    with pytest.raises(CommitError) as caught:
        points_table_of(
            [b"not parquet at all", _points([1, 2])], schema, RUN,
            [PointsCommit(a, 0), PointsCommit(b, 1, FileSum(3, 0, ""))],
        )  # fmt: skip
    garbage, short = caught.value.problems
    assert (garbage.run_id, garbage.shard, garbage.key) == (RUN, 0, a)
    assert garbage.reason.startswith("not Parquet: ")
    assert short == CommitProblem(RUN, 1, b, "2 rows where its commit says 3")


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"run_id": 5}', "$.run_date: required field missing"),
        (b"not json", "$: is not valid JSON (Expecting value: line 1 column 1 (char 0))"),
        (b"[]", "$: must be a JSON object"),
    ],
)
def test_a_corrupt_manifest_is_named_with_its_first_problem(
    tmp_path: Path, body: bytes, why: str
) -> None:
    from sweep_core.runs import CommitProblem, read_manifest

    store, layout = LocalStore(tmp_path), Layout("results")
    key = layout.manifest_key(RUN)
    assert store.put_if_absent(key, body)
    with pytest.raises(CommitError) as caught:
        read_manifest(store, layout, RUN)
    assert caught.value.problems == [CommitProblem(RUN, None, key, f"corrupt record ({why})")]


def test_verify_lists_every_damaged_object_and_only_those(tmp_path: Path) -> None:
    import hashlib

    import pyarrow as pa

    from sweep_core.runs import CommitProblem, FileSum, PointsCommit, verify_points

    store = LocalStore(tmp_path)
    schema = pa.schema([pa.field("point_index", pa.int64())])

    def commit(name: str, shard: int, body: bytes | None, sums: bool = True) -> PointsCommit:
        key = f"results/points/{name}.parquet"
        if body is not None:
            assert store.put_if_absent(key, body)
        if not sums or body is None:
            return PointsCommit(key, shard, FileSum(1, 9, "0" * 64) if body is None else None)
        return PointsCommit(key, shard, FileSum(1, len(body), hashlib.sha256(body).hexdigest()))

    good = _points([0])
    commits = [
        commit("a", 0, good),
        commit("b", 1, None),  # missing
        commit("c", 2, _points([2])),
        commit("d", 3, b"garbage from before commits carried sums", sums=False),
        commit("e", 4, _points([4, 5]), sums=False),  # old record: rows not checkable
        commit("f", 5, _points([6])),
    ]
    # replaced after its commit, by more rows: reported once, by its size
    store.delete(commits[5].key)
    assert store.put_if_absent(commits[5].key, _points([6, 7]))

    problems = verify_points(store, schema, RUN, commits)

    assert [(p.run_id, p.shard, p.key) for p in problems] == [
        (RUN, 1, commits[1].key),
        (RUN, 5, commits[5].key),
        (RUN, 3, commits[3].key),
    ]
    assert problems[0] == CommitProblem(RUN, 1, commits[1].key, "missing")
    assert problems[1].reason.endswith("(truncated or replaced)")
    assert problems[2].reason.startswith("not Parquet: ")
    assert verify_points(store, schema, RUN, commits[:1] + commits[2:3]) == []


def test_a_compaction_record_written_before_checksums_reads_its_files_unchecked(
    tmp_path: Path,
) -> None:
    import json

    from sweep_core.runs import FileSum, read_compactions

    store, layout = LocalStore(tmp_path), Layout("results")
    part = "results/points/k/run_date=2026-11-23/run_id=x/"
    old = {"partition": part, "files": [part + "compacted-0001.parquet"], "replaced": ["a"]}
    new = {
        **old,
        "files": [part + "compacted-0002.parquet"],
        "checksums": {part + "compacted-0002.parquet": {"rows": 3, "size": 10, "sha256": "ab"}},
    }
    for number, record in ((1, old), (2, new)):
        body = json.dumps({"run_id": RUN, "partitions": [record]}).encode()
        assert store.put_if_absent(layout.compaction_key(RUN, number), body)
    first, second = read_compactions(store, layout, RUN)
    assert first.files == {part + "compacted-0001.parquet": None}
    assert second.files == {part + "compacted-0002.parquet": FileSum(3, 10, "ab")}
    assert first.key == layout.compaction_key(RUN, 1)
