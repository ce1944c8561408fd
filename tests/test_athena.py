"""Athena results on canned responses, and the start/poll/fetch flow on moto."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from sweep_core.named_queries import QueryError
from sweep_sdk.query.athena import AthenaEngine, parse_result_set, sql_literal


def _page(rows: list[list[str | None]], header: bool) -> dict[str, Any]:
    columns = [("run_id", "varchar"), ("shards", "bigint"), ("rate", "double"),
               ("ok", "boolean"), ("day", "date"), ("at", "timestamp")]  # fmt: skip
    data = [[{"VarCharValue": c} for c, _ in columns]] if header else []
    data += [[{} if v is None else {"VarCharValue": v} for v in row] for row in rows]
    return {
        "ResultSet": {
            "Rows": [{"Data": d} for d in data],
            "ResultSetMetadata": {
                "ColumnInfo": [{"Name": n, "Type": t, "Label": n} for n, t in columns]
            },
        }
    }


def test_result_pages_become_typed_columns_without_the_header_row() -> None:
    pages = [
        _page([["r1", "12", "0.25", "true", "2026-11-23", "2026-11-23 10:00:01.500"]], True),
        _page([["r2", "3", None, "false", "2026-11-24", None]], False),
    ]
    table = parse_result_set(pages)
    assert table.to_pylist() == [
        {"run_id": "r1", "shards": 12, "rate": 0.25, "ok": True, "day": date(2026, 11, 23),
         "at": datetime(2026, 11, 23, 10, 0, 1, 500000)},
        {"run_id": "r2", "shards": 3, "rate": None, "ok": False, "day": date(2026, 11, 24),
         "at": None},
    ]  # fmt: skip
    assert str(table.schema.field("shards").type) == "int64"


def test_a_result_with_no_rows_keeps_its_columns() -> None:
    table = parse_result_set([_page([], True)])
    assert table.num_rows == 0
    assert table.column_names == ["run_id", "shards", "rate", "ok", "day", "at"]


def test_parameters_are_quoted_as_sql_literals() -> None:
    assert sql_literal("20261123T120000Z-0a1b2c3d") == "'20261123T120000Z-0a1b2c3d'"
    assert sql_literal("it's") == "'it''s'"
    assert sql_literal(3) == "3"


class FakeAthena:
    """Scripted states, recorded requests: the parts of the flow moto does not let us steer."""

    def __init__(self, states: list[str]) -> None:
        self.states = iter(states)
        self.started: list[dict[str, Any]] = []
        self.stopped: list[str] = []

    def start_query_execution(self, **request: Any) -> dict[str, str]:
        self.started.append(request)
        return {"QueryExecutionId": "q-1"}

    def get_query_execution(self, QueryExecutionId: str) -> dict[str, Any]:  # noqa: N803
        state = next(self.states)
        return {"QueryExecution": {"Status": {"State": state, "StateChangeReason": "SYNTAX"}}}

    def stop_query_execution(self, QueryExecutionId: str) -> None:  # noqa: N803
        self.stopped.append(QueryExecutionId)

    def get_paginator(self, name: str) -> Any:
        assert name == "get_query_results"

        class Pages:
            def paginate(self, **_: Any) -> Iterator[dict[str, Any]]:
                yield _page([["r1", "1", "0.5", "true", "2026-11-23", None]], True)

        return Pages()


def test_engine_polls_until_done_and_passes_workgroup_database_and_parameters() -> None:
    fake = FakeAthena(["QUEUED", "RUNNING", "SUCCEEDED"])
    engine = AthenaEngine(fake, "sweep-wg", "sweep_db", sleep=lambda _: None)
    table = engine.run("SELECT * FROM outcomes WHERE run_id = ?", ["r1"])
    assert table.num_rows == 1
    [request] = fake.started
    assert request["WorkGroup"] == "sweep-wg"
    assert request["QueryExecutionContext"] == {"Database": "sweep_db"}
    assert request["ExecutionParameters"] == ["'r1'"]


def test_failed_query_raises_with_athenas_reason() -> None:
    engine = AthenaEngine(FakeAthena(["RUNNING", "FAILED"]), "wg", "db", sleep=lambda _: None)
    with pytest.raises(QueryError, match="failed: SYNTAX"):
        engine.run("SELECT 1")


def test_a_query_past_its_timeout_is_stopped() -> None:
    fake = FakeAthena(["RUNNING"] * 100)
    engine = AthenaEngine(fake, "wg", "db", poll=1.0, timeout=3.0, sleep=lambda _: None)
    with pytest.raises(QueryError, match="still running"):
        engine.run("SELECT 1")
    assert fake.stopped == ["q-1"]


def test_the_flow_runs_against_moto_athena(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        client = boto3.client("athena", region_name="eu-west-1")
        client.create_work_group(
            Name="sweep-wg",
            Configuration={"ResultConfiguration": {"OutputLocation": "s3://athena-results/"}},
        )
        AthenaEngine(client, "sweep-wg", "sweep_db", poll=0.01).run("SELECT 1")
        [query_id] = client.list_query_executions(WorkGroup="sweep-wg")["QueryExecutionIds"]
        execution = client.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
        assert execution["Query"] == "SELECT 1"
        assert execution["QueryExecutionContext"]["Database"] == "sweep_db"
