"""Wires the components into the stack. ``build_stack`` creates every resource and returns the
stack outputs; nothing is created at import time, so tests call it after setting mocks."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra import artifacts as artifact_sources
from infra import packaging
from infra.analytics import Analytics
from infra.api import Api
from infra.artifacts import Builder, deployed_kernels, resolve_artifacts
from infra.compute import Functions
from infra.config import StackConfig
from infra.iam import FunctionRoles
from infra.storage import ResultsStore

PROJECT_ROOT = Path(__file__).resolve().parent.parent

OUTPUT_NAMES = (
    "api_url", "region", "bucket", "prefix", "workgroup", "database",
    "parent_function", "worker_function", "recorder_function",
    "artifacts_bucket", "code_sha256", "layer_sha256", "scipy_layer_sha256",
)  # fmt: skip
"""What the stack exports; the first six are what ``RemoteConfig.from_stack_outputs`` reads."""


def build_stack(
    config: StackConfig, source_root: Path = PROJECT_ROOT, builder: Builder | None = None
) -> dict[str, pulumi.Output[str]]:
    """Create every resource of the stack and return its outputs by name.

    ``source_root`` is the project folder: relative artifact paths in config are taken from it.
    ``builder`` makes the code zip and layers when config names none (default
    ``infra.artifacts.default_builder``, looked up at call time so tests may replace it).
    """
    target = packaging.Target.from_runtime(config.architecture, config.lambda_runtime)
    artifacts = resolve_artifacts(
        config.artifacts, source_root, target, builder or artifact_sources.default_builder
    )
    provider = aws.Provider(
        "aws",
        region=config.region,
        default_tags={"tags": {"project": "sweep", "stack": pulumi.get_stack()}},
    )
    opts = pulumi.ResourceOptions(provider=provider)
    account = aws.get_caller_identity_output(
        opts=pulumi.InvokeOutputOptions(provider=provider)
    ).account_id
    kernels = deployed_kernels(artifacts, source_root)

    store = ResultsStore("storage", config, artifacts, opts=opts)
    bucket = store.results.bucket.bucket
    analytics = Analytics("analytics", config, bucket, kernels, opts=opts)
    roles = FunctionRoles(
        "iam", config, account, bucket, [t.name for t in analytics.tables_spec], opts=opts
    )
    functions = Functions("compute", config, roles, store, artifacts, opts=opts)
    api = Api("api", config, functions.aliases["parent"], account, opts=opts)

    outputs: dict[str, pulumi.Output[str]] = {
        "api_url": api.url,
        "region": pulumi.Output.from_input(config.region),
        "bucket": bucket,
        "prefix": pulumi.Output.from_input(config.results_prefix),
        "workgroup": analytics.workgroup.name,
        "database": analytics.database.name,
        "parent_function": functions.functions["parent"].name,
        "worker_function": functions.functions["worker"].name,
        "recorder_function": functions.functions["recorder"].name,
        "artifacts_bucket": store.artifacts.bucket.bucket,
        "code_sha256": pulumi.Output.from_input(artifacts.code.sha256),
        "layer_sha256": pulumi.Output.from_input(artifacts.deps.sha256),
        "scipy_layer_sha256": pulumi.Output.from_input(artifacts.scipy.sha256),
    }
    assert tuple(outputs) == OUTPUT_NAMES
    return outputs
