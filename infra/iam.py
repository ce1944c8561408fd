"""Least-privilege IAM: the policy documents, as plain functions of names and ARNs, and the
``FunctionRoles`` component that attaches them (one role per function).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws
from attrs import frozen

from infra.config import FUNCTION_ROLES, LIVE, StackConfig

Document = dict[str, Any]

WILDCARD_RESOURCES: dict[str, str] = {}
"""Sid -> why its resources hold a ``*``, as given where the statement is made."""

WILDCARD_ACTIONS: dict[str, str] = {}
"""Sid -> why its actions hold a ``*`` (Deny statements only)."""


@frozen
class PolicyTargets:
    """The names and ARNs the function policies speak about."""

    partition: str
    region: str
    account: str
    bucket: str
    prefix: str
    parent_function: str
    worker_function: str
    recorder_function: str
    database: str
    tables: tuple[str, ...]

    @classmethod
    def of(
        cls, config: StackConfig, account: str, bucket: str, tables: Sequence[str]
    ) -> PolicyTargets:
        return cls(
            partition=config.partition,
            region=config.region,
            account=account,
            bucket=bucket,
            prefix=config.results_prefix,
            parent_function=config.function_name("parent"),
            worker_function=config.function_name("worker"),
            recorder_function=config.function_name("recorder"),
            database=config.database_name,
            tables=tuple(tables),
        )

    @property
    def bucket_arn(self) -> str:
        return f"arn:{self.partition}:s3:::{self.bucket}"

    def objects(self, pattern: str) -> str:
        """The ARN of the objects under the results prefix that match ``pattern``."""
        return f"{self.bucket_arn}/{self.prefix}/{pattern}"

    def key_prefix(self, pattern: str) -> str:
        """An ``s3:prefix`` condition value (keys, not ARNs) under the results prefix."""
        return f"{self.prefix}/{pattern}"

    def function_arn(self, name: str, qualifier: str | None = None) -> str:
        arn = f"arn:{self.partition}:lambda:{self.region}:{self.account}:function:{name}"
        return arn if qualifier is None else f"{arn}:{qualifier}"

    def log_streams(self, function: str) -> str:
        """Every log stream of the function's log group (Lambda names the streams)."""
        group = f"/aws/lambda/{function}"
        return f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:{group}:*"

    def glue(self, resource: str) -> str:
        return f"arn:{self.partition}:glue:{self.region}:{self.account}:{resource}"


ACTIONS_ON_NO_RESOURCE = frozenset({"logs:DescribeLogGroups"})
"""Actions IAM authorizes against no resource type: their only valid ``Resource`` is ``*``."""


def _statement(
    sid: str,
    actions: Sequence[str],
    resources: Sequence[str],
    condition: Document | None = None,
    effect: str = "Allow",
    *,
    wildcard: str | None = None,
    principal: Any = None,
) -> Document:
    """One statement. A ``*`` in a resource needs ``wildcard``, the reason no narrower ARN
    exists; a ``*`` in an action is refused unless the statement denies (``wildcard`` then
    gives the reason for both).

    The rules every document follows, enforced here and checked again by a test over every
    policy in the stack: no ``*`` in any action, except in a Deny, which can only narrow
    access; a ``*`` in a resource only where no narrower ARN exists (keys and log streams named
    at run time), with its reason collected in ``WILDCARD_RESOURCES``; nobody is granted any
    delete.
    """
    if any("*" in a for a in actions):
        if effect != "Deny" or not wildcard:
            raise ValueError(f"{sid}: a * in an action is only for a Deny, with its reason")
        WILDCARD_ACTIONS[sid] = wildcard
    bare = any(r == "*" for r in resources)
    if bare and (not wildcard or not set(actions) <= ACTIONS_ON_NO_RESOURCE):
        raise ValueError(
            f"{sid}: a bare * resource is only for actions AWS authorizes on no resource "
            f"({', '.join(sorted(ACTIONS_ON_NO_RESOURCE))}), with its reason"
        )
    if any("*" in r for r in resources):
        if not wildcard:
            raise ValueError(f"{sid}: a * in a resource needs the reason no narrower ARN exists")
        WILDCARD_RESOURCES[sid] = wildcard
    elif wildcard and effect == "Allow":
        raise ValueError(f"{sid}: no * to explain")
    statement: Document = {"Sid": sid, "Effect": effect}
    if principal is not None:
        statement["Principal"] = principal
    statement["Action"] = sorted(actions)
    statement["Resource"] = list(resources)
    if condition:
        statement["Condition"] = condition
    return statement


