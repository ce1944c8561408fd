"""Compute: the parent, worker and failure-recorder functions, each with its own log group
(retention from config) and the environment ``runtime.lambda_entry.CloudConfig`` validates; the
worker's asynchronous-invoke settings send exhausted events to the recorder.

Every deploy publishes a version of each function and points its ``live`` alias at it; whatever
invokes a function (the API, the parent, the on-failure destination) names the alias, so a
rollback is one more deploy that moves the aliases back to the old artifacts' code."""

from __future__ import annotations

from collections.abc import Callable

import pulumi
import pulumi_aws as aws

from infra.artifacts import Artifacts
from infra.config import FUNCTION_ROLES, LIVE, FunctionSettings, StackConfig
from infra.iam import FunctionRoles
from infra.storage import ResultsStore
from sweep_core.settings import environment

LAYER_DESCRIPTIONS = {
    "deps": "numpy, pyarrow, attrs, cattrs and friends for the sweep runtime",
    "scipy": "scipy, for Sobol sampling in the sweep worker",
    "kernels": "the kernel packages this stack deploys (sweep:kernelPackages)",
}

HANDLERS = {
    "parent": "runtime.lambda_entry.parent",
    "worker": "runtime.lambda_entry.worker",
    "recorder": "runtime.lambda_entry.failure_recorder",
}


def function_environment(config: StackConfig, bucket: str, role: str) -> dict[str, str]:
    """The variables every entry point reads (``CloudConfig.from_env``); the parent also gets
    the Glue database it registers each run's partitions in."""
    return environment(
        {
            "bucket": bucket,
            "prefix": config.results_prefix,
            "worker_function": f"{config.function_name('worker')}:{LIVE}",
            "dispatcher_function": f"{config.function_name('parent')}:{LIVE}",
            "max_points": config.max_points,
            "max_shards": config.max_shards,
            "fanout_leaf": config.fanout_leaf,
            "invoke_threads": config.invoke_threads,
            "glue_database": config.database_name if role == "parent" else None,
        }
    )


def _environment(config: StackConfig, role: str) -> Callable[[str], dict[str, str]]:
    return lambda bucket: function_environment(config, bucket, role)


class Functions(pulumi.ComponentResource):
    """The three functions, their log groups and the worker's async-invoke config."""

    TYPE = "sweep:compute:Functions"

    def __init__(
        self,
        name: str,
        config: StackConfig,
        roles: FunctionRoles,
        store: ResultsStore,
        artifacts: Artifacts,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(self.TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.layers: dict[str, aws.lambda_.LayerVersion] = {}
        for layer in artifacts.all()[1:]:  # every layer (the code is not one)
            bucket, key = store.location(layer)
            self.layers[layer.name] = aws.lambda_.LayerVersion(
                f"{name}-{layer.name}",
                layer_name=f"{config.name_prefix}-{layer.kind}",
                description=LAYER_DESCRIPTIONS[layer.name],
                s3_bucket=bucket,
                s3_key=key,
                source_code_hash=layer.sha256_base64,
                compatible_runtimes=[config.lambda_runtime],
                compatible_architectures=[config.architecture],
                opts=child,
            )
        code_bucket, code_key = store.location(artifacts.code)
        settings: dict[str, FunctionSettings] = {
            "parent": config.parent,
            "worker": config.worker,
            "recorder": config.recorder,
        }
        self.log_groups: dict[str, aws.cloudwatch.LogGroup] = {}
        self.functions: dict[str, aws.lambda_.Function] = {}
        self.aliases: dict[str, aws.lambda_.Alias] = {}
        for role in FUNCTION_ROLES:
            self.log_groups[role] = aws.cloudwatch.LogGroup(
                f"{name}-{role}",
                name=config.log_group_name(role),
                retention_in_days=config.log_retention_days,
                opts=child,
            )
            env = store.results.bucket.bucket.apply(_environment(config, role))
            self.functions[role] = aws.lambda_.Function(
                f"{name}-{role}",
                name=config.function_name(role),
                description=f"sweep {role} ({HANDLERS[role]})",
                role=roles.roles[role].arn,
                runtime=config.lambda_runtime,
                architectures=[config.architecture],
                handler=HANDLERS[role],
                memory_size=settings[role].memory_mb,
                timeout=settings[role].timeout_s,
                s3_bucket=code_bucket,
                s3_key=code_key,
                source_code_hash=artifacts.code.sha256_base64,
                layers=self._layers_of(role),
                environment={"variables": env},
                logging_config={
                    "log_format": "Text",
                    "log_group": self.log_groups[role].name,
                },
                reserved_concurrent_executions=(
                    config.worker_reserved_concurrency if role == "worker" else None
                ),
                publish=True,
                opts=child,
            )
            self.aliases[role] = aws.lambda_.Alias(
                f"{name}-{role}-{LIVE}",
                name=LIVE,
                description=f"the {role} version in service",
                function_name=self.functions[role].name,
                function_version=self.functions[role].version,
                opts=child,
            )
        # Lambda checks, when this is created, that the worker's role may invoke the
        # destination: so it waits for the roles' policies.
        self.worker_async = aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-worker",
            function_name=self.functions["worker"].name,
            qualifier=self.aliases["worker"].name,
            maximum_retry_attempts=config.worker_max_retries,
            maximum_event_age_in_seconds=config.worker_max_event_age_s,
            destination_config={
                "on_failure": {"destination": self.aliases["recorder"].arn},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[roles]),
        )
        self.register_outputs(
            {f"{role}_function": self.functions[role].name for role in FUNCTION_ROLES}
        )

    def _layers_of(self, role: str) -> list[pulumi.Output[str]]:
        """The deps layer for every function; the scipy layer for the worker only; the kernels
        layer, when there is one, for the worker and the parent (which validates requests
        against exactly the deployed kernels)."""
        names = {"worker": ["deps", "scipy", "kernels"], "parent": ["deps", "kernels"]}
        return [self.layers[n].arn for n in names.get(role, ["deps"]) if n in self.layers]
