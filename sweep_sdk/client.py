"""Submit sweeps and follow runs: ``submit``, ``open_run`` and the ``Run`` handle.

With no remote target configured a run goes to the embedded target: the same parent and worker
handlers as in the cloud, with a process pool as the invoker and a data folder laid out exactly
like the results bucket (``./.sweep`` unless ``SWEEP_DATA_DIR`` or ``data_dir`` says otherwise).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from attrs import define

from sweep_core.contract import AcceptedRun, CancelRecord, RunManifest, SweepRequest
from sweep_core.convert import unstructure
from sweep_core.html import html_fields, html_table
from sweep_core.named_queries import named_query
from sweep_core.run_index import RunRow
from sweep_core.runs import CommitProblem, RunStatus
from sweep_sdk.targets import embedded_chosen

if TYPE_CHECKING:
    import pyarrow as pa
    import xarray as xr


class Target(Protocol):
    """Where runs go: the embedded target on this machine, or a deployed stack."""

    @property
    def owns_workers(self) -> bool: ...

    @property
    def location(self) -> str:
        """Where the results lie: a data folder or an ``s3://`` prefix."""
        ...

    def submit(self, raw: Any) -> AcceptedRun: ...

    def manifest(self, run_id: str) -> RunManifest: ...

    def status(self, manifest: RunManifest) -> RunStatus: ...

    def redrive(
        self, run_id: str, force: bool = False, allow_kernel_change: bool = False
    ) -> list[int]: ...

    def cancel(self, run_id: str) -> CancelRecord: ...

    def runs(
        self, since: str | None = None, label: str | None = None, kernel: str | None = None
    ) -> list[RunRow]: ...

    def resolve(self, ref: str) -> str:
        """The run id ``ref`` names: an id, ``latest``, or a unique prefix of an id."""
        ...

    def verify(self, manifest: RunManifest) -> list[CommitProblem]: ...

    def repair(self, manifest: RunManifest, problems: Sequence[CommitProblem]) -> list[int]: ...

    def results(self, manifest: RunManifest) -> pa.Table: ...

    def run_query(self, sql: str, params: Sequence[Any]) -> pa.Table: ...

    def join(self, timeout: float | None = None) -> bool: ...


