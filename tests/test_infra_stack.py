"""The stack as built with Pulumi mocks: every resource the runtime needs exists, wired the way
the runtime, the contract and the shipped SQL expect. Assertions read what the engine would
have been sent (the registered inputs) and what the provider would return (mocked state)."""

from __future__ import annotations

import base64
import copy
import hashlib
import importlib
import json
import zipfile
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from jsonschema import Draft4Validator
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate
from test_iam_policies import evaluate
from test_infra_mocks import (
    ACCOUNT,
    API_ID,
    REGION,
    BuiltStack,
    FakeBuilder,
    Registered,
    build,
    in_temp_build_dir,
    sandbox_stack,
)

from infra.analytics import Analytics
from infra.api import ACCESS_LOG_FORMAT, Api, api_document, document_digest
from infra.artifacts import resolve_artifacts
from infra.compute import HANDLERS, Functions
from infra.config import ATHENA_RESULTS_PREFIX, FUNCTION_ROLES, ArtifactSettings
from infra.iam import FunctionRoles, tls_only_bucket_policy
from infra.packaging import Target
from infra.stack import OUTPUT_NAMES, PROJECT_ROOT
from infra.storage import PrivateBucket, ResultsStore
from runtime.adapters.local_store import LocalContext, LocalStore
from runtime.handlers.parent import ParentDeps, submit_run
from runtime.handlers.worker import WorkerDeps, run_shard
from runtime.lambda_entry import CloudConfig
from sweep_core.catalog import MANIFEST_SPEC, glue_tables
from sweep_core.contract import DispatchSlice, ShardTask
from sweep_core.kernels import catalog
from sweep_core.layout import Layout
from sweep_core.named_queries import QUERY_NAMES, named_query
from sweep_core.openapi import gateway_model, openapi_schema
from sweep_core.schema import request_json_schema
from sweep_core.tables import OUTCOMES, points_table
from sweep_sdk.cloud import RemoteConfig

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

_KEY = "lambda/layer/" + "b" * 64 + ".zip"

FUNCTION = "aws:lambda/function:Function"
BUCKET = "aws:s3/bucket:Bucket"
TABLE = "aws:glue/catalogTable:CatalogTable"


@pytest.fixture(scope="module")
def stack() -> BuiltStack:
    return sandbox_stack()


def function(stack: BuiltStack, role: str) -> Registered:
    return stack.one(FUNCTION, f"compute-{role}")


def alias(stack: BuiltStack, role: str) -> Registered:
    return stack.one("aws:lambda/alias:Alias", f"compute-{role}-live")


def results_bucket(stack: BuiltStack) -> str:
    return str(stack.outputs["bucket"])


# --- inventory and shape ---------------------------------------------------------------------


def test_every_resource_the_runtime_needs_exists(stack: BuiltStack) -> None:
    counts = Counter(r.type for r in stack.resources)
    kernels = len(catalog())
    assert counts == {
        "pulumi:pulumi:Stack": 1,
        "pulumi:providers:aws": 1,
        "sweep:storage:ResultsStore": 1,
        "sweep:storage:PrivateBucket": 2,
        "sweep:iam:FunctionRoles": 1,
        "sweep:compute:Functions": 1,
        "sweep:api:Api": 1,
        "sweep:analytics:Analytics": 1,
        BUCKET: 2,
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls": 2,
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": 2,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": 2,
        "aws:s3/bucketVersioning:BucketVersioning": 2,
        "aws:s3/bucketPolicy:BucketPolicy": 2,
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": 2,
        "aws:s3/bucketObjectv2:BucketObjectv2": 3,  # the code zip and two layers
        "aws:iam/role:Role": 3,  # a role per function (the account's API Gateway role: off)
        "aws:iam/rolePolicy:RolePolicy": 3,
        FUNCTION: 3,
        "aws:lambda/alias:Alias": 3,  # each function's live alias
        "aws:cloudwatch/logGroup:LogGroup": 3 + 1,  # a group per function, and access logs
        "aws:lambda/layerVersion:LayerVersion": 2,
        "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig": 1,
        "aws:apigateway/restApi:RestApi": 1,
        "aws:apigateway/deployment:Deployment": 1,
        "aws:apigateway/stage:Stage": 1,
        "aws:apigateway/methodSettings:MethodSettings": 1,
        "aws:lambda/permission:Permission": 1,
        "aws:glue/catalogDatabase:CatalogDatabase": 1,
        TABLE: 2 + kernels,
        "aws:athena/workgroup:Workgroup": 1,
        "aws:athena/namedQuery:NamedQuery": len(QUERY_NAMES),
    }


