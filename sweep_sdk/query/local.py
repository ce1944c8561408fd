"""SQL over a run's layout. The shipped queries are Athena SQL; locally they run on DuckDB.

Locally, each table is named as its Glue table is (``outcomes``, ``points_<kernel>``): a
points table is a DuckDB view over its Parquet objects with hive partitioning, the outcomes
table the rows of its objects read through ``OutcomeIndex``; Athena SQL is translated to
DuckDB's dialect by sqlglot, so one query text serves both engines.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweep_core.kernel_spec import KernelSpec
from sweep_core.layout import COMPACTED_STEM, Layout
from sweep_core.named_queries import QueryError
from sweep_core.runs import (
    CommitError,
    CommitProblem,
    PointsCommit,
    Published,
    committed_points,
    read_compactions,
    read_manifest,
)
from sweep_core.tables import OUTCOMES, Table, points_table

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

# duckdb and sqlglot are imported where used: together they take a quarter of a second to
# import, which every `sweep` command (and `sweep run` before any shard starts) would pay.


def athena_to_duckdb(sql: str) -> str:
    """Translate one Athena statement to DuckDB's dialect (raises ``QueryError``)."""
    import sqlglot
    from sqlglot.errors import ParseError

    try:
        statements = sqlglot.transpile(sql, read="athena", write="duckdb")
    except ParseError as exc:
        raise QueryError(f"not valid Athena SQL: {exc}") from None
    if len(statements) != 1:
        raise QueryError("give exactly one SQL statement")
    return statements[0]


class LocalQueryEngine:
    """DuckDB over a data folder laid out like the results bucket."""

    def __init__(self, root: Path, layout: Layout, kernels: Iterable[KernelSpec]) -> None:
        self.root = root
        self.layout = layout
        self.kernels = tuple(kernels)

    def connect(self, tables: Iterable[str] | None = None) -> duckdb.DuckDBPyConnection:
        """A connection with a view per table (only ``tables``, when given).

        Creating a view binds it, and binding a view with ``union_by_name`` reads the footer of
        every file under it: only the views a statement uses are made.
        """
        import duckdb

        from runtime.adapters.outcome_index import (
            OutcomeIndex,  # pyarrow: not for every `sweep` command
        )

        wanted = None if tables is None else {t.lower() for t in tables}
        points = [
            points_table(k) for k in self.kernels
            if wanted is None or points_table(k).name in wanted
        ]  # fmt: skip
        con = duckdb.connect()
        if wanted is not None and OUTCOMES.name not in wanted and not points:
            return con
        # Outcomes come through the index: a run's 10,000 one-row objects are read once,
        # not by every query (see outcome_index). Only the objects the run's compaction
        # records publish count, and only the points objects its successes commit are read.
        rows = OutcomeIndex(self.root, self.layout).read(con=con, with_keys=True)
        rows, committed = self._committed(rows, points=bool(points))
        if wanted is None or OUTCOMES.name in wanted:
            con.register(OUTCOMES.name, rows.drop_columns(["_key"]))
        for table in points:
            self._points_view(con, table, committed.get(table.name, []))
        return con

    def _committed(self, rows: pa.Table, points: bool) -> tuple[pa.Table, dict[str, list[str]]]:
        """The outcome rows that count and, with ``points``, the committed points files of each
        points table (checked to be there with their committed size: ``CommitError`` if not)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        from runtime.adapters.local_store import LocalStore
        from runtime.adapters.outcome_index import success_commits

        store = LocalStore(self.root)
        run_ids = pc.unique(rows["run_id"]).to_pylist()
        compactions = {r: read_compactions(store, self.layout, r) for r in run_ids}
        published = {r: Published.of(c) for r, c in compactions.items()}
        # Rows need sorting out only where a compaction wrote or retired something: a
        # compacted file counts once a record names it, a shard object until one retires it.
        unnamed = pc.any(pc.match_substring(rows["_key"], f"/{COMPACTED_STEM}")).as_py()
        if unnamed or any(p.compactions for p in published.values()):
            keys, runs = rows["_key"].to_pylist(), rows["run_id"].to_pylist()
            mask = [published[r].counts(k) for r, k in zip(runs, keys, strict=True)]
            rows = rows.filter(pa.array(mask, pa.bool_()))
        files: dict[str, list[str]] = {}
        if not points:
            return rows, files
        problems: list[CommitProblem] = []
        for run_id in run_ids:
            manifest = read_manifest(store, self.layout, run_id)
            if manifest is None:
                continue
            mine = rows.filter(pc.equal(rows["run_id"], run_id))
            successes = success_commits(mine, published[run_id])
            commits = committed_points(self.layout, manifest, successes, compactions[run_id])
            listed = files.setdefault(f"points_{manifest.spec.kernel}", [])
            for commit in commits:
                path = str(store.path(commit.key))
                problem = _stat_problem(run_id, commit, path)
                if problem is not None:
                    problems.append(problem)
                listed.append(path)
        if problems:
            raise CommitError(problems)
        return rows, files

    def run(self, sql: str, params: Sequence[Any] = (), dialect: str = "athena") -> pa.Table:
        """Run one statement; ``?`` placeholders take ``params`` in order."""
        import duckdb

        text = athena_to_duckdb(sql) if dialect == "athena" else sql
        con = self.connect(referenced_tables(text))
        try:
            return con.sql(text, params=list(params) or None).to_arrow_table()
        except duckdb.Error as exc:
            raise QueryError(str(exc).splitlines()[0]) from None
        finally:
            con.close()

    def _points_view(
        self, con: duckdb.DuckDBPyConnection, table: Table, files: Sequence[str]
    ) -> None:
        if not files:
            con.register(table.name, table.full_arrow_schema.empty_table())
            return
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        hive_types = ", ".join(f"'{c.name}': VARCHAR" for c in table.partitions)
        # union_by_name: a kernel's points columns can change between versions of the kernel.
        con.execute(
            f"CREATE VIEW {table.name} AS SELECT * FROM read_parquet([{listed}], "
            f"hive_partitioning = true, hive_types = {{{hive_types}}}, union_by_name = true)"
        )


def _stat_problem(run_id: str, commit: PointsCommit, path: str) -> CommitProblem | None:
    """A committed file missing or not of its committed size (the content is checked by
    ``results`` and ``sweep verify``, which read it anyway)."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return CommitProblem(run_id, commit.shard, commit.key, "missing")
    if commit.sums is not None and size != commit.sums.size:
        return CommitProblem(
            run_id, commit.shard, commit.key,
            f"{size} bytes where its commit says {commit.sums.size} (truncated or replaced)",
        )  # fmt: skip
    return None


def referenced_tables(sql: str) -> set[str] | None:
    """The names of the tables a DuckDB statement reads, or None if it cannot be parsed here
    (then every view is made, and DuckDB reports what is wrong)."""
    import sqlglot
    from sqlglot.errors import ParseError

    try:
        statement = sqlglot.parse_one(sql, read="duckdb")
    except ParseError:
        return None
    return {table.name for table in statement.find_all(sqlglot.exp.Table)}


def placeholders(sql: str) -> int:
    """How many ``?`` parameters a statement takes."""
    import sqlglot

    return sum(1 for _ in sqlglot.parse_one(sql, read="athena").find_all(sqlglot.exp.Placeholder))
