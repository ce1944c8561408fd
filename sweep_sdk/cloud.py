"""The remote target: submit through the deployed API, follow runs in S3, query with Athena.

Configured from ``SWEEP_API_URL`` and friends, or from the stack outputs saved with
``pulumi stack output --json > stack.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrs import define, frozen

if TYPE_CHECKING:
    import pyarrow as pa

    from runtime.adapters.s3 import S3Store
    from sweep_sdk.query.athena import AthenaEngine

from sweep_core.contract import AcceptedRun, CancelRecord, RunManifest
from sweep_core.layout import Layout
from sweep_core.run_index import RunRow, list_runs
from sweep_core.runs import (
    CommitProblem,
    PointsCommit,
    RunStatus,
    committed_points,
    read_compactions,
    run_status,
    success_commits,
)
from sweep_core.settings import DEFAULT_PREFIX
from sweep_sdk.errors import RepairError
from sweep_sdk.reading import LayoutReader
from sweep_sdk.remote import RemoteApi
from sweep_sdk.targets import API_URL_ENV

_ENV = {
    "api_url": API_URL_ENV,
    "region": "SWEEP_REGION",
    "bucket": "SWEEP_BUCKET",
    "prefix": "SWEEP_PREFIX",
    "workgroup": "SWEEP_WORKGROUP",
    "database": "SWEEP_DATABASE",
}


@frozen
class RemoteConfig:
    """Where a deployed stack lives; the same names as the stack's outputs."""

    api_url: str
    region: str
    bucket: str
    prefix: str = DEFAULT_PREFIX
    workgroup: str = "primary"
    database: str = "sweep"

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str) -> RemoteConfig:
        missing = [k for k in ("api_url", "region", "bucket") if not values.get(k)]
        if missing:
            raise ValueError(f"{source} does not give {', '.join(missing)}")
        known = {k: str(values[k]) for k in _ENV if values.get(k)}
        return cls(**known)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> RemoteConfig | None:
        """The remote target the environment names, or None when ``SWEEP_API_URL`` is unset."""
        if not env.get(API_URL_ENV):
            return None
        values = {key: env.get(var) for key, var in _ENV.items()}
        return cls.from_mapping(values, "the SWEEP_* environment")

    @classmethod
    def from_stack_outputs(cls, path: str | os.PathLike[str]) -> RemoteConfig:
        """From ``pulumi stack output --json`` saved to a file."""
        return cls.from_mapping(json.loads(Path(path).read_text()), str(path))


@define
class RemoteTarget(LayoutReader):
    """A deployed stack. Submitting needs only the API: the S3 reader and the Athena engine are
    made on first use, so a submit imports neither boto3's S3 adapter nor pyarrow."""

    config: RemoteConfig
    api: RemoteApi
    layout: Layout
    _store: S3Store | None = None
    _engine: AthenaEngine | None = None

    @classmethod
    def from_config(cls, config: RemoteConfig) -> RemoteTarget:
        return cls(config, RemoteApi(config.api_url, config.region), Layout(config.prefix))

    @property
    def store(self) -> S3Store:
        if self._store is None:
            from runtime.adapters.s3 import S3Store, s3_client

            self._store = S3Store(s3_client(self.config.region), self.config.bucket)
        return self._store

    @property
    def engine(self) -> AthenaEngine:
        if self._engine is None:
            import boto3

            from sweep_sdk.query.athena import AthenaEngine

            athena = boto3.client("athena", region_name=self.config.region)
            self._engine = AthenaEngine(athena, self.config.workgroup, self.config.database)
        return self._engine

    @property
    def owns_workers(self) -> bool:
        return False

    @property
    def location(self) -> str:
        return f"s3://{self.config.bucket}/{self.layout.prefix}"

    def submit(self, raw: Any) -> AcceptedRun:
        return self.api.submit(raw)

    def status(self, manifest: RunManifest) -> RunStatus:
        return run_status(self.store, self.layout, manifest)

    def redrive(
        self, run_id: str, force: bool = False, allow_kernel_change: bool = False
    ) -> list[int]:
        return self.api.redrive(run_id, force, allow_kernel_change)

    def cancel(self, run_id: str) -> CancelRecord:
        return self.api.cancel(run_id)

    def runs(
        self, since: str | None = None, label: str | None = None, kernel: str | None = None
    ) -> list[RunRow]:
        return list_runs(self.store, self.layout, since=since, label=label, kernel=kernel)

    def repair(self, manifest: RunManifest, problems: Sequence[CommitProblem]) -> list[int]:
        raise RepairError(
            f"{problems[0]}: repairing needs the success records retired, and no role of a "
            "deployed stack may delete results; submit the sweep again"
        )

    def committed(self, manifest: RunManifest) -> list[PointsCommit]:
        compactions = read_compactions(self.store, self.layout, manifest.run_id)
        successes = success_commits(self.store, self.layout, manifest.run_id, compactions)
        return committed_points(self.layout, manifest, successes, compactions)

    def run_query(self, sql: str, params: Sequence[Any]) -> pa.Table:
        return self.engine.run(sql, params)

    def join(self, timeout: float | None = None) -> bool:
        return True
