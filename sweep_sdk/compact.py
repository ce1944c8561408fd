"""Compaction: a settled run's shard objects rewritten as a few large Parquet files, checked
against them before any is deleted (``compact_run`` says how).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from attrs import asdict, frozen

from sweep_core.kernels import points_schema
from sweep_core.layout import COMPACTED_STEM, Layout
from sweep_core.ports import ObjectStore
from sweep_core.records import COMPRESSION
from sweep_core.runs import (
    CommitError,
    CommitProblem,
    PointsCommit,
    SuccessCommit,
    committed_points,
    read_compactions,
    read_manifest,
    run_status,
)
from sweep_core.tables import OUTCOMES

ROW_GROUP_ROWS = 1 << 20
"""Rows per row group of a compacted file (tens of MB of points: what Athena and DuckDB read
best, a reader's unit of parallelism and of skipping by statistics)."""
_T = TypeVar("_T")

FILE_ROWS = 1 << 22
"""Rows per compacted file at most; a larger partition is split into several files."""


class CompactionError(RuntimeError):
    """The run cannot be compacted (not settled, unexpected objects), or a check failed."""


class DeletableStore(ObjectStore, Protocol):
    def delete(self, key: str) -> None:
        """Remove the object at ``key`` (absent is fine)."""
        ...


@frozen
class PartitionReport:
    """What one partition held before and holds after: the check's figures, the new files."""

    partition: str
    objects: int
    rows: int
    key_sum: int
    digest: str
    files: tuple[str, ...]
    bytes_before: int
    bytes_after: int
    sums: tuple[tuple[str, int, int, str], ...] = ()
    """``(file, rows, size, sha256)`` of each new file: what readers check it against."""


@frozen
class CompactionReport:
    run_id: str
    partitions: tuple[PartitionReport, ...]
    record: str | None
    """The compaction record written, or None when there was nothing to compact."""
    recovered: int
    """Objects deleted by finishing an earlier, interrupted compaction."""

    @property
    def objects_before(self) -> int:
        return sum(p.objects for p in self.partitions)

    @property
    def files_after(self) -> int:
        return sum(len(p.files) for p in self.partitions)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "objects_before": self.objects_before}


@frozen
class _Partition:
    prefix: str
    schema: pa.Schema
    key_columns: tuple[str, ...]
    commits: Mapping[str, PointsCommit] | None = None
    """For points: the committed objects (only they are copied; the others, left by attempts
    that died before their success record, are retired unread)."""


