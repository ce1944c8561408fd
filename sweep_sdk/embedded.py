"""The embedded target: runs on this machine through the same parent and worker handlers as
the cloud, with a process pool as the invoker and a data folder laid out exactly like the results
bucket. The only module of the client that imports ``runtime``; ``resolve_target`` imports it
when the embedded target is chosen.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrs import define, field

from runtime.adapters.local_store import LocalStore, random_token
from runtime.handlers.parent import Fanout, ParentDeps, redrive_run, submit_run
from runtime.local.pool import DetachedLocalInvoker, LocalInvoker, WorkerPool
from runtime.local.runner import EmbeddedSettings, StartedRunner, data_dir_from_env
from sweep_core.contract import AcceptedRun, CancelRecord, ErrorResponse, RunManifest
from sweep_core.convert import ContractError
from sweep_core.kernels import catalog, points_schema
from sweep_core.layout import Layout
from sweep_core.ports import Invoker, utc_now
from sweep_core.run_index import RunRow, cancel_run, find_run_id, list_runs
from sweep_core.runs import RunStatus, find_manifest, run_status
from sweep_sdk.errors import SubmitError
from sweep_sdk.query.local import LocalQueryEngine

if TYPE_CHECKING:
    import pyarrow as pa


@define
class EmbeddedTarget:
    """Runs on this machine through the real handlers; see the module docstring."""

    data_dir: Path
    workers: int | None = None
    detach: bool = False
    shard_timeout: float | None = None
    layout: Layout = field(factory=Layout)
    runner: StartedRunner | None = None
    """With ``detach``: a runner started early (see ``runtime.local.runner``) that takes the
    tasks if it was started with this target's settings."""
    _invoker: LocalInvoker | DetachedLocalInvoker | None = None

    @classmethod
    def from_env(
        cls, data_dir: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> EmbeddedTarget:
        return cls(data_dir_from_env(data_dir), **kwargs)

    @property
    def settings(self) -> EmbeddedSettings:
        """What this target's runner and pool run with; see ``EmbeddedSettings.resolve``."""
        return EmbeddedSettings.resolve(
            self.data_dir, self.workers, self.shard_timeout, self.layout.prefix
        )

    @property
    def store(self) -> LocalStore:
        return LocalStore(self.data_dir)

    def parent_deps(self) -> ParentDeps:
        return ParentDeps(
            self.store, self.layout, self.invoker, utc_now, random_token, fanout=Fanout.local()
        )

    @property
    def invoker(self) -> Invoker:
        if self._invoker is None:
            settings = self.settings
            if self.detach:
                self._invoker = DetachedLocalInvoker(settings, self.runner)
            else:
                self._invoker = LocalInvoker(
                    WorkerPool(settings.root, self.layout, settings.workers, settings.shard_timeout)
                )
        return self._invoker

    def submit(self, raw: Any) -> AcceptedRun:
        response = submit_run(raw, self.parent_deps())
        if isinstance(response.body, ErrorResponse):
            body = response.body
            if response.status_code == 400:
                raise ContractError(body.error.problems, code=body.error.code)
            raise SubmitError(response.status_code, body)
        return response.body

    def manifest(self, run_id: str) -> RunManifest:
        return find_manifest(self.store, self.layout, run_id, self.location)

    def status(self, manifest: RunManifest) -> RunStatus:
        return run_status(self.store, self.layout, manifest)

    def redrive(self, run_id: str, force: bool = False) -> list[int]:
        return redrive_run(run_id, self.parent_deps(), force)

    def cancel(self, run_id: str) -> CancelRecord:
        return cancel_run(self.store, self.layout, run_id, utc_now)

    def runs(
        self, since: str | None = None, label: str | None = None, kernel: str | None = None
    ) -> list[RunRow]:
        return list_runs(self.store, self.layout, since=since, label=label, kernel=kernel)

    def resolve(self, ref: str) -> str:
        return find_run_id(self.store, self.layout, ref)

    def results(self, manifest: RunManifest) -> pa.Table:
        schema = points_schema(manifest.spec.kernel)
        folder = self.data_dir / self.layout.points_prefix(manifest.spec.kernel, manifest.run_id)
        if not folder.is_dir():
            return schema.empty_table()
        import pyarrow.dataset as ds  # here: `sweep run` and `status` never need it

        dataset = ds.dataset(folder, format="parquet", schema=schema, exclude_invalid_files=False)
        return dataset.to_table().sort_by("point_index")

    def run_query(self, sql: str, params: Sequence[Any]) -> pa.Table:
        return self.query_engine().run(sql, params)

    def query_engine(self) -> LocalQueryEngine:
        return LocalQueryEngine(self.data_dir, self.layout, catalog().values())

    @property
    def location(self) -> str:
        return str(self.data_dir)

    @property
    def owns_workers(self) -> bool:
        """Whether this process runs the worker pool itself (not detached)."""
        return isinstance(self._invoker, LocalInvoker)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for this process's own workers (not needed to follow a run; ``wait`` is)."""
        if isinstance(self._invoker, LocalInvoker):
            return self._invoker.pool.join(timeout)
        return True
