"""The shipped SQL: valid Athena SQL (sqlglot's Athena dialect), runnable on DuckDB locally."""

from __future__ import annotations

import pytest
import sqlglot

from sweep_core.named_queries import QUERY_NAMES, QueryError, named_query
from sweep_sdk.query.local import athena_to_duckdb, placeholders, referenced_tables


@pytest.mark.parametrize("name", QUERY_NAMES)
def test_shipped_query_is_valid_athena_sql(name: str) -> None:
    sql = named_query(name)
    [statement] = sqlglot.parse(sql, read="athena", error_level=sqlglot.ErrorLevel.RAISE)
    assert statement is not None
    assert "outcomes" in {t.name for t in statement.find_all(sqlglot.exp.Table)}


def test_run_scoped_queries_take_the_run_id_as_parameters() -> None:
    assert placeholders(named_query("run_summary")) == 1  # one pass over the outcomes
    assert placeholders(named_query("slowest_shards")) == 1
    assert placeholders(named_query("failure_rate_by_day")) == 0


def test_athena_functions_are_translated_for_duckdb() -> None:
    assert "APPROX_QUANTILE" in athena_to_duckdb("SELECT approx_percentile(x, 0.5) FROM t")


def test_unknown_query_and_bad_sql_are_clear_errors() -> None:
    with pytest.raises(QueryError, match="no query named 'nope'"):
        named_query("nope")
    with pytest.raises(QueryError, match="not valid Athena SQL"):
        athena_to_duckdb("SELECT FROM WHERE (")


def test_only_the_tables_a_statement_reads_get_a_view() -> None:
    # Making a view binds it, and binding the points view reads every points file's footer:
    # a query of the outcomes alone must not pay for it.
    for name in QUERY_NAMES:
        tables = referenced_tables(athena_to_duckdb(named_query(name)))
        assert tables is not None
        assert "outcomes" in tables
        assert not any(t.startswith("points_") for t in tables)
    joined = "SELECT avg(p.price) FROM points_gbm_european_option AS p JOIN outcomes AS o ON true"
    assert referenced_tables(joined) == {"points_gbm_european_option", "outcomes"}
    assert referenced_tables("SELECT FROM WHERE (") is None  # every view; DuckDB says why
