"""Rollback: from a saved export (or ``pulumi stack export --version N``) the artifacts that ran are
found, and ``pulumi up`` redeploys exactly those keys with ``sweep:useExistingArtifacts=true``.

The fixtures are two consecutive states of the sandbox stack as ``pulumi stack export`` writes
them. Their artifact hashes are fake: the sha256 of a label, as ``digest`` computes.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from test_deploy import NOW, STAMP, Recorded, install_fake_pulumi, use_aws

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import _stack  # noqa: E402
from moto import mock_aws  # noqa: E402

if TYPE_CHECKING:
    import rollback
else:
    # By its path from the checkout, the name `make mutation` gives its mutants.
    rollback = importlib.import_module("scripts.rollback")

FIXTURES = REPO / "tests" / "fixtures"
V12 = FIXTURES / "stack_export_v12.json"
V13 = FIXTURES / "stack_export_v13.json"


def digest(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def export(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def resources(data: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [r for r in data["deployment"]["resources"] if r["type"] == type_]


# --- reading an export -----------------------------------------------------------------------


def test_each_export_names_the_artifacts_its_functions_ran() -> None:
    v12, v13 = rollback.load(V12), rollback.load(V13)

    assert v12.code_key == f"lambda/code/{digest('code v12')}.zip"
    assert v12.layer_keys == {
        "deps": f"lambda/layer/{digest('layer deps a')}.zip",
        "scipy": f"lambda/layer-scipy/{digest('layer scipy a')}.zip",
    }
    assert (v12.architecture, v12.runtime) == ("arm64", "python3.12")
    assert v12.functions == (
        "sweep-sandbox-parent",
        "sweep-sandbox-recorder",
        "sweep-sandbox-worker",
    )
    # v13 shipped new code and a new deps layer; the scipy layer stayed
    assert v13.code_key == f"lambda/code/{digest('code v13')}.zip"
    assert v13.layer_keys["deps"] == f"lambda/layer/{digest('layer deps b')}.zip"
    assert v13.layer_keys["scipy"] == v12.layer_keys["scipy"]


def test_a_resource_pending_deletion_is_not_what_ran() -> None:
    data = export(V13)
    # v13 replaced the worker: the old one, on v12's code and deps layer, awaits deletion
    [old_worker] = [r for r in resources(data, rollback.FUNCTION) if r.get("delete")]
    assert old_worker["outputs"]["name"] == "sweep-sandbox-worker"
    assert old_worker["outputs"]["s3Key"] == f"lambda/code/{digest('code v12')}.zip"
    stale = [r for r in resources(data, rollback.LAYER_VERSION) if r.get("delete")]
    assert stale, "the v13 fixture keeps the replaced deps layer version, marked for deletion"
    assert stale[0]["outputs"]["s3Key"] == f"lambda/layer/{digest('layer deps a')}.zip"
    assert stale[0]["outputs"]["arn"] in old_worker["outputs"]["layers"]

    deployed = rollback.deployed_artifacts(data)
    assert deployed.code_key == f"lambda/code/{digest('code v13')}.zip"
    assert deployed.layer_keys["deps"] == f"lambda/layer/{digest('layer deps b')}.zip"
    assert deployed.functions.count("sweep-sandbox-worker") == 1

    # the same state with the old worker and its layer live again is two deployments at once
    del old_worker["delete"], stale[0]["delete"]
    with pytest.raises(rollback.RollbackError, match="ran different code"):
        rollback.deployed_artifacts(data)


def test_the_rollback_config_selects_existing_objects_and_clears_absent_layers() -> None:
    data = export(V12)
    # an older state, from before the scipy layer existed
    data["deployment"]["resources"] = [
        r for r in data["deployment"]["resources"] if not r["urn"].endswith("::compute-scipy")
    ]
    for function in resources(data, rollback.FUNCTION):
        for props in (function["inputs"], function["outputs"]):
            props["layers"] = [
                arn for arn in props["layers"] if ":layer:sweep-sandbox-scipy:" not in arn
            ]

    config = rollback.deployed_artifacts(data).config()

    assert config == {
        "sweep:useExistingArtifacts": "true",
        "sweep:codeArtifactKey": f"lambda/code/{digest('code v12')}.zip",
        "sweep:layerArtifactKey": f"lambda/layer/{digest('layer deps a')}.zip",
        "sweep:scipyLayerArtifactKey": "",
        "sweep:kernelsLayerArtifactKey": "",
        "sweep:architecture": "arm64",
        "sweep:lambdaRuntime": "python3.12",
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: resources(d, rollback.FUNCTION)[0]["outputs"].update(
                s3Key=f"lambda/code/{digest('hotfix')}.zip"
            ),
            "ran different code",
        ),
        (
            lambda d: resources(d, rollback.FUNCTION)[1]["outputs"].update(
                s3Key="lambda/code/latest.zip"
            ),
            "not a content-addressed artifact",
        ),
        (
            lambda d: resources(d, rollback.FUNCTION)[0]["outputs"].update(
                layers=["arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3:7"]
            ),
            "which is not in",
        ),
        (
            lambda d: resources(d, rollback.FUNCTION)[2]["outputs"].update(
                architectures=["x86_64"]
            ),
            "differ in architecture or runtime",
        ),
        (lambda d: d["deployment"].update(resources=[]), "^the export holds no Lambda function"),
    ],
)
def test_an_export_that_does_not_say_what_ran_is_refused(change: Any, message: str) -> None:
    data = copy.deepcopy(export(V12))
    change(data)

    with pytest.raises(rollback.RollbackError, match=message):
        rollback.deployed_artifacts(data)


_SIG = "4dabf18193072939515e22adb298388d"  # pragma: allowlist secret (Pulumi's secret sig key)
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # pragma: allowlist secret (its marker value)
SECRET = {_SIG: _SECRET_SIG, "value": "x"}
"""A value Pulumi keeps secret in an export: not readable here."""


def _function(data: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [f for f in resources(data, rollback.FUNCTION) if f["urn"].endswith("::" + name)]
    return found


def _refusal(data: dict[str, Any]) -> str:
    with pytest.raises(rollback.RollbackError) as caught:
        rollback.deployed_artifacts(data, "v12.json")
    return str(caught.value)


def test_a_function_whose_name_is_secret_is_named_by_its_resource() -> None:
    data = copy.deepcopy(export(V12))
    worker = _function(data, "compute-worker")
    worker["inputs"]["name"] = worker["outputs"]["name"] = SECRET
    assert rollback.deployed_artifacts(data).functions == (
        "compute-worker",
        "sweep-sandbox-parent",
        "sweep-sandbox-recorder",
    )


def test_each_refusal_names_the_functions_and_keys_concerned() -> None:
    data = copy.deepcopy(export(V12))
    code = f"lambda/code/{digest('code v12')}.zip"
    _function(data, "compute-worker")["outputs"]["s3Key"] = SECRET
    assert _refusal(data) == (
        "sweep-sandbox-worker runs None, not a content-addressed artifact "
        "(lambda/<kind>/<sha256>.zip): this state cannot be redeployed by key"
    )

    data = copy.deepcopy(export(V12))
    deps = f"lambda/layer/{digest('layer deps a')}.zip"
    _function(data, "compute-parent")["outputs"]["s3Key"] = deps
    assert _refusal(data) == (
        f"sweep-sandbox-parent runs code from {deps}, which is not a code artifact"
    )

    data = copy.deepcopy(export(V12))
    [deps_layer] = [
        r for r in resources(data, rollback.LAYER_VERSION) if r["urn"].endswith("::compute")
    ]
    deps_layer["outputs"]["s3Key"] = "lambda/layer/latest.zip"
    assert _refusal(data).startswith("sweep-sandbox-parent runs 'lambda/layer/latest.zip', not")

    data = copy.deepcopy(export(V12))
    deps_layer = next(
        r for r in resources(data, rollback.LAYER_VERSION) if r["urn"].endswith("::compute")
    )
    deps_layer["outputs"]["s3Key"] = code  # a code zip where a layer belongs
    assert _refusal(data) == (
        f"layer artifact {code} is of no known kind (['code', 'deps', 'kernels', 'scipy'])"
    )

    data = copy.deepcopy(export(V12))
    other = copy.deepcopy(deps_layer)
    other["urn"] += "-other"
    other["outputs"]["arn"] = other["outputs"]["arn"].rsplit(":", 1)[0] + ":99"
    other["outputs"]["s3Key"] = f"lambda/layer/{digest('layer deps z')}.zip"
    data["deployment"]["resources"].append(other)
    _function(data, "compute-recorder")["outputs"]["layers"] = [other["outputs"]["arn"]]
    assert _refusal(data) == (
        "functions in v12.json ran different deps layers: "
        f"{deps} (sweep-sandbox-parent, sweep-sandbox-worker); "
        f"{other['outputs']['s3Key']} (sweep-sandbox-recorder)"
    )

    data = copy.deepcopy(export(V12))
    _function(data, "compute-recorder")["outputs"]["architectures"] = ["x86_64"]
    assert _refusal(data) == (
        "functions in v12.json differ in architecture or runtime: "
        "{('arm64', 'python3.12'): ['sweep-sandbox-parent', 'sweep-sandbox-worker'], "
        "('x86_64', 'python3.12'): ['sweep-sandbox-recorder']}"
    )


def test_a_file_that_is_not_an_export_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "outputs.json"
    bogus.write_text('{"api_url": "https://example.com"}')

    with pytest.raises(_stack.StackError, match="no 'deployment' object"):
        rollback.load(bogus)


# --- running it ------------------------------------------------------------------------------


@pytest.fixture
def pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Recorded:
    return install_fake_pulumi(tmp_path, monkeypatch, {"current": V13, "12": V12})


def expected_up(yes: bool = True) -> list[str]:
    args = [
        "up", "--stack", "sandbox",
        "--config", "sweep:architecture=arm64",
        "--config", f"sweep:codeArtifactKey=lambda/code/{digest('code v12')}.zip",
        "--config", "sweep:kernelsLayerArtifactKey=",  # that state had no kernels layer
        "--config", "sweep:lambdaRuntime=python3.12",
        "--config", f"sweep:layerArtifactKey=lambda/layer/{digest('layer deps a')}.zip",
        "--config", f"sweep:scipyLayerArtifactKey=lambda/layer-scipy/{digest('layer scipy a')}.zip",
        "--config", "sweep:useExistingArtifacts=true",
    ]  # fmt: skip
    return [*args, "--yes"] if yes else args


def test_rollback_from_a_saved_export_redeploys_its_artifacts(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pulumi: Recorded,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_aws(monkeypatch, tmp_path)
    exports = tmp_path / "exports"

    with mock_aws(config={"core": {"mock_credentials": False}}):
        code = rollback.main(["--from-export", str(V12), "--yes"], now=NOW, exports=exports)

    out = capsys.readouterr().out
    assert code == 0, out
    assert pulumi.commands() == [
        ["whoami"],
        ["stack", "export", "--stack", "sandbox"],
        expected_up(),
        ["stack", "export", "--stack", "sandbox"],
    ]
    saved = {p.name: p for p in _stack.saved_exports("sandbox", exports)}
    assert set(saved) == {f"{STAMP}-before-rollback.json", f"{STAMP}-after-rollback.json"}
    assert saved[f"{STAMP}-before-rollback.json"].read_text() == V13.read_text()
    assert f"it runs now: code {digest('code v13')[:12]}; rolling back to code " in out
    assert digest("code v12")[:12] in out


def test_rollback_to_a_stack_version_exports_that_version_first(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pulumi: Recorded,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_aws(monkeypatch, tmp_path)
    exports = tmp_path / "exports"

    with mock_aws(config={"core": {"mock_credentials": False}}):
        code = rollback.main(["--version", "12"], now=NOW, exports=exports)

    assert code == 0, capsys.readouterr().err
    assert pulumi.commands() == [
        ["whoami"],
        ["stack", "export", "--stack", "sandbox", "--version", "12"],
        ["stack", "export", "--stack", "sandbox"],
        expected_up(yes=False),
        ["stack", "export", "--stack", "sandbox"],
    ]
    version = exports / "sandbox" / f"{STAMP}-version-12.json"
    assert version.read_text() == V12.read_text()


def test_a_dry_run_prints_the_choice_and_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-pulumi-here"))

    code = rollback.main(["--from-export", str(V12), "--dry-run", "--yes"], exports=tmp_path)

    out = capsys.readouterr().out
    assert code == 0
    assert f"code           lambda/code/{digest('code v12')}.zip" in out
    assert f"layer scipy    lambda/layer-scipy/{digest('layer scipy a')}.zip" in out
    assert "dry run; would run: pulumi " + " ".join(expected_up()) in out
    assert not (tmp_path / "sandbox").exists()


def test_rollback_is_refused_without_a_valid_session(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pulumi: Recorded,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_aws(monkeypatch, tmp_path, token=False, expires=None)

    with mock_aws(config={"core": {"mock_credentials": False}}):
        code = rollback.main(["--from-export", str(V12), "--yes"], now=NOW, exports=tmp_path)

    assert code == 2
    assert "rollback refused: preflight failed" in capsys.readouterr().err
    assert pulumi.commands() == [["whoami"]]


def test_an_unusable_export_is_refused_before_the_preflight(
    tmp_path: Path, pulumi: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"version": 3, "deployment": {"resources": []}}))

    code = rollback.main(["--from-export", str(empty)], exports=tmp_path)

    assert code == 2
    assert "holds no Lambda function" in capsys.readouterr().err
    assert pulumi.commands() == []


def test_list_shows_what_each_saved_export_ran(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "sandbox"
    folder.mkdir()
    (folder / "20261121T140312Z-after-deploy.json").write_text(V12.read_text())
    (folder / "20261123T094157Z-after-deploy.json").write_text(V13.read_text())
    (folder / "20261123T100000Z-broken.json").write_text("{")

    assert rollback.main(["--list"], exports=tmp_path) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("20261121T140312Z-after-deploy.json")
    assert lines[1] == (
        f"  code {digest('code v12')[:12]}; layers deps {digest('layer deps a')[:12]}, "
        f"scipy {digest('layer scipy a')[:12]}; python3.12 arm64"
    )
    assert lines[3].startswith(f"  code {digest('code v13')[:12]}")
    assert "not usable" in lines[5]