def compact_run(
    store: DeletableStore,
    layout: Layout,
    run_id: str,
    *,
    row_group_rows: int = ROW_GROUP_ROWS,
    file_rows: int = FILE_ROWS,
) -> CompactionReport:
    """Compact a settled run in place.

    A run of 10,000 shards leaves 20,000 small Parquet objects; Athena opens each one a query reads
    (locally, the outcome index spares the outcome objects, but not the points objects).
    ``compact_run`` rewrites each partition of a run — its points
    (``points/<kernel>/run_date=…/run_id=…/``) and its success and failure outcomes
    (``outcomes/…/status=success/`` and ``status=failure/``) — into ``compacted-0001.parquet``,
    ``compacted-0002.parquet``, … in the same partition: same columns and types, same partitions, so
    every table, view and query reads them unchanged; only the number of objects shrinks.

    Nothing is lost, by construction and by check:

    1. only a settled run is compacted (every shard has its success, or failures nothing newer is
       awaited for), so no worker writes while it runs;
    2. the shard objects are copied in key order (shard, then attempt), so the compacted rows are
       the shards' rows, sorted by point index (points) or by shard and attempt (outcomes);
    3. the compacted files are read back and checked against the shard objects: row count, the sum
       of the key column and a SHA-256 over every value of every row in that order must be equal (a
       mismatch removes the new files and leaves the run as it was);
    4. a compaction record (``runs/…/compaction-0001.json``) naming the new files (with their
       rows, size and SHA-256) and the objects they replace is written, and only then are the
       shard objects deleted. The record is the publication: readers (``sweep_core.runs``) read a
       compacted file only once a record names it and a shard object only until one retires it,
       so an interrupted compaction shows the old objects or the new files, never both. It is
       finished by running it again: replaced objects still present are deleted, and compacted
       files that no record names (written, never verified) are removed and redone.

    Only committed points are copied (the objects success records name, each checked against
    its commit first); a points object no success commits (left by a worker that died before its
    success record) is retired with the rest, unread.

    Status, redrive, results, outcomes and the queries read compacted files: status counts a
    compacted file's ``(shard, attempt)`` rows as the objects they replace, and a worker numbers a
    redriven shard's next attempt after the attempts in compacted failure files.

    Local only for now: it needs a store that can delete (``LocalStore.delete``). No cloud role may
    delete results, so an S3 version is a ``delete`` (DeleteObjects) on an adapter run with its own,
    narrower role; this module takes any store with ``delete``. Do not run it while a redrive of the
    same run is in flight. Once a shard's success object is compacted away, a worker no longer sees
    that the shard succeeded: a stray duplicate delivery of it (Lambda's at-least-once, never the
    local pool, which has finished before a run settles) would add a second copy of its rows; an S3
    version must make the worker consult the compaction records first.

    Raises
    ------
    LookupError
        There is no such run.
    CompactionError
        The run is not settled, a partition holds an object of another shape, or the check of
        the compacted files against the shard objects failed (the run is then left as it was).
    """
    manifest = read_manifest(store, layout, run_id)
    if manifest is None:
        raise LookupError(f"no run {run_id}")
    recovered = _finish_interrupted(store, layout, run_id)
    status = run_status(store, layout, manifest)
    if not status.settled:
        raise CompactionError(
            f"run {run_id} is not settled ({status.missing} of {status.total} shards have no "
            "final record yet); compact it once every shard has finished"
        )
    compactions = read_compactions(store, layout, run_id)
    successes: list[SuccessCommit] = []
    success = _Partition(layout.status_prefix(run_id, "success"), OUTCOMES.arrow_schema, ("shard",))
    failure = _Partition(
        layout.status_prefix(run_id, "failure"), OUTCOMES.arrow_schema, ("shard", "attempt")
    )
    written: list[str] = []
    done: dict[str, tuple[PartitionReport, list[str]] | None] = {}
    try:
        # Successes first: the commits are read from the very rows being compacted (each
        # success object is read once), and they say which points objects are copied.
        done["success"] = _compact_partition(
            store, run_id, success, row_group_rows, file_rows, written, successes.extend
        )
        commits = committed_points(layout, manifest, successes, compactions)
        points = _Partition(
            layout.points_prefix(manifest.spec.kernel, run_id),
            points_schema(manifest.spec.kernel),
            ("point_index",),
            {c.key: c for c in commits if c.shard is not None},
        )
        done["points"] = _compact_partition(
            store, run_id, points, row_group_rows, file_rows, written
        )
        done["failure"] = _compact_partition(
            store, run_id, failure, row_group_rows, file_rows, written
        )
    except BaseException:
        for key in written:
            store.delete(key)
        raise
    reports = [r for r in (done["points"], done["success"], done["failure"]) if r is not None]
    if not reports:
        return CompactionReport(run_id, (), None, recovered)
    record = _write_record(store, layout, run_id, reports)
    for _, replaced in reports:
        for _ in _in_order(store.delete, replaced):
            pass
    return CompactionReport(run_id, tuple(r for r, _ in reports), record, recovered)


