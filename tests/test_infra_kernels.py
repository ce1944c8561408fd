"""The stack deploys kernel packages (``sweep:kernelPackages``): the example package built into
the kernels layer as the program builds it, its Glue points table made from its declaration
(Pulumi mocks), the layer on the worker and the parent, and a sweep on it through the Lambda
entry points on moto."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
from test_infra_mocks import (
    BuiltStack,
    FakeBuilder,
    build,
    config_from,
    in_temp_build_dir,
    stack_file_config,
)

from infra.packaging import BuildError, Target
from infra.packaging.builder import build_kernels_layer
from infra.packaging.kernels import project_metadata
from infra.packaging.pins import read_pins
from sweep_core.tables import points_table

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TABLE = "aws:glue/catalogTable:CatalogTable"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def kernels_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kernels-layer")
    pins = read_pins(REPO / "requirements-lambda.txt")
    layer, sizes = build_kernels_layer(
        ["examples/kernels"], Target("arm64", "3.12"), pins, REPO, out
    )
    assert [s.name for s in sizes] == ["sweep_oscillator"]
    return layer.file


BUILDER = FakeBuilder()


def _with(**artifacts: Any) -> BuiltStack:
    config = in_temp_build_dir(config_from(stack_file_config()))
    settings = attrs.evolve(config.artifacts, **artifacts)
    return build(attrs.evolve(config, artifacts=settings), builder=BUILDER)


@pytest.fixture(scope="module")
def stack() -> BuiltStack:
    built = _with(kernel_packages=("examples/kernels",))
    assert BUILDER.kernel_packages[-1] == ("examples/kernels",)
    return built


def test_each_deployed_kernel_gets_a_glue_table_with_its_columns(stack: BuiltStack) -> None:
    from sweep_oscillator.kernel import SPEC

    names = sorted(r.name for r in stack.of_type(TABLE))
    assert names == [
        "analytics-manifests", "analytics-outcomes", "analytics-points_damped_oscillator",
        "analytics-points_gbm_european_option", "analytics-points_sir_epidemic",
    ]  # fmt: skip
    table = stack.one(TABLE, "analytics-points_damped_oscillator")
    columns = [(c["name"], c["type"]) for c in table.inputs["storageDescriptor"]["columns"]]
    assert columns == [(c.name, c.athena_type) for c in points_table(SPEC).columns]
    assert ("settled", "boolean") in columns
    assert ("regime", "string") in columns
    assert table.inputs["storageDescriptor"]["location"].endswith("/points/damped_oscillator/")


def test_the_kernels_layer_goes_to_the_worker_and_the_parent(stack: BuiltStack) -> None:
    [layer] = [
        r for r in stack.of_type("aws:lambda/layerVersion:LayerVersion") if "kernels" in r.name
    ]
    assert layer.inputs["s3Key"].startswith("lambda/layer-kernels/")
    arn = layer.state["arn"]
    layers = {
        role: stack.one("aws:lambda/function:Function", f"compute-{role}").inputs.get("layers", [])
        for role in ("parent", "worker", "recorder")
    }
    assert arn in layers["parent"]
    assert arn in layers["worker"]
    assert arn not in layers["recorder"]


def test_kernel_packages_with_prebuilt_zips_need_the_kernels_layer_zip(tmp_path: Path) -> None:
    from infra.artifacts import resolve_artifacts
    from infra.config import ArtifactSettings

    settings = ArtifactSettings(
        code_zip="c.zip", layer_zip="d.zip", scipy_layer_zip="s.zip",
        kernel_packages=("examples/kernels",),
    )  # fmt: skip
    with pytest.raises(ValueError, match="needs sweep:kernelsLayerZip too"):
        resolve_artifacts(settings, tmp_path, Target("arm64", "3.12"), FakeBuilder())


def test_a_broken_kernel_package_fails_the_build_naming_it(tmp_path: Path) -> None:
    package = tmp_path / "broken"
    (package / "src" / "broken_model").mkdir(parents=True)
    (package / "src" / "broken_model" / "__init__.py").write_text("KERNEL = 'not a kernel'\n")
    (package / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=77"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "broken-model"\nversion = "1"\n'
        '[project.entry-points."sweep.kernels"]\nbroken = "broken_model:KERNEL"\n'
        '[tool.setuptools.packages.find]\nwhere = ["src"]\n'
    )
    pins = read_pins(REPO / "requirements-lambda.txt")
    with pytest.raises(BuildError, match=r"entry point 'broken' \(broken_model:KERNEL\)"):
        build_kernels_layer([str(package)], Target("arm64", "3.12"), pins, REPO, tmp_path)


# --- a sweep on the deployed kernel, through the Lambda entry points on moto ------------------


def test_a_sweep_on_the_deployed_kernel_package_runs_through_the_cloud_path_on_moto(
    kernels_layer: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import zipfile
    from importlib.metadata import distributions

    import boto3
    import duckdb
    from moto import mock_aws

    from runtime import lambda_entry
    from runtime.adapters.local_store import LocalContext
    from runtime.lambda_entry import CloudConfig, build_adapters, use_adapters
    from sweep_core.kernels import ENTRY_POINT_GROUP, KernelRegistry, KernelSource

    # The functions' view of the kernels: the project's entry points and the unpacked layer's.
    opt = tmp_path / "opt"
    zipfile.ZipFile(kernels_layer).extractall(opt)
    monkeypatch.syspath_prepend(str(opt / "python"))
    sources = [
        KernelSource("entry point", ep.value, ep.name, dist.name)
        for dist in distributions(path=[str(opt / "python")])
        for ep in dist.entry_points
        if ep.group == ENTRY_POINT_GROUP
    ]
    sources += [
        KernelSource("entry point", ref, name, "sweep")
        for name, ref in project_metadata(REPO)[2].items()
    ]
    deployed = KernelRegistry(lambda: sources)
    assert sorted(deployed) == ["damped_oscillator", "gbm_european_option", "sir_epidemic"]

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    invokes: list[dict[str, Any]] = []

    class Captured:
        def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> Any:  # noqa: N803
            invokes.append(json.loads(Payload))
            return {"StatusCode": 202}

    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(
            Bucket="results", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        config = CloudConfig("results", "results", "w", "p", 10_000, 100, 100, 2)
        adapters = build_adapters(config, s3=s3, lambda_=Captured())
        catalog = {name: deployed[name].spec for name in deployed}
        use_adapters(
            attrs.evolve(
                adapters,
                parent=attrs.evolve(adapters.parent, catalog=catalog),
                worker=attrs.evolve(adapters.worker, kernels=deployed),
            )
        )
        try:
            body = {
                "schema_version": "1.0", "kernel": "damped_oscillator",
                "params": {"omega": 1.5, "steps": 400, "t_end": 8.0},
                "axes": {"zeta": {"linspace": {"start": 0.0, "stop": 3.0, "num": 7}}},
                "sampling": {"method": "grid"}, "sharding": {"shard_size": 3}, "seed": 9,
            }  # fmt: skip
            post = {"httpMethod": "POST", "resource": "/runs", "path": "/runs",
                    "body": json.dumps(body)}  # fmt: skip
            context = LocalContext.with_timeout(60)
            answer = lambda_entry.parent(post, context)
            assert answer is not None
            assert answer["statusCode"] == 202, answer["body"]
            run_id = json.loads(answer["body"])["run_id"]
            statuses = [lambda_entry.worker(task, context)["status"] for task in invokes]
            assert statuses == ["success"] * 3
            unknown = lambda_entry.parent(
                {**post, "body": json.dumps({**body, "kernel": "x"})}, context
            )
            assert unknown is not None
            assert (
                "known kernels: damped_oscillator, gbm_european_option, sir_epidemic"
                in (unknown["body"])
            )
            keys = [o["Key"] for o in s3.list_objects_v2(Bucket="results")["Contents"]]
            for key in keys:
                target = tmp_path / "bucket" / key
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(s3.get_object(Bucket="results", Key=key)["Body"].read())
        finally:
            use_adapters(None)

    points = tmp_path / "bucket" / "results" / "points" / "damped_oscillator"
    rows = duckdb.execute(
        "SELECT zeta, regime, typeof(settled), abs_error "
        "FROM read_parquet(?, hive_partitioning = true) WHERE run_id = ? ORDER BY zeta",
        [f"{points}/**/*.parquet", run_id],
    ).fetchall()
    assert [r[1] for r in rows] == ["underdamped"] * 2 + ["critical"] + ["overdamped"] * 4
    assert {r[2] for r in rows} == {"BOOLEAN"}
    assert max(r[3] for r in rows) < 1e-6  # RK4 against the closed form
