"""The stack's settings, read once from Pulumi config (the ``sweep:`` namespace) into one typed,
frozen object; every name the stack gives a resource is derived here, in one place.

Nothing here is secret. A secret setting, should one ever be needed, is read with
``config.require_secret`` (or from the environment) and never written to a stack file.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import attrs
import pulumi
from attrs import field, frozen
from attrs.validators import ge, in_, instance_of, le, matches_re, optional

from sweep_core.settings import DEFAULT_PREFIX, SETTINGS, default

Architecture = Literal["arm64", "x86_64"]
ARCHITECTURES: tuple[Architecture, ...] = ("arm64", "x86_64")

LOG_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
     2922, 3288, 3653}
)  # fmt: skip
"""The retention periods CloudWatch Logs accepts."""

MIN_BYTES_SCANNED_CUTOFF = 10_000_000
"""Athena's smallest per-query data usage control (10 MB)."""

ATHENA_RESULTS_PREFIX = "athena-results/"
"""Where the workgroup writes query results, beside (never under) the results prefix."""

LIVE = "live"
"""The alias every caller invokes; each deploy moves it to the version it publishes."""

FUNCTION_ROLES: tuple[str, ...] = ("parent", "worker", "recorder")
"""The stack's three functions, by role; ``StackConfig.function_name`` names each."""

_NAME_PREFIX = r"^[a-z][a-z0-9-]{1,38}[a-z0-9]$"
_RESULTS_PREFIX = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_BOUNDARY_ARN = r"^arn:aws[a-z-]*:iam::\d{12}:policy/[\w+=,.@/-]+$"
_RUNTIME = r"^python3\.\d+$"


@frozen
class FunctionSettings:
    """Memory and time limit of one function."""

    memory_mb: int = field(validator=[ge(128), le(10_240)])
    timeout_s: int = field(validator=[ge(1), le(900)])


@frozen
class ArtifactSettings:
    """Where the Lambda code and its dependency layers come from (see ``infra.artifacts``).

    Without zips the program builds the code zip and layers itself (``infra.packaging``) under
    ``build_dir``, reusing the cached build while its inputs are unchanged. Zips (paths relative
    to the project, all three) are uploaded as they are. With ``use_existing`` nothing is
    uploaded and the ``*_key`` objects already in the artifacts bucket are deployed.
    """

    build_dir: str = "build"
    code_zip: str | None = None
    layer_zip: str | None = None
    scipy_layer_zip: str | None = None
    kernels_layer_zip: str | None = None
    use_existing: bool = False
    code_key: str | None = None
    layer_key: str | None = None
    scipy_layer_key: str | None = None
    kernels_layer_key: str | None = None
    kernel_packages: tuple[str, ...] = ()
    """``sweep:kernelPackages``: kernel packages (project folders or wheels) the program builds
    into the ``kernels`` layer, for the worker and the parent."""


