"""Reading a run through the store port: its manifest, its shard records and where it stands.

A shard is succeeded once it has a success record; failed when it has failure records and none
newer is awaited (a redrive awaits one more); otherwise missing (not yet run, running, or
dispatched again by a redrive), and lost when missing while nothing runs it any more (its
runner is gone). Every reader (status, wait, reports, the API) uses this one meaning.

Commits: a success record names the points object it publishes, with its rows, size and
SHA-256; only those objects are the run's points. A compaction record publishes compacted
files and retires the objects they replace in one write: before it, readers see the shard
objects; after it, the compacted files; never both. A compacted file no record names, or a
points object no success names, is not read.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import evolve, field, frozen

from sweep_core.contract import RedriveRecord, RunManifest
from sweep_core.convert import ContractError, loads, structure
from sweep_core.layout import Layout, run_date_of
from sweep_core.ports import NotFound, ObjectStore

if TYPE_CHECKING:
    import pyarrow as pa


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
    lost: int = 0
    """Missing shards nothing runs any more: the runner that had them is gone."""

    @property
    def missing(self) -> int:
        return self.total - self.succeeded - self.failed

    @property
    def stalled(self) -> bool:
        """Shards are missing and nothing runs them: waiting would never end."""
        return self.lost > 0 and self.lost == self.missing

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
            "lost": self.lost,
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


def shard_records(
    store: ObjectStore,
    layout: Layout,
    run_id: str,
    compactions: Sequence[Compaction] | None = None,
) -> ShardRecords:
    """The run's outcome records: one object per record, and the rows of compacted files, as
    the compaction records publish them (see the module docstring)."""
    if compactions is None:
        compactions = read_compactions(store, layout, run_id)
    published = Published.of(compactions)
    compacted = published.compacted
    entries: list[tuple[str, int, int | None]] = []
    for key in store.list(layout.outcomes_prefix(run_id)):
        fields = Layout.outcome_fields(key)
        if fields is not None:
            if not compactions or key not in published.replaced:
                entries.append(fields)
        elif Layout.is_compacted(key):
            if key not in compacted:
                continue  # written by a compaction that has not published it (yet)
            from sweep_core.records import outcome_entries  # pyarrow: only for compacted runs

            status = Layout.outcome_status(key)
            entries.extend((status, s, a) for s, a in outcome_entries(store.get(key)))
        else:
            Layout.parse_outcome_key(key)  # raises: not an outcome object
    return ShardRecords.from_entries(entries)


RunnerAlive = Callable[[str], bool | None]
"""Whether something still runs a run's shards: True, False (its runners are gone), or None
when this store cannot tell (a deployed stack: Lambda retries and records its own failures)."""


def run_status(
    store: ObjectStore,
    layout: Layout,
    manifest: RunManifest,
    runner_alive: RunnerAlive | None = None,
) -> RunStatus:
    """Where the run stands, from its outcome objects and its folder's redrive, cancel and
    compaction records; with ``runner_alive``, missing shards of a run whose runners are gone
    count as lost."""
    status = _status_now(store, layout, manifest)
    if status.missing and runner_alive is not None and runner_alive(manifest.run_id) is False:
        # Read again now that the runners are known gone: what they wrote before they went
        # is there, so a runner that finished and exited between the two reads is not lost.
        status = _status_now(store, layout, manifest)
        return evolve(status, lost=status.missing)
    return status


def _status_now(store: ObjectStore, layout: Layout, manifest: RunManifest) -> RunStatus:
    run_id = manifest.run_id
    folder = sorted(store.list(layout.run_folder(run_id)))
    compaction_prefix = layout.compaction_prefix(run_id)
    compactions = read_compactions(
        store, layout, run_id, [k for k in folder if k.startswith(compaction_prefix)]
    )
    records = shard_records(store, layout, run_id, compactions)
    redrive_prefix = layout.redrive_prefix(run_id)
    redrives = [
        _record(store.get(key), RedriveRecord, run_id, key)
        for key in folder
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
    """The run's manifest, None when there is none; ``CommitError`` naming it when it cannot
    be read (a corrupt manifest is not an invalid request of the user's)."""
    key = layout.manifest_key(run_id)
    try:
        body = store.get(key)
    except NotFound:
        return None
    return _record(body, RunManifest, run_id, key)


_R = TypeVar("_R")


def _record(body: bytes, cls: type[_R], run_id: str, key: str) -> _R:
    try:
        return structure(loads(body), cls)
    except ContractError as exc:
        first = exc.problems[0] if exc.problems else None
        why = "" if first is None else f" ({first.path}: {first.message})"
        raise CommitError([CommitProblem(run_id, None, key, f"corrupt record{why}")]) from None


# --- commits --------------------------------------------------------------------------------


@frozen
class Compaction:
    """A compaction record: per partition, the compacted files it publishes (with their rows,
    size and SHA-256 when recorded) and the objects it retires."""

    key: str
    files: Mapping[str, FileSum | None]
    retired: tuple[tuple[str, tuple[str, ...]], ...]
    """Per partition (a prefix), the names of the objects the compacted files replace."""

    def replaced(self) -> Iterator[str]:
        """The keys of the objects the compacted files replace."""
        for partition, names in self.retired:
            for name in names:
                yield partition + name


@frozen
class FileSum:
    rows: int
    size: int
    sha256: str


def read_compactions(
    store: ObjectStore, layout: Layout, run_id: str, keys: Iterable[str] | None = None
) -> list[Compaction]:
    """The run's compaction records, oldest first (``keys``: theirs, when already listed)."""
    found = []
    listed = store.list(layout.compaction_prefix(run_id)) if keys is None else keys
    for key in listed:
        try:
            body = json.loads(store.get(key))
            files: dict[str, FileSum | None] = {}
            retired = []
            for part in body["partitions"]:
                sums = part.get("checksums", {})
                for name in part["files"]:
                    given = sums.get(name)
                    files[name] = None if given is None else FileSum(**given)
                retired.append((str(part["partition"]), tuple(part["replaced"])))
        except (ValueError, KeyError, TypeError) as exc:
            problem = CommitProblem(run_id, None, key, f"unreadable compaction record: {exc!r}")
            raise CommitError([problem]) from None
        found.append(Compaction(key, files, tuple(retired)))
    return found


class Published:
    """Which objects of a run count, given its compaction records."""

    def __init__(self, compactions: Sequence[Compaction]) -> None:
        self.compactions = tuple(compactions)
        self.compacted = frozenset(key for c in self.compactions for key in c.files)
        self._replaced: frozenset[str] | None = None

    @classmethod
    def of(cls, compactions: Iterable[Compaction]) -> Published:
        return cls(list(compactions))

    @property
    def replaced(self) -> frozenset[str]:
        """The objects compactions retired; worked out on first use: once a compaction has
        finished they are gone, and a reader that meets none of them never needs the set."""
        if self._replaced is None:
            self._replaced = frozenset(k for c in self.compactions for k in c.replaced())
        return self._replaced

    def counts(self, key: str) -> bool:
        """A compacted file counts once a record names it; a shard object until one retires it."""
        if Layout.is_compacted(key):
            return key in self.compacted
        return key not in self.replaced


@frozen
class CommitProblem:
    """A committed object that does not match its commit, or a record that cannot be read."""

    run_id: str
    shard: int | None
    key: str
    reason: str

    def __str__(self) -> str:
        shard = "" if self.shard is None else f" shard {self.shard}"
        return f"run {self.run_id}{shard}: {self.key}: {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "shard": self.shard, "object": self.key, "reason": self.reason
        }  # fmt: skip


