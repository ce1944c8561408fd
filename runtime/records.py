"""Parquet encoding of what a worker leaves behind: outcome records and points tables."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from sweep_sdk.contract import ShardOutcome, ShardStatus
from sweep_sdk.tables import OUTCOMES, Table

COMPRESSION = "snappy"  # what every Athena engine version reads


def outcome_table(outcomes: Sequence[ShardOutcome]) -> pa.Table:
    """Outcomes as rows of the outcome objects' schema (partition columns are in keys, not here)."""
    rows = [
        {
            "shard": outcome.shard,
            "attempt": outcome.attempt,
            "point_start": outcome.start,
            "point_end": outcome.end,
            "point_count": outcome.point_count,
            "started_at": datetime.fromisoformat(outcome.started_at),
            "finished_at": datetime.fromisoformat(outcome.finished_at),
            "duration_ms": outcome.duration_ms,
            "error_code": outcome.error_code,
            "error_message": outcome.error_message,
            "worker_version": outcome.worker_version,
            "schema_version": outcome.schema_version,
        }
        for outcome in outcomes
    ]
    return pa.Table.from_pylist(rows, schema=OUTCOMES.arrow_schema)


def outcome_parquet(outcome: ShardOutcome) -> bytes:
    """One outcome as a one-row Parquet object."""
    return _to_bytes(outcome_table([outcome]))


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
    )


def outcome_entries(body: bytes) -> list[tuple[int, int]]:
    """``(shard, attempt)`` of every record in an outcomes Parquet object (compacted ones hold
    many); only those two columns are decoded."""
    parquet = pq.ParquetFile(pa.BufferReader(body))  # not read_table: a quarter of the cost
    table = parquet.read(columns=["shard", "attempt"], use_threads=False)
    return list(zip(table["shard"].to_pylist(), table["attempt"].to_pylist(), strict=True))


class PointsWriter:
    """Streams batches of points into one in-memory Parquet object, a row group per batch."""

    def __init__(self, table: Table) -> None:
        self._schema = table.arrow_schema
        self._buffer = io.BytesIO()
        self._writer = pq.ParquetWriter(self._buffer, self._schema, compression=COMPRESSION)
        self.rows = 0

    def write(
        self,
        index: NDArray[np.int64],
        params: Mapping[str, NDArray[np.generic]],
        metrics: Mapping[str, NDArray[np.generic]],
    ) -> None:
        columns = {"point_index": index, **params, **metrics}
        arrays = [pa.array(columns[f.name], type=f.type) for f in self._schema]
        self._writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self._schema))
        self.rows += len(index)

    def finish(self) -> bytes:
        self._writer.close()
        return self._buffer.getvalue()


def _to_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression=COMPRESSION)
    return buffer.getvalue()
