"""A local cache of outcome rows, so that a query does not reopen every outcome object of a run."""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sweep_core.layout import Layout
from sweep_core.runs import Published, SuccessCommit
from sweep_core.tables import OUTCOMES

if TYPE_CHECKING:
    import duckdb

INDEX_DIR = ".local/index"

_STAMP_FIELDS = (
    pa.field("_key", pa.string()),
    pa.field("_size", pa.int64()),
    pa.field("_mtime_ns", pa.int64()),
)
_STAMP_NAMES = [f.name for f in _STAMP_FIELDS]

Stamp = tuple[int, int]
"""What tells one content of an object from another here: its size and mtime (ns)."""

Objects = dict[str, Stamp]
"""A run's outcome objects: key → stamp."""


class OutcomeIndex:
    """The outcome rows of a data folder laid out like the results bucket, through a cache.

    Opening a Parquet object costs DuckDB about 0.2 ms whatever the object holds (pyarrow's
    readers are slower still), so a query over a run of 10,000 shards spent two seconds opening
    one-row outcome objects before it computed anything. Outcome objects are written once and
    never rewritten (the store publishes a key once; compaction writes new keys and deletes the
    old ones), so the rows of an object stay true for as long as that object is there.

    The index keeps, per run, rows of the run's objects, each with the key, size and modification
    time of its object. Reading a run lists its objects (a directory walk: ~50 ms for 10,000),
    keeps the indexed rows whose object is still there unchanged, reads only the objects it does
    not hold, and writes the index again when that changed anything. The local pool fills the
    index as its batch ends from the outcomes its workers report (the very rows they wrote), so
    the first query after a run reads no object at all. The index is a cache and nothing more:
    deleting it changes no answer, only how long the next query takes. It lives under the data
    folder's ``.local`` area, so the results layout stays exactly that of the bucket.
    """

    def __init__(self, root: Path, layout: Layout) -> None:
        self.root = root
        self.table_prefix = layout.table_root("outcomes")
        self.table_root = root / self.table_prefix
        self.index_root = root / INDEX_DIR / layout.table_root("outcomes")
        self.schema = OUTCOMES.full_arrow_schema
        self.index_schema = pa.schema([*self.schema, *_STAMP_FIELDS])

    def read(
        self,
        run_ids: Collection[str] | None = None,
        con: duckdb.DuckDBPyConnection | None = None,
        with_keys: bool = False,
    ) -> pa.Table:
        """Every outcome row of ``run_ids`` (of every run if None), as the objects hold them now:
        file columns, then partition columns, as the ``outcomes`` table has them; with
        ``with_keys`` a last column ``_key`` names the object each row comes from."""
        if con is None:
            import duckdb

            con = duckdb.connect()
        parts = []
        for partition, objects in self._runs(run_ids):
            from_objects = functools.partial(self._read_objects, con, objects=objects)
            rows = self._update(partition, objects, from_objects)
            parts.append(rows.drop_columns(_STAMP_NAMES[1:] if with_keys else _STAMP_NAMES))
        if parts:
            return pa.concat_tables(parts)
        schema = pa.schema([*self.schema, _STAMP_FIELDS[0]]) if with_keys else self.schema
        return schema.empty_table()

    def record(self, keys: Sequence[str], rows: pa.Table) -> None:
        """Index rows just written as the objects ``keys`` (row i is object i's only row, file
        columns only), without reading the objects back. Keys of missing objects are skipped;
        a later ``read`` reads whatever objects the index still lacks."""
        by_partition: dict[str, dict[str, int]] = {}
        for i, key in enumerate(keys):
            partition = _partition_of(key, self.table_prefix)
            if partition is not None:
                by_partition.setdefault(partition, {})[key] = i
        for partition, supplied in by_partition.items():
            objects = self._objects(self.table_root / partition)

            def from_rows(
                missing: list[str], supplied: dict[str, int] = supplied, objects: Objects = objects
            ) -> pa.Table:
                wanted = [key for key in missing if key in supplied]
                taken = rows.take([supplied[key] for key in wanted])
                values = [_partition_values(key) for key in wanted]
                for column in OUTCOMES.partitions:
                    names = pa.array([v[column.name] for v in values], pa.string())
                    taken = taken.append_column(column.name, names)
                return _stamped(taken.cast(self.schema), wanted, objects)

            if objects:
                self._update(partition, objects, from_rows)

    def _runs(self, run_ids: Collection[str] | None) -> Iterator[tuple[str, Objects]]:
        """Each run's partition (``run_date=…/run_id=…``) and its objects."""
        for date_dir in _subdirs(self.table_root):
            for run_dir in _subdirs(date_dir):
                if run_ids is not None and run_dir.name.partition("=")[2] not in run_ids:
                    continue
                objects = self._objects(run_dir)
                if objects:
                    yield f"{date_dir.name}/{run_dir.name}", objects

    def _objects(self, run_dir: Path) -> Objects:
        objects: Objects = {}
        for status_dir in _subdirs(run_dir):
            prefix = status_dir.relative_to(self.root).as_posix()
            with os.scandir(status_dir) as entries:
                for entry in entries:
                    # a leading dot marks an unpublished temporary file
                    if entry.name.startswith(".") or not entry.name.endswith(".parquet"):
                        continue
                    if entry.is_file():
                        stat = entry.stat()
                        objects[f"{prefix}/{entry.name}"] = (stat.st_size, stat.st_mtime_ns)
        return objects

    def _update(
        self, partition: str, objects: Objects, supply: Callable[[list[str]], pa.Table]
    ) -> pa.Table:
        """The run's index rows of ``objects``: the cached ones still true, plus what ``supply``
        gives for the objects the cache lacks; stored again if that changed anything."""
        path = self.index_root / f"{partition}.parquet"
        cached = self._load(path)
        kept = self.index_schema.empty_table() if cached is None else cached.filter(
            _unchanged(cached, objects)
        )  # fmt: skip
        known = set(kept.column("_key").to_pylist())
        missing = sorted(key for key in objects if key not in known)
        fresh = supply(missing) if missing else None
        rows = kept if fresh is None else pa.concat_tables([kept, fresh])
        if cached is None or rows.num_rows != cached.num_rows or kept.num_rows != rows.num_rows:
            self._store(path, rows)
        return rows

    def _read_objects(
        self, con: duckdb.DuckDBPyConnection, keys: list[str], objects: Objects
    ) -> pa.Table:
        import duckdb  # loaded already: ``con`` is a connection

        root = str(self.root)
        columns = ", ".join(f'"{name}"' for name in self.schema.names)
        hive_types = ", ".join(f"'{c.name}': VARCHAR" for c in OUTCOMES.partitions)
        files = [f"{root}/{key}" for key in keys]
        options = f"hive_partitioning = true, hive_types = {{{hive_types}}}, filename = '_file'"
        # ORDER BY: DuckDB hands back a batch per object otherwise, which makes every step
        # after it (and the index file, a row group per batch) many times slower.
        try:
            table = con.sql(
                f"SELECT {columns}, _file FROM read_parquet($files, {options}) ORDER BY _file",
                params={"files": files},
            ).to_arrow_table()
        except (duckdb.BinderException, duckdb.InvalidInputException):
            # Records written before a column was added (kernel_version, ...) lack it: read them by
            # name and give them the column as NULL (slower, so only when needed).
            table = con.sql(
                f"SELECT * FROM read_parquet($files, {options}, union_by_name = true) "
                "ORDER BY _file",
                params={"files": files},
            ).to_arrow_table()
            for field in self.schema:
                if field.name not in table.column_names:
                    table = table.append_column(field, pa.nulls(table.num_rows, field.type))
            table = table.select([*self.schema.names, "_file"])
        file_keys = pc.utf8_slice_codeunits(table.column("_file"), len(root) + 1).to_pylist()
        return _stamped(table.drop_columns(["_file"]).cast(self.schema), file_keys, objects)

    def _load(self, path: Path) -> pa.Table | None:
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid):
            return None  # no index yet, or one this version cannot read: read the objects
        return table if table.schema.equals(self.index_schema) else None

    def _store(self, path: Path, rows: pa.Table) -> None:
        # A temporary file, then a rename: a reader sees the old index or the new one, never a
        # part; of two writers the last rename wins, and either file is a true cache.
        temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(rows, temp)
            os.replace(temp, path)
        except OSError:  # a read-only data folder still answers, uncached
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)