class CommitError(RuntimeError):
    """Committed objects do not match their commits; nothing was answered from them."""

    def __init__(self, problems: Sequence[CommitProblem]) -> None:
        self.problems = list(problems)
        more = f" (and {len(self.problems) - 1} more; `sweep verify` lists them)"
        super().__init__(f"{self.problems[0]}" + (more if len(self.problems) > 1 else ""))


@frozen
class PointsCommit:
    """A points object a reader may read: a shard's (``shard`` set) or a compacted file's."""

    key: str
    shard: int | None
    sums: FileSum | None = field(default=None)
    """None for a success written before commits carried sums: read unchecked."""

    def check(self, run_id: str, body: bytes | None) -> CommitProblem | None:
        """What is wrong with ``body`` (None: the object is missing) as this commit's object."""
        if body is None:
            return CommitProblem(run_id, self.shard, self.key, "missing")
        if self.sums is None:
            return None
        if len(body) != self.sums.size:
            return CommitProblem(
                run_id, self.shard, self.key,
                f"{len(body)} bytes where its commit says {self.sums.size} (truncated or replaced)",
            )  # fmt: skip
        if hashlib.sha256(body).hexdigest() != self.sums.sha256:
            return CommitProblem(
                run_id, self.shard, self.key, "content differs from its commit (replaced)"
            )
        return None


SuccessCommit = tuple[int, str | None, int | None, int | None, str | None]
"""``(shard, points_object, points_rows, points_bytes, points_sha256)`` of a success record."""