@define
class Run:
    """A submitted run. Every method reads the results layout, so any process can follow it."""

    run_id: str
    target: Target
    accepted: AcceptedRun | None = None
    _manifest: RunManifest | None = None

    @property
    def manifest(self) -> RunManifest:
        if self._manifest is None:
            self._manifest = self.target.manifest(self.run_id)
        return self._manifest

    def status(self) -> RunStatus:
        """Shards succeeded, failed (no success yet), missing, and the total."""
        return self.target.status(self.manifest)

    def wait(
        self, timeout: float | None = None, progress: bool = True, poll: float = 0.1
    ) -> RunStatus:
        """Block until every shard has a success or failure record.

        Parameters
        ----------
        timeout
            Seconds to wait at most; ``None`` waits as long as it takes.
        progress
            Draw a progress bar: in a Jupyter notebook (a widget where ipywidgets is
            installed, else text), or when stderr is a terminal.

        Raises
        ------
        TimeoutError
            When ``timeout`` passes first; the run goes on.
        RunnerGone
            Shards are missing and the runner that had them is gone; ``redrive`` finishes
            the run.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        kind = progress_kind() if progress else None
        bar = None if kind is None else _progress_bar(self.manifest, kind)
        try:
            while True:
                asked = time.monotonic()
                status = self.status()
                # Reading the status lists every outcome object of the run (about 35 ms for
                # 10,000 shards): nap at least 25 times that long, so a waiting client never
                # takes more than a few percent of a core from the workers.
                nap_floor = 25 * (time.monotonic() - asked)
                if bar is not None:
                    note = _progress_note(status, bar.format_dict["elapsed"])
                    bar.set_postfix_str(note, refresh=False)
                    bar.update(status.succeeded + status.failed - bar.n)
                if status.settled:
                    return status
                if status.stalled:
                    from sweep_sdk.errors import RunnerGone

                    raise RunnerGone(self.run_id, status.lost, status.total)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(
                        f"run {self.run_id}: {status.missing} of {status.total} shards still "
                        f"running after {timeout} s"
                    )
                nap = max(poll, nap_floor) if left is None else min(max(poll, nap_floor), left)
                # Our own workers wake us the moment they are idle; polling the folder from
                # this process would take CPU from them on a small machine.
                if self.target.owns_workers and not self.target.join(
                    nap if left else max(nap, 1.0)
                ):
                    continue
                time.sleep(nap)
        finally:
            if bar is not None:
                bar.close()

    def results(self) -> pa.Table:
        """Every computed point of the run (index, parameters, metrics), by point index."""
        return self.target.results(self.manifest)

    def outcomes(self) -> pa.Table:
        """Every outcome record of the run, one row per attempt, with its status."""
        return self.query("SELECT * FROM outcomes WHERE run_id = ? ORDER BY shard, status, attempt")

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        """Run Athena SQL over this run's tables (on DuckDB locally).

        Each ``?`` placeholder takes this run's id unless ``params`` are given.
        """
        if params is None:
            from sweep_sdk.query.local import placeholders  # sqlglot: only for queries

            params = [self.run_id] * placeholders(sql)
        values = list(params)
        return self.target.run_query(sql, values)

    def named(self, name: str) -> pa.Table:
        """Run one of the shipped queries (``sweep_sdk.query.local.QUERY_NAMES``) for this run."""
        return self.query(named_query(name))

    def redrive(
        self, force: bool = False, repair: bool = False, allow_kernel_change: bool = False
    ) -> list[int]:
        """Dispatch again every shard without a success, under the same run id (a cancelled
        run only with ``force``); with ``repair``, first also the shards whose committed
        points ``verify`` finds damaged (raises ``RepairError`` where that cannot be done).

        Refused (``SubmitError``, code ``KERNEL_CHANGED``) when the run's kernel is registered
        at another version than the run was made with, unless ``allow_kernel_change``: each
        outcome record names the version that made it."""
        if repair:
            problems = self.verify()
            if problems:
                return self.target.repair(self.manifest, problems)
        return self.target.redrive(self.run_id, force, allow_kernel_change)

    def verify(self) -> list[CommitProblem]:
        """Check every committed points object against its commit (there, size, SHA-256,
        rows); returns what is wrong, each naming the run, shard and object (empty: all good).
        """
        return self.target.verify(self.manifest)

    def cancel(self) -> CancelRecord:
        """Stop the run: no shard starts after this (each becomes a ``CANCELLED`` failure);
        shards already running finish. ``redrive(force=True)`` runs the rest later."""
        return self.target.cancel(self.run_id)

    def to_xarray(self) -> xr.Dataset:
        """The results as an xarray Dataset: for a grid, one dimension per axis (coordinates
        in the order given) and one variable per metric, failed points NaN and marked False
        in the ``computed`` variable; for random and Sobol runs, one ``point`` dimension.

        Needs the ``xarray`` extra (``pip install sweep[xarray]``).
        """
        from sweep_sdk.arrays import results_dataset

        return results_dataset(self.manifest, self.results())

    def _repr_html_(self) -> str:
        status = self.status()
        spec = self.manifest.spec
        rows = [
            ("run", self.run_id), ("kernel", spec.kernel), ("label", spec.label or ""),
            ("points", f"{status.points_total:,}"), ("shards", f"{status.total:,}"),
            ("succeeded", status.succeeded), ("failed", status.failed),
            ("missing", status.missing), ("cancelled", status.cancelled),
            ("where", self.target.location),
        ]  # fmt: skip
        return html_fields(rows)


class RunList(list[RunRow]):
    """Runs as ``runs()`` lists them, newest first; a table in a notebook."""

    def to_arrow(self) -> pa.Table:
        import pyarrow as pa

        columns = RUN_LIST_COLUMNS
        return pa.table({c: [row.as_dict()[c] for row in self] for c in columns})

    def _repr_html_(self) -> str:
        return html_table(RUN_LIST_COLUMNS, [row.as_dict() for row in self])


RUN_LIST_COLUMNS = (
    "run_id", "label", "kernel", "points", "shards", "succeeded", "failed", "missing",
    "cancelled", "state", "created_at", "duration_s",
)  # fmt: skip


def runs(
    *,
    target: Target | str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    since: str | None = None,
    label: str | None = None,
    kernel: str | None = None,
) -> RunList:
    """The runs of a target (by default as ``submit`` chooses it), newest first.

    Parameters
    ----------
    since
        Only runs created on or after this date (``YYYY-MM-DD``) or ISO date-time, UTC.
    label
        Only runs whose label contains this text (case-insensitive).
    kernel
        Only runs of this kernel.
    """
    chosen = resolve_target(target, data_dir=data_dir)
    return RunList(chosen.runs(since=since, label=label, kernel=kernel))


def submit(
    spec: SweepRequest | dict[str, Any] | str | os.PathLike[str],
    *,
    target: Target | str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    detach: bool = False,
) -> Run:
    """Submit a sweep and return its ``Run`` at once; the shards run in the background.

    Parameters
    ----------
    spec
        A ``SweepRequest``, its JSON form as a dict or text, or the path of a JSON file.
    target
        Where to run: a ``Target``, ``"embedded"``, or the path of saved stack outputs
        (``pulumi stack output --json``). By default a deployed stack named by
        ``$SWEEP_API_URL`` (with ``$SWEEP_REGION``, ``$SWEEP_BUCKET``, ...), else this machine.
    data_dir
        Data folder of the embedded target (default ``$SWEEP_DATA_DIR`` or ``./.sweep``).
    workers
        Worker processes of the embedded target (default: one per core); at least 1.
    detach
        Run the embedded target's workers in a separate process that outlives this one.

    Raises
    ------
    ContractError
        The request is invalid (or its file cannot be read); ``problems`` lists every reason
        with its path.
    ValueError
        ``workers`` is less than 1.
    SubmitError
        The target refused the request for another reason (e.g. a reused client token).
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    raw = _raw(spec)
    chosen = resolve_target(target, data_dir=data_dir, workers=workers, detach=detach)
    accepted = chosen.submit(raw)
    return Run(accepted.run_id, chosen, accepted)


