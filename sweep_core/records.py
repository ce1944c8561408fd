"""Parquet encoding of what a worker leaves behind: outcome records and points tables."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from sweep_core.contract import ShardOutcome, ShardStatus
from sweep_core.tables import OUTCOMES, Table

COMPRESSION = "snappy"  # what every Athena engine version reads


def outcome_table(outcomes: Sequence[ShardOutcome]) -> pa.Table:
    """Outcomes as rows of the outcome objects' schema (partition columns are in keys, not here)."""
    return pa.Table.from_batches([_outcome_batch(outcomes)])


def outcome_parquet(outcome: ShardOutcome) -> bytes:
    """One outcome as a one-row Parquet object."""
    # Built column by column and written by a ParquetWriter: a third of the cost of
    # Table.from_pylist and write_table, paid once per shard. The bytes are the same.
    batch = _outcome_batch([outcome])
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, batch.schema, compression=COMPRESSION) as writer:
        writer.write_batch(batch)
    body: bytes = sink.getvalue().to_pybytes()
    return body


def _outcome_batch(outcomes: Sequence[ShardOutcome]) -> pa.RecordBatch:
    columns = {
        "shard": [o.shard for o in outcomes],
        "attempt": [o.attempt for o in outcomes],
        "point_start": [o.start for o in outcomes],
        "point_end": [o.end for o in outcomes],
        "point_count": [o.point_count for o in outcomes],
        "started_at": [datetime.fromisoformat(o.started_at) for o in outcomes],
        "finished_at": [datetime.fromisoformat(o.finished_at) for o in outcomes],
        "duration_ms": [o.duration_ms for o in outcomes],
        "error_code": [o.error_code for o in outcomes],
        "error_message": [o.error_message for o in outcomes],
        "worker_version": [o.worker_version for o in outcomes],
        "schema_version": [o.schema_version for o in outcomes],
        "points_object": [o.points_object for o in outcomes],
        "points_rows": [o.points_rows for o in outcomes],
        "points_bytes": [o.points_bytes for o in outcomes],
        "points_sha256": [o.points_sha256 for o in outcomes],
        "kernel_version": [o.kernel_version for o in outcomes],
    }
    schema = OUTCOMES.arrow_schema
    arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def read_outcome(body: bytes, run_id: str, status: ShardStatus) -> ShardOutcome:
    """The outcome in a one-row Parquet object; ``run_id`` and ``status`` come from its key."""
    row = pq.read_table(io.BytesIO(body)).to_pylist()[0]
    return ShardOutcome(
        run_id=run_id,
        shard=row["shard"],
        attempt=row["attempt"],
        status=status,
        start=row["point_start"],
        end=row["point_end"],
        point_count=row["point_count"],
        started_at=row["started_at"].isoformat(),
        finished_at=row["finished_at"].isoformat(),
        duration_ms=row["duration_ms"],
        worker_version=row["worker_version"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        schema_version=row["schema_version"],
        points_object=row.get("points_object"),
        points_rows=row.get("points_rows"),
        points_bytes=row.get("points_bytes"),
        points_sha256=row.get("points_sha256"),
        kernel_version=row.get("kernel_version"),  # absent from older records
    )


def outcome_entries(body: bytes) -> list[tuple[int, int]]:
    """``(shard, attempt)`` of every record in an outcomes Parquet object (compacted ones hold
    many); only those two columns are decoded."""
    parquet = pq.ParquetFile(pa.BufferReader(body))  # not read_table: a quarter of the cost
    table = parquet.read(columns=["shard", "attempt"], use_threads=False)
    return list(zip(table["shard"].to_pylist(), table["attempt"].to_pylist(), strict=True))


def commit_entries(
    body: bytes,
) -> list[tuple[int, str | None, int | None, int | None, str | None]]:
    """``(shard, points_object, points_rows, points_bytes, points_sha256)`` of every success
    record in an outcomes object; a record written before commits has None for the last four."""
    parquet = pq.ParquetFile(pa.BufferReader(body))
    names = ["shard", "points_object", "points_rows", "points_bytes", "points_sha256"]
    present = [n for n in names if n in parquet.schema_arrow.names]
    table = parquet.read(columns=present, use_threads=False)
    columns = [table[n].to_pylist() if n in present else [None] * table.num_rows for n in names]
    return list(zip(*columns, strict=True))


class PointsWriter:
    """Streams batches of points into one in-memory Parquet object, a row group per batch."""

    def __init__(self, table: Table) -> None:
        self._schema = table.arrow_schema
        self._buffer = io.BytesIO()
        self._writer = pq.ParquetWriter(self._buffer, self._schema, compression=COMPRESSION)

    def write(
        self,
        index: NDArray[np.int64],
        params: Mapping[str, NDArray[np.generic]],
        metrics: Mapping[str, NDArray[np.generic]],
    ) -> None:
        columns = {"point_index": index, **params, **metrics}
        arrays = [pa.array(columns[f.name], type=f.type) for f in self._schema]
        self._writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self._schema))

    def finish(self) -> bytes:
        self._writer.close()
        return self._buffer.getvalue()
