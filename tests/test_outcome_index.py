"""The outcome index: queries through it answer exactly as DuckDB reading the objects does,
whatever happened to the objects since it was written, and the local pool fills it as its
batch ends with exactly the rows its workers wrote."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import attrs
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_compact import Fixture, same_value, settled_run

from runtime.adapters.outcome_index import INDEX_DIR, OutcomeIndex
from runtime.handlers.parent import shard_tasks
from runtime.handlers.worker import record_failure
from sweep_core.named_queries import QUERY_NAMES, named_query
from sweep_core.records import outcome_table, read_outcome
from sweep_core.runs import read_manifest
from sweep_sdk import submit
from sweep_sdk.query.local import athena_to_duckdb, placeholders

QUERIES = [
    *(named_query(name) for name in QUERY_NAMES),
    "SELECT * FROM outcomes ORDER BY run_id, status, shard, attempt",
]


def _from_objects(root: Path, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    """The answer of DuckDB reading every outcome object itself: the ground truth."""
    con = duckdb.connect()
    glob = str(root / "results" / "outcomes" / "*" / "*" / "*" / "*.parquet")
    con.execute(
        f"CREATE VIEW outcomes AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true, "
        "hive_types = {'run_date': VARCHAR, 'run_id': VARCHAR, 'status': VARCHAR})"
    )
    rows: list[dict[str, Any]] = (
        con.sql(athena_to_duckdb(sql), params=params or None).to_arrow_table().to_pylist()
    )
    return rows


def _assert_answers_as_the_objects(fx: Fixture) -> None:
    for sql in QUERIES:
        params = [fx.run_id] * placeholders(sql)
        got = fx.target.run_query(sql, params).to_pylist()
        want = _from_objects(fx.root, sql, params)
        assert len(got) == len(want), sql
        for new, old in zip(got, want, strict=True):
            assert new.keys() == old.keys(), sql
            for column, value in old.items():
                assert same_value(new[column], value), (sql, column, new[column], value)


@pytest.fixture
def settled(tmp_path: Path) -> Fixture:
    return settled_run(tmp_path)


def _index_file(root: Path) -> Path:
    [path] = (root / INDEX_DIR).rglob("run_id=*.parquet")
    return path


def test_queries_answer_as_the_objects_and_the_second_opens_none(
    settled: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    _assert_answers_as_the_objects(settled)  # reads the objects, writes the index
    assert pq.read_table(_index_file(settled.root)).num_rows == len(settled.run.outcomes())

    def no_object_reads(*args: Any) -> pa.Table:
        raise AssertionError("an outcome object was opened although the index holds it")

    monkeypatch.setattr(OutcomeIndex, "_read_objects", no_object_reads)
    _assert_answers_as_the_objects(settled)


def test_changed_vanished_and_new_objects_are_read_not_taken_from_the_index(
    settled: Fixture,
) -> None:
    fx = settled
    _assert_answers_as_the_objects(fx)
    index_before = pq.read_table(_index_file(fx.root))

    # changed: the success of shard 0 rewritten with another duration (and a later mtime)
    key = fx.layout.success_key(fx.run_id, 0)
    path = fx.store.path(key)
    old = read_outcome(path.read_bytes(), fx.run_id, "success")
    changed = outcome_table([attrs.evolve(old, duration_ms=987654.0)])
    pq.write_table(changed, path.with_name(".rewrite.tmp"))
    stat = path.stat()
    os.replace(path.with_name(".rewrite.tmp"), path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    # vanished: shard 7's only failure; new: another failed attempt at shard 9
    fx.store.delete(fx.layout.failure_key(fx.run_id, 7, 1))
    manifest = read_manifest(fx.store, fx.layout, fx.run_id)
    assert manifest is not None
    [task9] = shard_tasks(manifest, [9])
    record_failure(task9, "TRANSIENT_ERROR", "again", fx.worker)

    _assert_answers_as_the_objects(fx)
    outcomes = fx.run.outcomes().to_pylist()
    assert [r["duration_ms"] for r in outcomes if r["shard"] == 0] == [987654.0]
    assert not [r for r in outcomes if r["shard"] == 7]
    assert [r["attempt"] for r in outcomes if r["shard"] == 9] == [1, 2, 3]
    index_after = pq.read_table(_index_file(fx.root))
    assert index_after.num_rows == index_before.num_rows  # one row gone, one new


def test_a_damaged_or_unwritable_index_changes_no_answer(settled: Fixture) -> None:
    fx = settled
    _assert_answers_as_the_objects(fx)
    index = _index_file(fx.root)
    index.write_bytes(b"not parquet")
    _assert_answers_as_the_objects(fx)
    assert pq.read_table(index).num_rows == len(fx.run.outcomes())  # written again, whole

    shutil.rmtree(fx.root / INDEX_DIR)
    (fx.root / INDEX_DIR).write_text("a file where the index folder would go")
    _assert_answers_as_the_objects(fx)


def test_the_pool_indexes_exactly_the_rows_its_workers_wrote(tmp_path: Path) -> None:
    spec = {
        "schema_version": "1.0",
        "kernel": "sir_epidemic",
        "params": {"population": 2000, "initial_infected": 10, "days": 120},
        "axes": {
            "gamma": {"values": [0.1, 0.5]},
            "r0": {"linspace": {"start": 0.5, "stop": 4.0, "num": 8}},
        },
        "sampling": {"method": "grid"},
        "sharding": {"shard_size": 2},
        "seed": 7,
    }
    run = submit(spec, data_dir=tmp_path, workers=2)
    status = run.wait(timeout=120, progress=False)
    assert run.target.join(60)
    assert status.failed > 0  # both kinds of record are indexed
    assert status.succeeded > 0

    recorded = pq.read_table(_index_file(tmp_path)).sort_by("_key")
    assert recorded.num_rows == len(run.outcomes())
    _index_file(tmp_path).unlink()
    layout = run.target.layout  # type: ignore[attr-defined]
    OutcomeIndex(tmp_path, layout).read()  # rebuilt by reading every object
    read_back = pq.read_table(_index_file(tmp_path)).sort_by("_key")
    assert recorded.equals(read_back)
