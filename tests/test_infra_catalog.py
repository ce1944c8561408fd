"""Partitions: the tables the stack creates, made in moto's Glue from the very inputs the stack
registers, accept the partitions a run registers at start; every object the runtime writes for
that run lands in one of them, with the values its path names; cross-run queries need no
run_id filter because nothing is projected."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from test_infra_mocks import REGION, BuiltStack, Registered, sandbox_stack

from sweep_core.catalog import (
    PartitionRegistrationError,
    glue_tables,
    register_run_partitions,
    run_partitions,
)
from sweep_core.kernels import catalog
from sweep_core.layout import Layout

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RUN_ID = "20261123T152100Z-1a2b3c4d"
KERNEL = catalog()["sir_epidemic"]


def table_input(table: Registered) -> dict[str, Any]:
    """Glue's CreateTable ``TableInput`` for a table as the stack registers it."""
    i, sd = table.inputs, table.inputs["storageDescriptor"]

    def column(c: dict[str, str]) -> dict[str, str]:
        return {"Name": c["name"], "Type": c["type"], "Comment": c.get("comment", "")}

    return {
        "Name": i["name"],
        "Description": i["description"],
        "TableType": i["tableType"],
        "Parameters": i["parameters"],
        "PartitionKeys": [column(c) for c in i["partitionKeys"]],
        "StorageDescriptor": {
            "Columns": [column(c) for c in sd["columns"]],
            "Location": sd["location"],
            "InputFormat": sd["inputFormat"],
            "OutputFormat": sd["outputFormat"],
            "SerdeInfo": {
                "SerializationLibrary": sd["serDeInfo"]["serializationLibrary"],
                "Parameters": sd["serDeInfo"]["parameters"],
            },
        },
    }


@pytest.fixture(scope="module")
def moto_glue() -> Iterator[Any]:
    patch = pytest.MonkeyPatch()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        patch.setenv(name, "testing")
    patch.delenv("AWS_SESSION_TOKEN", raising=False)
    with mock_aws():
        yield boto3.client("glue", region_name=REGION)
    patch.undo()


_databases = itertools.count()


@pytest.fixture
def glue(moto_glue: Any) -> tuple[Any, str, BuiltStack]:
    """A fresh database holding the stack's tables, made from the inputs the stack registers."""
    stack = sandbox_stack()
    database = f"{stack.outputs['database']}_{next(_databases)}"
    moto_glue.create_database(DatabaseInput={"Name": database})
    for table in stack.of_type("aws:glue/catalogTable:CatalogTable"):
        moto_glue.create_table(DatabaseName=database, TableInput=table_input(table))
    return moto_glue, database, stack


def _partitions(client: Any, database: str) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for table in client.get_tables(DatabaseName=database)["TableList"]:
        name = table["Name"]
        out[name] = client.get_partitions(DatabaseName=database, TableName=name)["Partitions"]
    return out


def _written_keys(layout: Layout) -> list[str]:
    """Every kind of key the runtime writes for a run (sweep_core.layout owns them)."""
    return [
        layout.manifest_key(RUN_ID),
        layout.redrive_key(RUN_ID, 1),
        layout.success_key(RUN_ID, 3),
        layout.failure_key(RUN_ID, 3, 1),
        layout.points_key(KERNEL.name, RUN_ID, 3),
    ]


def test_every_object_a_run_writes_lies_in_a_partition_registered_at_its_start(
    glue: tuple[Any, str, BuiltStack],
) -> None:
    client, database, stack = glue
    bucket = str(stack.outputs["bucket"])
    layout = Layout(str(stack.outputs["prefix"]))
    register_run_partitions(client, database, bucket, layout, RUN_ID, KERNEL)
    partitions = _partitions(client, database)
    assert {t: len(p) for t, p in partitions.items() if p} == {
        "outcomes": 2,  # status=success and status=failure
        "manifests": 1,
        f"points_{KERNEL.name}": 1,
    }
    tables = {t["Name"]: t for t in client.get_tables(DatabaseName=database)["TableList"]}
    for key in _written_keys(layout):
        uri = f"s3://{bucket}/{key}"
        homes = [
            (name, p)
            for name, ps in partitions.items()
            for p in ps
            if uri.startswith(p["StorageDescriptor"]["Location"])
        ]
        assert len(homes) == 1, f"{key} lies in {len(homes)} partitions"
        name, partition = homes[0]
        keys = [k["Name"] for k in tables[name]["PartitionKeys"]]
        named_in_path = dict(part.split("=", 1) for part in key.split("/") if "=" in part)
        assert partition["Values"] == [named_in_path[k] for k in keys]
        # a partition reads its files exactly as its table does
        table_sd, sd = tables[name]["StorageDescriptor"], partition["StorageDescriptor"]
        for field in ("Columns", "InputFormat", "OutputFormat", "SerdeInfo"):
            assert sd[field] == table_sd[field], (name, field)