def _document(*statements: Document) -> Document:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _list_keys(t: PolicyTargets, sid: str, patterns: Sequence[str]) -> Document:
    # ListBucket is granted on the bucket only for these key prefixes. The runtime asks whether
    # a key exists with ListObjectsV2 (the key as Prefix), which this condition covers as AWS
    # documents; it never reads a 403 on HeadObject/GetObject as "absent".
    return _statement(
        sid,
        ["s3:ListBucket"],
        [t.bucket_arn],
        {"StringLike": {"s3:prefix": [t.key_prefix(p) for p in patterns]}},
    )


def _own_logs(t: PolicyTargets, function: str) -> Document:
    # The stack creates the log group, so the function may not create groups.
    return _statement(
        "WriteOwnLogs",
        ["logs:CreateLogStream", "logs:PutLogEvents"],
        [t.log_streams(function)],
        wildcard="Lambda names its log streams at run time; the log group is named exactly",
    )


def worker_policy(t: PolicyTargets) -> Document:
    """The worker: writes outcome and point objects, reads them back, lists its outcomes and
    its run's folder (a cancel record there stops the shard before it starts).

    ``lambda:InvokeFunction`` on the failure recorder is not for the worker's code: Lambda
    delivers the on-failure destination record with the worker's execution role, so the role
    must be allowed to invoke the destination.
    """
    return _document(
        _statement(
            "WriteShardResults",
            ["s3:PutObject"],
            [t.objects("outcomes/*"), t.objects("points/*")],
            wildcard="outcome and point keys are made per run and shard at run time",
        ),
        # exists()/get() of the shard's success object; reading back an object after a resent
        # conditional put (S3Store.put_if_absent) may touch the points object too.
        _statement(
            "ReadShardResults",
            ["s3:GetObject"],
            [t.objects("outcomes/*"), t.objects("points/*")],
            wildcard="the worker reads back objects it wrote, whose keys are made at run time",
        ),
        _list_keys(t, "ListOutcomeAndRunKeys", ["outcomes/*", "runs/*"]),
        _statement(
            "DeliverOnFailureRecords",
            ["lambda:InvokeFunction"],
            [t.function_arn(t.recorder_function, LIVE)],
        ),
        _own_logs(t, t.worker_function),
    )


def parent_policy(t: PolicyTargets) -> Document:
    """The parent: manifests, redrive records and client tokens; invokes workers and itself
    (dispatcher slices of the fan-out tree); lists and reads outcomes for status and redrive
    (a compacted run's outcomes are files to read); registers partitions."""
    return _document(
        _statement(
            "ReadWriteRunRecords",
            ["s3:GetObject", "s3:PutObject"],
            [t.objects("runs/*"), t.objects("tokens/*")],
            wildcard="manifest, redrive and client-token keys are made per run at run time",
        ),
        _list_keys(t, "ListRunAndOutcomeKeys", ["runs/*", "outcomes/*"]),
        # status and redrive of a compacted run read its compacted outcome files
        _statement(
            "ReadOutcomes",
            ["s3:GetObject"],
            [t.objects("outcomes/*")],
            wildcard="outcome keys are made per run and shard at run time",
        ),
        _statement(
            "InvokeWorkersAndDispatchers",
            ["lambda:InvokeFunction"],
            [t.function_arn(t.worker_function, LIVE), t.function_arn(t.parent_function, LIVE)],
        ),
        _statement(
            "RegisterRunPartitions",
            ["glue:BatchCreatePartition"],
            [
                t.glue("catalog"),
                t.glue(f"database/{t.database}"),
                *(t.glue(f"table/{t.database}/{name}") for name in t.tables),
            ],
        ),
        _own_logs(t, t.parent_function),
    )


