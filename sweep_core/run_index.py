"""The runs under a results prefix: their folders in one listing, ``latest`` and id prefixes,
cancel records, and the summaries that let a listing skip the outcomes of settled runs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from datetime import datetime

from attrs import frozen

from sweep_core.contract import CancelRecord, RunManifest, RunSummary
from sweep_core.convert import dumps, loads, structure
from sweep_core.layout import RUN_ID_PATTERN, Layout
from sweep_core.ports import Clock, ObjectStore
from sweep_core.runs import RunnerAlive, RunStatus, read_manifest, run_status

LATEST = "latest"
SECOND = len("20261123T152100Z")
"""The part of a run id that is its creation time."""


class RunCancelled(ValueError):
    """A redrive of a cancelled run without ``force``."""


@frozen
class RunFolder:
    """What one run's folder holds, by record name (``manifest.json``, ``redrive-0001.json``,
    ``cancel-0000.json``, ``summary-0001.json``)."""

    run_id: str
    records: frozenset[str]

    @property
    def generation(self) -> int:
        """The dispatch generation: 0 after the submit, n after the n-th redrive."""
        return sum(1 for r in self.records if r.startswith("redrive-"))

    @property
    def cancelled(self) -> bool:
        """Whether the current generation was cancelled."""
        return f"cancel-{self.generation:04d}.json" in self.records

    @property
    def has_summary(self) -> bool:
        return f"summary-{self.generation:04d}.json" in self.records


def run_folders(store: ObjectStore, layout: Layout) -> dict[str, RunFolder]:
    """Every run that has a manifest, by id, from one listing of the runs folder."""
    records: dict[str, set[str]] = {}
    for key in store.list(layout.runs_root()):
        found = Layout.run_record(key)
        if found is not None:
            records.setdefault(found[0], set()).add(found[1])
    return {
        run_id: RunFolder(run_id, frozenset(names))
        for run_id, names in records.items()
        if "manifest.json" in names
    }


def run_folder(store: ObjectStore, layout: Layout, run_id: str) -> RunFolder:
    """One run's folder (empty when there is no such run)."""
    names = [Layout.run_record(key) for key in store.list(layout.run_folder(run_id))]
    return RunFolder(run_id, frozenset(found[1] for found in names if found is not None))


