"""Pulumi mocks for the infra tests: the stack is built once per session with mocks, every
registration recorded (type, name, inputs, parent, dependencies, provider), then the runtime's
settings are restored. Other infra test modules take ``sandbox_stack()`` from here."""

from __future__ import annotations

import functools
import importlib
import runpy
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pulumi
import pytest
from attrs import frozen
from pulumi.runtime import rpc
from pulumi.runtime.config import set_all_config
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.settings import reset_options
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

# infra/ is the Pulumi program's, not an installed package: make it importable from the checkout.
if str(Path(__file__).resolve().parent.parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infra import artifacts as artifact_sources
from infra.config import ArtifactSettings, StackConfig
from infra.packaging import BuildError, Target
from infra.packaging.builder import build_code, build_kernels_layer
from infra.packaging.closure import code_closure
from infra.packaging.pins import read_pins
from infra.packaging.zips import write_zip
from infra.stack import OUTPUT_NAMES, PROJECT_ROOT, build_stack

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pulumi_aws's own

REGION = "eu-west-1"
ACCOUNT = "123456789012"
API_ID = "a1b2c3d4e5"
STACK_FILE = PROJECT_ROOT / "Pulumi.sandbox.yaml"


@frozen
class Registered:
    """One resource as the engine would have received it."""

    type: str
    name: str
    urn: str
    parent: str
    dependencies: tuple[str, ...]
    provider: str
    custom: bool
    retain_on_delete: bool
    inputs: Mapping[str, Any]
    state: Mapping[str, Any]


@frozen
class BuiltStack:
    config: StackConfig
    resources: tuple[Registered, ...]
    outputs: Mapping[str, Any]
    warnings: tuple[str, ...]

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str) -> Registered:
        [found] = [r for r in self.resources if r.type == type_ and r.name == name]
        return found

    def by_urn(self, urn: str) -> Registered:
        [found] = [r for r in self.resources if r.urn == urn]
        return found


