"""`sweep compact`: a settled run rewritten into a few files, with nothing lost and every answer
(status, redrive, results, outcomes, the shipped queries) the same before and after."""

from __future__ import annotations

import hashlib
import io
import json
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import GRID_120, HeldRun

from runtime.adapters.local_store import LocalContext, LocalStore
from runtime.handlers.parent import redrive_run
from runtime.handlers.worker import record_failure, run_shard
from sweep_core.layout import Layout
from sweep_core.named_queries import QUERY_NAMES
from sweep_sdk import compact as compact_module
from sweep_sdk.cli import main as cli_main
from sweep_sdk.client import Run
from sweep_sdk.compact import CompactionError, compact_run, compaction_records

SHARDS = 12
FAILED_THEN_SUCCEEDED = (2, 5)  # two failed attempts, then a success
FAILED = (7, 9)  # failed attempts only (7 once, 9 twice)

SPEC = GRID_120


class Fixture(HeldRun):
    def run_held(self, fail: dict[int, int] | None = None, succeed: bool = True) -> None:
        """Run every held task: ``fail[shard]`` failed attempts first, then (maybe) a success."""
        tasks, self.invoker.tasks = self.invoker.tasks, []
        for task in tasks:
            for _ in range((fail or {}).get(task.shard, 0)):
                record_failure(task, "TRANSIENT_ERROR", "SlowDown", self.worker)
            if succeed or task.shard not in FAILED:
                run_shard(task, LocalContext.with_timeout(60), self.worker)

    def objects(self) -> list[str]:
        return [k for k in self.store.list("results/") if "/runs/" not in k]


def _answers(run: Run) -> dict[str, Any]:
    """Everything a user can ask of a run, in comparable form."""
    answers: dict[str, Any] = {
        "status": run.status().as_dict(),
        "results": run.results(),
        "outcomes": run.outcomes().to_pylist(),
    }
    for name in QUERY_NAMES:
        answers[name] = run.named(name).to_pylist()
    answers["points_query"] = run.query(
        "SELECT count(*) AS n, sum(point_index) AS s, min(price) AS lo, max(stderr) AS hi "
        "FROM points_gbm_european_option WHERE run_id = ?"
    ).to_pylist()
    return answers


def _assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert after["status"] == before["status"]
    assert after["results"].equals(before["results"])
    assert after["outcomes"] == before["outcomes"]
    for name in (*QUERY_NAMES, "points_query"):
        assert len(after[name]) == len(before[name]), name
        for new, old in zip(after[name], before[name], strict=True):
            assert new.keys() == old.keys(), name
            for column, value in old.items():
                assert same_value(new[column], value), (name, column, new[column], value)


def same_value(new: Any, old: Any) -> bool:
    # A sum of doubles depends on the order DuckDB's threads add the rows in, with or without
    # compaction (78.012 vs 78.01199999999999): equal to the last few bits.
    if isinstance(old, float) and isinstance(new, float):
        return math.isclose(new, old, rel_tol=1e-12)
    return bool(new == old)


def settled_run(root: Path) -> Fixture:
    """A settled run of 12 shards: 10 succeeded (2 after two failed attempts), 2 failed."""
    fx = Fixture(root)
    fails = {2: 2, 5: 2, 7: 1, 9: 2}
    fx.run_held(fail=fails, succeed=False)
    status = fx.run.status()
    assert (status.succeeded, status.failed, status.missing) == (SHARDS - 2, 2, 0)
    return fx


@pytest.fixture
def settled(tmp_path: Path) -> Fixture:
    return settled_run(tmp_path)