@pytest.mark.parametrize(
    "component", [ResultsStore, PrivateBucket, FunctionRoles, Functions, Api, Analytics]
)
def test_each_component_type_token_names_its_class(component: Any) -> None:
    assert component.TYPE.startswith("sweep:")
    assert component.TYPE.split(":")[-1] == component.__name__


def test_every_resource_belongs_to_a_component_and_uses_the_stack_provider(
    stack: BuiltStack,
) -> None:
    [provider] = stack.of_type("pulumi:providers:aws")
    assert provider.inputs["region"] == REGION
    for r in stack.resources:
        if not r.type.startswith("aws:"):
            continue
        parent = stack.by_urn(r.parent)
        assert parent.type.startswith("sweep:"), f"{r.name} is not a component's child"
        assert r.provider.startswith(provider.urn + "::"), f"{r.name} uses another provider"


# --- storage ---------------------------------------------------------------------------------


def _of_bucket(stack: BuiltStack, type_: str, bucket: Registered) -> Registered:
    [found] = [r for r in stack.of_type(type_) if r.inputs.get("bucket") == bucket.state["bucket"]]
    return found


@pytest.mark.parametrize("kind", ["results", "artifacts"])
def test_buckets_block_public_access_encrypt_version_and_refuse_plain_http(
    stack: BuiltStack, kind: str
) -> None:
    bucket = stack.one(BUCKET, f"sweep-sandbox-{kind}")
    s3 = "aws:s3/"
    block = _of_bucket(stack, s3 + "bucketPublicAccessBlock:BucketPublicAccessBlock", bucket)
    assert {k: block.inputs[k] for k in block.inputs if k != "bucket"} == {
        "blockPublicAcls": True,
        "blockPublicPolicy": True,
        "ignorePublicAcls": True,
        "restrictPublicBuckets": True,
    }
    sse = _of_bucket(
        stack,
        s3 + "bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        bucket,
    )
    [rule] = sse.inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    versioning = _of_bucket(stack, s3 + "bucketVersioning:BucketVersioning", bucket)
    assert versioning.inputs["versioningConfiguration"] == {"status": "Enabled"}
    ownership = _of_bucket(stack, s3 + "bucketOwnershipControls:BucketOwnershipControls", bucket)
    assert ownership.inputs["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    policy = _of_bucket(stack, s3 + "bucketPolicy:BucketPolicy", bucket)
    assert json.loads(policy.inputs["policy"]) == tls_only_bucket_policy(bucket.state["arn"])
    assert block.urn in policy.dependencies  # the policy waits for the public access block


def test_results_lifecycle_rules_come_from_config(stack: BuiltStack) -> None:
    bucket = stack.one(BUCKET, "sweep-sandbox-results")
    assert bucket.inputs.get("forceDestroy") is False  # results outlive `pulumi destroy`
    lifecycle = _of_bucket(
        stack, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", bucket
    )
    rules = {r["id"]: r for r in lifecycle.inputs["rules"]}
    config = stack.config
    assert rules["expire-athena-results"]["filter"] == {"prefix": ATHENA_RESULTS_PREFIX}
    assert rules["expire-athena-results"]["expiration"] == {
        "days": config.athena_results_expire_days
    }
    assert rules["expire-noncurrent-versions"]["noncurrentVersionExpiration"] == {
        "noncurrentDays": config.noncurrent_versions_expire_days
    }
    assert rules["abort-incomplete-uploads"]["abortIncompleteMultipartUpload"] == {
        "daysAfterInitiation": 1
    }
    assert "expire-results" not in rules  # resultsExpireDays is unset in the sandbox
    assert all(r["status"] == "Enabled" for r in rules.values())


def test_the_uploaded_code_is_the_zip_whose_hash_is_exported(stack: BuiltStack) -> None:
    [upload] = [
        r
        for r in stack.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
        if r.inputs["key"].startswith("lambda/code/")
    ]
    data = Path(upload.inputs["source"].path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    assert stack.outputs["code_sha256"] == digest
    assert upload.inputs["key"] == f"lambda/code/{digest}.zip"
    assert upload.inputs["bucket"] == stack.outputs["artifacts_bucket"]
    expected_hash = base64.b64encode(hashlib.sha256(data).digest()).decode()
    for role in FUNCTION_ROLES:
        inputs = function(stack, role).inputs
        assert inputs["sourceCodeHash"] == expected_hash
        assert (inputs["s3Bucket"], inputs["s3Key"]) == (
            upload.inputs["bucket"],
            upload.inputs["key"],
        )
    assert upload.retain_on_delete  # an earlier build stays deployable for a rollback


# --- compute ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", FUNCTION_ROLES)
def test_each_function_has_its_log_group_settings_role_and_handler(
    stack: BuiltStack, role: str
) -> None:
    config = stack.config
    inputs = function(stack, role).inputs
    group = stack.one("aws:cloudwatch/logGroup:LogGroup", f"compute-{role}")
    assert inputs["loggingConfig"]["logGroup"] == group.inputs["name"]
    assert group.inputs["name"] == f"/aws/lambda/{inputs['name']}"
    assert group.inputs["retentionInDays"] == config.log_retention_days
    settings = getattr(config, role)
    assert (inputs["memorySize"], inputs["timeout"]) == (settings.memory_mb, settings.timeout_s)
    assert inputs["runtime"] == config.lambda_runtime
    assert inputs["architectures"] == [config.architecture]
    assert inputs["role"] == stack.one("aws:iam/role:Role", f"iam-{role}").state["arn"]
    module, _, name = HANDLERS[role].rpartition(".")
    assert inputs["handler"] == HANDLERS[role]
    assert callable(getattr(importlib.import_module(module), name))


@pytest.mark.parametrize("role", FUNCTION_ROLES)
def test_each_function_environment_passes_the_entry_points_validation(
    stack: BuiltStack, role: str
) -> None:
    env = function(stack, role).inputs["environment"]["variables"]
    cloud = CloudConfig.from_env(env)
    assert cloud.bucket == results_bucket(stack)
    assert cloud.prefix == stack.outputs["prefix"]
    # callers invoke the live alias, never $LATEST
    assert cloud.worker_function == f"{stack.outputs['worker_function']}:live"
    assert cloud.dispatcher_function == f"{stack.outputs['parent_function']}:live"
    assert (cloud.max_points, cloud.max_shards) == (
        stack.config.max_points,
        stack.config.max_shards,
    )
    assert cloud.fanout_leaf == stack.config.fanout_leaf
    if role == "parent":
        assert env["SWEEP_GLUE_DATABASE"] == stack.outputs["database"]


def test_the_worker_retries_then_hands_failures_to_the_recorder(stack: BuiltStack) -> None:
    [config] = stack.of_type("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig")
    assert config.inputs["functionName"] == stack.outputs["worker_function"]
    assert config.inputs["qualifier"] == "live"
    assert config.inputs["maximumRetryAttempts"] == stack.config.worker_max_retries
    assert config.inputs["maximumEventAgeInSeconds"] == stack.config.worker_max_event_age_s
    destination = config.inputs["destinationConfig"]["onFailure"]["destination"]
    assert destination == alias(stack, "recorder").state["arn"]
    # Lambda checks the worker's role may invoke the destination: its policy must exist first.
    assert stack.one("aws:iam/rolePolicy:RolePolicy", "iam-worker").urn in config.dependencies


def test_reserved_concurrency_caps_the_worker_only(stack: BuiltStack) -> None:
    reserved = {
        r: function(stack, r).inputs.get("reservedConcurrentExecutions") for r in FUNCTION_ROLES
    }
    assert reserved == {
        "parent": None,
        "worker": stack.config.worker_reserved_concurrency,
        "recorder": None,
    }


# --- api -------------------------------------------------------------------------------------


def _document(stack: BuiltStack) -> dict[str, Any]:
    [api] = stack.of_type("aws:apigateway/restApi:RestApi")
    document: dict[str, Any] = json.loads(api.inputs["body"])
    return document


def test_the_api_is_the_contracts_openapi_document_for_the_parent(stack: BuiltStack) -> None:
    parent = alias(stack, "parent")  # the live alias, not $LATEST
    [api] = stack.of_type("aws:apigateway/restApi:RestApi")
    assert api.inputs["body"] == api_document(parent.state["invokeArn"], REGION)
    document = _document(stack)
    validate(document)
    operations = [op for path in document["paths"].values() for op in path.values()]
    assert len(operations) == 4
    for op in operations:
        integration = op["x-amazon-apigateway-integration"]
        assert (integration["type"], integration["uri"]) == ("aws_proxy", parent.state["invokeArn"])


def test_every_api_method_uses_aws_iam_authorization(stack: BuiltStack) -> None:
    document = _document(stack)
    schemes = document["components"]["securitySchemes"]
    iam = [n for n, s in schemes.items() if s.get("x-amazon-apigateway-authtype") == "awsSigv4"]
    assert len(iam) == 1  # API Gateway imports an awsSigv4 scheme as AWS_IAM authorization
    for path in document["paths"].values():
        for op in path.values():
            assert op["security"] == [{iam[0]: []}]


def test_the_api_validates_the_submit_body_against_the_contract_schema(stack: BuiltStack) -> None:
    document = _document(stack)
    submit = document["paths"]["/runs"]["post"]
    validator = submit["x-amazon-apigateway-request-validator"]
    assert document["x-amazon-apigateway-request-validators"][validator]["validateRequestBody"]
    ref = submit["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    # request_json_schema() carried into OpenAPI 3.0, in the subset API Gateway models support
    assert schema == gateway_model(openapi_schema(request_json_schema()))
    assert submit["requestBody"]["required"] is True


def _requests() -> dict[str, tuple[dict[str, Any], bool]]:
    """Requests and whether the contract (draft-04 schema) accepts each."""
    from conftest import GBM_REQUEST

    sir = json.loads(
        json.loads((Path(__file__).parent / "events" / "apigw_post_runs.json").read_text())["body"]
    )
    gbm = copy.deepcopy(GBM_REQUEST)
    return {
        "gbm": (gbm, True),
        "sir": (sir, True),
        "no kernel": ({k: v for k, v in gbm.items() if k != "kernel"}, False),
        "unknown field": ({**gbm, "colour": "blue"}, False),
        "seed is text": ({**gbm, "seed": "42"}, False),
        "bad sampling": ({**gbm, "sampling": {"method": "guess"}}, False),
        "axes not a map": ({**gbm, "axes": [1, 2]}, False),
    }


@pytest.mark.parametrize("case", sorted(_requests()))
def test_the_apis_body_validator_never_refuses_what_the_contract_accepts(
    stack: BuiltStack, case: str
) -> None:
    raw, accepted = _requests()[case]
    schema = _document(stack)["components"]["schemas"]["SweepRequest"]
    assert Draft4Validator(request_json_schema()).is_valid(raw) is accepted
    if accepted:
        assert OAS30Validator(schema).is_valid(raw)
    elif case != "unknown field":  # additionalProperties is not for API Gateway models
        assert not OAS30Validator(schema).is_valid(raw)


def test_a_changed_document_makes_a_new_deployment(stack: BuiltStack) -> None:
    [api] = stack.of_type("aws:apigateway/restApi:RestApi")
    [deployment] = stack.of_type("aws:apigateway/deployment:Deployment")
    assert deployment.inputs["triggers"] == {"document_sha256": document_digest(api.inputs["body"])}
    other = api_document("arn:aws:apigateway:eu-west-1:lambda:path/other/invocations", REGION)
    assert document_digest(other) != document_digest(api.inputs["body"])
    assert api_document(alias(stack, "parent").state["invokeArn"], REGION) == api.inputs["body"]


@pytest.fixture(scope="module")
def own_account() -> BuiltStack:
    """The sandbox with ``manageApiGatewayAccount`` on, as in an account of one's own."""
    return build(attrs.evolve(sandbox_stack().config, manage_api_gateway_account=True))


def test_the_sandbox_leaves_the_accounts_api_gateway_role_alone(stack: BuiltStack) -> None:
    assert stack.config.manage_api_gateway_account is False
    assert stack.of_type("aws:apigateway/account:Account") == []
    [stage] = stack.of_type("aws:apigateway/stage:Stage")
    assert stage.inputs.get("accessLogSettings") is None  # refused without the account's role


def test_the_stage_throttles_logs_access_and_is_the_exported_url(own_account: BuiltStack) -> None:
    stack = own_account
    [stage] = stack.of_type("aws:apigateway/stage:Stage")
    [deployment] = stack.of_type("aws:apigateway/deployment:Deployment")
    [settings] = stack.of_type("aws:apigateway/methodSettings:MethodSettings")
    access = stack.one("aws:cloudwatch/logGroup:LogGroup", "api-access")
    assert stage.inputs["deployment"] == f"{deployment.name}-id"
    assert stage.inputs["stageName"] == stack.config.api_stage
    assert stage.inputs["accessLogSettings"]["destinationArn"] == access.state["arn"]
    assert json.loads(stage.inputs["accessLogSettings"]["format"]) == ACCESS_LOG_FORMAT
    assert access.inputs["retentionInDays"] == stack.config.log_retention_days
    assert settings.inputs["methodPath"] == "*/*"
    assert settings.inputs["settings"]["throttlingRateLimit"] == stack.config.api_throttle_rate
    assert settings.inputs["settings"]["throttlingBurstLimit"] == stack.config.api_throttle_burst
    assert stack.outputs["api_url"] == stage.state["invokeUrl"]
    # access logging needs API Gateway's account role in place first
    [account] = stack.of_type("aws:apigateway/account:Account")
    assert account.urn in stage.dependencies


def test_api_gateway_may_invoke_the_parent_from_this_stage_only(stack: BuiltStack) -> None:
    [permission] = stack.of_type("aws:lambda/permission:Permission")
    assert permission.inputs["function"] == stack.outputs["parent_function"]
    assert permission.inputs["principal"] == "apigateway.amazonaws.com"
    execution = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}"
    assert permission.inputs["sourceArn"] == f"{execution}/{stack.config.api_stage}/*"


def test_the_api_gateway_logging_role_writes_only_the_access_log_group(
    own_account: BuiltStack,
) -> None:
    stack = own_account
    [account] = stack.of_type("aws:apigateway/account:Account")
    role = stack.one("aws:iam/role:Role", "api-cloudwatch")
    assert account.inputs["cloudwatchRoleArn"] == role.state["arn"]
    policy = [
        json.loads(stack.one("aws:iam/rolePolicy:RolePolicy", "api-cloudwatch").inputs["policy"])
    ]
    access = stack.one("aws:cloudwatch/logGroup:LogGroup", "api-access").state["arn"]
    assert access.endswith(f":log-group:{stack.config.access_log_group_name}")
    others = [
        stack.one("aws:cloudwatch/logGroup:LogGroup", f"compute-{role}").state["arn"]
        for role in ("parent", "worker", "recorder")
    ] + [f"{access}-other", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:API-Gateway-Execution-Logs"]
    for group in [access, *others]:
        stream = f"{group}:log-stream:0123456789abcdef"
        expected = "allow" if group == access else "implicit"
        for action in ("logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"):
            assert evaluate(policy, action, stream) == expected, (action, group)
        # it may list log groups (names only) but never make, delete or retain one
        assert evaluate(policy, "logs:DescribeLogGroups", f"{group}:*") == "allow"
        for action in ("logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy"):
            assert evaluate(policy, action, f"{group}:*") == "implicit", (action, group)


# --- analytics -------------------------------------------------------------------------------


class _RunNow:
    """An invoker that runs each shard task at once, in process, over the same store."""

    def __init__(self, deps: WorkerDeps) -> None:
        self.deps = deps

    def invoke_async(self, tasks: Sequence[ShardTask]) -> None:
        for task in tasks:
            run_shard(task, LocalContext.with_timeout(300), self.deps)

    def dispatch_async(self, slices: Sequence[DispatchSlice]) -> None:
        raise AssertionError("these runs are too small for the fan-out tree")


def _local_runs(root: Path, prefix: str, requests: Sequence[dict[str, Any]]) -> list[str]:
    """Runs submitted and worked through the runtime's own cores, into a folder store."""
    store, layout = LocalStore(root), Layout(prefix)

    def clock() -> datetime:
        return datetime(2026, 11, 23, 15, 21, tzinfo=UTC)

    worker = WorkerDeps(store, layout, clock)
    tokens = iter(f"{i:08x}" for i in range(1, 100))
    deps = ParentDeps(store, layout, _RunNow(worker), clock, lambda: next(tokens))
    run_ids = []
    for raw in requests:
        response = submit_run(json.dumps(raw), deps)
        assert response.status_code == 202, response.body
        run_ids.append(response.body.run_id)  # type: ignore[union-attr]
    return run_ids


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, stack: BuiltStack) -> Path:
    """A data folder holding what the runtime writes for one run of every kernel."""
    from conftest import GBM_REQUEST

    root = tmp_path_factory.mktemp("written")
    sir = json.loads(
        json.loads((Path(__file__).parent / "events" / "apigw_post_runs.json").read_text())["body"]
    )
    gbm = {**GBM_REQUEST, "params": {**GBM_REQUEST["params"], "paths": 200}}
    _local_runs(root, str(stack.outputs["prefix"]), [gbm, sir])
    return root


ATHENA_TYPE_OF_PARQUET: dict[str, str] = {
    # Parquet (as pyarrow reads it) -> the Athena type that reads it without conversion: the
    # table in Athena's "Data types" page for Parquet, written here, not taken from the code.
    "int32": "int",
    "int64": "bigint",
    "double": "double",
    "string": "string",
    "timestamp[ms, tz=UTC]": "timestamp",
}


def _glue_columns(table: Registered) -> list[tuple[str, str]]:
    return [(c["name"], c["type"]) for c in table.inputs["storageDescriptor"]["columns"]]


def _parquet_columns(path: Path) -> list[tuple[str, str]]:
    types = ATHENA_TYPE_OF_PARQUET
    return [(f.name, types[str(f.type)]) for f in pq.read_schema(path)]


@pytest.mark.parametrize("name", ["outcomes", *(f"points_{k}" for k in sorted(catalog()))])
def test_glue_columns_equal_the_parquet_files_the_runtime_writes(
    stack: BuiltStack, written: Path, name: str
) -> None:
    table = stack.one(TABLE, f"analytics-{name}")
    prefix = str(stack.outputs["prefix"])
    root = (
        written
        / prefix
        / ("outcomes" if name == "outcomes" else f"points/{name.removeprefix('points_')}")
    )
    files = sorted(root.rglob("*.parquet"))
    assert files, f"the runtime wrote no {name} files"
    for path in files:
        assert _parquet_columns(path) == _glue_columns(table), path
        # partition columns come from the path, never from inside the file
        partitions = [k["name"] for k in table.inputs["partitionKeys"]]
        assert all(f"{p}=" in path.relative_to(root).as_posix() for p in partitions)
        assert not set(partitions) & set(pq.read_schema(path).names)


def test_the_manifests_table_reads_the_manifests_the_parent_writes(
    stack: BuiltStack, written: Path
) -> None:
    table = stack.one(TABLE, "analytics-manifests")
    manifests = sorted((written / str(stack.outputs["prefix"]) / "runs").rglob("manifest.json"))
    assert len(manifests) == 2
    json_types = {"string": str, "bigint": int, "int": int, "double": float}
    for path in manifests:
        manifest = json.loads(path.read_text())
        for name, type_ in _glue_columns(table):
            if name == MANIFEST_SPEC.name:
                assert type_ == MANIFEST_SPEC.athena_type
                for field in MANIFEST_SPEC.fields:
                    value = manifest["spec"][field.name]
                    assert value is None or isinstance(value, json_types[field.athena_type])
            else:
                assert isinstance(manifest[name], json_types[type_]), name
        keys = [k["name"] for k in table.inputs["partitionKeys"]]
        assert keys == ["run_date", "run_id"]
        assert all(f"{k}={manifest[k]}" in path.as_posix() for k in keys)


def test_tables_sit_under_the_results_prefix_and_use_registered_partitions(
    stack: BuiltStack,
) -> None:
    bucket, prefix = results_bucket(stack), stack.outputs["prefix"]
    tables = {t.name: t for t in glue_tables(catalog().values())}
    registered = {r.inputs["name"]: r for r in stack.of_type(TABLE)}
    assert set(registered) == set(tables)
    for name, table in registered.items():
        sd = table.inputs["storageDescriptor"]
        assert sd["location"] == f"s3://{bucket}/{prefix}/{tables[name].root}/"
        assert table.inputs["databaseName"] == stack.outputs["database"]
        parameters = table.inputs["parameters"]
        # Partitions are registered at run start, not projected: projection's `injected`
        # type would make Athena refuse every query without `run_id = ...`.
        assert not [k for k in parameters if k.startswith("projection.")]
        assert parameters["partition_filtering.enabled"] == "true"
        assert table.inputs["partitionIndices"] == [{"indexName": "by_run_id", "keys": ["run_id"]}]


def test_the_workgroup_enforces_an_encrypted_result_location_and_a_scan_cutoff(
    stack: BuiltStack,
) -> None:
    [workgroup] = stack.of_type("aws:athena/workgroup:Workgroup")
    configuration = workgroup.inputs["configuration"]
    assert configuration["enforceWorkgroupConfiguration"] is True
    assert configuration["bytesScannedCutoffPerQuery"] == stack.config.athena_bytes_scanned_cutoff
    result = configuration["resultConfiguration"]
    assert result["outputLocation"] == f"s3://{results_bucket(stack)}/{ATHENA_RESULTS_PREFIX}"
    assert result["encryptionConfiguration"] == {"encryptionOption": "SSE_S3"}
    assert not ATHENA_RESULTS_PREFIX.startswith(f"{stack.outputs['prefix']}/")
    assert workgroup.inputs["name"] == stack.outputs["workgroup"]


def test_named_queries_are_the_sql_the_sdk_ships(stack: BuiltStack) -> None:
    saved = {q.inputs["name"]: q.inputs for q in stack.of_type("aws:athena/namedQuery:NamedQuery")}
    assert set(saved) == set(QUERY_NAMES)
    for name, inputs in saved.items():
        assert inputs["query"] == named_query(name)
        assert inputs["database"] == stack.outputs["database"]
        assert inputs["workgroup"] == stack.outputs["workgroup"]


# --- outputs and variants --------------------------------------------------------------------


def test_the_sdk_configures_itself_from_the_saved_stack_outputs(
    stack: BuiltStack, tmp_path: Path
) -> None:
    saved = tmp_path / "stack.json"
    saved.write_text(json.dumps(dict(stack.outputs)))  # as `pulumi stack output --json` writes
    remote = RemoteConfig.from_stack_outputs(saved)
    assert attrs.asdict(remote) == {k: stack.outputs[k] for k in OUTPUT_NAMES[:6]}
    assert remote.api_url.endswith(f"/{stack.config.api_stage}")


def _zip(path: Path, member: str) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, "")
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_prebuilt_zips_a_boundary_and_result_expiry(tmp_path: Path) -> None:
    code = _zip(tmp_path / "code.zip", "runtime/lambda_entry.py")
    deps = _zip(tmp_path / "deps.zip", "python/numpy/__init__.py")
    scipy = _zip(tmp_path / "scipy.zip", "python/scipy/__init__.py")
    boundary = f"arn:aws:iam::{ACCOUNT}:policy/sandbox-boundary"
    config = attrs.evolve(
        in_temp_build_dir(sandbox_stack().config),
        permissions_boundary_arn=boundary,
        results_expire_days=90,
        manage_api_gateway_account=False,
        architecture="x86_64",
    )
    artifacts = attrs.evolve(
        config.artifacts, code_zip=str(code), layer_zip=str(deps), scipy_layer_zip=str(scipy)
    )
    builder = FakeBuilder()
    variant = build(attrs.evolve(config, artifacts=artifacts), builder=builder)
    assert builder.calls == []  # the zips named are deployed as they are
    versions = {r.name: r for r in variant.of_type("aws:lambda/layerVersion:LayerVersion")}
    assert set(versions) == {"compute-deps", "compute-scipy"}
    uploads = {r.inputs["key"] for r in variant.of_type("aws:s3/bucketObjectv2:BucketObjectv2")}
    assert uploads == {
        f"lambda/code/{_sha(code)}.zip",
        f"lambda/layer/{_sha(deps)}.zip",
        f"lambda/layer-scipy/{_sha(scipy)}.zip",
    }
    for name, path in (("deps", deps), ("scipy", scipy)):
        version = versions[f"compute-{name}"]
        assert version.inputs["compatibleArchitectures"] == ["x86_64"]
        digest = base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()
        assert version.inputs["sourceCodeHash"] == digest
    assert variant.outputs["layer_sha256"] == _sha(deps)
    assert variant.outputs["scipy_layer_sha256"] == _sha(scipy)
    deps_arn, scipy_arn = (versions[f"compute-{n}"].state["arn"] for n in ("deps", "scipy"))
    for role in FUNCTION_ROLES:
        expected = [deps_arn, scipy_arn] if role == "worker" else [deps_arn]
        assert function(variant, role).inputs["layers"] == expected, role
        assert function(variant, role).inputs["architectures"] == ["x86_64"]
    assert {r.inputs.get("permissionsBoundary") for r in variant.of_type("aws:iam/role:Role")} == {
        boundary
    }
    assert variant.of_type("aws:apigateway/account:Account") == []
    lifecycle = _of_bucket(
        variant,
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        variant.one(BUCKET, "sweep-sandbox-results"),
    )
    [expire] = [r for r in lifecycle.inputs["rules"] if r["id"] == "expire-results"]
    assert expire["filter"] == {"prefix": "results/"}
    assert expire["expiration"] == {"days": 90}


def test_a_rollback_deploys_artifacts_already_uploaded_without_uploading(tmp_path: Path) -> None:
    code, deps, scipy = "a" * 64, "b" * 64, "c" * 64
    artifacts = ArtifactSettings(
        build_dir=str(tmp_path),
        use_existing=True,
        code_key=f"lambda/code/{code}.zip",
        layer_key=f"lambda/layer/{deps}.zip",
        scipy_layer_key=f"lambda/layer-scipy/{scipy}.zip",
    )
    builder = FakeBuilder()
    variant = build(attrs.evolve(sandbox_stack().config, artifacts=artifacts), builder=builder)
    assert builder.calls == []
    assert variant.of_type("aws:s3/bucketObjectv2:BucketObjectv2") == []
    assert (variant.outputs["code_sha256"], variant.outputs["layer_sha256"]) == (code, deps)
    versions = {r.name: r for r in variant.of_type("aws:lambda/layerVersion:LayerVersion")}
    assert versions["compute-deps"].inputs["s3Key"] == f"lambda/layer/{deps}.zip"
    assert versions["compute-scipy"].inputs["s3Key"] == f"lambda/layer-scipy/{scipy}.zip"
    for role in FUNCTION_ROLES:
        inputs = function(variant, role).inputs
        assert (inputs["s3Bucket"], inputs["s3Key"]) == (
            variant.outputs["artifacts_bucket"],
            f"lambda/code/{code}.zip",
        )
        assert inputs["sourceCodeHash"] == base64.b64encode(bytes.fromhex(code)).decode()


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        (ArtifactSettings(use_existing=True), "missing sweep:codeArtifactKey, sweep:layer"),
        (
            ArtifactSettings(
                use_existing=True, code_key="lambda/code/" + "a" * 64 + ".zip", layer_key=_KEY
            ),
            "missing sweep:scipyLayerArtifactKey$",
        ),
        (
            ArtifactSettings(
                use_existing=True,
                code_key="lambda/layer/" + "a" * 64 + ".zip",
                layer_key=_KEY,
                scipy_layer_key=_KEY,
            ),
            "not a code",
        ),
        (
            ArtifactSettings(
                use_existing=True, code_key="code.zip", layer_key=_KEY, scipy_layer_key=_KEY
            ),
            "not a code",
        ),
        (ArtifactSettings(layer_zip="deps.zip"), "set .*missing sweep:codeZip, sweep:scipyLayer"),
    ],
)
def test_no_setting_deploys_a_function_without_all_its_artifacts(
    settings: ArtifactSettings, error: str
) -> None:
    builder = FakeBuilder()
    with pytest.raises(ValueError, match=error):
        resolve_artifacts(settings, PROJECT_ROOT, Target("arm64", "3.12"), builder)
    assert builder.calls == []


def test_a_missing_prebuilt_artifact_fails_the_build_early(tmp_path: Path) -> None:
    settings = ArtifactSettings(
        build_dir=str(tmp_path),
        code_zip=str(tmp_path / "none.zip"),
        layer_zip=str(tmp_path / "deps.zip"),
        scipy_layer_zip=str(tmp_path / "scipy.zip"),
    )
    config = attrs.evolve(sandbox_stack().config, artifacts=settings)
    with pytest.raises(FileNotFoundError, match="build it first"):
        build(config)


def test_the_reverse_type_map_the_column_checks_use_is_unambiguous() -> None:
    types = ATHENA_TYPE_OF_PARQUET
    assert len(set(types.values())) == len(types)
    assert types[str(pa.timestamp("ms", tz="UTC"))] == "timestamp"


def test_every_declared_column_has_the_athena_type_of_its_parquet_type() -> None:
    columns = list(OUTCOMES.columns) + [
        c for k in catalog().values() for c in points_table(k).columns
    ]
    assert {c.type for c in columns} == {"int32", "int64", "double", "string", "timestamp"}
    for column in columns:
        assert column.athena_type == ATHENA_TYPE_OF_PARQUET[str(column.arrow_type)], column