def success_commits(rows: pa.Table, published: Published) -> list[SuccessCommit]:
    """The commits of the success rows (read ``with_keys``) of counted shard objects (rows of
    compacted files commit nothing: their points are in the compacted points files)."""
    successes = rows.filter(pc.equal(rows["status"], "success"))
    names = ["shard", "points_object", "points_rows", "points_bytes", "points_sha256"]
    columns = [successes[n].to_pylist() for n in names]
    keys = successes["_key"].to_pylist()
    return [
        entry
        for key, entry in zip(keys, zip(*columns, strict=True), strict=True)
        if published.counts(key) and not Layout.is_compacted(key)
    ]


def _subdirs(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            names = [e.name for e in entries if e.is_dir() and not e.name.startswith(".")]
    except FileNotFoundError:
        return []
    return [folder / name for name in sorted(names)]


def _partition_values(key: str) -> dict[str, str]:
    """The ``name=value`` folders of a key, as hive partitioning reads them."""
    return dict(part.split("=", 1) for part in key.split("/")[:-1] if "=" in part)


def _partition_of(key: str, table_root: str) -> str | None:
    """``run_date=…/run_id=…`` of an outcome key under ``table_root`` (ends in ``/``)."""
    if not key.startswith(table_root):
        return None
    parts = key[len(table_root) :].split("/")
    return "/".join(parts[:2]) if len(parts) == 4 else None


def _stamped(rows: pa.Table, keys: list[str], objects: Objects) -> pa.Table:
    stamps = [objects[key] for key in keys]
    rows = rows.append_column(_STAMP_FIELDS[0], pa.array(keys, pa.string()))
    rows = rows.append_column(_STAMP_FIELDS[1], pa.array([s[0] for s in stamps], pa.int64()))
    return rows.append_column(_STAMP_FIELDS[2], pa.array([s[1] for s in stamps], pa.int64()))


def _unchanged(cached: pa.Table, objects: Objects) -> pa.Array:
    """Which cached rows come from an object that is still there with the same stamp."""
    keys = cached.column("_key").to_pylist()
    sizes = cached.column("_size").to_pylist()
    mtimes = cached.column("_mtime_ns").to_pylist()
    return pa.array(
        [objects.get(k) == (s, m) for k, s, m in zip(keys, sizes, mtimes, strict=True)],
        pa.bool_(),
    )
