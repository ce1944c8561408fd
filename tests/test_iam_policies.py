"""Least privilege, proven against engines that enforce it (moto with IAM enforcement on, and
``evaluate`` where moto does not), on the policy documents of the built stack.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import enable_iam_authentication
from test_infra_mocks import (
    ACCOUNT,
    REGION,
    BuiltStack,
    build,
    config_from,
    sandbox_stack,
    stack_file_config,
)

import infra.iam
from infra.iam import (
    ACTIONS_ON_NO_RESOURCE,
    POLICIES,
    Document,
    PolicyTargets,
    _statement,
    api_gateway_logs_policy,
)
from runtime import lambda_entry
from runtime.adapters.local_store import LocalContext
from runtime.adapters.s3 import S3Store
from runtime.lambda_entry import CloudConfig, build_adapters, use_adapters
from sweep_core.catalog import glue_tables
from sweep_core.kernels import catalog
from sweep_core.layout import Layout
from sweep_sdk.compact import compact_run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ROLES = ("parent", "worker", "recorder")
RUN_ID = "20261123T152100Z-1a2b3c4d"
KERNEL = "gbm_european_option"
Decision = Literal["allow", "deny", "implicit"]


# --- the evaluator -------------------------------------------------------------------------------


def _matches(pattern: str, value: str, case_sensitive: bool) -> bool:
    if not case_sensitive:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


_CONDITIONS: dict[str, Callable[[str, str], bool]] = {
    "StringLike": lambda actual, expected: _matches(expected, actual, True),
    "StringEquals": lambda actual, expected: actual == expected,
    "Bool": lambda actual, expected: actual.lower() == expected.lower(),
}


def _condition_holds(condition: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    for operator, tests in condition.items():
        if operator not in _CONDITIONS:
            raise NotImplementedError(f"the evaluator does not know {operator}")
        for key, expected in tests.items():
            if key not in context:
                return False  # no ...IfExists operators are used: a missing key fails
            if not any(_CONDITIONS[operator](context[key], e) for e in _listed(expected)):
                return False
    return True


def evaluate(
    documents: Iterable[Document],
    action: str,
    resource: str,
    context: Mapping[str, str] | None = None,
) -> Decision:
    """IAM's decision for one request: an explicit deny wins, then any allow, else implicit.

    moto enforces the documents on real S3 calls (each role's document attached to a stand-in
    user whose keys run the cloud flow). What moto does not enforce -- conditions (``s3:prefix``
    on ListBucket, ``aws:SecureTransport`` in the bucket policy) and resources of Lambda, Glue
    and CloudWatch Logs calls (moto checks those against ``*``) -- is checked with this small
    evaluator of the policy language subset the stack uses. It refuses anything outside that
    subset, and it must agree with moto on every S3 object request of the matrix.
    """
    context = context or {}
    decision: Decision = "implicit"
    for document in documents:
        for statement in document["Statement"]:
            unknown = set(statement) - {
                "Sid",
                "Effect",
                "Action",
                "Resource",
                "Condition",
                "Principal",
            }
            if unknown:
                raise NotImplementedError(f"the evaluator does not know {sorted(unknown)}")
            if not any(_matches(a, action, False) for a in _listed(statement["Action"])):
                continue
            if not any(_matches(r, resource, True) for r in _listed(statement["Resource"])):
                continue
            if not _condition_holds(statement.get("Condition", {}), context):
                continue
            if statement["Effect"] == "Deny":
                return "deny"
            decision = "allow"
    return decision


# --- the documents the stack deploys -------------------------------------------------------------


@pytest.fixture(scope="module")
def stack() -> BuiltStack:
    return sandbox_stack()


@pytest.fixture(scope="module")
def whole_stack() -> BuiltStack:
    """The sandbox with every optional policy: the account's API Gateway role managed too."""
    return build(attrs.evolve(sandbox_stack().config, manage_api_gateway_account=True))


