"""The stack's config: the sandbox stack file reads into one frozen, validated object; unknown
keys and out-of-range values are refused; nothing secret is in the files that are committed."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from detect_secrets.core.secrets_collection import SecretsCollection
from detect_secrets.settings import default_settings
from test_infra_mocks import STACK_FILE, config_from, load_yaml, stack_file_config

from infra.config import CONFIG_KEYS, FunctionSettings, StackConfig, unknown_keys
from infra.stack import PROJECT_ROOT

REQUIRED = {"sweep:region": "eu-west-1", "sweep:namePrefix": "sweep-test"}


def test_the_stack_file_uses_only_keys_the_program_reads() -> None:
    keys = [k.split(":", 1)[1] for k in stack_file_config() if k.startswith("sweep:")]
    assert unknown_keys(keys) == []
    assert [k for k in stack_file_config() if not k.startswith("sweep:")] == []


def test_the_sandbox_stack_file_reads_into_typed_settings() -> None:
    config = config_from(stack_file_config())
    raw = load_yaml(STACK_FILE)["config"]
    assert config.region == raw["sweep:region"]
    assert config.name_prefix == raw["sweep:namePrefix"]
    assert config.results_prefix == raw["sweep:resultsPrefix"]
    assert (config.max_points, config.max_shards) == (
        int(raw["sweep:maxPoints"]),
        int(raw["sweep:maxShards"]),
    )
    assert config.worker == FunctionSettings(
        memory_mb=int(raw["sweep:workerMemoryMb"]),
        timeout_s=int(raw["sweep:workerTimeoutSeconds"]),
    )
    assert config.worker_max_retries == int(raw["sweep:workerMaxRetries"])
    assert config.log_retention_days == int(raw["sweep:logRetentionDays"])
    assert config.worker_reserved_concurrency == int(raw["sweep:workerReservedConcurrency"])
    assert config.architecture in ("arm64", "x86_64")
    assert config.lambda_runtime == "python3.12"
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.region = "us-east-1"  # type: ignore[misc]


def test_unset_settings_take_their_defaults() -> None:
    config = config_from(REQUIRED)
    assert config == StackConfig(region="eu-west-1", name_prefix="sweep-test")
    assert config.permissions_boundary_arn is None
    assert config.worker_reserved_concurrency is None
    assert config.manage_api_gateway_account is False


def test_a_misspelt_key_is_refused_not_ignored() -> None:
    with pytest.raises(ValueError, match="workerMemoryMB"):
        config_from({**REQUIRED, "sweep:workerMemoryMB": "2048"})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("architecture", "sparc"),
        ("workerMemoryMb", "20000"),
        ("workerTimeoutSeconds", "901"),
        ("workerMaxRetries", "3"),
        ("workerMaxEventAgeSeconds", "30"),
        ("logRetentionDays", "8"),
        ("athenaBytesScannedCutoff", "1000"),
        ("namePrefix", "Sweep_Sandbox"),
        ("resultsPrefix", "a/b"),
        ("lambdaRuntime", "nodejs20.x"),
        ("permissionsBoundaryArn", "not-an-arn"),
    ],
)
def test_out_of_range_settings_are_refused(key: str, value: str) -> None:
    with pytest.raises((ValueError, TypeError)):
        config_from({**REQUIRED, f"sweep:{key}": value})


def test_every_config_key_is_documented_in_the_infra_guide() -> None:
    guide = (PROJECT_ROOT / "docs" / "INFRA.md").read_text()
    assert [k for k in sorted(CONFIG_KEYS) if f"`{k}`" not in guide] == []


def test_names_derive_from_the_prefix() -> None:
    config = config_from(REQUIRED)
    assert [config.function_name(r) for r in ("parent", "worker", "recorder")] == [
        "sweep-test-parent",
        "sweep-test-worker",
        "sweep-test-recorder",
    ]
    assert config.database_name == "sweep_test"
    assert config.log_group_name("worker") == "/aws/lambda/sweep-test-worker"
    with pytest.raises(ValueError, match="no function role"):
        config.function_name("janitor")
    assert attrs.evolve(config, region="cn-north-1").partition == "aws-cn"


def _secrets(paths: list[str]) -> dict[str, Any]:
    found = SecretsCollection()
    with default_settings():
        for path in paths:
            found.scan_file(path)
    result: dict[str, Any] = found.json()
    return result


def test_nothing_secret_is_committed_with_the_stack() -> None:
    files = [STACK_FILE, PROJECT_ROOT / "Pulumi.yaml", PROJECT_ROOT / "__main__.py"]
    files += sorted((PROJECT_ROOT / "infra").glob("*.py"))
    assert _secrets([str(p) for p in files]) == {}
    assert "secure:" not in STACK_FILE.read_text()