@frozen
class StackConfig:
    """Every setting of one stack. Defaults are the sandbox's; limits bound cost."""

    region: str = field(validator=matches_re(r"^[a-z]{2}(-gov)?-[a-z]+-\d$"))
    name_prefix: str = field(validator=matches_re(_NAME_PREFIX))
    results_prefix: str = field(default=DEFAULT_PREFIX, validator=matches_re(_RESULTS_PREFIX))
    max_points: int = field(default=default("max_points"), validator=ge(1))
    max_shards: int = field(default=default("max_shards"), validator=ge(1))
    fanout_leaf: int = field(default=default("fanout_leaf"), validator=ge(2))
    invoke_threads: int = field(default=default("invoke_threads"), validator=[ge(1), le(256)])
    lambda_runtime: str = field(default="python3.12", validator=matches_re(_RUNTIME))
    architecture: Architecture = field(default="arm64", validator=in_(ARCHITECTURES))
    parent: FunctionSettings = FunctionSettings(memory_mb=512, timeout_s=60)
    worker: FunctionSettings = FunctionSettings(memory_mb=1769, timeout_s=300)
    recorder: FunctionSettings = FunctionSettings(memory_mb=256, timeout_s=60)
    worker_max_retries: int = field(default=2, validator=[ge(0), le(2)])
    worker_max_event_age_s: int = field(default=3600, validator=[ge(60), le(21_600)])
    worker_reserved_concurrency: int | None = field(default=None, validator=optional(ge(0)))
    log_retention_days: int = field(default=30, validator=in_(LOG_RETENTION_DAYS))
    results_expire_days: int | None = field(default=None, validator=optional(ge(1)))
    noncurrent_versions_expire_days: int = field(default=30, validator=ge(1))
    athena_results_expire_days: int = field(default=7, validator=ge(1))
    athena_bytes_scanned_cutoff: int = field(
        default=10 * 2**30, validator=ge(MIN_BYTES_SCANNED_CUTOFF)
    )
    api_stage: str = field(default="v1", validator=matches_re(r"^[A-Za-z0-9_]{1,64}$"))
    api_throttle_rate: float = field(default=20.0, validator=ge(0.0))
    api_throttle_burst: int = field(default=40, validator=ge(0))
    manage_api_gateway_account: bool = field(default=False, validator=instance_of(bool))
    permissions_boundary_arn: str | None = field(
        default=None, validator=optional(matches_re(_BOUNDARY_ARN))
    )
    artifacts: ArtifactSettings = ArtifactSettings()

    # --- names -------------------------------------------------------------------------

    def function_name(self, role: str) -> str:
        """The Lambda function of a role (``parent``, ``worker``, ``recorder``)."""
        if role not in FUNCTION_ROLES:
            raise ValueError(f"no function role {role!r}; roles: {', '.join(FUNCTION_ROLES)}")
        return f"{self.name_prefix}-{role}"

    def log_group_name(self, role: str) -> str:
        return f"/aws/lambda/{self.function_name(role)}"

    @property
    def access_log_group_name(self) -> str:
        return f"/aws/apigateway/{self.name_prefix}/access"

    @property
    def database_name(self) -> str:
        """The Glue database (Glue names allow lowercase letters, digits and underscores)."""
        return self.name_prefix.replace("-", "_")

    @property
    def workgroup_name(self) -> str:
        return self.name_prefix

    @property
    def partition(self) -> str:
        """The AWS partition of the region, for ARNs."""
        if self.region.startswith("cn-"):
            return "aws-cn"
        if self.region.startswith("us-gov-"):
            return "aws-us-gov"
        return "aws"

    # --- reading ------------------------------------------------------------------------

    @classmethod
    def from_pulumi(cls, config: pulumi.Config) -> StackConfig:
        """Read the ``sweep:`` settings; unset ones keep their defaults.

        Raises
        ------
        ValueError
            For a key the program does not know (a typo would otherwise be ignored silently)
            or a value out of range.
        """
        unknown = unknown_keys(_declared_keys(config.name))
        if unknown:
            raise ValueError(f"unknown sweep: settings {unknown}; known: {sorted(CONFIG_KEYS)}")
        values: dict[str, Any] = {
            "region": config.require("region"),
            "name_prefix": config.require("namePrefix"),
        }
        texts = {
            "lambda_runtime": "lambdaRuntime",
            "architecture": "architecture",
            "api_stage": "apiStage",
            "permissions_boundary_arn": "permissionsBoundaryArn",
        }
        # The settings the functions' environment carries are named in its table.
        for setting in SETTINGS:
            if setting.pulumi_key is not None:
                read = config.get_int if setting.kind == "count" else config.get
                values[_FUNCTION_SETTING_FIELDS.get(setting.name, setting.name)] = read(
                    setting.pulumi_key
                )
        integers = {
            "worker_max_retries": "workerMaxRetries",
            "worker_max_event_age_s": "workerMaxEventAgeSeconds",
            "worker_reserved_concurrency": "workerReservedConcurrency",
            "log_retention_days": "logRetentionDays",
            "results_expire_days": "resultsExpireDays",
            "noncurrent_versions_expire_days": "noncurrentVersionsExpireDays",
            "athena_results_expire_days": "athenaResultsExpireDays",
            "athena_bytes_scanned_cutoff": "athenaBytesScannedCutoff",
            "api_throttle_burst": "apiThrottleBurst",
        }
        for attr, key in texts.items():
            values[attr] = config.get(key)
        for attr, key in integers.items():
            values[attr] = config.get_int(key)
        values["api_throttle_rate"] = config.get_float("apiThrottleRate")
        values["manage_api_gateway_account"] = config.get_bool("manageApiGatewayAccount")
        defaults = {f.name: f.default for f in attrs.fields(cls)}
        for role in FUNCTION_ROLES:
            fallback: FunctionSettings = defaults[role]
            memory, timeout = (
                config.get_int(f"{role}MemoryMb"),
                config.get_int(f"{role}TimeoutSeconds"),
            )
            values[role] = FunctionSettings(
                memory_mb=fallback.memory_mb if memory is None else memory,
                timeout_s=fallback.timeout_s if timeout is None else timeout,
            )
        values["artifacts"] = ArtifactSettings(
            build_dir=config.get("artifactBuildDir") or ArtifactSettings().build_dir,
            code_zip=config.get("codeZip") or None,
            layer_zip=config.get("layerZip") or None,
            scipy_layer_zip=config.get("scipyLayerZip") or None,
            use_existing=bool(config.get_bool("useExistingArtifacts")),
            code_key=config.get("codeArtifactKey") or None,
            layer_key=config.get("layerArtifactKey") or None,
            scipy_layer_key=config.get("scipyLayerArtifactKey") or None,
            kernels_layer_zip=config.get("kernelsLayerZip") or None,
            kernels_layer_key=config.get("kernelsLayerArtifactKey") or None,
            kernel_packages=tuple(
                item.strip()
                for item in (config.get("kernelPackages") or "").split(",")
                if item.strip()
            ),
        )
        return cls(**{k: v for k, v in values.items() if v is not None})