def resolve_run_id(
    ref: str, run_ids: Iterable[str], created_at: Callable[[str], str] | None = None
) -> str:
    """The run ``ref`` names: an id, ``latest`` (the newest run), or a unique prefix of an id.

    Run ids name their creation time to the second; ``created_at`` (a run's manifest time)
    orders runs created within the same second as the newest.

    Raises
    ------
    LookupError
        No run, or a prefix that several runs share (they are listed).
    """
    ids = sorted(run_ids)
    if ref == LATEST:
        if not ids:
            raise LookupError("there is no run yet")
        same_second = [i for i in ids if i[:SECOND] == ids[-1][:SECOND]]
        if len(same_second) > 1 and created_at is not None:
            return max(same_second, key=created_at)
        return ids[-1]
    if ref in ids:
        return ref
    matches = [run_id for run_id in ids if run_id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        template = "00000000T000000Z-00000000"
        if len(ref) > len(template) or not RUN_ID_PATTERN.match(ref + template[len(ref) :]):
            raise LookupError(
                f"{ref!r} is not a run id (like 20261123T152100Z-1a2b3c4d), "
                f"{LATEST!r}, or the start of one"
            )
        raise LookupError(f"no run {ref}")
    shown = ", ".join(matches[-5:]) + (" ..." if len(matches) > 5 else "")
    raise LookupError(f"{ref} is the start of {len(matches)} run ids: {shown}")


def find_run_id(store: ObjectStore, layout: Layout, ref: str) -> str:
    """``resolve_run_id`` over the runs in the store; a whole run id needs no listing."""
    if RUN_ID_PATTERN.match(ref):
        return ref

    def created_at(run_id: str) -> str:
        manifest = read_manifest(store, layout, run_id)
        return "" if manifest is None else manifest.created_at

    return resolve_run_id(ref, run_folders(store, layout), created_at)


def cancel_run(store: ObjectStore, layout: Layout, run_id: str, clock: Clock) -> CancelRecord:
    """Record that the run's current generation is cancelled (once; a second call returns the
    first record). Workers check it before each shard; what is running finishes."""
    folder = run_folder(store, layout, run_id)
    if "manifest.json" not in folder.records:
        raise LookupError(f"no run {run_id}")
    key = layout.cancel_key(run_id, folder.generation)
    record = CancelRecord(run_id, folder.generation, clock().isoformat())
    if store.put_if_absent(key, dumps(record).encode()):
        return record
    return structure(loads(store.get(key)), CancelRecord)


def is_cancelled(store: ObjectStore, layout: Layout, run_id: str) -> bool:
    """Whether a shard of this run may still start: one listing of the run's small folder."""
    return run_folder(store, layout, run_id).cancelled


@frozen
class RunRow:
    """One run as ``sweep runs`` lists it."""

    run_id: str
    label: str | None
    kernel: str
    points: int
    shards: int
    succeeded: int
    failed: int
    missing: int
    cancelled: int
    created_at: str
    finished_at: str | None
    state: str
    """``running``, ``settled``, or ``cancelled`` (a cancelled run, settled or not)."""

    @property
    def duration_s(self) -> float | None:
        """From submit to the last record of a settled run; None while it runs."""
        if self.finished_at is None:
            return None
        return (
            datetime.fromisoformat(self.finished_at) - datetime.fromisoformat(self.created_at)
        ).total_seconds()

    def as_dict(self) -> dict[str, object]:
        return {
            "run_id": self.run_id, "label": self.label, "kernel": self.kernel,
            "points": self.points, "shards": self.shards, "succeeded": self.succeeded,
            "failed": self.failed, "missing": self.missing, "cancelled": self.cancelled,
            "state": self.state, "created_at": self.created_at,
            "finished_at": self.finished_at, "duration_s": self.duration_s,
        }  # fmt: skip


def last_finished(store: ObjectStore, layout: Layout, run_id: str) -> str | None:
    """When the run's last outcome record was written (reads each shard outcome object once:
    a run's summary is recorded once it settles)."""
    from sweep_core.records import read_outcome  # pyarrow: once per run, as it settles

    latest: str | None = None
    for key in store.list(layout.outcomes_prefix(run_id)):
        fields = Layout.outcome_fields(key)
        if fields is None:
            continue  # a compacted file: its run's summary was recorded before compaction
        outcome = read_outcome(
            store.get(key), run_id, "success" if fields[0] == "success" else "failure"
        )
        if latest is None or outcome.finished_at > latest:
            latest = outcome.finished_at
    return latest


def run_row(
    store: ObjectStore,
    layout: Layout,
    folder: RunFolder,
    manifest: RunManifest | None = None,
    status: RunStatus | None = None,
    runner_alive: RunnerAlive | None = None,
) -> RunRow | None:
    """A run's row: from its recorded summary if it has settled, else from its status (a
    settled run's summary is recorded then, best effort: a reader without write access still
    answers). None when the run has no manifest."""
    if folder.has_summary:
        body = store.get(layout.summary_key(folder.run_id, folder.generation))
        return _row(structure(loads(body), RunSummary), cancelled=folder.cancelled)
    manifest = manifest or read_manifest(store, layout, folder.run_id)
    if manifest is None:
        return None
    status = status or run_status(store, layout, manifest, runner_alive)
    spec = manifest.spec
    if not status.settled:
        state = "cancelled" if folder.cancelled else "lost" if status.stalled else "running"
        return RunRow(
            manifest.run_id, spec.label, spec.kernel, manifest.point_count,
            manifest.shard_count, status.succeeded, status.failed, status.missing,
            status.cancelled, manifest.created_at, None, state,
        )  # fmt: skip
    summary = RunSummary(
        run_id=manifest.run_id,
        generation=folder.generation,
        label=spec.label,
        kernel=spec.kernel,
        point_count=manifest.point_count,
        shard_count=manifest.shard_count,
        created_at=manifest.created_at,
        finished_at=last_finished(store, layout, manifest.run_id),
        succeeded=status.succeeded,
        failed=status.failed,
        cancelled=status.cancelled,
    )
    # A cache: a store this reader may not write to still gets its answer.
    with contextlib.suppress(Exception):
        store.put_if_absent(
            layout.summary_key(manifest.run_id, folder.generation), dumps(summary).encode()
        )
    return _row(summary, cancelled=folder.cancelled)


def _row(summary: RunSummary, cancelled: bool) -> RunRow:
    return RunRow(
        summary.run_id, summary.label, summary.kernel, summary.point_count,
        summary.shard_count, summary.succeeded, summary.failed, 0, summary.cancelled,
        summary.created_at, summary.finished_at, "cancelled" if cancelled else "settled",
    )  # fmt: skip


def list_runs(
    store: ObjectStore,
    layout: Layout,
    *,
    since: str | None = None,
    label: str | None = None,
    kernel: str | None = None,
    runner_alive: RunnerAlive | None = None,
) -> list[RunRow]:
    """The runs under ``layout``, newest first (a run nothing runs any more is ``lost``, when
    ``runner_alive`` can tell).

    Parameters
    ----------
    since
        Only runs created on or after this ISO date or date-time (UTC).
    label
        Only runs whose label contains this text (case-insensitive).
    kernel
        Only runs of this kernel.
    """
    floor = _since(since)
    rows = []
    for run_id, folder in sorted(run_folders(store, layout).items(), reverse=True):
        if floor is not None and run_id < floor:
            continue  # run ids start with their creation time
        row = run_row(store, layout, folder, runner_alive=runner_alive)
        if row is None:
            continue
        if kernel is not None and row.kernel != kernel:
            continue
        if label is not None and label.casefold() not in (row.label or "").casefold():
            continue
        rows.append(row)
    # Ids order runs by their second; the manifests' times order runs within one second.
    rows.sort(key=lambda row: row.created_at, reverse=True)
    return rows


def _since(value: str | None) -> str | None:
    """The smallest run id created at or after ``value``."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--since {value!r} is not a date (YYYY-MM-DD) or ISO date-time") from None
    return f"{moment:%Y%m%dT%H%M%S}Z"