def test_compaction_keeps_every_answer_and_leaves_a_few_files(settled: Fixture) -> None:
    before = _answers(settled.run)
    objects_before = settled.objects()
    assert len(objects_before) == 2 * (SHARDS - 2) + 7  # points + successes, 7 failures

    report = compact_run(settled.store, settled.layout, settled.run_id)
    assert (report.run_id, report.recovered) == (settled.run_id, 0)

    after_objects = settled.objects()
    assert all(Layout.is_compacted(k) for k in after_objects)
    assert len(after_objects) == 3  # points, successes, failures
    assert report.objects_before == len(objects_before)
    # 10 points per shard, of the shards that succeeded; one row per outcome record
    assert [p.rows for p in report.partitions] == [10 * (SHARDS - 2), SHARDS - 2, 7]
    assert report.partitions[0].key_sum == sum(i for i in range(120) if i // 10 not in FAILED)
    _assert_same(before, _answers(settled.run))
    # the points, sorted by point index, are the run's exact rows
    table = settled.run.results()
    assert table["point_index"].to_pylist() == [i for i in range(120) if i // 10 not in FAILED]


def test_the_record_names_the_files_and_what_they_replaced(settled: Fixture) -> None:
    objects_before = set(settled.objects())
    report = compact_run(settled.store, settled.layout, settled.run_id)
    [record] = compaction_records(settled.store, settled.layout, settled.run_id)
    assert report.record == settled.layout.compaction_key(settled.run_id, 1)
    replaced = {p["partition"] + name for p in record["partitions"] for name in p["replaced"]}
    assert replaced == objects_before
    assert record.keys() == {"run_id", "partitions"}
    for part, reported in zip(record["partitions"], report.partitions, strict=True):
        assert part.keys() == {
            "partition", "objects", "rows", "key_sum", "digest", "files", "bytes_before",
            "bytes_after", "checksums", "replaced",
        }  # fmt: skip
        assert part["rows"] == reported.rows
        assert part["digest"] == reported.digest
        assert part["files"] == list(reported.files)
        # what readers check each compacted file against, taken here from the stored file
        assert part["checksums"] == {
            key: {
                "rows": pq.ParquetFile(io.BytesIO(body)).metadata.num_rows,
                "size": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
            }
            for key in part["files"]
            for body in [settled.store.get(key)]
        }


def test_the_report_counts_the_bytes_it_read_and_wrote(settled: Fixture) -> None:
    sizes = {k: len(settled.store.get(k)) for k in settled.objects()}
    report = compact_run(settled.store, settled.layout, settled.run_id)
    [record] = compaction_records(settled.store, settled.layout, settled.run_id)
    assert record["run_id"] == settled.run_id
    assert len(report.partitions) == 3
    for part, written in zip(report.partitions, record["partitions"], strict=True):
        replaced = [part.partition + name for name in written["replaced"]]
        assert part.objects == len(replaced)
        assert part.bytes_before == sum(sizes[k] for k in replaced)
        assert part.bytes_after == sum(len(settled.store.get(f)) for f in part.files)
        assert written["bytes_before"] == part.bytes_before
        assert written["files"] == list(part.files)
        assert len(part.digest) == 64
        assert written["digest"] == part.digest


def test_a_record_number_another_compaction_took_is_skipped(settled: Fixture) -> None:
    taken = settled.layout.compaction_key(settled.run_id, 2)
    body = json.dumps({"run_id": settled.run_id, "partitions": []}).encode()
    assert settled.store.put_if_absent(taken, body)
    report = compact_run(settled.store, settled.layout, settled.run_id)
    assert report.record == settled.layout.compaction_key(settled.run_id, 3)
    assert settled.store.get(taken) == body
    assert not settled.store.exists(settled.layout.compaction_key(settled.run_id, 1))


def test_an_object_of_another_kind_in_a_partition_stops_the_compaction(settled: Fixture) -> None:
    prefix = settled.layout.points_prefix("gbm_european_option", settled.run_id)
    for name in ("a.txt", "b.txt", "c.txt", "d.txt"):
        settled.store.put_if_absent(prefix + name, b"?")
    before = settled.objects()
    with pytest.raises(CompactionError) as caught:
        compact_run(settled.store, settled.layout, settled.run_id)
    assert str(caught.value) == (
        f"unexpected objects in {prefix}: {[prefix + n for n in ('a.txt', 'b.txt', 'c.txt')]}"
    )
    assert settled.objects() == before


def _read_as(monkeypatch: pytest.MonkeyPatch, change: dict[str, Any]) -> None:
    """Shard objects read as other tables (``key -> function of the table``), their bytes
    untouched: what the commit check cannot see and the compaction's own check must."""
    real_fetch = compact_module._fetch

    def fetch(store: Any, key: str) -> tuple[str, bytes, pa.Table]:
        key, body, table = real_fetch(store, key)
        return key, body, change[key](table) if key in change else table

    monkeypatch.setattr(compact_module, "_fetch", fetch)


def test_a_shard_object_of_another_schema_stops_the_compaction(
    settled: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _first_points_key(settled)
    _read_as(monkeypatch, {key: lambda t: t.drop_columns(["price"])})
    before = settled.objects()
    with pytest.raises(CompactionError) as caught:
        compact_run(settled.store, settled.layout, settled.run_id)
    assert str(caught.value) == f"{key} does not have the table's columns and types"
    assert settled.objects() == before


@pytest.mark.parametrize("check_rows", [compact_module._CHECK_ROWS, 1])
def test_rows_out_of_key_order_are_refused_naming_where_they_were_read(
    settled: Fixture, monkeypatch: pytest.MonkeyPatch, check_rows: int
) -> None:
    # Two points objects holding the same points: the check of the shard objects refuses,
    # whether both are checked in one batch or each in its own (then only the last key of the
    # batch before tells).
    monkeypatch.setattr(compact_module, "_CHECK_ROWS", check_rows)
    keys = [k for k in settled.objects() if "/points/" in k]
    first = pq.read_table(io.BytesIO(settled.store.get(keys[0])))
    _read_as(monkeypatch, {keys[1]: lambda t: first})
    with pytest.raises(CompactionError) as caught:
        compact_run(settled.store, settled.layout, settled.run_id)
    where = keys[-1] if check_rows > 1 else keys[1]
    assert str(caught.value) == (
        f"rows read up to {where} are not in strictly increasing point_index order"
    )


def test_a_failure_record_read_twice_is_refused_in_shard_and_attempt_order(
    settled: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # shard 2 failed twice: its second attempt's object read as the first's repeats (2, 1)
    monkeypatch.setattr(compact_module, "_CHECK_ROWS", 1)
    keys = [k for k in settled.objects() if "/status=failure/" in k and "shard=00002" in k]
    assert len(keys) == 2
    first = pq.read_table(io.BytesIO(settled.store.get(keys[0])))
    _read_as(monkeypatch, {keys[1]: lambda t: first})
    before = settled.objects()
    with pytest.raises(CompactionError) as caught:
        compact_run(settled.store, settled.layout, settled.run_id)
    assert str(caught.value) == (
        f"rows read up to {keys[1]} are not in strictly increasing shard, attempt order"
    )
    assert settled.objects() == before


def test_a_row_repeated_within_a_shard_object_is_refused(
    settled: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = [k for k in settled.objects() if "/points/" in k][1]
    _read_as(monkeypatch, {key: lambda t: t.take([0, *range(t.num_rows)])})  # first point twice
    with pytest.raises(CompactionError, match="not in strictly increasing point_index order"):
        compact_run(settled.store, settled.layout, settled.run_id)


def test_compacted_rows_out_of_order_are_refused_naming_the_file(
    settled: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer swaps two rows: the shard objects were in order, the compacted file is not.
    before = settled.objects()
    real_add = compact_module._CompactedWriter.add

    def swap_two_rows(self: Any, table: pa.Table) -> None:
        if "/points/" in self.part.prefix and table.num_rows >= 2:
            table = table.take([1, 0, *range(2, table.num_rows)])
        real_add(self, table)

    monkeypatch.setattr(compact_module._CompactedWriter, "add", swap_two_rows)
    with pytest.raises(CompactionError) as caught:
        compact_run(settled.store, settled.layout, settled.run_id)
    prefix = settled.layout.points_prefix("gbm_european_option", settled.run_id)
    assert str(caught.value) == (
        f"rows read up to {prefix}compacted-0001.parquet are not in strictly increasing "
        "point_index order"
    )
    assert settled.objects() == before


def test_compacted_files_hold_the_same_schema_in_large_row_groups(settled: Fixture) -> None:
    small = pq.read_table(io.BytesIO(settled.store.get(_first_points_key(settled))))
    compact_run(settled.store, settled.layout, settled.run_id)
    [key] = [k for k in settled.objects() if "/points/" in k]
    parquet = pq.ParquetFile(io.BytesIO(settled.store.get(key)))
    assert parquet.schema_arrow.equals(small.schema)
    assert parquet.metadata.num_row_groups == 1
    assert parquet.metadata.num_rows == 100


def _first_points_key(fx: Fixture) -> str:
    return next(k for k in fx.objects() if "/points/" in k)


def test_small_row_groups_and_files_split_where_asked(settled: Fixture) -> None:
    before = _answers(settled.run)
    report = compact_run(
        settled.store, settled.layout, settled.run_id, row_group_rows=7, file_rows=30
    )
    points = next(p for p in report.partitions if "/points/" in p.partition)
    assert len(points.files) == 4  # 100 rows in files of at most 30
    for key in points.files:
        meta = pq.ParquetFile(io.BytesIO(settled.store.get(key))).metadata
        assert meta.num_rows <= 30
        assert all(meta.row_group(g).num_rows <= 7 for g in range(meta.num_row_groups))
    assert points.bytes_after == sum(len(settled.store.get(k)) for k in points.files)
    _assert_same(before, _answers(settled.run))


def test_an_unsettled_run_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    fx = Fixture(tmp_path)
    held = fx.invoker.tasks
    fx.invoker.tasks = held[:5]
    fx.run_held()
    before = fx.objects()
    with pytest.raises(CompactionError, match="not settled"):
        compact_run(fx.store, fx.layout, fx.run_id)
    assert fx.objects() == before


def test_a_failed_check_removes_the_new_files_and_deletes_nothing(
    settled: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = settled.objects()
    real_add = compact_module._CompactedWriter.add

    def drop_a_row(self: Any, table: pa.Table) -> None:
        real_add(self, table.slice(1) if "/points/" in self.part.prefix else table)

    monkeypatch.setattr(compact_module._CompactedWriter, "add", drop_a_row)
    with pytest.raises(CompactionError, match="do not hold exactly"):
        compact_run(settled.store, settled.layout, settled.run_id)
    assert settled.objects() == before
    assert compaction_records(settled.store, settled.layout, settled.run_id) == []


@pytest.mark.parametrize(
    ("table", "column", "changed"),
    [
        ("/points/", "price", lambda v: v + 0.5),  # a double
        ("/points/", "option", lambda v: "put"),  # a string of the same length
        ("/status=success/", "started_at", lambda v: v + timedelta(milliseconds=1)),
        ("/status=failure/", "error_message", lambda v: v.upper()),
        ("/status=success/", "error_code", lambda v: "X"),  # a null becomes a value
    ],
)
def test_one_changed_value_makes_the_compaction_refuse(
    settled: Fixture,
    monkeypatch: pytest.MonkeyPatch,
    table: str,
    column: str,
    changed: Any,
) -> None:
    """Same rows, same key sum: only the digest of every value can tell the files differ."""
    before = settled.objects()
    real_add = compact_module._CompactedWriter.add
    done: list[str] = []

    def change_one_value(self: Any, rows: pa.Table) -> None:
        if table in self.part.prefix and not done and rows.num_rows:
            index = rows.schema.get_field_index(column)
            values = rows[column].to_pylist()
            values[-1] = changed(values[-1])
            rows = rows.set_column(index, rows.field(index), pa.array(values, rows[column].type))
            done.append(column)
        real_add(self, rows)

    monkeypatch.setattr(compact_module._CompactedWriter, "add", change_one_value)
    with pytest.raises(CompactionError, match="do not hold exactly"):
        compact_run(settled.store, settled.layout, settled.run_id)
    assert done == [column]
    assert settled.objects() == before
    assert compaction_records(settled.store, settled.layout, settled.run_id) == []


def test_an_interrupted_deletion_is_finished_by_the_next_run(
    settled: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _answers(settled.run)
    deleted = 0
    real_delete = LocalStore.delete

    def crash_after_five(self: LocalStore, key: str) -> None:
        nonlocal deleted
        if deleted == 5:
            raise KeyboardInterrupt
        deleted += 1
        real_delete(self, key)

    monkeypatch.setattr(LocalStore, "delete", crash_after_five)
    with pytest.raises(KeyboardInterrupt):
        compact_run(settled.store, settled.layout, settled.run_id)
    monkeypatch.setattr(LocalStore, "delete", real_delete)
    # Mid-way, shard objects and the compacted files both hold some records: status and
    # redrive count each record once.
    assert settled.run.status().as_dict() == before["status"]

    left = [k for k in settled.objects() if not Layout.is_compacted(k)]
    assert left  # the crash left replaced objects behind
    report = compact_run(settled.store, settled.layout, settled.run_id)
    assert report.recovered == len(left)
    assert report.partitions == ()
    assert all(Layout.is_compacted(k) for k in settled.objects())
    _assert_same(before, _answers(settled.run))


def test_compacted_files_no_record_names_are_removed_and_redone(
    settled: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _answers(settled.run)

    def crash(*args: Any) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(compact_module, "_write_record", crash)
    with pytest.raises(KeyboardInterrupt):
        compact_run(settled.store, settled.layout, settled.run_id)
    monkeypatch.undo()
    assert any(Layout.is_compacted(k) for k in settled.objects())  # unrecorded files

    compact_run(settled.store, settled.layout, settled.run_id)
    assert len(settled.objects()) == 3
    _assert_same(before, _answers(settled.run))


def test_redrive_after_compaction_numbers_attempts_on_and_compacts_again(
    settled: Fixture,
) -> None:
    compact_run(settled.store, settled.layout, settled.run_id)
    assert redrive_run(settled.run_id, settled.parent) == list(FAILED)
    assert settled.run.status().missing == 2
    # shard 7 fails once more, shard 9 now succeeds
    tasks, settled.invoker.tasks = settled.invoker.tasks, []
    seven = next(t for t in tasks if t.shard == 7)
    nine = next(t for t in tasks if t.shard == 9)
    assert record_failure(seven, "TRANSIENT_ERROR", "SlowDown", settled.worker).attempt == 2
    assert run_shard(nine, LocalContext.with_timeout(60), settled.worker).attempt == 3
    status = settled.run.status()
    assert (status.succeeded, status.failed, status.failed_attempts) == (SHARDS - 1, 1, 8)

    before = _answers(settled.run)
    report = compact_run(settled.store, settled.layout, settled.run_id)
    assert report.record == settled.layout.compaction_key(settled.run_id, 2)
    assert report.objects_before == 3  # shard 9's points and success, shard 7's new failure
    assert sorted(k.rsplit("/", 1)[1] for k in settled.objects()) == [
        "compacted-0001.parquet", "compacted-0001.parquet", "compacted-0001.parquet",
        "compacted-0002.parquet", "compacted-0002.parquet", "compacted-0002.parquet",
    ]  # fmt: skip
    _assert_same(before, _answers(settled.run))
    outcomes = settled.run.outcomes().to_pylist()
    assert [(r["attempt"], r["status"]) for r in outcomes if r["shard"] == 9] == [
        (1, "failure"), (2, "failure"), (3, "success"),
    ]  # fmt: skip


def test_compacting_twice_changes_nothing(settled: Fixture) -> None:
    compact_run(settled.store, settled.layout, settled.run_id)
    objects = settled.objects()
    report = compact_run(settled.store, settled.layout, settled.run_id)
    assert (report.run_id, report.partitions, report.record) == (settled.run_id, (), None)
    assert report.recovered == 0
    assert settled.objects() == objects


def test_the_command_compacts_and_reports(
    settled: Fixture, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["compact", settled.run_id, "--data-dir", str(settled.root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["objects_before"] == 2 * (SHARDS - 2) + 7
    assert len(settled.objects()) == 3
    assert cli_main(["compact", settled.run_id, "--data-dir", str(settled.root)]) == 0
    assert "nothing to compact" in capsys.readouterr().out
    assert cli_main(["compact", "20260101T000000Z-deadbeef", "--data-dir", str(settled.root)]) == 2


def test_the_command_refuses_an_unsettled_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fx = Fixture(tmp_path)
    assert cli_main(["compact", fx.run_id, "--data-dir", str(tmp_path)]) == 2
    assert "not settled" in capsys.readouterr().err


def test_local_store_delete_removes_one_object(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put_if_absent("a/b.parquet", b"x")
    store.put_if_absent("a/c.parquet", b"y")
    store.delete("a/b.parquet")
    store.delete("a/missing.parquet")  # absent is fine
    assert list(store.list("a/")) == ["a/c.parquet"]
    with pytest.raises(ValueError, match="invalid object key"):
        store.delete("../outside")


TWO_PASS_RUN_SUMMARY = """
WITH per_shard AS (
    SELECT shard, max(CASE WHEN status = 'success' THEN 1 ELSE 0 END) AS succeeded,
        count_if(status = 'failure') AS failed_attempts, max(point_count) AS point_count
    FROM outcomes WHERE run_id = ? GROUP BY shard
),
durations AS (
    SELECT approx_percentile(duration_ms, 0.5) AS p50_ms,
        approx_percentile(duration_ms, 0.9) AS p90_ms,
        approx_percentile(duration_ms, 0.99) AS p99_ms,
        max(duration_ms) AS max_ms, sum(duration_ms) AS total_ms
    FROM outcomes WHERE run_id = ? AND status = 'success'
)
SELECT CAST(sum(s.succeeded) AS bigint) AS shards_succeeded,
    CAST(count(*) - sum(s.succeeded) AS bigint) AS shards_failed,
    CAST(sum(s.failed_attempts) AS bigint) AS failed_attempts,
    CAST(sum(CASE WHEN s.succeeded = 1 THEN s.point_count ELSE 0 END) AS bigint)
        AS points_succeeded,
    d.p50_ms, d.p90_ms, d.p99_ms, d.max_ms, d.total_ms
FROM per_shard AS s CROSS JOIN durations AS d
GROUP BY d.p50_ms, d.p90_ms, d.p99_ms, d.max_ms, d.total_ms
"""


def test_the_one_pass_run_summary_answers_as_the_two_pass_one_did(settled: Fixture) -> None:
    [old] = settled.run.query(TWO_PASS_RUN_SUMMARY).to_pylist()
    [new] = settled.run.named("run_summary").to_pylist()
    assert new.keys() == old.keys()
    for column, value in old.items():
        assert same_value(new[column], value), (column, new[column], value)
    empty = Run("20260304T050608Z-0000beef", settled.target)
    assert empty.query(TWO_PASS_RUN_SUMMARY).to_pylist() == []
    assert empty.named("run_summary").to_pylist() == []


def test_a_record_naming_a_missing_compacted_file_stops_the_next_compaction(
    settled: Fixture,
) -> None:
    compact_run(settled.store, settled.layout, settled.run_id, file_rows=30)
    [record] = compaction_records(settled.store, settled.layout, settled.run_id)
    lost = next(part["files"] for part in record["partitions"] if "/points/" in part["partition"])
    assert len(lost) == 4
    for key in lost:
        settled.store.delete(key)
    left = settled.objects()
    with pytest.raises(CompactionError) as caught:
        compact_run(settled.store, settled.layout, settled.run_id)
    assert str(caught.value) == (
        f"compacted files {lost[:3]} named by a compaction record of run {settled.run_id} are "
        "missing; the shard objects they replaced may be lost"
    )
    assert settled.objects() == left


def _points_key(fx: Fixture, shard: int) -> str:
    return next(k for k in fx.objects() if "/points/" in k and f"shard={shard:05d}" in k)


def test_a_missing_committed_points_object_stops_the_compaction(settled: Fixture) -> None:
    key = _points_key(settled, 3)
    settled.store.delete(key)
    before = settled.objects()
    with pytest.raises(CompactionError) as caught:
        compact_run(settled.store, settled.layout, settled.run_id)
    assert str(caught.value) == (
        f"run {settled.run_id} shard 3: {key}: missing; `sweep verify {settled.run_id}` lists them"
    )
    assert settled.objects() == before
    assert compaction_records(settled.store, settled.layout, settled.run_id) == []


def test_a_committed_points_object_replaced_by_another_stops_the_compaction(
    settled: Fixture,
) -> None:
    key = _points_key(settled, 3)
    settled.store.delete(key)
    assert settled.store.put_if_absent(key, settled.store.get(_points_key(settled, 4)))
    before = settled.objects()
    with pytest.raises(CompactionError) as caught:
        compact_run(settled.store, settled.layout, settled.run_id)
    assert str(caught.value).startswith(f"run {settled.run_id} shard 3: {key}: ")
    assert str(caught.value).endswith(f"; `sweep redrive --repair {settled.run_id}` re-runs it")
    assert settled.objects() == before
    assert compaction_records(settled.store, settled.layout, settled.run_id) == []


def test_the_value_digest_tells_apart_integers_beyond_float_precision_beside_nulls() -> None:
    # With a null in the column, a float conversion would make 2**53 and 2**53 + 1 one value.
    big = compact_module._value_bytes(pa.array([2**53, None], pa.int64()))
    bigger = compact_module._value_bytes(pa.array([2**53 + 1, None], pa.int64()))
    assert big[0] == bigger[0] == b"\x01\x00"
    assert big[1] != bigger[1]
    assert big[1] == (2**53).to_bytes(8, "little") + bytes(8)


def test_a_compacted_points_file_is_checked_against_its_record(settled: Fixture) -> None:
    from sweep_core.runs import CommitError

    compact_run(settled.store, settled.layout, settled.run_id)
    [key] = [k for k in settled.objects() if "/points/" in k]
    body = settled.store.get(key)
    settled.store.delete(key)
    assert settled.store.put_if_absent(key, body[: len(body) // 2])
    with pytest.raises(CommitError) as caught:
        settled.run.results()
    [problem] = caught.value.problems
    assert (problem.run_id, problem.shard, problem.key) == (settled.run_id, None, key)
    assert problem.reason == (
        f"{len(body) // 2} bytes where its commit says {len(body)} (truncated or replaced)"
    )


def test_an_unknown_or_unsettled_run_is_named_in_the_refusal(tmp_path: Path) -> None:
    fx = Fixture(tmp_path)
    with pytest.raises(LookupError) as unknown:
        compact_run(fx.store, fx.layout, "20260101T000000Z-deadbeef")
    assert str(unknown.value) == "no run 20260101T000000Z-deadbeef"
    with pytest.raises(CompactionError) as unsettled:
        compact_run(fx.store, fx.layout, fx.run_id)
    assert str(unsettled.value) == (
        f"run {fx.run_id} is not settled ({SHARDS} of {SHARDS} shards have no final record "
        "yet); compact it once every shard has finished"
    )