def role_policy(stack: BuiltStack, role: str) -> Document:
    document: Document = json.loads(
        stack.one("aws:iam/rolePolicy:RolePolicy", f"iam-{role}").inputs["policy"]
    )
    return document


def every_policy(stack: BuiltStack) -> list[tuple[str, Document]]:
    """Every policy document in the stack: role policies, trust policies, bucket policies."""
    found: list[tuple[str, Document]] = []
    for r in stack.resources:
        for field in ("policy", "assumeRolePolicy"):
            if r.type.startswith("aws:") and isinstance(r.inputs.get(field), str):
                found.append((f"{r.type} {r.name} {field}", json.loads(r.inputs[field])))
    return found


def targets(stack: BuiltStack) -> PolicyTargets:
    return PolicyTargets.of(
        stack.config,
        ACCOUNT,
        str(stack.outputs["bucket"]),
        [t.name for t in glue_tables(catalog().values())],
    )


def test_the_deployed_documents_are_the_policy_functions_of_the_deployed_names(
    stack: BuiltStack,
) -> None:
    t = targets(stack)
    for role in ROLES:
        assert role_policy(stack, role) == POLICIES[role](t)
    # ...and the ARNs they name are those of the functions the stack creates
    functions = {
        r.inputs["name"]: r.state["arn"] for r in stack.of_type("aws:lambda/function:Function")
    }
    for name, arn in functions.items():
        assert t.function_arn(name) == arn
    assert stack.of_type("aws:iam/role:Role")[0].inputs["assumeRolePolicy"]


