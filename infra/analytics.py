"""Analytics: the Glue database and tables over the results prefix, an Athena workgroup with an
enforced, encrypted result location and a bytes-scanned cutoff, and the shipped queries saved
as named queries. Partitions are registered by the parent at run start (see ``sweep_core.catalog``).
"""

from __future__ import annotations

from collections.abc import Iterable

import pulumi
import pulumi_aws as aws

from infra.config import ATHENA_RESULTS_PREFIX, StackConfig
from sweep_core.catalog import RUN_PARTITION_INDEX, GlueTable, glue_tables
from sweep_core.kernel_spec import KernelSpec
from sweep_core.layout import Layout
from sweep_core.named_queries import QUERY_NAMES, named_query


def query_description(sql: str) -> str:
    """The first comment line of a shipped query, which says what it answers."""
    for line in sql.splitlines():
        if line.startswith("--"):
            return line.removeprefix("--").strip()[:1024]
    return ""


class Analytics(pulumi.ComponentResource):
    """Glue database and tables, Athena workgroup, named queries."""

    TYPE = "sweep:analytics:Analytics"

    def __init__(
        self,
        name: str,
        config: StackConfig,
        bucket: pulumi.Input[str],
        kernels: Iterable[KernelSpec],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(self.TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        layout = Layout(config.results_prefix)
        self.tables_spec = glue_tables(kernels)
        self.database = aws.glue.CatalogDatabase(
            name,
            name=config.database_name,
            description=f"sweep results under s3://<results bucket>/{config.results_prefix}/",
            opts=child,
        )
        self.tables = {
            spec.name: self._table(name, spec, bucket, layout) for spec in self.tables_spec
        }
        self.workgroup = aws.athena.Workgroup(
            name,
            name=config.workgroup_name,
            description="sweep queries: results location and encryption enforced, scans capped",
            force_destroy=True,
            configuration={
                "enforce_workgroup_configuration": True,
                "publish_cloudwatch_metrics_enabled": True,
                "bytes_scanned_cutoff_per_query": config.athena_bytes_scanned_cutoff,
                "engine_version": {"selected_engine_version": "AUTO"},
                "result_configuration": {
                    "output_location": pulumi.Output.concat(
                        "s3://", bucket, "/", ATHENA_RESULTS_PREFIX
                    ),
                    "encryption_configuration": {"encryption_option": "SSE_S3"},
                },
            },
            opts=child,
        )
        self.named_queries = {
            query: aws.athena.NamedQuery(
                f"{name}-{query}",
                name=query,
                description=query_description(named_query(query)),
                database=self.database.name,
                workgroup=self.workgroup.name,
                query=named_query(query),
                opts=child,
            )
            for query in QUERY_NAMES
        }
        self.register_outputs({"database": self.database.name, "workgroup": self.workgroup.name})

    def _table(
        self, name: str, spec: GlueTable, bucket: pulumi.Input[str], layout: Layout
    ) -> aws.glue.CatalogTable:
        location = pulumi.Output.from_input(bucket).apply(lambda b: spec.location(b, layout))
        return aws.glue.CatalogTable(
            f"{name}-{spec.name}",
            name=spec.name,
            database_name=self.database.name,
            description=spec.description,
            table_type="EXTERNAL_TABLE",
            parameters=spec.parameters(),
            partition_keys=[
                {"name": n, "type": t, "comment": d} for n, t, d in spec.partition_keys()
            ],
            partition_indices=[{"index_name": RUN_PARTITION_INDEX, "keys": ["run_id"]}],
            storage_descriptor={
                "location": location,
                "input_format": spec.storage.input_format,
                "output_format": spec.storage.output_format,
                "ser_de_info": {
                    "serialization_library": spec.storage.serde,
                    "parameters": dict(spec.storage.serde_parameters),
                },
                "columns": [{"name": n, "type": t, "comment": d} for n, t, d in spec.columns()],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