class StackMocks(pulumi.runtime.Mocks):
    """Fills in what the provider would compute (ids, ARNs, names, URLs) by type token."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs: dict[str, Any] = dict(args.inputs)
        state = dict(inputs)
        name = inputs.get("name") or args.name
        resource_id = f"{args.name}-id"
        t = args.typ
        if t == "aws:s3/bucket:Bucket":
            bucket = inputs.get("bucket") or f"{args.name}-0a1b2c3"
            state |= {"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}"}
            resource_id = bucket
        elif t == "aws:lambda/function:Function":
            arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
            invoke = (
                f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{arn}/invocations"
            )
            state |= {
                "arn": arn,
                "invokeArn": invoke,
                "version": "1",  # what Lambda gives the first published version
                "qualifiedArn": f"{arn}:1" if inputs.get("publish") else f"{arn}:$LATEST",
            }
            resource_id = name
        elif t == "aws:lambda/alias:Alias":
            function = inputs["functionName"]
            arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}:{inputs['name']}"
            invoke = (
                f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{arn}/invocations"
            )
            state |= {"arn": arn, "invokeArn": invoke}
            resource_id = arn
        elif t == "aws:iam/role:Role":
            state |= {"arn": f"arn:aws:iam::{ACCOUNT}:role/{name}"}
            resource_id = name
        elif t == "aws:cloudwatch/logGroup:LogGroup":
            state |= {"arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}"}
            resource_id = name
        elif t == "aws:glue/catalogDatabase:CatalogDatabase":
            state |= {
                "arn": f"arn:aws:glue:{REGION}:{ACCOUNT}:database/{name}",
                "catalogId": ACCOUNT,
            }
        elif t == "aws:glue/catalogTable:CatalogTable":
            db = inputs["databaseName"]
            state |= {"arn": f"arn:aws:glue:{REGION}:{ACCOUNT}:table/{db}/{name}"}
        elif t == "aws:athena/workgroup:Workgroup":
            state |= {"arn": f"arn:aws:athena:{REGION}:{ACCOUNT}:workgroup/{name}"}
            resource_id = name
        elif t == "aws:apigateway/restApi:RestApi":
            state |= {
                "executionArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}",
                "rootResourceId": "root0",
                "arn": f"arn:aws:apigateway:{REGION}::/restapis/{API_ID}",
            }
            resource_id = API_ID
        elif t == "aws:apigateway/stage:Stage":
            stage = inputs["stageName"]
            url = f"https://{API_ID}.execute-api.{REGION}.amazonaws.com/{stage}"
            state |= {"invokeUrl": url}
        elif t == "aws:lambda/layerVersion:LayerVersion":
            state |= {"arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{inputs['layerName']}:1"}
        elif t == "aws:s3/bucketObjectv2:BucketObjectv2":
            resource_id = inputs["key"]
        state.setdefault("arn", f"arn:aws:mock:{REGION}:{ACCOUNT}:{t}/{args.name}")
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            identity = {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/deployer",
                "userId": "AIDAEXAMPLE",
                "id": ACCOUNT,
            }
            return identity, []
        raise NotImplementedError(f"the stack calls {args.token}, which these mocks do not know")


class RecordingMonitor(MockMonitor):
    """The mock monitor, also keeping what the mocks' ``new_resource`` is not told."""

    def __init__(self, mocks: StackMocks) -> None:
        super().__init__(mocks)
        self.registered: list[Registered] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (the engine's RPC name)
        register: Any = super().RegisterResource  # untyped in the SDK
        response = register(request)
        # Registrations run on several threads at once: read back by URN, never "the last one".
        inputs = rpc.deserialize_properties(request.object)
        self.registered.append(
            Registered(
                type=request.type,
                name=request.name,
                urn=response.urn,
                parent=request.parent,
                dependencies=tuple(request.dependencies),
                provider=request.provider,
                custom=bool(request.custom),
                retain_on_delete=bool(request.retainOnDelete),
                inputs=inputs,
                state=self.resources[response.urn].state if response.urn in self.resources else {},
            )
        )
        return response


class _Warnings:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def warn(self, message: str, *_: Any, **__: Any) -> None:
        self.messages.append(message)


class FakeBuilder:
    """Stands in for ``infra.packaging``: the real code zip (without bytecode, so no Python 3.12 is
    needed) and a small zip for each layer, in the build folder the program names."""

    def __init__(self, error: str | None = None) -> None:
        self.error = error
        self.calls: list[tuple[Target, Path]] = []
        self.kernel_packages: list[tuple[str, ...]] = []

    def __call__(
        self, target: Target, build_dir: Path, kernel_packages: tuple[str, ...] = ()
    ) -> dict[str, Path]:
        self.calls.append((target, build_dir))
        self.kernel_packages.append(kernel_packages)
        if self.error is not None:
            raise BuildError(self.error)
        out = build_dir / "lambda" / target.name
        paths = {"code": build_code(code_closure(PROJECT_ROOT), PROJECT_ROOT, out).file}
        for layer in ("deps", "scipy"):
            (out / layer / "python").mkdir(parents=True, exist_ok=True)
            (out / layer / "python" / f"{layer}_marker.py").write_text(f"LAYER = {layer!r}\n")
            write_zip(out / f"{layer}.zip", out / layer, {f"python/{layer}_marker.py": 0o644})
            paths[layer] = out / f"{layer}.zip"
        if kernel_packages:  # the real kernels layer (no bytecode): what the stack reads
            pins = read_pins(PROJECT_ROOT / "requirements-lambda.txt")
            layer_zip, _ = build_kernels_layer(kernel_packages, target, pins, PROJECT_ROOT, out)
            paths["kernels"] = layer_zip.file
        return paths


def build(
    config: StackConfig,
    program: Callable[[], Mapping[str, Any]] | None = None,
    builder: FakeBuilder | None = None,
) -> BuiltStack:
    """Build the stack with mocks (and a fake builder), record it, and restore the Pulumi
    runtime's settings."""
    mocks = StackMocks()
    monitor = RecordingMonitor(mocks)
    warnings = _Warnings()
    original_warn = pulumi.log.warn
    pulumi.log.warn = warnings.warn  # type: ignore[assignment]
    original_builder = artifact_sources.default_builder
    artifact_sources.default_builder = builder or FakeBuilder()
    outputs: dict[str, Any] = {}

    def run() -> None:
        made = program() if program is not None else build_stack(config)
        resolved = _sync_await(pulumi.Output.all(**made).future())
        assert resolved is not None
        outputs.update(resolved)

    try:
        pulumi.runtime.set_mocks(
            mocks, project="sweep", stack="sandbox", preview=False, monitor=monitor
        )
        _sync_await(run_pulumi_func(run))
    finally:
        pulumi.log.warn = original_warn
        artifact_sources.default_builder = original_builder
        reset_options()
        set_all_config({})
    return BuiltStack(config, tuple(monitor.registered), outputs, tuple(warnings.messages))


def load_yaml(path: Path) -> Any:
    """A YAML file's content (PyYAML, which Pulumi's SDK depends on, ships no type stubs)."""
    yaml: Any = importlib.import_module("yaml")
    return yaml.safe_load(path.read_text())


def stack_file_config() -> dict[str, str]:
    """The ``config:`` map of Pulumi.sandbox.yaml, values as the CLI hands them over (text)."""
    loaded = load_yaml(STACK_FILE)["config"]
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in loaded.items()}


def config_from(values: Mapping[str, str]) -> StackConfig:
    """A ``StackConfig`` read the way the program reads it, from a stack's config map."""
    set_all_config(dict(values))
    try:
        return StackConfig.from_pulumi(pulumi.Config("sweep"))
    finally:
        set_all_config({})


_BUILD_DIR = tempfile.TemporaryDirectory(prefix="sweep-infra-test-")


