"""The object layout, checked against the engines that read it (DuckDB here, Athena's types)."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from attrs import frozen

from runtime.adapters.local_store import LocalStore
from sweep_core.contract import RunManifest, ShardOutcome, ShardStatus
from sweep_core.convert import dumps
from sweep_core.kernels import KERNELS, evaluate
from sweep_core.layout import Layout, OutcomeKey, new_run_id, run_date_of
from sweep_core.named_queries import named_query
from sweep_core.planning import plan_shards
from sweep_core.records import PointsWriter, outcome_parquet, read_outcome
from sweep_core.space import PointSpace, point_count
from sweep_core.tables import OUTCOMES, points_table
from sweep_core.validation import parse_request
from sweep_sdk.query.local import LocalQueryEngine

GBM = KERNELS["gbm_european_option"]
RUN_A = new_run_id(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "0a1b2c3d")
RUN_B = new_run_id(datetime(2026, 3, 4, 23, 59, 59, tzinfo=UTC), "ffee0011")
PARTITIONS = {"run_date", "run_id", "status"}
T0 = datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)

# (run, shard, status, attempt): what the folder holds. Run A: shard 0 succeeded first time,
# shard 1 failed twice then succeeded, shard 2 only failed. Run B: one failure, one success.
RECORDS: list[tuple[str, int, ShardStatus, int]] = [
    (RUN_A, 0, "success", 1),
    (RUN_A, 1, "failure", 1),
    (RUN_A, 1, "failure", 2),
    (RUN_A, 1, "success", 3),
    (RUN_A, 2, "failure", 1),
    (RUN_B, 0, "failure", 1),
    (RUN_B, 1, "success", 1),
]


@frozen
class Written:
    root: Path
    layout: Layout
    store: LocalStore
    keys: list[str]
    """Every object written, outcomes first, then points."""
    shard_count: int


def _outcome(run_id: str, shard: int, status: ShardStatus, attempt: int) -> ShardOutcome:
    failed = status == "failure"
    return ShardOutcome(
        run_id=run_id,
        shard=shard,
        attempt=attempt,
        status=status,
        start=shard * 32,
        end=shard * 32 + 32,
        point_count=32,
        started_at=T0.isoformat(),
        finished_at=(T0 + timedelta(seconds=attempt)).isoformat(),
        duration_ms=1000.0 * attempt,
        worker_version="0.1.0",
        error_code="NON_FINITE_RESULT" if failed else None,
        error_message="price is not finite at point 3 (1 points)" if failed else None,
    )


def _points(spec: dict[str, Any], start: int, end: int) -> bytes:
    request = parse_request(spec)
    space = PointSpace(request, GBM.spec)
    writer = PointsWriter(points_table(GBM.spec))
    index = np.arange(start, end, dtype=np.int64)
    params = space.decode(index)
    writer.write(index, params, evaluate(GBM, params, index, request.seed))
    return writer.finish()


@pytest.fixture
def written(tmp_path: Path, gbm_request: dict[str, Any]) -> Written:
    gbm_request["params"]["paths"] = 16  # values do not matter here, only their layout
    gbm_request["sharding"] = {"shard_size": 32}
    plan = plan_shards(point_count(parse_request(gbm_request)), parse_request(gbm_request).sharding)
    layout, store = Layout("results"), LocalStore(tmp_path)
    keys = []
    for run_id, shard, status, attempt in RECORDS:
        key = (
            layout.success_key(run_id, shard)
            if status == "success"
            else layout.failure_key(run_id, shard, attempt)
        )
        assert store.put_if_absent(key, outcome_parquet(_outcome(run_id, shard, status, attempt)))
        keys.append(key)
    for run_id in (RUN_A, RUN_B):
        for r in list(plan)[:2]:
            key = layout.points_key(GBM.spec.name, run_id, r.shard)
            assert store.put_if_absent(key, _points(gbm_request, r.start, r.end))
            keys.append(key)
    return Written(tmp_path, layout, store, keys, plan.shard_count)


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return con.sql(sql).fetchall()


def test_duckdb_reads_outcome_partitions_from_the_path(written: Written) -> None:
    glob = written.root / written.layout.table_root("outcomes") / "*/*/*/*.parquet"
    con = duckdb.connect()
    relation = con.sql(f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true)")
    assert relation.columns == [c.name for c in OUTCOMES.columns] + [
        "run_date",
        "run_id",
        "status",
    ]
    rows = _rows(
        con,
        f"SELECT CAST(run_date AS VARCHAR), run_id, status, shard, attempt, error_code "
        f"FROM read_parquet('{glob}', hive_partitioning = true) "
        f"ORDER BY run_id, shard, attempt",
    )
    expected = [
        (
            run_date_of(run),
            run,
            status,
            shard,
            attempt,
            "NON_FINITE_RESULT" if status == "failure" else None,
        )
        for run, shard, status, attempt in sorted(RECORDS, key=lambda r: (r[0], r[1], r[3]))
    ]
    assert rows == expected
    assert {r[0] for r in rows} == {"2026-01-02", "2026-03-04"}


def test_duckdb_reads_points_partitions_from_the_path(written: Written) -> None:
    root = written.root / written.layout.table_root(f"points/{GBM.spec.name}")
    con = duckdb.connect()
    relation = con.sql(f"SELECT * FROM read_parquet('{root}/*/*/*.parquet', hive_partitioning = 1)")
    assert relation.columns == [c.name for c in points_table(GBM.spec).columns] + [
        "run_date",
        "run_id",
    ]
    rows = _rows(
        con,
        f"SELECT CAST(run_date AS VARCHAR), run_id, count(*), min(point_index), "
        f"max(point_index), count(DISTINCT point_index) "
        f"FROM read_parquet('{root}/*/*/*.parquet', hive_partitioning = true) "
        f"GROUP BY ALL ORDER BY run_id",
    )
    assert rows == [
        ("2026-01-02", RUN_A, 64, 0, 63, 64),
        ("2026-03-04", RUN_B, 64, 0, 63, 64),
    ]


def test_the_local_query_engine_sees_both_runs_and_both_statuses(
    written: Written, gbm_request: dict[str, Any]
) -> None:
    for run_id in (RUN_A, RUN_B):
        manifest = RunManifest(
            run_id, run_date_of(run_id), T0.isoformat(), 80, 3, parse_request(gbm_request),
            "0.1.0",
        )  # fmt: skip
        written.store.put_if_absent(written.layout.manifest_key(run_id), dumps(manifest).encode())
    engine = LocalQueryEngine(written.root, written.layout, [GBM.spec])
    by_status = engine.run(
        "SELECT run_date, run_id, status, count(*) AS n FROM outcomes "
        "GROUP BY run_date, run_id, status ORDER BY run_id, status"
    ).to_pylist()
    assert by_status == [
        {"run_date": "2026-01-02", "run_id": RUN_A, "status": "failure", "n": 3},
        {"run_date": "2026-01-02", "run_id": RUN_A, "status": "success", "n": 2},
        {"run_date": "2026-03-04", "run_id": RUN_B, "status": "failure", "n": 1},
        {"run_date": "2026-03-04", "run_id": RUN_B, "status": "success", "n": 1},
    ]
    # A shipped Athena query, translated and run over the same folder.
    by_day = engine.run(named_query("failure_rate_by_day")).to_pylist()
    assert [(d["run_date"], d["shards_settled"], d["shards_failed"]) for d in by_day] == [
        ("2026-01-02", 3, 1),
        ("2026-03-04", 2, 1),
    ]
    points = engine.run(
        f"SELECT run_id, count(*) AS n FROM points_{GBM.spec.name} "
        "WHERE run_date = '2026-03-04' GROUP BY run_id"
    ).to_pylist()
    # only committed points are read: run B's shard 1 has its success, shard 0 failed (its
    # points object is there, as a worker that died before its success would leave it)
    assert points == [{"run_id": RUN_B, "n": 32}]


def test_partition_columns_are_not_inside_the_files(written: Written) -> None:
    for key in written.keys:
        names = set(pq.read_schema(io.BytesIO(written.store.get(key))).names)
        assert names & PARTITIONS == set(), key
    outcome_names = set(pq.read_schema(io.BytesIO(written.store.get(written.keys[0]))).names)
    assert outcome_names == {c.name for c in OUTCOMES.columns}


_ATHENA_PHYSICAL = {"BOOLEAN", "INT32", "INT64", "FLOAT", "DOUBLE", "BYTE_ARRAY"}


def test_written_parquet_types_are_ones_athena_reads(written: Written) -> None:
    timestamps = 0
    for key in written.keys:
        body = written.store.get(key)
        for field in pq.read_schema(io.BytesIO(body)):
            assert not pa.types.is_unsigned_integer(field.type), (key, field)
            assert not pa.types.is_large_string(field.type), (key, field)
            if pa.types.is_timestamp(field.type):
                timestamps += 1
                assert (field.type.unit, field.type.tz) == ("ms", "UTC"), (key, field)
        schema = pq.ParquetFile(io.BytesIO(body)).schema
        for i in range(len(schema)):
            column = schema.column(i)
            assert column.physical_type in _ATHENA_PHYSICAL, (key, column)  # INT96 is not
            logical = json.loads(column.logical_type.to_json())
            if logical["Type"] == "Int":
                assert logical["isSigned"], (key, column.name, logical)
            if logical["Type"] == "Timestamp":
                assert logical["timeUnit"] == "milliseconds", (key, column.name, logical)
                assert logical["isAdjustedToUTC"], (key, column.name, logical)
    assert timestamps == 2 * len(RECORDS)  # started_at and finished_at of every outcome


def test_timestamps_survive_at_millisecond_precision_as_utc(written: Written) -> None:
    table = pq.read_table(io.BytesIO(written.store.get(written.keys[0])))
    assert table.column("started_at").to_pylist() == [T0]
    assert table.column("started_at").to_pylist()[0].utcoffset() == timedelta(0)


@pytest.mark.parametrize("shard", [0, 7, 99_999, 123_456])
def test_outcome_keys_parse_back_to_status_shard_and_attempt(shard: int) -> None:
    layout = Layout("some/prefix")
    assert layout.parse_outcome_key(layout.success_key(RUN_A, shard)) == OutcomeKey(
        "success", shard, None
    )
    for attempt in (1, 2, 10_000):
        assert layout.parse_outcome_key(layout.failure_key(RUN_A, shard, attempt)) == OutcomeKey(
            "failure", shard, attempt
        )


@pytest.mark.parametrize(
    "key",
    [
        "results/runs/run_date=2026-01-02/run_id=x/manifest.json",
        "results/outcomes/run_date=2026-01-02/run_id=x/status=pending/shard=00001.parquet",
        "results/outcomes/run_date=2026-01-02/run_id=x/status=success/shard=1.json",
        "results/outcomes/run_date=2026-01-02/run_id=x/status=success/.shard=00001.parquet.tmp",
    ],
)
def test_keys_that_are_not_outcomes_do_not_parse(key: str) -> None:
    with pytest.raises(ValueError, match="not an outcome key"):
        Layout.parse_outcome_key(key)


def test_failure_prefix_lists_only_that_shards_attempts(written: Written) -> None:
    layout = written.layout
    attempts = list(written.store.list(layout.failure_prefix(RUN_A, 1)))
    assert attempts == [layout.failure_key(RUN_A, 1, 1), layout.failure_key(RUN_A, 1, 2)]
    assert list(written.store.list(layout.failure_prefix(RUN_A, 0))) == []


def test_success_and_failure_objects_sit_at_the_same_depth() -> None:
    layout = Layout("results")
    success = layout.success_key(RUN_A, 42).split("/")
    failure = layout.failure_key(RUN_A, 42, 3).split("/")
    assert len(success) == len(failure)
    assert success[:-2] == failure[:-2]
    assert (success[-2], failure[-2]) == ("status=success", "status=failure")
    assert layout.success_key(RUN_A, 42).startswith(layout.outcomes_prefix(RUN_A))
    assert layout.failure_key(RUN_A, 42, 3).startswith(layout.failure_prefix(RUN_A, 42))


def test_new_run_id_names_its_date_and_sorts_by_creation_time() -> None:
    created = datetime(2026, 11, 23, 15, 21, 0, tzinfo=UTC)
    run_id = new_run_id(created, "1a2b3c4d")
    assert run_id == "20261123T152100Z-1a2b3c4d"
    assert run_date_of(run_id) == "2026-11-23"
    later = [new_run_id(created + timedelta(seconds=s), "00000000") for s in (1, 61, 86_400)]
    assert sorted([*later, run_id]) == [run_id, *later]
    assert run_date_of(later[-1]) == "2026-11-24"


@pytest.mark.parametrize(
    "bad", ["", "2026-11-23", "20261123T152100Z", "20261123T152100Z-1A2B3C4D", "x/../y"]
)
def test_run_date_of_rejects_what_is_not_a_run_id(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a run id"):
        run_date_of(bad)


def test_every_key_of_a_run_names_its_date_and_id_as_partitions() -> None:
    layout = Layout("results")
    partitions = f"run_date={run_date_of(RUN_B)}/run_id={RUN_B}/"
    for key in (
        layout.manifest_key(RUN_B),
        layout.success_key(RUN_B, 1),
        layout.failure_key(RUN_B, 1, 1),
        layout.points_key(GBM.spec.name, RUN_B, 1),
    ):
        assert partitions in key, key
        assert key.startswith("results/"), key


def test_outcome_keys_are_read_from_their_end_whatever_the_prefix() -> None:
    # A results prefix may itself look like a partition: the status is the last one.
    layout = Layout("archive/status=old")
    run_id = "20261123T152100Z-1a2b3c4d"
    success, failure = layout.success_key(run_id, 4), layout.failure_key(run_id, 4, 2)
    assert Layout.outcome_status(success) == "success"
    assert Layout.outcome_status(failure) == "failure"
    assert Layout.parse_outcome_key(success) == OutcomeKey("success", 4, None)
    assert Layout.parse_outcome_key(failure) == OutcomeKey("failure", 4, 2)
    stray = "results/outcomes/run_date=2026-11-23/shard=00001.parquet"
    with pytest.raises(ValueError, match=r"^'.*shard=00001\.parquet' is not in an outcome status"):
        Layout.outcome_status(stray)


@pytest.mark.parametrize("status", ["success", "failure"])
def test_an_outcome_reads_back_as_written_from_snappy_parquet(status: ShardStatus) -> None:
    """Snappy because every Athena engine version reads it; every field survives the trip."""
    outcome = _outcome("20261123T152100Z-1a2b3c4d", 3, status, 2)
    body = outcome_parquet(outcome)
    assert read_outcome(body, outcome.run_id, status) == outcome
    metadata = pq.ParquetFile(io.BytesIO(body)).metadata
    assert metadata.num_rows == 1
    codecs = {metadata.row_group(0).column(i).compression for i in range(metadata.num_columns)}
    assert codecs == {"SNAPPY"}


def test_client_tokens_are_kept_under_a_digest_of_their_text() -> None:
    # any text a client sends becomes a safe object name, and two tokens never share one
    layout = Layout("results")
    odd = "../../etc/passwd ümlaut"
    assert layout.token_key(odd) == (
        f"results/tokens/{hashlib.sha256(odd.encode()).hexdigest()}.json"
    )
    assert layout.token_key("a") != layout.token_key("b")


def test_every_record_of_a_run_folder_is_known_by_its_name() -> None:
    # how a run's folder is read in one listing: each record by its documented name
    layout = Layout("results")
    folder = f"results/runs/run_date={run_date_of(RUN_B)}/run_id={RUN_B}/"
    for key, name in [
        (layout.manifest_key(RUN_B), "manifest.json"),
        (layout.redrive_key(RUN_B, 3), "redrive-0003.json"),
        (layout.cancel_key(RUN_B, 2), "cancel-0002.json"),
        (layout.summary_key(RUN_B, 1), "summary-0001.json"),
        (layout.compaction_key(RUN_B, 12), "compaction-0012.json"),
    ]:
        assert key == folder + name
        assert Layout.run_record(key) == (RUN_B, name)
    assert Layout.run_record(layout.success_key(RUN_B, 1)) is None


def test_points_objects_are_snappy_parquet_too(gbm_request: dict[str, Any]) -> None:
    gbm_request["params"]["paths"] = 16
    metadata = pq.ParquetFile(io.BytesIO(_points(gbm_request, 0, 5))).metadata
    assert metadata.num_rows == 5
    codecs = {metadata.row_group(0).column(i).compression for i in range(metadata.num_columns)}
    assert codecs == {"SNAPPY"}


def test_a_points_table_documents_each_column_as_the_kernel_declares_it() -> None:
    # these texts become the Glue column comments Athena users read
    table = points_table(GBM.spec)
    documented = [(c.name, c.doc) for c in table.columns]
    assert documented == [
        ("point_index", "index of the point in the run's point space"),
        *[(p.name, p.doc) for p in GBM.spec.params],
        *[(m.name, m.doc) for m in GBM.spec.metrics],
    ]
    assert all(doc for _, doc in documented)
