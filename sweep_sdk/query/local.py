"""SQL over a run's layout. The shipped queries are Athena SQL; locally they run on DuckDB.

Locally, each table is named as its Glue table is (``outcomes``, ``points_<kernel>``): a
points table is a DuckDB view over its Parquet objects with hive partitioning, the outcomes
table the rows of its objects read through ``OutcomeIndex``; Athena SQL is translated to
DuckDB's dialect by sqlglot, so one query text serves both engines.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweep_core.kernel_spec import KernelSpec
from sweep_core.layout import Layout
from sweep_core.named_queries import QueryError
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
        con = duckdb.connect()
        if wanted is None or OUTCOMES.name in wanted:
            # Outcomes come through the index: a run's 10,000 one-row objects are read once,
            # not by every query (see outcome_index).
            con.register(OUTCOMES.name, OutcomeIndex(self.root, self.layout).read(con=con))
        for kernel in self.kernels:
            table = points_table(kernel)
            if wanted is None or table.name in wanted:
                self._points_view(con, table, self.layout.table_root(f"points/{kernel.name}"))
        return con

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

    def _points_view(self, con: duckdb.DuckDBPyConnection, table: Table, root: str) -> None:
        base = self.root / root
        pattern = "*/*/*.parquet"  # run_date=…/run_id=…/<object>
        if not base.is_dir() or next(base.glob(pattern), None) is None:
            con.register(table.name, table.full_arrow_schema.empty_table())
            return
        glob = str(base / pattern).replace("'", "''")
        hive_types = ", ".join(f"'{c.name}': VARCHAR" for c in table.partitions)
        # union_by_name: a kernel's points columns can change between versions of the kernel.
        con.execute(
            f"CREATE VIEW {table.name} AS SELECT * FROM read_parquet('{glob}', "
            f"hive_partitioning = true, hive_types = {{{hive_types}}}, union_by_name = true)"
        )


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
