"""Reading a run through the store port: its manifest, its shard records and where it stands.

A shard is succeeded once it has a success record; failed when it has failure records and none
newer is awaited (a redrive awaits one more); otherwise missing (not yet run, running, or
dispatched again by a redrive). Every reader (status, wait, reports, the API) uses this one
meaning.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from attrs import evolve, frozen

from sweep_core.contract import RedriveRecord, RunManifest
from sweep_core.convert import loads, structure
from sweep_core.layout import Layout, run_date_of
from sweep_core.ports import NotFound, ObjectStore


@frozen
class ShardRecords:
    succeeded: frozenset[int]
    failed_attempts: Counter[int]

    @classmethod
    def from_entries(cls, entries: Iterable[tuple[str, int, int | None]]) -> ShardRecords:
        """From ``(status, shard, attempt)`` records. An attempt seen twice counts once: while a
        compaction is deleting the shard objects it has copied, a record can be in both."""
        succeeded: set[int] = set()
        failures: set[tuple[int, int | None]] = set()
        for status, shard, attempt in entries:
            if status == "success":
                succeeded.add(shard)
            else:
                failures.add((shard, attempt))
        return cls(frozenset(succeeded), Counter(shard for shard, _ in failures))


@frozen
class RunStatus:
    """Shards succeeded, failed (and not dispatched again) and missing, of ``total``."""

    run_id: str
    total: int
    succeeded: int
    failed: int
    failed_attempts: int
    points_total: int
    failed_shards: frozenset[int] = frozenset()
    """Which shards ``failed`` counts (``failed_shards``): readers that show them, such as the
    report, use this rather than working the meaning out again."""
    cancelled: int = 0
    """Failed shards that were not run because the run was cancelled (``sweep cancel``)."""

    @property
    def missing(self) -> int:
        return self.total - self.succeeded - self.failed

    @property
    def settled(self) -> bool:
        """Every shard has its last record: a success, or a failure nothing newer is awaited for."""
        return self.missing == 0

    def _repr_html_(self) -> str:
        from sweep_core.html import html_fields

        return html_fields(self.as_dict().items())

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "points": self.points_total,
            "shards": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "missing": self.missing,
            "failed_attempts": self.failed_attempts,
            "cancelled": self.cancelled,
        }


def tally(
    run_id: str,
    total: int,
    points_total: int,
    records: ShardRecords,
    redrives: Iterable[RedriveRecord] = (),
) -> RunStatus:
    failed = failed_shards(records, redrives)
    return RunStatus(
        run_id=run_id,
        total=total,
        succeeded=len(records.succeeded),
        failed=len(failed),
        failed_attempts=sum(records.failed_attempts.values()),
        points_total=points_total,
        failed_shards=frozenset(failed),
    )


def failed_shards(records: ShardRecords, redrives: Iterable[RedriveRecord] = ()) -> set[int]:
    """The shards that have failed for good: failure records, no success, and no redrive still
    awaiting a newer attempt."""
    awaited: dict[int, int] = {}
    for redrive in redrives:
        for shard in redrive.shards:
            awaited[shard.shard] = max(awaited.get(shard.shard, 0), shard.failed_attempts)
    return {
        shard
        for shard, count in records.failed_attempts.items()
        if shard not in records.succeeded and count > awaited.get(shard, 0)
    }


def shard_records(store: ObjectStore, layout: Layout, run_id: str) -> ShardRecords:
    """The run's outcome records: one object per record, and the rows of compacted files."""
    entries: list[tuple[str, int, int | None]] = []
    for key in store.list(layout.outcomes_prefix(run_id)):
        fields = Layout.outcome_fields(key)
        if fields is not None:
            entries.append(fields)
        elif Layout.is_compacted(key):
            from sweep_core.records import outcome_entries  # pyarrow: only for compacted runs

            status = Layout.outcome_status(key)
            entries.extend((status, s, a) for s, a in outcome_entries(store.get(key)))
        else:
            Layout.parse_outcome_key(key)  # raises: not an outcome object
    return ShardRecords.from_entries(entries)


def run_status(store: ObjectStore, layout: Layout, manifest: RunManifest) -> RunStatus:
    """Where the run stands, from its outcome objects and its folder's redrive and cancel
    records."""
    run_id = manifest.run_id
    records = shard_records(store, layout, run_id)
    folder = set(store.list(layout.run_folder(run_id)))
    redrive_prefix = layout.redrive_prefix(run_id)
    redrives = [
        structure(loads(store.get(key)), RedriveRecord)
        for key in sorted(folder)
        if key.startswith(redrive_prefix)
    ]
    status = tally(run_id, manifest.shard_count, manifest.point_count, records, redrives)
    if layout.cancel_key(run_id, len(redrives)) in folder:
        cancelled = cancelled_shards(store, layout, run_id, status.failed_shards)
        status = evolve(status, cancelled=cancelled)
    return status


CANCELLED = "CANCELLED"
"""The error code of a shard that was not run because its run was cancelled."""


def cancelled_shards(store: ObjectStore, layout: Layout, run_id: str, shards: Iterable[int]) -> int:
    """How many of ``shards`` (failed ones) last failed because the run was cancelled."""
    from sweep_core.records import read_outcome  # pyarrow: only for cancelled runs

    count = 0
    for shard in shards:
        keys = sorted(store.list(layout.failure_prefix(run_id, shard)))
        if keys:
            last = read_outcome(store.get(keys[-1]), run_id, "failure")
            count += last.error_code == CANCELLED
    return count


def find_manifest(store: ObjectStore, layout: Layout, run_id: str, where: str) -> RunManifest:
    """The run's manifest; ``LookupError`` naming ``where`` when there is no such run."""
    try:
        run_date_of(run_id)
    except ValueError as exc:
        raise LookupError(str(exc)) from None
    manifest = read_manifest(store, layout, run_id)
    if manifest is None:
        raise LookupError(f"no run {run_id} in {where}")
    return manifest


def read_manifest(store: ObjectStore, layout: Layout, run_id: str) -> RunManifest | None:
    try:
        return structure(loads(store.get(layout.manifest_key(run_id))), RunManifest)
    except NotFound:
        return None