def test_no_policy_grants_a_wildcard_action_or_an_undocumented_wildcard_resource(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The reasons registry is filled as statements are made: empty it, build the stack (with
    # every optional policy) afresh, and the deployed wildcards must be exactly the registered
    # ones, each with its reason.
    monkeypatch.setattr(infra.iam, "WILDCARD_RESOURCES", {})
    monkeypatch.setattr(infra.iam, "WILDCARD_ACTIONS", {})
    stack = build(attrs.evolve(sandbox_stack().config, manage_api_gateway_account=True))
    policies = every_policy(stack)
    assert len(policies) == 2 + 4 + 4  # bucket policies, role policies, trust policies
    seen_wildcards = set()
    for where, document in policies:
        for statement in document["Statement"]:
            sid = statement.get("Sid", "")
            actions = _listed(statement["Action"])
            if any("*" in a for a in actions):
                assert statement["Effect"] == "Deny", (where, sid)
                assert infra.iam.WILDCARD_ACTIONS.get(sid), (where, sid)
                seen_wildcards.add(sid)
            for resource in _listed(statement.get("Resource", [])):
                if resource == "*":  # only where IAM has no resource type for the action
                    assert set(actions) <= ACTIONS_ON_NO_RESOURCE, (where, sid)
                if "*" in resource:
                    assert infra.iam.WILDCARD_RESOURCES.get(sid), (where, sid, resource)
                    seen_wildcards.add(sid)
            if statement["Effect"] == "Allow":
                assert not {"NotAction", "NotResource"} & set(statement), (where, sid)
    # ...and every registered reason explains a wildcard that is deployed
    assert seen_wildcards == set(infra.iam.WILDCARD_RESOURCES) | set(infra.iam.WILDCARD_ACTIONS)
    assert seen_wildcards  # the stack has wildcards (log streams, per-run keys): it was looked at


@pytest.mark.parametrize(
    ("actions", "resources", "effect", "wildcard", "error"),
    [
        (["s3:GetObject"], ["arn:aws:s3:::b/*"], "Allow", None, "needs the reason"),
        (["s3:GetObject"], ["*"], "Allow", "because", "bare \\*"),
        (["logs:DescribeLogGroups"], ["*"], "Allow", None, "bare \\*"),
        (["s3:Get*"], ["arn:aws:s3:::b/k"], "Allow", "because", "only for a Deny"),
        (["s3:GetObject"], ["arn:aws:s3:::b/k"], "Allow", "because", "no \\* to explain"),
    ],
)
def test_a_statement_cannot_be_made_with_an_unexplained_or_granting_wildcard(
    actions: list[str], resources: list[str], effect: str, wildcard: str | None, error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        _statement("Probe", actions, resources, effect=effect, wildcard=wildcard)


def test_no_role_is_granted_any_delete_or_policy_change(stack: BuiltStack) -> None:
    for role in ROLES:
        actions = {a for s in role_policy(stack, role)["Statement"] for a in _listed(s["Action"])}
        assert actions <= {
            "s3:GetObject",
            "s3:PutObject",
            "s3:ListBucket",
            "lambda:InvokeFunction",
            "glue:BatchCreatePartition",
            "logs:CreateLogStream",
            "logs:PutLogEvents",
        }, role


# --- S3 object requests: moto with IAM enforcement, and the evaluator ----------------------------

LAYOUT = Layout(config_from(stack_file_config()).results_prefix)
KEYS = {
    "success": LAYOUT.success_key(RUN_ID, 1),
    "failure": LAYOUT.failure_key(RUN_ID, 1, 1),
    "points": LAYOUT.points_key(KERNEL, RUN_ID, 1),
    "manifest": LAYOUT.manifest_key(RUN_ID),
    "redrive": LAYOUT.redrive_key(RUN_ID, 1),
    "token": LAYOUT.token_key("client-token"),
    "prefix_root": f"{LAYOUT.prefix}/notes.txt",
    "look_alike": f"{LAYOUT.prefix}-copy/outcomes/x.parquet",
    "athena_results": "athena-results/query.csv",
    "elsewhere": "elsewhere/object.bin",
}
ALLOWED: dict[tuple[str, str], set[str]] = {
    ("worker", "put"): {"success", "failure", "points"},
    ("worker", "get"): {"success", "failure", "points"},
    ("parent", "put"): {"manifest", "redrive", "token"},
    ("parent", "get"): {"manifest", "redrive", "token", "success", "failure"},
    ("recorder", "put"): {"failure"},
    ("recorder", "get"): {"success", "failure"},
}
"""Everything else -- and every delete, for every role -- is refused."""
OPERATIONS = {"put": "s3:PutObject", "get": "s3:GetObject", "delete": "s3:DeleteObject"}


def _second(key: str) -> str:
    """A sibling key that does not exist yet, for a put (shard 2 instead of 1)."""
    return key.replace("shard=00001", "shard=00002").replace("0001.json", "0002.json")


@pytest.fixture(scope="module")
def enforced(stack: BuiltStack) -> Iterator[tuple[Any, dict[str, Any]]]:
    """moto S3 with the stack's bucket and one IAM user per role, carrying that role's policy;
    IAM enforcement is on once set-up is done. Yields (admin s3, role -> s3 client)."""
    patch = pytest.MonkeyPatch()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        patch.setenv(name, "testing")
    patch.delenv("AWS_SESSION_TOKEN", raising=False)
    bucket = str(stack.outputs["bucket"])
    with mock_aws():
        admin = boto3.client("s3", region_name=REGION)
        admin.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        for key in KEYS.values():
            admin.put_object(Bucket=bucket, Key=key, Body=b"seed")
        iam = boto3.client("iam", region_name=REGION)
        clients = {}
        for role in ROLES:
            iam.create_user(UserName=f"as-{role}")
            iam.put_user_policy(
                UserName=f"as-{role}",
                PolicyName="deployed",
                PolicyDocument=json.dumps(role_policy(stack, role)),
            )
            key = iam.create_access_key(UserName=f"as-{role}")["AccessKey"]
            clients[role] = boto3.client(
                "s3",
                region_name=REGION,
                aws_access_key_id=key["AccessKeyId"],
                aws_secret_access_key=key["SecretAccessKey"],
            )
        # an operator (who compacts runs) with full access to the results bucket
        iam.create_user(UserName="operator")
        iam.put_user_policy(
            UserName="operator",
            PolicyName="operator",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "s3:*",
                            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                        }
                    ],
                }
            ),
        )
        key = iam.create_access_key(UserName="operator")["AccessKey"]
        clients["operator"] = boto3.client(
            "s3",
            region_name=REGION,
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
        )
        with enable_iam_authentication():
            yield admin, clients
    patch.undo()