def _compact_partition(
    store: DeletableStore,
    run_id: str,
    part: _Partition,
    row_group_rows: int,
    file_rows: int,
    written: list[str],
    commits_seen: Callable[[list[SuccessCommit]], object] | None = None,
) -> tuple[PartitionReport, list[str]] | None:
    keys = list(store.list(part.prefix))
    shards = sorted(k for k in keys if _is_shard_object(k, part.prefix))
    known = set(shards)
    others = [k for k in keys if k not in known and not Layout.is_compacted(k)]
    if others:
        raise CompactionError(f"unexpected objects in {part.prefix}: {others[:3]}")
    orphans: list[str] = []
    if part.commits is not None:
        absent = [c for key, c in part.commits.items() if key not in known]
        if absent:
            missing = [CommitProblem(run_id, c.shard, c.key, "missing") for c in absent]
            raise CompactionError(f"{CommitError(missing)}; `sweep verify {run_id}` lists them")
        orphans = [k for k in shards if k not in part.commits]
        shards = [k for k in shards if k in part.commits]
    if not shards:
        return None
    numbers = [_compacted_number(k) for k in keys if Layout.is_compacted(k)]
    first = max(numbers, default=0) + 1

    before = _Check(part)
    writer = _CompactedWriter(store, part, first, row_group_rows, file_rows, written)
    bytes_before = 0
    for key, body, table in _in_order(lambda k: _fetch(store, k), shards):
        if part.commits is not None:
            problem = part.commits[key].check(run_id, body)
            if problem is not None:
                raise CompactionError(f"{problem}; `sweep redrive --repair {run_id}` re-runs it")
        bytes_before += len(body)
        if not table.schema.equals(part.schema):
            raise CompactionError(f"{key} does not have the table's columns and types")
        if commits_seen is not None:
            columns = [table[name].to_pylist() for name in _COMMIT_COLUMNS]
            commits_seen(list(zip(*columns, strict=True)))
        before.add(table, key)
        writer.add(table)
    files = writer.close()
    # Finish the shard objects' check first: rows out of order there are named by shard key,
    # before the compacted files (which would hold the same disorder) are read back.
    expected = before.figures()

    after = _Check(part)
    bytes_after = 0
    sums = []
    for key in files:
        body = store.get(key)
        bytes_after += len(body)
        parquet = pq.ParquetFile(pa.BufferReader(body))
        sums.append((key, parquet.metadata.num_rows, len(body), hashlib.sha256(body).hexdigest()))
        for group in range(parquet.metadata.num_row_groups):
            after.add(parquet.read_row_group(group, use_threads=False), key)
    found = after.figures()
    if found != expected:
        raise CompactionError(
            f"compacted files of {part.prefix} do not hold exactly the shard objects' rows: "
            f"{found} != {expected}"
        )
    rows, key_sum, digest = expected
    report = PartitionReport(
        part.prefix, len(shards), rows, key_sum, digest, tuple(files), bytes_before, bytes_after,
        tuple(sums),
    )  # fmt: skip
    return report, shards + orphans


_COMMIT_COLUMNS = ("shard", "points_object", "points_rows", "points_bytes", "points_sha256")


def _fetch(store: ObjectStore, key: str) -> tuple[str, bytes, pa.Table]:
    body = store.get(key)
    return key, body, _read(body)


_THREADS = 4
"""Objects read or deleted at once: the store and the Parquet decoder wait on I/O and release
the interpreter, so a few threads overlap the per-object latency (more so on S3)."""


def _in_order(fn: Callable[[str], _T], keys: Sequence[str], window: int = 256) -> Iterator[_T]:
    """``fn`` of every key, in key order, ``_THREADS`` at a time, ``window`` keys ahead at most."""
    with ThreadPoolExecutor(_THREADS) as pool:
        for lo in range(0, len(keys), window):
            yield from pool.map(fn, keys[lo : lo + window])


def _read(body: bytes) -> pa.Table:
    # ParquetFile without threads: a quarter of what read_table costs on a small object
    return pq.ParquetFile(pa.BufferReader(body)).read(use_threads=False)


def _is_shard_object(key: str, prefix: str) -> bool:
    name = key[len(prefix) :]
    return "/" not in name and name.startswith("shard=") and name.endswith(".parquet")


def _compacted_number(key: str) -> int:
    return int(key.rpartition("/")[2][len(COMPACTED_STEM) : -len(".parquet")])