_FUNCTION_SETTING_FIELDS = {"prefix": "results_prefix"}
"""``StackConfig`` fields named otherwise than their setting in ``sweep_core.settings``."""

CONFIG_KEYS = frozenset(
    {s.pulumi_key for s in SETTINGS if s.pulumi_key is not None}
    | {
        "region", "namePrefix", "lambdaRuntime", "architecture",
        "parentMemoryMb", "parentTimeoutSeconds", "workerMemoryMb", "workerTimeoutSeconds",
        "recorderMemoryMb", "recorderTimeoutSeconds",
        "workerMaxRetries", "workerMaxEventAgeSeconds", "workerReservedConcurrency",
        "logRetentionDays", "resultsExpireDays", "noncurrentVersionsExpireDays",
        "athenaResultsExpireDays", "athenaBytesScannedCutoff",
        "apiStage", "apiThrottleRate", "apiThrottleBurst", "manageApiGatewayAccount",
        "permissionsBoundaryArn", "artifactBuildDir", "codeZip", "layerZip", "scipyLayerZip",
        "useExistingArtifacts", "codeArtifactKey", "layerArtifactKey", "scipyLayerArtifactKey",
        "kernelPackages", "kernelsLayerZip", "kernelsLayerArtifactKey",
    }
)  # fmt: skip
"""Every ``sweep:`` key the program reads; any other key in a stack file is a typo."""


def unknown_keys(keys: Iterable[str]) -> list[str]:
    """The keys (without namespace) that the program does not read, sorted."""
    return sorted(set(keys) - CONFIG_KEYS)


def _declared_keys(namespace: str) -> list[str]:
    """The keys of ``namespace`` that the running stack's configuration sets."""
    from pulumi.runtime import config as runtime

    everything = set(runtime.CONFIG.get()) | set(runtime.get_config_env())
    keys = [k.split(":", 1)[1] for k in everything if k.startswith(f"{namespace}:")]
    return [k.removeprefix("config:") for k in keys]  # the older "ns:config:key" form