def _moto_answer(client: Any, bucket: str, operation: str, key: str) -> str:
    """``ok``, or the error code moto answered with."""
    try:
        if operation == "put":
            client.put_object(Bucket=bucket, Key=_second(key), Body=b"x")
        elif operation == "get":
            client.get_object(Bucket=bucket, Key=key)["Body"].read()
        else:
            client.delete_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return "ok"


@pytest.mark.parametrize("role", ROLES)
def test_each_role_reaches_exactly_its_objects_in_moto_and_the_evaluator_agrees(
    stack: BuiltStack, enforced: tuple[Any, dict[str, Any]], role: str
) -> None:
    _, clients = enforced
    bucket = str(stack.outputs["bucket"])
    policy = [role_policy(stack, role)]
    for operation, action in OPERATIONS.items():
        for name, key in KEYS.items():
            expected = name in ALLOWED.get((role, operation), set())
            target = _second(key) if operation == "put" else key
            arn = f"arn:aws:s3:::{bucket}/{target}"
            assert (evaluate(policy, action, arn) == "allow") == expected, (role, operation, name)
            expected_answer = "ok" if expected else "AccessDenied"
            answer = _moto_answer(clients[role], bucket, operation, key)
            assert answer == expected_answer, (role, operation, name)


def test_the_recorder_cannot_write_a_success(stack: BuiltStack) -> None:
    bucket = str(stack.outputs["bucket"])
    policy = [role_policy(stack, "recorder")]
    for shard in (0, 7, 12345):
        success = f"arn:aws:s3:::{bucket}/{LAYOUT.success_key(RUN_ID, shard)}"
        failure = f"arn:aws:s3:::{bucket}/{LAYOUT.failure_key(RUN_ID, shard, 3)}"
        assert evaluate(policy, "s3:PutObject", success) == "implicit"
        assert evaluate(policy, "s3:PutObject", failure) == "allow"
    # IAM's `*` also spans "/", so the pattern admits odd keys that contain
    # ".../status=failure/" below a success folder; no reader takes those for a success
    # (Layout.parse_outcome_key reads the last status= folder), and the recorder only writes
    # Layout.failure_key. docs/INFRA.md records this residual.


# --- listing, and why a missing object answers 404 -----------------------------------------------


@pytest.mark.parametrize(
    ("role", "listed", "allowed"),
    [
        ("worker", LAYOUT.failure_prefix(RUN_ID, 1), True),
        ("worker", LAYOUT.success_key(RUN_ID, 1), True),  # HeadObject of a missing success
        ("worker", LAYOUT.points_prefix(KERNEL, RUN_ID), False),
        ("worker", LAYOUT.run_folder(RUN_ID), True),  # a cancel record stops the shard
        ("worker", f"{LAYOUT.prefix}/tokens/", False),
        ("worker", "", False),
        ("parent", LAYOUT.outcomes_prefix(RUN_ID), True),
        ("parent", LAYOUT.redrive_prefix(RUN_ID), True),
        ("parent", LAYOUT.manifest_key(RUN_ID), True),  # GET of an unknown run's manifest
        ("parent", f"{LAYOUT.prefix}/tokens/", False),
        ("parent", LAYOUT.points_prefix(KERNEL, RUN_ID), False),
        ("parent", f"{LAYOUT.prefix}/", False),
        ("recorder", LAYOUT.failure_prefix(RUN_ID, 1), True),
        ("recorder", LAYOUT.success_key(RUN_ID, 1), True),
        ("recorder", LAYOUT.points_prefix(KERNEL, RUN_ID), False),
        ("recorder", "athena-results/", False),
    ],
)
def test_listing_is_limited_to_the_prefixes_each_role_reads(
    stack: BuiltStack, role: str, listed: str, allowed: bool
) -> None:
    # S3 authorizes ListObjectsV2 with s3:prefix set to the Prefix parameter, and decides
    # between 404 and 403 for a missing object by the same check with s3:prefix set to the
    # key: the runtime reads "absent" from a 404 only, so each such key must be listable.
    bucket_arn = f"arn:aws:s3:::{stack.outputs['bucket']}"
    decision = evaluate(
        [role_policy(stack, role)], "s3:ListBucket", bucket_arn, {"s3:prefix": listed}
    )
    assert (decision == "allow") == allowed


