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
from runtime.handlers.parent import Fanout, KernelChanged, ParentDeps, redrive_run, submit_run
from runtime.local.liveness import run_alive
from runtime.local.pool import DetachedLocalInvoker, LocalInvoker, WorkerPool
from runtime.local.runner import EmbeddedSettings, StartedRunner, data_dir_from_env
from sweep_core.contract import AcceptedRun, CancelRecord, ErrorBody, ErrorResponse, RunManifest
from sweep_core.convert import ContractError
from sweep_core.kernels import catalog
from sweep_core.layout import Layout
from sweep_core.ports import Invoker, utc_now
from sweep_core.run_index import RunRow, cancel_run, list_runs
from sweep_core.runs import (
    CommitProblem,
    PointsCommit,
    Published,
    RunStatus,
    committed_points,
    read_compactions,
    run_status,
)
from sweep_sdk.errors import RepairError, SubmitError
from sweep_sdk.query.local import LocalQueryEngine
from sweep_sdk.reading import LayoutReader

if TYPE_CHECKING:
    import pyarrow as pa


@define
class EmbeddedTarget(LayoutReader):
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

    def status(self, manifest: RunManifest) -> RunStatus:
        """Where the run stands; missing shards whose runner is gone count as lost."""
        root = str(self.data_dir)
        return run_status(self.store, self.layout, manifest, lambda run_id: run_alive(root, run_id))

    def redrive(
        self, run_id: str, force: bool = False, allow_kernel_change: bool = False
    ) -> list[int]:
        try:
            return redrive_run(run_id, self.parent_deps(), force, allow_kernel_change)
        except KernelChanged as exc:
            error = ErrorResponse(ErrorBody(exc.code, exc.message))
            raise SubmitError(409, error) from None

    def cancel(self, run_id: str) -> CancelRecord:
        return cancel_run(self.store, self.layout, run_id, utc_now)

    def runs(
        self, since: str | None = None, label: str | None = None, kernel: str | None = None
    ) -> list[RunRow]:
        root = str(self.data_dir)
        return list_runs(
            self.store, self.layout, since=since, label=label, kernel=kernel,
            runner_alive=lambda run_id: run_alive(root, run_id),
        )  # fmt: skip

    def repair(self, manifest: RunManifest, problems: Sequence[CommitProblem]) -> list[int]:
        """Retire the damaged objects' commits (their success records and the objects) and
        redrive: the shards run again and commit fresh points."""
        whole = [p for p in problems if p.shard is None]
        if whole:
            raise RepairError(
                f"{whole[0]}: a compacted file holds many shards' points and cannot be re-run "
                "shard by shard; restore it, or submit the sweep again"
            )
        store = self.store
        prefix = self.layout.points_prefix(manifest.spec.kernel, manifest.run_id)
        for problem in problems:
            assert problem.shard is not None
            store.delete(self.layout.success_key(manifest.run_id, problem.shard))
            if problem.key.startswith(prefix):
                store.delete(problem.key)
        return self.redrive(manifest.run_id)

    def committed(self, manifest: RunManifest) -> list[PointsCommit]:
        """The run's committed points objects; the success records come through the outcome
        index (a run's 10,000 success objects are read once, not by every reader)."""
        from runtime.adapters.outcome_index import OutcomeIndex, success_commits

        compactions = read_compactions(self.store, self.layout, manifest.run_id)
        rows = OutcomeIndex(self.data_dir, self.layout).read([manifest.run_id], with_keys=True)
        successes = success_commits(rows, Published.of(compactions))
        return committed_points(self.layout, manifest, successes, compactions)

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
