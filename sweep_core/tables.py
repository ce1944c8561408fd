"""The tables a run leaves behind, as data: the Parquet schemas and the Glue/Athena columns.

One declaration per table gives both the pyarrow schema the workers write and the column types
the Glue tables declare, so the two cannot drift. Types are ones Athena reads: signed integers,
doubles, booleans, strings and millisecond UTC timestamps; partition columns live in the path only.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Literal

from attrs import frozen

from sweep_core.kernel_spec import KernelSpec

if TYPE_CHECKING:
    import pyarrow as pa

# pyarrow is imported where a schema is built: submitting a run (the CLI, the parent) declares
# tables without building one, and would pay a sixth of a second to import it.

ColumnType = Literal["int32", "int64", "double", "boolean", "string", "timestamp"]

_ARROW: dict[ColumnType, tuple[str, tuple[str, ...]]] = {
    "int32": ("int32", ()),
    "int64": ("int64", ()),
    "double": ("float64", ()),
    "boolean": ("bool_", ()),
    "string": ("string", ()),
    "timestamp": ("timestamp", ("ms", "UTC")),
}
"""The pyarrow type factory of each column type, and its arguments."""
_ATHENA: dict[ColumnType, str] = {
    "int32": "int",
    "int64": "bigint",
    "double": "double",
    "boolean": "boolean",
    "string": "string",
    "timestamp": "timestamp",
}


@frozen
class Column:
    name: str
    type: ColumnType
    doc: str = ""

    @property
    def arrow_type(self) -> pa.DataType:
        import pyarrow as pa

        factory, args = _ARROW[self.type]
        data_type: pa.DataType = getattr(pa, factory)(*args)
        return data_type

    @property
    def athena_type(self) -> str:
        return _ATHENA[self.type]


@frozen
class Table:
    """A table: the columns inside its files and the partition columns in its path."""

    name: str
    columns: tuple[Column, ...]
    partitions: tuple[Column, ...]

    @property
    def arrow_schema(self) -> pa.Schema:
        """The schema of the Parquet files (partition columns excluded)."""
        return _arrow_schema(self.columns)

    @property
    def full_arrow_schema(self) -> pa.Schema:
        """The schema a reader sees: file columns, then partition columns."""
        return _arrow_schema(self.columns + self.partitions)


@functools.lru_cache(maxsize=64)
def _arrow_schema(columns: tuple[Column, ...]) -> pa.Schema:
    # Cached: a worker asks twice per shard, and building one costs as much as a small shard's
    # points. Schemas are immutable, so sharing one is safe.
    import pyarrow as pa

    return pa.schema([pa.field(c.name, c.arrow_type) for c in columns])


_RUN_PARTITIONS = (
    Column("run_date", "string", "UTC date the run was submitted, YYYY-MM-DD"),
    Column("run_id", "string", "the run"),
)

OUTCOMES = Table(
    name="outcomes",
    columns=(
        Column("shard", "int32", "shard number within the run"),
        Column("attempt", "int32", "1 for the first attempt at the shard, then 2, 3, ..."),
        Column("point_start", "int64", "first point index of the shard"),
        Column("point_end", "int64", "one past the last point index"),
        Column("point_count", "int64", "points in the shard"),
        Column("started_at", "timestamp", "when the attempt started"),
        Column("finished_at", "timestamp", "when the attempt ended"),
        Column("duration_ms", "double", "wall time of the attempt"),
        Column("error_code", "string", "stable code of the failure, null on success"),
        Column("error_message", "string", "what went wrong, null on success"),
        Column("worker_version", "string", "version of the code that ran the attempt"),
        Column("schema_version", "string", "contract version of the record"),
        Column("points_object", "string", "the points object a success commits (its name)"),
        Column("points_rows", "int64", "rows of the committed points object"),
        Column("points_bytes", "int64", "size of the committed points object"),
        Column("points_sha256", "string", "SHA-256 of the committed points object"),
        Column(
            "kernel_version",
            "string",
            "version of the kernel that ran the attempt, null when no kernel was loaded",
        ),
    ),
    partitions=(*_RUN_PARTITIONS, Column("status", "string", "success or failure")),
)

_METRIC_TYPES: dict[str, ColumnType] = {
    "float64": "double",
    "int64": "int64",
    "bool": "boolean",
    "string": "string",
}
_PARAM_TYPES: dict[str, ColumnType] = {"float": "double", "int": "int64", "choice": "string"}


def points_table(kernel: KernelSpec) -> Table:
    """One row per point: its index, every parameter and every metric of ``kernel``."""
    columns = [Column("point_index", "int64", "index of the point in the run's point space")]
    columns += [Column(p.name, _PARAM_TYPES[p.kind], p.doc) for p in kernel.params]
    columns += [Column(m.name, _METRIC_TYPES[m.kind], m.doc) for m in kernel.metrics]
    return Table(name=f"points_{kernel.name}", columns=tuple(columns), partitions=_RUN_PARTITIONS)