def recorder_policy(t: PolicyTargets) -> Document:
    """The failure recorder: writes failure records only; reads outcomes to count attempts
    and to find an existing success."""
    return _document(
        _statement(
            "WriteFailureRecords",
            ["s3:PutObject"],
            [t.objects("outcomes/run_date=*/run_id=*/status=failure/*")],
            wildcard="failure-record keys are made per run, shard and attempt at run time; "
            "the pattern admits the status=failure partition only",
        ),
        _statement(
            "ReadOutcomes",
            ["s3:GetObject"],
            [t.objects("outcomes/*")],
            wildcard="outcome keys are made per run and shard at run time",
        ),
        _list_keys(t, "ListOutcomeKeys", ["outcomes/*"]),
        _own_logs(t, t.recorder_function),
    )


POLICIES: dict[str, Callable[[PolicyTargets], Document]] = {
    "parent": parent_policy,
    "worker": worker_policy,
    "recorder": recorder_policy,
}


def _render(policy: Callable[[PolicyTargets], Document]) -> Callable[[PolicyTargets], str]:
    return lambda targets: json.dumps(policy(targets))


def assume_role_policy(service: str) -> Document:
    return _document(
        {
            "Sid": "AssumedByService",
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sts:AssumeRole",
        }
    )


def tls_only_bucket_policy(bucket_arn: str) -> Document:
    """Refuse every request to the bucket or its objects that does not use TLS."""
    return _document(
        _statement(
            "DenyInsecureTransport",
            ["s3:*"],
            [bucket_arn, f"{bucket_arn}/*"],
            {"Bool": {"aws:SecureTransport": "false"}},
            effect="Deny",
            principal="*",
            wildcard="a Deny of every action on the bucket and every object over plain HTTP: "
            "it can only narrow access, and a list of actions would leave new ones allowed",
        )
    )


def api_gateway_logs_policy(
    partition: str, region: str, account: str, access_log_group: str
) -> Document:
    """The account-level role API Gateway writes access logs with (one per account and region),
    narrowed to this stack's access log group."""
    groups = f"arn:{partition}:logs:{region}:{account}:log-group"
    return _document(
        _statement(
            "DescribeLogGroups",
            ["logs:DescribeLogGroups"],
            ["*"],
            wildcard="logs:DescribeLogGroups has no resource type in IAM: a log-group ARN "
            "matches nothing, so only * grants it; it reads names only",
        ),
        _statement(
            "WriteAccessLogs",
            ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
            [f"{groups}:{access_log_group}:*"],
            wildcard="API Gateway names its log streams at run time; the group is named exactly",
        ),
    )


class FunctionRoles(pulumi.ComponentResource):
    """One execution role per function, each with only its own inline policy."""

    TYPE = "sweep:iam:FunctionRoles"

    def __init__(
        self,
        name: str,
        config: StackConfig,
        account: pulumi.Input[str],
        bucket: pulumi.Input[str],
        tables: Sequence[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(self.TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.roles: dict[str, aws.iam.Role] = {}
        self.documents: dict[str, pulumi.Output[str]] = {}
        targets = pulumi.Output.all(account, bucket).apply(
            lambda v: PolicyTargets.of(config, str(v[0]), str(v[1]), tables)
        )
        for role in FUNCTION_ROLES:
            self.roles[role] = aws.iam.Role(
                f"{name}-{role}",
                name=f"{config.function_name(role)}-role",
                description=f"Execution role of the sweep {role} function",
                assume_role_policy=json.dumps(assume_role_policy("lambda.amazonaws.com")),
                permissions_boundary=config.permissions_boundary_arn,
                opts=child,
            )
            self.documents[role] = targets.apply(_render(POLICIES[role]))
            aws.iam.RolePolicy(
                f"{name}-{role}",
                name=f"{config.function_name(role)}-least-privilege",
                role=self.roles[role].id,
                policy=self.documents[role],
                opts=child,
            )
        self.register_outputs({f"{r}_role_arn": self.roles[r].arn for r in FUNCTION_ROLES})
