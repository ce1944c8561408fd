"""The Glue tables of a results prefix, as data, and the partitions one run adds to them: the
stack creates the tables and the parent registers each run's partitions from this one source.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from attrs import frozen

from sweep_core.kernel_spec import KernelSpec
from sweep_core.layout import Layout, run_date_of
from sweep_core.tables import OUTCOMES, Column, Table, points_table

OUTCOME_STATUSES = ("success", "failure")
RUN_PARTITION_INDEX = "by_run_id"
"""A Glue partition index on ``run_id``, so a per-run query finds its partitions directly."""


@frozen
class StorageFormat:
    """How a table's files are read: Hive input/output formats, SerDe, table parameters."""

    classification: str
    input_format: str
    output_format: str
    serde: str
    serde_parameters: Mapping[str, str]


PARQUET = StorageFormat(
    classification="parquet",
    input_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    output_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    serde="org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
    serde_parameters={"serialization.format": "1"},
)
JSON = StorageFormat(
    classification="json",
    input_format="org.apache.hadoop.mapred.TextInputFormat",
    output_format="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
    serde="org.openx.data.jsonserde.JsonSerDe",
    serde_parameters={"case.insensitive": "false"},
)


@frozen
class Struct:
    """A nested JSON object read as a Hive ``struct`` of some of its scalar fields."""

    name: str
    fields: tuple[Column, ...]
    doc: str = ""

    @property
    def athena_type(self) -> str:
        return "struct<" + ",".join(f"{f.name}:{f.athena_type}" for f in self.fields) + ">"


RUN_PARTITIONS = tuple(c for c in OUTCOMES.partitions if c.name in ("run_date", "run_id"))

MANIFESTS = Table(
    name="manifests",
    columns=(
        Column("created_at", "string", "when the run was accepted, ISO 8601 with offset"),
        Column("point_count", "int64", "points in the run"),
        Column("shard_count", "int64", "shards in the run"),
        Column("worker_version", "string", "version of the code that accepted the run"),
        Column("schema_version", "string", "contract version of the manifest"),
    ),
    partitions=RUN_PARTITIONS,
)
"""``runs/.../manifest.json``, one JSON object per file. Redrive records share the folder; they
read as rows whose ``shard_count`` is NULL (select manifests with ``shard_count IS NOT NULL``)."""

MANIFEST_SPEC = Struct(
    "spec",
    (
        Column("kernel", "string", "the kernel the run evaluates"),
        Column("seed", "int64", "the run's seed"),
        Column("label", "string", "the user's label, if any"),
    ),
    "the scalar fields of the sweep request (the full request is in the object)",
)


@frozen
class GlueTable:
    """One table: its columns and partitions, format, and where under the prefix it lives."""

    table: Table
    root: str
    """The folder under the results prefix: ``outcomes``, ``runs`` or ``points/<kernel>``."""
    storage: StorageFormat
    description: str
    structs: tuple[Struct, ...] = ()

    @property
    def name(self) -> str:
        return self.table.name

    def columns(self) -> list[tuple[str, str, str]]:
        """``(name, athena type, comment)`` of each column inside the files."""
        plain = [(c.name, c.athena_type, c.doc) for c in self.table.columns]
        return plain + [(s.name, s.athena_type, s.doc) for s in self.structs]

    def partition_keys(self) -> list[tuple[str, str, str]]:
        return [(c.name, c.athena_type, c.doc) for c in self.table.partitions]

    def parameters(self) -> dict[str, str]:
        """Table parameters. No ``projection.*`` keys: partitions are registered (see above)."""
        return {
            "EXTERNAL": "TRUE",
            "classification": self.storage.classification,
            "partition_filtering.enabled": "true",
        }

    def location(self, bucket: str, layout: Layout) -> str:
        return f"s3://{bucket}/{layout.table_root(self.root)}"

    def partition_location(self, bucket: str, layout: Layout, values: Sequence[str]) -> str:
        names = [c.name for c in self.table.partitions]
        if len(values) != len(names):
            raise ValueError(f"{self.name} is partitioned by {names}, not {list(values)}")
        path = "/".join(f"{n}={v}" for n, v in zip(names, values, strict=True))
        return f"{self.location(bucket, layout)}{path}/"

    def storage_descriptor(self, location: str) -> dict[str, Any]:
        """The Glue API ``StorageDescriptor`` of the table or of one of its partitions."""
        return {
            "Columns": [{"Name": n, "Type": t, "Comment": d} for n, t, d in self.columns()],
            "Location": location,
            "InputFormat": self.storage.input_format,
            "OutputFormat": self.storage.output_format,
            "SerdeInfo": {
                "SerializationLibrary": self.storage.serde,
                "Parameters": dict(self.storage.serde_parameters),
            },
        }