class _CompactedWriter:
    """Buffers tables into row groups of ``row_group_rows`` and files of ``file_rows``."""

    def __init__(
        self,
        store: DeletableStore,
        part: _Partition,
        first: int,
        row_group_rows: int,
        file_rows: int,
        written: list[str],
    ) -> None:
        self.store, self.part, self.number = store, part, first
        self.row_group_rows, self.file_rows = row_group_rows, file_rows
        self.written = written
        self.files: list[str] = []
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._sink: io.BytesIO | None = None
        self._writer: pq.ParquetWriter | None = None
        self._file_rows = 0

    def add(self, table: pa.Table) -> None:
        while table.num_rows:
            room = min(self.row_group_rows - self._pending_rows, self.file_rows - self._file_rows)
            head, table = table.slice(0, room), table.slice(room)
            self._pending.append(head)
            self._pending_rows += head.num_rows
            if self._pending_rows >= self.row_group_rows or (
                self._file_rows + self._pending_rows >= self.file_rows
            ):
                self._flush_row_group()

    def close(self) -> list[str]:
        self._flush_row_group()
        self._close_file()
        return self.files

    def _flush_row_group(self) -> None:
        if not self._pending_rows:
            return
        if self._writer is None:
            self._sink = io.BytesIO()
            self._writer = pq.ParquetWriter(self._sink, self.part.schema, compression=COMPRESSION)
        group = pa.concat_tables(self._pending).combine_chunks()
        self._writer.write_table(group, row_group_size=group.num_rows)
        self._file_rows += group.num_rows
        self._pending, self._pending_rows = [], 0
        if self._file_rows >= self.file_rows:
            self._close_file()

    def _close_file(self) -> None:
        if self._writer is None or self._sink is None:
            return
        self._writer.close()
        key = Layout.compacted_key(self.part.prefix, self.number)
        if not self.store.put_if_absent(key, self._sink.getvalue()):
            raise CompactionError(f"{key} already exists: is another compaction running?")
        self.written.append(key)
        self.files.append(key)
        self.number += 1
        self._writer, self._sink, self._file_rows = None, None, 0


_CHECK_ROWS = 1 << 16


class _Check:
    """Row count, sum of the key column and a digest of every value, over rows in key order.

    The digest keeps one SHA-256 per column fed with that column's values in row order (nulls
    marked, numbers by their bits, strings length-prefixed), so it does not depend on how the
    rows are cut into files, row groups or batches; it also checks that the key columns
    strictly increase, which is what makes it a digest over the sorted rows.
    """

    def __init__(self, part: _Partition) -> None:
        self.part = part
        self.rows = 0
        self.key_sum = 0
        self._last: int | None = None
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._where = ""
        self._columns = [
            (hashlib.sha256(f.name.encode()), hashlib.sha256(f.name.encode())) for f in part.schema
        ]

    def add(self, table: pa.Table, where: str) -> None:
        """Count and digest ``table``'s rows, after every row added before.

        Tables are gathered and digested tens of thousands of rows at a time: the digest does
        not depend on the cut, and ten thousand small digests would cost more than reading.
        """
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self._where = where
        if self._pending_rows >= _CHECK_ROWS:
            self._digest()

    def _digest(self) -> None:
        if not self._pending_rows:
            self._pending.clear()
            return
        table = pa.concat_tables(self._pending).combine_chunks()
        self._pending, self._pending_rows = [], 0
        self._check_order(table, self._where)
        self.rows += table.num_rows
        self.key_sum += int(pc.sum(table[self.part.key_columns[0]]).as_py())
        for (valid, values), column in zip(self._columns, table.columns, strict=True):
            for chunk in column.chunks:
                validity, data = _value_bytes(chunk)
                valid.update(validity)
                values.update(data)

    def figures(self) -> tuple[int, int, str]:
        self._digest()
        total = hashlib.sha256()
        for valid, values in self._columns:
            total.update(valid.digest())
            total.update(values.digest())
        return self.rows, self.key_sum, total.hexdigest()

    def _check_order(self, table: pa.Table, where: str) -> None:
        # One int64 per row that orders as the key does: the point index, or shard and attempt
        # (both far below 2**31) packed as shard * 2**31 + attempt.
        order = np.zeros(table.num_rows, dtype=np.int64)
        for column in self.part.key_columns:
            values = np.asarray(table[column].to_numpy(), dtype=np.int64)
            order = order * (1 << 31) + values
        previous = np.array([] if self._last is None else [self._last], dtype=np.int64)
        steps = np.diff(np.concatenate([previous, order]))
        if (steps <= 0).any():
            raise CompactionError(
                f"rows read up to {where} are not in strictly increasing "
                f"{', '.join(self.part.key_columns)} order"
            )
        self._last = int(order[-1])


