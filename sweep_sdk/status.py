"""Where a run stands, computed from the keys of its outcome objects and its redrive records.

Pure: the caller lists the store (a folder or S3). A shard is succeeded once it has a success
record; failed when it has failure records and none newer is awaited; otherwise missing (not
yet run, running, or dispatched again by a redrive).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from attrs import frozen

from sweep_sdk.contract import RedriveRecord
from sweep_sdk.layout import Layout


@frozen
class ShardRecords:
    succeeded: frozenset[int]
    failed_attempts: Counter[int]

    @classmethod
    def from_keys(
        cls, keys: Iterable[str], compacted: Iterable[tuple[str, int, int]] = ()
    ) -> ShardRecords:
        """From the keys of shard outcome objects, plus ``(status, shard, attempt)`` rows read
        from compacted files (``sweep compact``), where one object holds many shards' records."""
        entries: list[tuple[str, int, int | None]] = []
        for key in keys:
            outcome = Layout.parse_outcome_key(key)
            entries.append((outcome.status, outcome.shard, outcome.attempt))
        entries.extend(compacted)
        return cls.from_entries(entries)

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

    @property
    def missing(self) -> int:
        return self.total - self.succeeded - self.failed

    @property
    def settled(self) -> bool:
        """Every shard has its last record: a success, or a failure nothing newer is awaited for."""
        return self.missing == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "points": self.points_total,
            "shards": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "missing": self.missing,
            "failed_attempts": self.failed_attempts,
        }


def tally(
    run_id: str,
    total: int,
    points_total: int,
    records: ShardRecords,
    redrives: Iterable[RedriveRecord] = (),
) -> RunStatus:
    awaited: dict[int, int] = {}
    for redrive in redrives:
        for shard in redrive.shards:
            awaited[shard.shard] = max(awaited.get(shard.shard, 0), shard.failed_attempts)
    failed = {
        shard
        for shard, count in records.failed_attempts.items()
        if shard not in records.succeeded and count > awaited.get(shard, 0)
    }
    return RunStatus(
        run_id=run_id,
        total=total,
        succeeded=len(records.succeeded),
        failed=len(failed),
        failed_attempts=sum(records.failed_attempts.values()),
        points_total=points_total,
    )