# --- Lambda, Glue and CloudWatch Logs (resources moto does not check) ----------------------------


@pytest.mark.parametrize(
    ("role", "target", "allowed"),
    [
        ("parent", "worker", True),
        ("parent", "parent", True),  # dispatcher slices of the fan-out tree
        ("parent", "recorder", False),
        ("worker", "recorder", True),  # Lambda delivers the on-failure record with this role
        ("worker", "worker", False),
        ("worker", "parent", False),
        ("recorder", "parent", False),
        ("recorder", "worker", False),
        ("recorder", "recorder", False),
    ],
)
def test_each_role_invokes_only_the_live_alias_of_the_functions_it_calls(
    stack: BuiltStack, role: str, target: str, allowed: bool
) -> None:
    # callers invoke the live alias; the unqualified function ($LATEST) is never granted
    arn = str(stack.one("aws:lambda/alias:Alias", f"compute-{target}-live").state["arn"])
    policy = [role_policy(stack, role)]
    assert (evaluate(policy, "lambda:InvokeFunction", arn) == "allow") == allowed
    latest = str(stack.one("aws:lambda/function:Function", f"compute-{target}").state["arn"])
    assert evaluate(policy, "lambda:InvokeFunction", latest) == "implicit"
    other = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:someone-elses"
    assert evaluate(policy, "lambda:InvokeFunction", other) == "implicit"
    assert evaluate(policy, "lambda:UpdateFunctionCode", arn) == "implicit"


def test_only_the_parent_registers_partitions_and_only_in_this_database(stack: BuiltStack) -> None:
    database = stack.outputs["database"]
    glue = f"arn:aws:glue:{REGION}:{ACCOUNT}"
    resources = [
        f"{glue}:catalog",
        f"{glue}:database/{database}",
        f"{glue}:table/{database}/outcomes",
    ]
    for role in ROLES:
        policy = [role_policy(stack, role)]
        decisions = {evaluate(policy, "glue:BatchCreatePartition", r) for r in resources}
        assert decisions == ({"allow"} if role == "parent" else {"implicit"})
        assert (
            evaluate(policy, "glue:BatchCreatePartition", f"{glue}:table/other/outcomes")
            == "implicit"
        )
        assert evaluate(policy, "glue:DeleteTable", resources[2]) == "implicit"
        assert evaluate(policy, "glue:BatchDeletePartition", resources[2]) == "implicit"


