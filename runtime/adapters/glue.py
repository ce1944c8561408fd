"""Glue adapter: registers a run's partitions so Athena sees them from the first write."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sweep_core.catalog import register_run_partitions
from sweep_core.kernel_spec import KernelSpec
from sweep_core.layout import Layout


def glue_client(region: str | None = None) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "glue", region_name=region, config=Config(retries={"mode": "adaptive", "max_attempts": 10})
    )


class GlueRegistrar:
    """``PartitionRegistrar`` on Glue ``BatchCreatePartition`` (idempotent)."""

    def __init__(
        self,
        client: Any,
        database: str,
        bucket: str,
        layout: Layout,
        kernels: Mapping[str, KernelSpec],
    ) -> None:
        self.client = client
        self.database = database
        self.bucket = bucket
        self.layout = layout
        self.kernels = kernels

    def register_run(self, run_id: str, kernel: str) -> None:
        register_run_partitions(
            self.client, self.database, self.bucket, self.layout, run_id, self.kernels[kernel]
        )