def in_temp_build_dir(config: StackConfig) -> StackConfig:
    """``config`` with its code zip written to a temporary folder, not the checkout."""
    return attrs.evolve(config, artifacts=ArtifactSettings(build_dir=_BUILD_DIR.name))


@functools.cache
def sandbox_stack() -> BuiltStack:
    """The sandbox stack (Pulumi.sandbox.yaml), built with mocks once per session."""
    return build(in_temp_build_dir(config_from(stack_file_config())))


# --- tests of the program's shape ----------------------------------------------------------


@pytest.fixture
def restored() -> Iterator[None]:
    yield
    reset_options()
    set_all_config({})


def test_importing_the_program_creates_no_resource(restored: None) -> None:
    mocks = StackMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(
        mocks, project="sweep", stack="sandbox", preview=False, monitor=monitor
    )

    # Pulumi registers resources on its event loop, after the code that declares them returns:
    # run_pulumi_func waits for every pending registration before the assertion looks.
    def import_the_program() -> None:
        runpy.run_path(str(PROJECT_ROOT / "__main__.py"), run_name="imported_by_a_test")

    _sync_await(run_pulumi_func(import_the_program))
    # The root stack resource run_pulumi_func itself registers, and nothing else.
    assert [r.type for r in monitor.registered] == ["pulumi:pulumi:Stack"]


def test_the_program_exports_every_output_from_the_stack_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exported: dict[str, pulumi.Output[Any]] = {}
    monkeypatch.setattr(pulumi, "export", lambda name, value: exported.__setitem__(name, value))
    values = {**stack_file_config(), "sweep:artifactBuildDir": _BUILD_DIR.name}

    def main() -> Mapping[str, Any]:
        set_all_config(values)
        runpy.run_path(str(PROJECT_ROOT / "__main__.py"), run_name="__main__")
        return exported

    built = build(config_from(values), program=main)
    assert tuple(built.outputs) == OUTPUT_NAMES
    assert built.outputs["api_url"] == f"https://{API_ID}.execute-api.{REGION}.amazonaws.com/v1"
    assert {r.type for r in built.resources} == {r.type for r in sandbox_stack().resources}


def test_the_stack_file_alone_gives_every_function_its_code_and_layers() -> None:
    stack = sandbox_stack()
    assert stack.config.artifacts.layer_zip is None  # nothing prebuilt is named
    uploads = {
        r.inputs["key"]: Path(r.inputs["source"].path)
        for r in stack.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
    }
    assert all(path.is_file() for path in uploads.values())
    layers = {r.name: r for r in stack.of_type("aws:lambda/layerVersion:LayerVersion")}
    assert set(layers) == {"compute-deps", "compute-scipy"}
    for layer in layers.values():
        assert layer.inputs["s3Key"] in uploads
    for function in stack.of_type("aws:lambda/function:Function"):
        assert function.inputs["s3Key"] in uploads
        expected = 2 if function.name == "compute-worker" else 1
        assert len(function.inputs["layers"]) == expected, function.name


def test_a_build_that_cannot_succeed_fails_the_program_with_the_reason() -> None:
    values = {**stack_file_config(), "sweep:artifactBuildDir": _BUILD_DIR.name}
    reason = "no wheel of numpy==2.4.6 for arm64-py3.12"

    def main() -> Mapping[str, Any]:
        set_all_config(values)
        runpy.run_path(str(PROJECT_ROOT / "__main__.py"), run_name="__main__")
        return {}

    with pytest.raises(pulumi.RunError, match=f"the Lambda artifacts: {reason}"):
        build(config_from(values), program=main, builder=FakeBuilder(error=reason))


def test_every_output_has_a_value_but_the_hashes_of_layers_not_built() -> None:
    outputs = sandbox_stack().outputs
    assert tuple(outputs) == OUTPUT_NAMES
    assert all(isinstance(v, str) and v for v in outputs.values())


def test_a_second_run_of_the_program_deploys_the_same_artifacts() -> None:
    """What a second ``pulumi preview`` compares: the same keys and hashes, so no diff."""

    def artifact_inputs(stack: BuiltStack) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for r in stack.of_type("aws:s3/bucketObjectv2:BucketObjectv2"):
            found[r.name] = (r.inputs["key"], Path(r.inputs["source"].path).read_bytes())
        for r in stack.of_type("aws:lambda/layerVersion:LayerVersion"):
            found[r.name] = (r.inputs["s3Key"], r.inputs["sourceCodeHash"])
        for r in stack.of_type("aws:lambda/function:Function"):
            found[r.name] = (r.inputs["s3Key"], r.inputs["sourceCodeHash"], r.inputs["layers"])
        return found

    config = in_temp_build_dir(config_from(stack_file_config()))
    first, second = build(config), build(config)

    assert artifact_inputs(first) == artifact_inputs(second)
    assert len(artifact_inputs(first)) == 3 + 2 + 3
    assert first.outputs == second.outputs