def success_commits(
    store: ObjectStore, layout: Layout, run_id: str, compactions: Sequence[Compaction]
) -> list[SuccessCommit]:
    """The commits of the run's counted success objects, read through the store (successes in
    compacted files commit nothing: their points are in the compacted points files)."""
    from sweep_core.records import commit_entries  # pyarrow: only readers of points need it

    published = Published.of(compactions)
    keys = [
        k for k in store.list(layout.status_prefix(run_id, "success"))
        if published.counts(k) and not Layout.is_compacted(k)
    ]  # fmt: skip
    with ThreadPoolExecutor(16) as pool:
        bodies = list(pool.map(store.get, keys))
    return [entry for body in bodies for entry in commit_entries(body)]


def committed_points(
    layout: Layout,
    manifest: RunManifest,
    successes: Iterable[SuccessCommit],
    compactions: Sequence[Compaction],
) -> list[PointsCommit]:
    """The run's points objects a reader may read, in key order (so by point index): the
    compacted files the compaction records publish, and the objects ``successes`` (the
    counted success objects, not rows of compacted files) commit."""
    run_id = manifest.run_id
    prefix = layout.points_prefix(manifest.spec.kernel, run_id)
    commits: dict[str, PointsCommit] = {}
    for record in compactions:
        for key, sums in record.files.items():
            if key.startswith(prefix):
                commits[key] = PointsCommit(key, None, sums)
    for shard, name, rows, size, sha in successes:
        key = prefix + name if name is not None else layout.points_key(
            manifest.spec.kernel, run_id, shard
        )  # fmt: skip
        sums = None if rows is None or size is None or sha is None else FileSum(rows, size, sha)
        commits[key] = PointsCommit(key, shard, sums)
    return [commits[key] for key in sorted(commits)]


def read_committed(store: ObjectStore, run_id: str, commits: Sequence[PointsCommit]) -> list[bytes]:
    """The bodies of ``commits``, each checked against its commit.

    Raises
    ------
    CommitError
        Naming every object that is missing or does not match.
    """

    bodies, problems = _fetch_checked(store, run_id, commits)
    if problems:
        raise CommitError(problems)
    return [b for b in bodies if b is not None]


def _fetch_checked(
    store: ObjectStore, run_id: str, commits: Sequence[PointsCommit]
) -> tuple[list[bytes | None], list[CommitProblem]]:
    def fetch(commit: PointsCommit) -> bytes | None:
        try:
            return store.get(commit.key)
        except NotFound:
            return None

    with ThreadPoolExecutor(16) as pool:
        bodies = list(pool.map(fetch, commits))
    problems = [c.check(run_id, b) for c, b in zip(commits, bodies, strict=True)]
    return bodies, [p for p in problems if p is not None]


def verify_points(
    store: ObjectStore, schema: pa.Schema, run_id: str, commits: Sequence[PointsCommit]
) -> list[CommitProblem]:
    """Every committed object checked against its commit (presence, size, SHA-256, rows):
    what is wrong, or nothing."""
    bodies, problems = _fetch_checked(store, run_id, commits)
    bad = {p.key for p in problems}
    for commit, body in zip(commits, bodies, strict=True):
        if body is None or commit.key in bad:
            continue
        try:
            points_table_of([body], schema, run_id, [commit])
        except CommitError as exc:
            problems.extend(exc.problems)
    return problems


def points_table_of(
    bodies: Sequence[bytes], schema: pa.Schema, run_id: str, commits: Sequence[PointsCommit]
) -> pa.Table:
    """The committed points as one table by point index; a body whose rows are not its
    commit's (a record written before sums, and since replaced) raises ``CommitError``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def parse(commit: PointsCommit, body: bytes) -> pa.Table | CommitProblem:
        try:
            table = pq.ParquetFile(pa.BufferReader(body)).read(use_threads=False)
        except (pa.ArrowException, OSError) as exc:
            return CommitProblem(run_id, commit.shard, commit.key, f"not Parquet: {exc}")
        if commit.sums is not None and table.num_rows != commit.sums.rows:
            rows = f"{table.num_rows} rows where its commit says {commit.sums.rows}"
            return CommitProblem(run_id, commit.shard, commit.key, rows)
        return table if table.schema.equals(schema) else table.cast(schema)

    # Decoding releases the interpreter: a few threads decode a run's objects side by side.
    with ThreadPoolExecutor(4) as pool:
        parsed = list(pool.map(parse, commits, bodies))
    problems = [p for p in parsed if isinstance(p, CommitProblem)]
    if problems:
        raise CommitError(problems)
    tables = [t for t in parsed if not isinstance(t, CommitProblem)]
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables).sort_by("point_index")
