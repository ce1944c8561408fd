"""The REST API: imported from the OpenAPI document generated from the contract (IAM auth,
request validator on the body, Lambda proxy integrations to the parent), a deployment that is
replaced whenever the document changes, and a stage with throttling and access logging."""

from __future__ import annotations

import hashlib
import json

import pulumi
import pulumi_aws as aws

from infra.config import StackConfig
from infra.iam import api_gateway_logs_policy, assume_role_policy
from sweep_core.openapi import openapi_document

ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "integrationLatency": "$context.integrationLatency",
    "caller": "$context.identity.caller",
    "userArn": "$context.identity.userArn",
    "sourceIp": "$context.identity.sourceIp",
    "errorType": "$context.error.responseType",
    "validationError": "$context.error.validationErrorString",
}
"""One JSON line per request: who called what, and why API Gateway refused, if it did."""


def api_document(parent_invoke_arn: str, region: str) -> str:
    """The OpenAPI document API Gateway imports, as canonical JSON (sorted keys), so equal
    documents hash equally."""
    return json.dumps(openapi_document(parent_invoke_arn, region), sort_keys=True)


def document_digest(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


class Api(pulumi.ComponentResource):
    """REST API, deployment, stage, throttling, access logs, and the parent's invoke permission."""

    TYPE = "sweep:api:Api"

    def __init__(
        self,
        name: str,
        config: StackConfig,
        parent: aws.lambda_.Alias,
        account: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(self.TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.document = parent.invoke_arn.apply(lambda arn: api_document(arn, config.region))
        self.rest_api = aws.apigateway.RestApi(
            name,
            name=config.name_prefix,
            description="sweep: submit, watch and redrive parameter sweeps (SigV4 signed)",
            body=self.document,
            fail_on_warnings=True,
            endpoint_configuration={"types": "REGIONAL"},
            opts=child,
        )
        self.deployment = aws.apigateway.Deployment(
            name,
            rest_api=self.rest_api.id,
            description="sweep API",
            triggers={"document_sha256": self.document.apply(document_digest)},
            opts=child,
        )
        self.access_logs = aws.cloudwatch.LogGroup(
            f"{name}-access",
            name=config.access_log_group_name,
            retention_in_days=config.log_retention_days,
            opts=child,
        )
        stage_dependencies: list[pulumi.Resource] = []
        if config.manage_api_gateway_account:
            stage_dependencies.append(self._account_logging_role(name, config, account))
        self.stage = aws.apigateway.Stage(
            name,
            rest_api=self.rest_api.id,
            deployment=self.deployment.id,
            stage_name=config.api_stage,
            # Access logs need the account's API Gateway CloudWatch role (a stage asking for
            # them is refused without it): on only where this stack manages that role.
            access_log_settings=(
                {
                    "destination_arn": self.access_logs.arn,
                    "format": json.dumps(ACCESS_LOG_FORMAT, separators=(",", ":")),
                }
                if config.manage_api_gateway_account
                else None
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=stage_dependencies),
        )
        self.method_settings = aws.apigateway.MethodSettings(
            name,
            rest_api=self.rest_api.id,
            stage_name=self.stage.stage_name,
            method_path="*/*",
            settings={
                "throttling_rate_limit": config.api_throttle_rate,
                "throttling_burst_limit": config.api_throttle_burst,
                "metrics_enabled": True,
                "logging_level": "OFF",
                "data_trace_enabled": False,
            },
            opts=child,
        )
        # API Gateway may invoke the parent's live alias, for this API's stage only.
        self.permission = aws.lambda_.Permission(
            name,
            action="lambda:InvokeFunction",
            function=parent.function_name,
            qualifier=parent.name,
            principal="apigateway.amazonaws.com",
            source_arn=pulumi.Output.concat(
                self.rest_api.execution_arn, "/", config.api_stage, "/*"
            ),
            opts=child,
        )
        self.url = self.stage.invoke_url
        self.register_outputs({"api_url": self.url})

    def _account_logging_role(
        self, name: str, config: StackConfig, account: pulumi.Input[str]
    ) -> aws.apigateway.Account:
        """API Gateway's account-level CloudWatch role (one per account and region), which
        access logging needs; made only when config says this stack owns that setting."""
        role = aws.iam.Role(
            f"{name}-cloudwatch",
            name=f"{config.name_prefix}-apigateway-logs",
            description="API Gateway writes the sweep API's access logs with this role",
            assume_role_policy=json.dumps(assume_role_policy("apigateway.amazonaws.com")),
            permissions_boundary=config.permissions_boundary_arn,
            opts=pulumi.ResourceOptions(parent=self),
        )
        policy = pulumi.Output.from_input(account).apply(
            lambda a: json.dumps(
                api_gateway_logs_policy(
                    config.partition, config.region, str(a), config.access_log_group_name
                )
            )
        )
        attached = aws.iam.RolePolicy(
            f"{name}-cloudwatch",
            name=f"{config.name_prefix}-apigateway-logs",
            role=role.id,
            policy=policy,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return aws.apigateway.Account(
            name,
            cloudwatch_role_arn=role.arn,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[attached]),
        )
