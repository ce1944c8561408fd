"""Run SQL in Athena (start, poll, fetch) and turn its result pages into a pyarrow Table.

``parse_result_set`` is pure: Athena returns every value as a string next to column metadata,
and the conversion to typed columns is tested on canned responses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from sweep_core.named_queries import QueryError

_INTEGER = {"tinyint", "smallint", "integer", "int", "bigint"}
_FLOAT = {"double", "float", "real"}


def _arrow_type(athena_type: str) -> tuple[pa.DataType, Callable[[str], Any]]:
    kind = athena_type.lower().split("(")[0]
    if kind in _INTEGER:
        return pa.int64(), int
    if kind in _FLOAT:
        return pa.float64(), float
    if kind == "decimal":
        return pa.float64(), lambda v: float(Decimal(v))
    if kind == "boolean":
        return pa.bool_(), lambda v: v == "true"
    if kind == "date":
        return pa.date32(), date.fromisoformat
    if kind.startswith("timestamp"):
        return pa.timestamp("ms"), lambda v: datetime.fromisoformat(v.replace(" UTC", ""))
    return pa.string(), str


def parse_result_set(pages: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Typed columns from the pages of ``GetQueryResults`` for one SELECT.

    The first row of the first page repeats the column names (Athena does this for SELECT
    statements) and is dropped; a missing ``VarCharValue`` is NULL.
    """
    columns: list[tuple[str, pa.DataType, Callable[[str], Any]]] = []
    values: list[list[Any]] = []
    first = True
    for page in pages:
        result = page["ResultSet"]
        if not columns:
            for info in result["ResultSetMetadata"]["ColumnInfo"]:
                arrow, convert = _arrow_type(info["Type"])
                columns.append((info["Name"], arrow, convert))
            values = [[] for _ in columns]
        rows = result.get("Rows", [])
        if (
            first
            and rows
            and [d.get("VarCharValue") for d in rows[0]["Data"]] == [c[0] for c in columns]
        ):
            rows = rows[1:]
        first = False
        for row in rows:
            for i, datum in enumerate(row["Data"]):
                raw = datum.get("VarCharValue")
                values[i].append(None if raw is None else columns[i][2](raw))
    return pa.table(
        {
            name: pa.array(col, type=arrow)
            for (name, arrow, _), col in zip(columns, values, strict=True)
        }
    )


def sql_literal(value: object) -> str:
    """An Athena execution parameter: parameters are spliced in as SQL text, so quote strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


class AthenaEngine:
    """Runs queries in one workgroup and database; the workgroup enforces the result location."""

    def __init__(
        self,
        client: Any,
        workgroup: str,
        database: str,
        poll: float = 0.5,
        timeout: float = 600.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.workgroup = workgroup
        self.database = database
        self.poll = poll
        self.timeout = timeout
        self.sleep = sleep

    def run(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Start the query, wait for it, return its rows (raises ``QueryError``)."""
        request: dict[str, Any] = {
            "QueryString": sql,
            "QueryExecutionContext": {"Database": self.database},
            "WorkGroup": self.workgroup,
        }
        if params:
            request["ExecutionParameters"] = [sql_literal(p) for p in params]
        query_id = self.client.start_query_execution(**request)["QueryExecutionId"]
        self._wait(query_id)
        pages = self.client.get_paginator("get_query_results").paginate(QueryExecutionId=query_id)
        return parse_result_set(pages)

    def _wait(self, query_id: str) -> None:
        waited, pause = 0.0, self.poll
        while True:
            status = self.client.get_query_execution(QueryExecutionId=query_id)
            state = status["QueryExecution"]["Status"]
            if state["State"] == "SUCCEEDED":
                return
            if state["State"] in ("FAILED", "CANCELLED"):
                reason = state.get("StateChangeReason", "no reason given")
                raise QueryError(f"Athena query {query_id} {state['State'].lower()}: {reason}")
            if waited >= self.timeout:
                self.client.stop_query_execution(QueryExecutionId=query_id)
                raise QueryError(f"Athena query {query_id} still running after {waited:.0f} s")
            self.sleep(pause)
            waited += pause
            pause = min(pause * 1.5, 5.0)