def outcomes_table() -> GlueTable:
    return GlueTable(
        OUTCOMES, "outcomes", PARQUET, "One row per shard attempt: success or failure record."
    )


def manifests_table() -> GlueTable:
    return GlueTable(
        MANIFESTS,
        "runs",
        JSON,
        "One row per run manifest (redrive records read as rows with NULL shard_count).",
        structs=(MANIFEST_SPEC,),
    )


def kernel_points_table(kernel: KernelSpec) -> GlueTable:
    return GlueTable(
        points_table(kernel),
        f"points/{kernel.name}",
        PARQUET,
        f"One row per point of the {kernel.name} kernel: index, parameters, metrics.",
    )


def glue_tables(kernels: Iterable[KernelSpec]) -> tuple[GlueTable, ...]:
    """Every table of a results prefix: outcomes, manifests, one points table per kernel."""
    points = [kernel_points_table(k) for k in sorted(kernels, key=lambda k: k.name)]
    return (outcomes_table(), manifests_table(), *points)


def run_partitions(
    bucket: str, layout: Layout, run_id: str, kernel: KernelSpec
) -> dict[str, list[dict[str, Any]]]:
    """The Glue ``PartitionInput``s a run adds, by table: its manifest folder, its two outcome
    statuses and its kernel's points folder. Pure; equal for equal arguments."""
    run_date = run_date_of(run_id)
    out: dict[str, list[dict[str, Any]]] = {}
    outcomes = outcomes_table()
    out[outcomes.name] = [
        _partition(outcomes, bucket, layout, [run_date, run_id, status])
        for status in OUTCOME_STATUSES
    ]
    for table in (manifests_table(), kernel_points_table(kernel)):
        out[table.name] = [_partition(table, bucket, layout, [run_date, run_id])]
    return out


def _partition(table: GlueTable, bucket: str, layout: Layout, values: list[str]) -> dict[str, Any]:
    location = table.partition_location(bucket, layout, values)
    return {"Values": values, "StorageDescriptor": table.storage_descriptor(location)}


class PartitionRegistrationError(RuntimeError):
    """Glue refused some of a run's partitions for a reason other than their existing."""


def register_run_partitions(
    glue: Any, database: str, bucket: str, layout: Layout, run_id: str, kernel: KernelSpec
) -> None:
    """Register a run's partitions (``BatchCreatePartition``), before the run writes anything.

    Idempotent: partitions that already exist count as registered, so a retried submit or a
    redrive may call it again.

    Why registration and not partition projection: the ``run_id`` partition holds a random
    token, so it could only be projected with the ``injected`` type, and Athena then refuses
    every query without an equality on ``run_id`` -- the cross-run queries
    (``failure_rate_by_day``) included. A table with projection enabled ignores registered
    partitions entirely, so the two cannot be mixed on one table. Registered partitions serve
    both per-run and cross-run queries.

    Raises
    ------
    PartitionRegistrationError
        Listing every partition Glue refused, with its error code.
    """
    refused: list[str] = []
    for table, partitions in run_partitions(bucket, layout, run_id, kernel).items():
        response = glue.batch_create_partition(
            DatabaseName=database, TableName=table, PartitionInputList=partitions
        )
        for error in response.get("Errors", []):
            code = error.get("ErrorDetail", {}).get("ErrorCode", "")
            if code != "AlreadyExistsException":
                values = "/".join(error.get("PartitionValues", []))
                message = error.get("ErrorDetail", {}).get("ErrorMessage", "")
                refused.append(f"{table} {values}: {code} {message}".strip())
    if refused:
        raise PartitionRegistrationError(
            f"Glue refused {len(refused)} partitions of run {run_id}: " + "; ".join(refused)
        )