@pytest.mark.parametrize("role", ROLES)
def test_each_function_writes_only_its_own_log_group(stack: BuiltStack, role: str) -> None:
    policy = [role_policy(stack, role)]
    for other in ROLES:
        group = stack.one("aws:cloudwatch/logGroup:LogGroup", f"compute-{other}").state["arn"]
        stream = f"{group}:log-stream:2026/11/23/[$LATEST]0123456789abcdef"
        expected = "allow" if other == role else "implicit"
        assert evaluate(policy, "logs:PutLogEvents", stream) == expected
        assert evaluate(policy, "logs:CreateLogStream", stream) == expected
        assert evaluate(policy, "logs:DeleteLogGroup", group) == "implicit"
    assert (
        evaluate(policy, "logs:CreateLogGroup", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:x")
        == "implicit"
    )


def test_the_bucket_policy_refuses_plain_http_even_to_an_allowed_role(stack: BuiltStack) -> None:
    bucket = stack.one("aws:s3/bucket:Bucket", "sweep-sandbox-results").state["bucket"]
    [policy] = [
        json.loads(r.inputs["policy"])
        for r in stack.of_type("aws:s3/bucketPolicy:BucketPolicy")
        if r.inputs["bucket"] == bucket
    ]
    documents = [role_policy(stack, "worker"), policy]
    arn = f"arn:aws:s3:::{bucket}/{KEYS['success']}"
    assert evaluate(documents, "s3:GetObject", arn, {"aws:SecureTransport": "true"}) == "allow"
    assert evaluate(documents, "s3:GetObject", arn, {"aws:SecureTransport": "false"}) == "deny"
    bucket_arn = f"arn:aws:s3:::{bucket}"
    assert (
        evaluate([policy], "s3:ListBucket", bucket_arn, {"aws:SecureTransport": "false"}) == "deny"
    )


def test_the_evaluator_refuses_what_it_does_not_understand() -> None:
    statement = {
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": "*",
        "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
    }
    ask = {"Version": "2012-10-17", "Statement": [statement]}
    with pytest.raises(NotImplementedError):
        evaluate([ask], "s3:GetObject", "arn:aws:s3:::b/k", {"aws:SourceIp": "10.1.1.1"})


# --- the whole flow, each function with its own credentials --------------------------------------


class CapturedLambda:
    """Keeps each asynchronous invoke (moto runs no Lambda code without a container)."""

    def __init__(self) -> None:
        self.invokes: list[tuple[str, dict[str, Any]]] = []

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:  # noqa: N803
        assert InvocationType == "Event"
        self.invokes.append((FunctionName, json.loads(Payload)))
        return {"StatusCode": 202}


def _event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((Path(__file__).parent / "events" / name).read_text())
    return loaded


def test_a_whole_run_succeeds_with_each_function_holding_only_its_own_policy(
    stack: BuiltStack, enforced: tuple[Any, dict[str, Any]]
) -> None:
    _, clients = enforced
    parent = stack.one("aws:lambda/function:Function", "compute-parent")
    # Glue registration is left out here: moto checks Glue calls against resource "*" only, so
    # the parent's (resource-scoped) Glue grant is proven by the evaluator and test_infra_catalog.
    env = {
        k: v
        for k, v in parent.inputs["environment"]["variables"].items()
        if k != "SWEEP_GLUE_DATABASE"
    }
    cloud = attrs.evolve(CloudConfig.from_env(env), fanout_leaf=4, invoke_threads=2)
    captured = CapturedLambda()
    adapters = {role: build_adapters(cloud, s3=clients[role], lambda_=captured) for role in ROLES}
    # the parent invokes "<function>:live": map each qualified name to the alias ARN IAM checks
    arns = {
        f"{r.inputs['functionName']}:{r.inputs['name']}": r.state["arn"]
        for r in stack.of_type("aws:lambda/alias:Alias")
    }
    context = LocalContext.with_timeout(900)
    try:
        use_adapters(adapters["parent"])
        response = lambda_entry.parent(_event("apigw_post_runs.json"), context)
        assert response is not None
        assert response["statusCode"] == 202, response
        run = json.loads(response["body"])
        delivered = {"parent": 0, "worker": 0, "recorder": 0}
        while captured.invokes:
            function, payload = captured.invokes.pop(0)
            caller = "parent"  # only the parent's code invokes anything
            assert (
                evaluate([role_policy(stack, caller)], "lambda:InvokeFunction", arns[function])
                == "allow"
            )
            if function == cloud.dispatcher_function:
                use_adapters(adapters["parent"])
                lambda_entry.parent(payload, context)
                delivered["parent"] += 1
            elif payload["shard"] == 1:  # this worker "runs out of memory": the recorder writes
                record = _event("lambda_on_failure_killed.json")
                record["requestPayload"] = payload
                use_adapters(adapters["recorder"])
                lambda_entry.failure_recorder(record, context)
                delivered["recorder"] += 1
            else:
                use_adapters(adapters["worker"])
                lambda_entry.worker(payload, context)
                delivered["worker"] += 1
        assert delivered["recorder"] == 1
        assert delivered["worker"] == run["shard_count"] - 1
        # the parent reads the run's status with its own credentials
        get = _event("apigw_get_run.json")
        get["pathParameters"] = {"run_id": run["run_id"]}
        use_adapters(adapters["parent"])
        status = lambda_entry.parent(get, context)
        assert status is not None
        assert status["statusCode"] == 200
        body = json.loads(status["body"])
        assert body["missing"] == 0
        assert body["succeeded"] + body["failed"] == run["shard_count"]
        # compacted (by an operator, with their own credentials), the run's outcomes become
        # files the parent reads: status is unchanged, and redrive still works
        operator = clients["operator"]
        compacted = compact_run(
            _DeletingStore(operator, cloud.bucket), Layout(cloud.prefix), run["run_id"]
        )
        assert compacted.partitions
        assert not [
            k
            for k in S3Store(operator, cloud.bucket).list(f"{cloud.prefix}/outcomes/")
            if k.endswith("/shard=00000.parquet")
        ]
        status = lambda_entry.parent(get, context)
        assert status is not None
        assert status["statusCode"] == 200, status
        assert json.loads(status["body"]) == body
        # a redrive, too, needs nothing beyond the parent's policy
        redrive = _event("apigw_get_run.json")
        redrive |= {"httpMethod": "POST", "resource": "/runs/{run_id}/redrive"}
        redrive["pathParameters"] = {"run_id": run["run_id"]}
        answer = lambda_entry.parent(redrive, context)
        assert answer is not None
        assert answer["statusCode"] == 202
    finally:
        use_adapters(None)


# --- parliament --------------------------------------------------------------------------------

PARLIAMENT = Path(
    os.environ.get("SWEEP_PARLIAMENT", Path(__file__).resolve().parents[1] / ".venv-parliament")
)
"""parliament's own environment (it needs an older setuptools); ``make test`` installs it from
requirements-parliament.txt."""


def test_every_identity_and_bucket_policy_is_clean_under_parliament(
    whole_stack: BuiltStack, tmp_path: Path
) -> None:
    executable = PARLIAMENT / "bin" / "parliament"
    if not executable.is_file():
        if os.environ.get("CI"):
            raise AssertionError(f"{executable} is missing: run make test, which installs it")
        pytest.skip(f"{executable} is missing (make test installs it)")
    linted = []
    for where, document in every_policy(whole_stack):
        if "assumeRolePolicy" in where:
            continue  # trust policies name a Principal, not a Resource: not parliament's kind
        path = tmp_path / (where.replace(" ", "_").replace("/", "_").replace(":", "_") + ".json")
        path.write_text(json.dumps(document))
        linted.append(path.name)
    assert len(linted) == 2 + 4  # bucket policies, role policies

    result = subprocess.run(
        [str(executable), "--directory", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    findings = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert findings == []


def test_parliament_finds_what_it_should(tmp_path: Path) -> None:
    """The check above can fail: a log-group ARN on DescribeLogGroups is a finding."""
    executable = PARLIAMENT / "bin" / "parliament"
    if not executable.is_file():
        if os.environ.get("CI"):
            raise AssertionError(f"{executable} is missing: run make test, which installs it")
        pytest.skip(f"{executable} is missing (make test installs it)")
    scoped = api_gateway_logs_policy("aws", REGION, ACCOUNT, "/aws/apigateway/x")
    scoped["Statement"][0]["Resource"] = [f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:*"]
    (tmp_path / "scoped.json").write_text(json.dumps(scoped))
    result = subprocess.run(
        [str(executable), "--directory", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    issues = [json.loads(line)["issue"] for line in result.stdout.splitlines() if line.strip()]
    assert issues == ["RESOURCE_MISMATCH"]


class _DeletingStore(S3Store):
    """An operator's store, as ``sweep compact`` needs one (it deletes the replaced objects)."""

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)