def open_run(
    run_id: str,
    *,
    target: Target | str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> Run:
    """Reopen a run by id, ``latest``, or a unique prefix of its id (as git takes commit ids);
    raises ``LookupError`` when there is no such run or the prefix is not unique."""
    chosen = resolve_target(target, data_dir=data_dir)
    run = Run(chosen.resolve(run_id), chosen)
    _ = run.manifest
    return run


def resolve_target(
    target: Target | str | os.PathLike[str] | None,
    data_dir: str | os.PathLike[str] | None = None,
    **embedded: Any,
) -> Target:
    """The target ``target`` names; see ``submit``."""
    if embedded_chosen(target, data_dir):
        from sweep_sdk.embedded import EmbeddedTarget  # the only path to numpy and the handlers

        return EmbeddedTarget.from_env(data_dir, **embedded)
    if target is None:
        from sweep_sdk.cloud import RemoteConfig, RemoteTarget

        remote = RemoteConfig.from_env()
        assert remote is not None  # SWEEP_API_URL is set, or the embedded target was chosen
        return RemoteTarget.from_config(remote)
    if isinstance(target, str | os.PathLike):
        from sweep_sdk.cloud import RemoteConfig, RemoteTarget

        return RemoteTarget.from_config(RemoteConfig.from_stack_outputs(target))
    return target


def _raw(spec: SweepRequest | dict[str, Any] | str | os.PathLike[str]) -> Any:
    """The request as the target takes it: a dict, or JSON text (parsed by the target's
    validation, which raises ``ContractError`` for text that is not JSON).

    A string is JSON text when it starts like JSON (``{``, ``[``, a quote...) or is blank, and
    a file path otherwise; a path that cannot be read is a ``ContractError`` naming it.
    """
    if isinstance(spec, SweepRequest):
        return unstructure(spec)
    if isinstance(spec, str) and (not spec.strip() or spec.lstrip()[0] in '{["-0123456789'):
        return spec
    if isinstance(spec, os.PathLike | str):
        return _read_spec_file(Path(spec))
    return spec


def _read_spec_file(path: Path) -> str:
    from sweep_core.contract import Problem
    from sweep_core.convert import ContractError
    from sweep_core.validation import MAX_REQUEST_BYTES

    def refuse(reason: str) -> ContractError:
        return ContractError([Problem("$", f"cannot read spec file {str(path)!r}: {reason}")])

    try:
        size = path.stat().st_size
        if path.is_dir():
            raise refuse("it is a directory")
        if size > MAX_REQUEST_BYTES:
            raise ContractError(
                [
                    Problem(
                        "$",
                        f"spec file {str(path)!r} is {size:,} bytes; a request is at "
                        f"most {MAX_REQUEST_BYTES:,}",
                    )
                ],
                code="REQUEST_TOO_LARGE",
            )
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise refuse("no such file") from None
    except PermissionError:
        raise refuse("permission denied") from None
    except UnicodeDecodeError as exc:
        raise refuse(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise refuse(exc.strerror or str(exc)) from None


def progress_kind() -> str | None:
    """How ``wait`` shows progress here: ``notebook`` (a Jupyter widget), ``text``, or None
    (stderr is no terminal and this is no notebook: a log file gets no bar)."""
    if _in_notebook():
        try:
            import ipywidgets  # noqa: F401  (tqdm needs it)
        except ImportError:
            return "text"
        return "notebook"
    return "text" if sys.stderr.isatty() else None


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ipython = shell.get_ipython()
    return ipython is not None and "IPKernelApp" in getattr(ipython, "config", {})


def _progress_bar(manifest: RunManifest, kind: str) -> Any:
    if kind == "notebook":
        from tqdm.notebook import tqdm
    else:
        from tqdm import tqdm

    return tqdm(
        total=manifest.shard_count,
        unit="shard",
        desc=f"run {manifest.run_id}",
        dynamic_ncols=True,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} shards "
        "[{elapsed}, ETA {remaining}{postfix}]",
    )


def _progress_note(status: RunStatus, elapsed: float) -> str:
    """Failed shards and points per second (estimated: shards are nearly equal in size)."""
    done = status.succeeded + status.failed
    points = status.points_total * done / max(status.total, 1)
    rate = points / elapsed if elapsed > 0 else 0.0
    return f"{status.failed:,} failed, {rate:,.0f} points/s"