def _value_bytes(chunk: pa.Array) -> tuple[bytes, bytes]:
    """A chunk's validity (one byte per row) and its values; each concatenates across chunks
    to what the whole column gives, whatever the chunking."""
    valid = np.asarray(chunk.is_valid().to_numpy(zero_copy_only=False), dtype=np.uint8)
    kind = chunk.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        parts = []
        for value in chunk.to_pylist():
            data = b"" if value is None else value.encode()
            parts.append(len(data).to_bytes(8, "little") + data)
        return valid.tobytes(), b"".join(parts)
    if pa.types.is_timestamp(kind):
        chunk = chunk.cast(pa.int64())
    filled = pc.fill_null(chunk, 0) if chunk.null_count else chunk
    values = np.ascontiguousarray(filled.to_numpy(zero_copy_only=False))
    return valid.tobytes(), values.tobytes()


def _write_record(
    store: DeletableStore,
    layout: Layout,
    run_id: str,
    reports: Sequence[tuple[PartitionReport, list[str]]],
) -> str:
    body = {
        "run_id": run_id,
        "partitions": [
            {
                **asdict(report, filter=lambda a, _: a.name != "sums"),
                "files": list(report.files),
                "checksums": {
                    key: {"rows": rows, "size": size, "sha256": sha}
                    for key, rows, size, sha in report.sums
                },
                "replaced": [k[len(report.partition) :] for k in replaced],
            }
            for report, replaced in reports
        ],
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    number = 1 + sum(1 for _ in store.list(layout.compaction_prefix(run_id)))
    while not store.put_if_absent(layout.compaction_key(run_id, number), text):
        number += 1
    return layout.compaction_key(run_id, number)


def compaction_records(store: ObjectStore, layout: Layout, run_id: str) -> list[dict[str, Any]]:
    """The run's compaction records, oldest first."""
    return [json.loads(store.get(k)) for k in store.list(layout.compaction_prefix(run_id))]


def _finish_interrupted(store: DeletableStore, layout: Layout, run_id: str) -> int:
    """Finish what an interrupted compaction left: delete the objects a record says were
    replaced, and remove compacted files no record names (never checked, so not trusted)."""
    deleted = 0
    named: set[str] = set()
    for record in compaction_records(store, layout, run_id):
        for part in record["partitions"]:
            files = list(part["files"])
            named.update(files)
            missing = [f for f in files if not store.exists(f)]
            if missing:
                raise CompactionError(
                    f"compacted files {missing[:3]} named by a compaction record of run "
                    f"{run_id} are missing; the shard objects they replaced may be lost"
                )
            for name in part["replaced"]:
                key = part["partition"] + name
                if store.exists(key):
                    store.delete(key)
                    deleted += 1
    for key in _compacted_keys(store, layout, run_id):
        if key not in named:
            store.delete(key)
    return deleted


def _compacted_keys(store: ObjectStore, layout: Layout, run_id: str) -> Iterator[str]:
    manifest = read_manifest(store, layout, run_id)
    assert manifest is not None
    prefixes: Iterable[str] = (
        layout.points_prefix(manifest.spec.kernel, run_id),
        layout.outcomes_prefix(run_id),
    )
    for prefix in prefixes:
        yield from (k for k in store.list(prefix) if Layout.is_compacted(k))