def test_registering_a_run_again_is_harmless(glue: tuple[Any, str, BuiltStack]) -> None:
    client, database, stack = glue
    args = (client, database, str(stack.outputs["bucket"]))
    layout = Layout(str(stack.outputs["prefix"]))
    register_run_partitions(*args, layout, RUN_ID, KERNEL)
    register_run_partitions(*args, layout, RUN_ID, KERNEL)  # a retried submit, a redrive
    assert sum(len(p) for p in _partitions(client, args[1]).values()) == 4


def test_runs_on_different_days_add_partitions_side_by_side(
    glue: tuple[Any, str, BuiltStack],
) -> None:
    client, database, stack = glue
    args = (client, database, str(stack.outputs["bucket"]))
    layout = Layout(str(stack.outputs["prefix"]))
    for run_id in (RUN_ID, "20261124T090000Z-00000001", "20261125T090000Z-00000002"):
        register_run_partitions(*args, layout, run_id, KERNEL)
    days = {p["Values"][0] for p in _partitions(client, args[1])["outcomes"]}
    assert days == {"2026-11-23", "2026-11-24", "2026-11-25"}


class _Refusing:
    def batch_create_partition(self, **request: Any) -> dict[str, Any]:
        values = request["PartitionInputList"][0]["Values"]
        detail = {"ErrorCode": "InternalServiceException", "ErrorMessage": "try later"}
        return {"Errors": [{"PartitionValues": values, "ErrorDetail": detail}]}


def test_a_refused_partition_is_an_error_naming_it() -> None:
    with pytest.raises(PartitionRegistrationError, match=r"outcomes 2026-11-23/.*InternalService"):
        register_run_partitions(_Refusing(), "db", "bucket", Layout("sweep"), RUN_ID, KERNEL)


def test_run_partitions_cover_every_table_a_run_writes_to() -> None:
    tables = {t.name for t in glue_tables(catalog().values())}
    for kernel in catalog().values():
        got = run_partitions("bucket", Layout("sweep"), RUN_ID, kernel)
        assert set(got) == {"outcomes", "manifests", f"points_{kernel.name}"}
        assert set(got) <= tables


def test_the_parent_may_register_partitions_in_every_table() -> None:
    stack = sandbox_stack()
    policy = stack.one("aws:iam/rolePolicy:RolePolicy", "iam-parent").inputs["policy"]
    for table in glue_tables(catalog().values()):
        assert f':table/{stack.outputs["database"]}/{table.name}"' in policy


class _CapturedLambda:
    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:  # noqa: N803
        self.payloads.append(Payload)
        return {"StatusCode": 202}


def test_the_parent_registers_a_runs_partitions_before_dispatching(
    glue: tuple[Any, str, BuiltStack],
) -> None:
    import json
    from pathlib import Path

    from runtime import lambda_entry
    from runtime.adapters.local_store import LocalContext
    from runtime.lambda_entry import CloudConfig, build_adapters, use_adapters

    client, database, _ = glue
    s3 = boto3.client("s3", region_name=REGION)
    bucket = f"results-{database.replace('_', '-')}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    config = CloudConfig(
        bucket=bucket, prefix="results", worker_function="w", dispatcher_function="p",
        max_points=10_000, max_shards=100, fanout_leaf=250, invoke_threads=2,
        glue_database=database,
    )  # fmt: skip
    use_adapters(build_adapters(config, s3=s3, lambda_=_CapturedLambda(), glue=client))
    try:
        event = json.loads((Path(__file__).parent / "events" / "apigw_post_runs.json").read_text())
        response = lambda_entry.parent(event, LocalContext.with_timeout(60))
    finally:
        use_adapters(None)
    assert response is not None
    run_id = json.loads(response["body"])["run_id"]
    partitions = _partitions(client, database)
    outcomes = {tuple(p["Values"]) for p in partitions["outcomes"]}
    date = f"{run_id[:4]}-{run_id[4:6]}-{run_id[6:8]}"
    assert {(date, run_id, "success"), (date, run_id, "failure")} <= outcomes
    assert any(run_id in p["Values"] for p in partitions["points_sir_epidemic"])
