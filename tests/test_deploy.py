"""Deploy: the preflight refuses to start without a valid temporary AWS session (moto STS), a
region and a logged-in Pulumi, before anything is built; then build, save the state, ``up``.

Pulumi is a fake executable on PATH that records its arguments (the real CLI cannot run here).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import _stack  # noqa: E402
import build_artifacts as ba  # noqa: E402
import deploy  # noqa: E402
from _aws_session import concurrency_problem  # noqa: E402

from infra.packaging.builder import MIB, Artifact  # noqa: E402
from infra.packaging.closure import CodeClosure  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures"
CURRENT_EXPORT = FIXTURES / "stack_export_v13.json"
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
"""The tests' clock: botocore checks expiry against the real one, so this stays close to it."""
STAMP = NOW.strftime("%Y%m%dT%H%M%SZ")

FAKE_PULUMI = """#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_PULUMI_LOG"], "a") as log:
    log.write(json.dumps({{"argv": args, "profile": os.environ.get("AWS_PROFILE")}}) + "\\n")
fail = os.environ.get("FAKE_PULUMI_FAIL", "")
if args[:1] == ["whoami"]:
    if fail == "whoami":
        sys.exit("error: PULUMI_ACCESS_TOKEN must be set for login in non-interactive sessions")
    print("sweep-team")
elif args[:2] == ["stack", "export"]:
    if fail == "export":
        sys.exit("error: no stack named 'sandbox' found")
    version = args[args.index("--version") + 1] if "--version" in args else "current"
    exports = json.loads(os.environ["FAKE_PULUMI_EXPORTS"])
    with open(exports[version]) as export:
        sys.stdout.write(export.read())
elif args[:1] == ["up"]:
    sys.exit(int(os.environ.get("FAKE_PULUMI_UP_EXIT", "0")))
else:
    sys.exit("fake pulumi: unexpected command " + " ".join(args))
"""


class Recorded:
    """What the fake ``pulumi`` was asked to do, and the fake build's calls, in order."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def commands(self) -> list[list[str]]:
        return [call["argv"] for call in self.calls()]


def install_fake_pulumi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exports: dict[str, Path]
) -> Recorded:
    """A ``pulumi`` on PATH that logs its argv and serves ``exports`` (``current``, versions)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "pulumi"
    script.write_text(FAKE_PULUMI.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "pulumi-calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_PULUMI_LOG", str(log))
    monkeypatch.setenv("FAKE_PULUMI_EXPORTS", json.dumps({k: str(v) for k, v in exports.items()}))
    return Recorded(log)


def use_aws(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    *,
    token: bool = True,
    expires: datetime | None = NOW + timedelta(hours=1),
    region: str | None = "eu-west-1",
) -> None:
    """Credentials in the environment, as ``aws configure export-credentials`` leaves them."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    if token:
        monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    if expires is not None:
        monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", expires.isoformat())
    if region is not None:
        monkeypatch.setenv("AWS_REGION", region)


def fake_build_result(out: Path) -> ba.BuildResult:
    out.mkdir(parents=True, exist_ok=True)

    def artifact(name: str, size: int) -> Artifact:
        digest = hashlib.sha256(name.encode()).hexdigest()
        path = out / f"{digest}.zip"
        path.write_bytes(name.encode())
        return Artifact(name, path, digest, size // 3, size)

    return ba.BuildResult(
        ba.Target("arm64", "3.12"),
        out,
        artifact("code", 115_000),
        {"deps": artifact("deps", 110 * MIB), "scipy": artifact("scipy", 80 * MIB)},
        {"deps": [], "scipy": []},
        {"deps": {}, "scipy": {}},
        CodeClosure({}, {"numpy": False}),
    )


class FakeBuild:
    def __init__(self, out: Path, recorded: Recorded, error: str | None = None) -> None:
        self.out, self.recorded, self.error = out, recorded, error
        self.targets: list[ba.Target] = []
        self.kernel_packages: list[tuple[str, ...]] = []

    def __call__(self, target: ba.Target, kernel_packages: tuple[str, ...] = ()) -> ba.BuildResult:
        self.targets.append(target)
        self.kernel_packages.append(kernel_packages)
        with open(self.recorded.log, "a") as log:  # ordered with pulumi's calls
            log.write(json.dumps({"argv": ["<build>"], "profile": None}) + "\n")
        if self.error:
            raise ba.BuildError(self.error)
        return fake_build_result(self.out)


@pytest.fixture
def pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Recorded:
    return install_fake_pulumi(tmp_path, monkeypatch, {"current": CURRENT_EXPORT})


@pytest.fixture
def moto_sts() -> Iterator[None]:
    # mock_credentials off: the credentials under test are the environment's, not moto's
    with mock_aws(config={"core": {"mock_credentials": False}}):
        yield


class FakeLambda:
    """``GetAccountSettings`` and ``GetFunctionConcurrency`` as Lambda answers them (moto has
    no account settings)."""

    def __init__(self, limit: int = 1000, unreserved: int | None = None, worker: int = 0) -> None:
        self.limit, self.worker = limit, worker
        self.unreserved = limit if unreserved is None else unreserved
        self.asked: list[str] = []

    def get_account_settings(self) -> dict[str, Any]:
        limits = {"ConcurrentExecutions": self.limit}
        return {"AccountLimit": limits | {"UnreservedConcurrentExecutions": self.unreserved}}

    def get_function_concurrency(self, FunctionName: str) -> dict[str, Any]:  # noqa: N803
        self.asked.append(FunctionName)
        if self.worker:
            return {"ReservedConcurrentExecutions": self.worker}
        raise ClientError(
            {"Error": {"Code": "ResourceNotFoundException", "Message": "no such function"}},
            "GetFunctionConcurrency",
        )


def run_deploy(
    tmp_path: Path,
    *args: str,
    build: FakeBuild,
    sts: Any | None = None,
    lambda_client: Any | None = None,
) -> tuple[int, Path]:
    exports = tmp_path / "exports"
    code = deploy.main(
        [*args],
        build=build,
        now=NOW,
        exports=exports,
        sts=sts,
        lambda_client=lambda_client or FakeLambda(),
    )
    return code, exports


# --- a deploy that may go ahead --------------------------------------------------------------


@pytest.mark.usefixtures("moto_sts")
def test_deploy_preflights_builds_saves_the_state_then_runs_up(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pulumi: Recorded,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_aws(monkeypatch, tmp_path)
    build = FakeBuild(tmp_path / "out", pulumi)

    code, exports = run_deploy(tmp_path, "--yes", build=build)

    out = capsys.readouterr().out
    assert code == 0, out
    assert build.targets == [ba.Target("arm64", "3.12")]  # what Pulumi.sandbox.yaml says
    assert build.kernel_packages == [()]  # it names no kernel packages
    commands = pulumi.commands()
    assert [c[:2] for c in commands] == [
        ["whoami"], ["<build>"], ["stack", "export"], ["up", "--stack"], ["stack", "export"]
    ]  # fmt: skip
    assert commands[2] == ["stack", "export", "--stack", "sandbox"]
    # the program finds the build cached by its inputs: no zip path goes into the stack file
    assert commands[3] == [
        "up", "--stack", "sandbox",
        "--config", "sweep:codeZip=",
        "--config", "sweep:kernelsLayerZip=",
        "--config", "sweep:layerZip=",
        "--config", "sweep:scipyLayerZip=",
        "--config", "sweep:useExistingArtifacts=false",
        "--yes",
    ]  # fmt: skip
    saved = {path.name: path for path in _stack.saved_exports("sandbox", exports)}
    assert set(saved) == {f"{STAMP}-before-deploy.json", f"{STAMP}-after-deploy.json"}
    before = saved[f"{STAMP}-before-deploy.json"]
    assert before.read_text() == CURRENT_EXPORT.read_text()
    assert stat.S_IMODE(before.stat().st_mode) == 0o600
    assert "arn:aws:sts::123456789012:user/moto" in out
    assert f"until {NOW + timedelta(hours=1):%Y-%m-%d %H:%M} UTC" in out
    assert f"--from-export {before}" in out


@pytest.mark.usefixtures("moto_sts")
def test_without_yes_pulumi_asks_before_changing_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pulumi: Recorded
) -> None:
    use_aws(monkeypatch, tmp_path)

    code, _ = run_deploy(tmp_path, build=FakeBuild(tmp_path / "out", pulumi))

    up = next(c for c in pulumi.commands() if c[0] == "up")
    assert code == 0
    assert "--yes" not in up


def test_saved_exports_are_git_ignored() -> None:
    probe = _stack.EXPORTS / "sandbox" / f"{STAMP}-before-deploy.json"
    ignored = subprocess.run(
        ["git", "check-ignore", "--quiet", "--no-index", str(probe.relative_to(REPO))], cwd=REPO
    )
    assert ignored.returncode == 0


def test_exports_are_never_written_where_git_would_track_them(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "--quiet", str(repo)], check=True)
    with pytest.raises(_stack.StackError, match="not git-ignored"):
        _stack.save_export("{}", "sandbox", "before-deploy", repo / "exports", NOW)
    (repo / ".gitignore").write_text("exports/\n")
    saved = _stack.save_export("{}", "sandbox", "before-deploy", repo / "exports", NOW)
    assert saved.read_text() == "{}"


@pytest.mark.usefixtures("moto_sts")
def test_long_lived_keys_are_accepted_only_when_explicitly_allowed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pulumi: Recorded,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_aws(monkeypatch, tmp_path, token=False, expires=None)

    code, _ = run_deploy(
        tmp_path, "--yes", "--allow-long-lived-keys", build=FakeBuild(tmp_path / "out", pulumi)
    )

    assert code == 0
    assert "long-lived access keys (allowed by --allow-long-lived-keys)" in capsys.readouterr().out


@pytest.mark.usefixtures("moto_sts")
def test_a_profile_reaches_pulumi_and_a_token_without_expiry_is_accepted(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pulumi: Recorded,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_aws(monkeypatch, tmp_path, region=None)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.delenv("AWS_CREDENTIAL_EXPIRATION")
    (tmp_path / "aws-credentials").write_text(
        "[research]\naws_access_key_id = testing\n"
        "aws_secret_access_key = testing\n"  # pragma: allowlist secret
        "aws_session_token = testing\n"
    )
    (tmp_path / "aws-config").write_text("[profile research]\nregion = eu-central-1\n")

    code, _ = run_deploy(
        tmp_path, "--yes", "--profile", "research", build=FakeBuild(tmp_path / "out", pulumi)
    )

    out = capsys.readouterr().out
    assert code == 0, out
    assert "region eu-central-1, profile research" in out
    assert "expiry not reported" in out
    assert {call["profile"] for call in pulumi.calls() if call["argv"][0] != "<build>"} == {
        None,  # whoami runs before the profile is known to be good
        "research",
    }


# --- refusals: each names its fix and comes before the build ---------------------------------


def refused(
    tmp_path: Path,
    pulumi: Recorded,
    capsys: pytest.CaptureFixture[str],
    *args: str,
    sts: Any | None = None,
) -> str:
    build = FakeBuild(tmp_path / "out", pulumi)
    code, exports = run_deploy(tmp_path, "--yes", *args, build=build, sts=sts)
    err = capsys.readouterr().err
    assert code == 2, err
    assert build.targets == [], "refused after building"
    assert all(c in (["whoami"],) for c in pulumi.commands()), pulumi.commands()
    assert not exports.exists()
    assert not (tmp_path / "out").exists()
    assert "deploy refused: preflight failed, nothing was built or changed." in err
    return err


@pytest.mark.usefixtures("moto_sts")
def test_long_lived_keys_are_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pulumi: Recorded,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_aws(monkeypatch, tmp_path, token=False, expires=None)

    err = refused(tmp_path, pulumi, capsys)

    assert "long-lived access keys (no session token)" in err
    assert "aws sso login --profile NAME" in err
    assert "aws login --profile NAME" in err
    assert "--allow-long-lived-keys" in err


@pytest.mark.usefixtures("moto_sts")
def test_expired_credentials_are_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pulumi: Recorded,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_aws(monkeypatch, tmp_path, expires=NOW - timedelta(minutes=1))

    err = refused(tmp_path, pulumi, capsys)

    assert f"the AWS credentials expired at {NOW - timedelta(minutes=1):%Y-%m-%d %H:%M} UTC" in err
    assert "aws sso login" in err


@pytest.mark.usefixtures("moto_sts")
def test_credentials_about_to_expire_are_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pulumi: Recorded,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_aws(monkeypatch, tmp_path, expires=NOW + timedelta(minutes=5))

    err = refused(tmp_path, pulumi, capsys)

    assert "expire in 5 min, too soon for a deploy (at least 15 min wanted)" in err


@pytest.mark.usefixtures("moto_sts")
def test_a_missing_region_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pulumi: Recorded,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_aws(monkeypatch, tmp_path, region=None)

    # a stack with no Pulumi.<stack>.yaml, so no sweep:region to fall back on
    err = refused(tmp_path, pulumi, capsys, "--stack", "nowhere")

    assert "no AWS region is set" in err
    assert "export AWS_REGION=" in err


@pytest.mark.usefixtures("moto_sts")
def test_a_missing_pulumi_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    pulumi = Recorded(tmp_path / "never-written.jsonl")

    err = refused(tmp_path, pulumi, capsys)

    assert "the Pulumi CLI is not on PATH" in err
    assert "get.pulumi.com" in err


@pytest.mark.usefixtures("moto_sts")
def test_pulumi_logged_out_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pulumi: Recorded,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("FAKE_PULUMI_FAIL", "whoami")

    err = refused(tmp_path, pulumi, capsys)

    assert "Pulumi is not logged in" in err
    assert "pulumi login" in err


def test_a_session_aws_rejects_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pulumi: Recorded,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_aws(monkeypatch, tmp_path)
    sts = boto3.client("sts", region_name="eu-west-1")
    stubber = Stubber(sts)
    stubber.add_client_error(
        "get_caller_identity",
        service_error_code="ExpiredToken",
        service_message="The security token included in the request is expired",
        http_status_code=403,
    )

    with stubber:
        err = refused(tmp_path, pulumi, capsys, sts=sts)

    assert "AWS refused the session" in err
    assert "ExpiredToken" in err
    assert "aws sso login --profile NAME" in err


@pytest.mark.usefixtures("moto_sts")
def test_an_sso_profile_without_a_sign_in_is_told_to_sign_in(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pulumi: Recorded,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_aws(monkeypatch, tmp_path)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))  # an empty SSO token cache
    (tmp_path / "aws-config").write_text(
        "[profile sandbox]\nsso_session = company\nsso_account_id = 123456789012\n"
        "sso_role_name = SweepDeployer\nregion = eu-west-1\n\n"
        "[sso-session company]\nsso_start_url = https://company.awsapps.com/start\n"
        "sso_region = eu-west-1\nsso_registration_scopes = sso:account:access\n"
    )

    err = refused(tmp_path, pulumi, capsys, "--profile", "sandbox")

    assert "aws sso login --profile sandbox" in err
    assert "aws login --profile sandbox" in err


@pytest.mark.usefixtures("moto_sts")
def test_an_unknown_profile_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pulumi: Recorded,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_aws(monkeypatch, tmp_path)

    err = refused(tmp_path, pulumi, capsys, "--profile", "nobody")

    assert "there is no AWS profile 'nobody'" in err
    assert "aws configure sso --profile nobody" in err


# --- failures after the preflight ------------------------------------------------------------


@pytest.mark.usefixtures("moto_sts")
def test_a_failed_build_stops_before_pulumi_changes_anything(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pulumi: Recorded,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_aws(monkeypatch, tmp_path)
    build = FakeBuild(tmp_path / "out", pulumi, error="the deps layer is 121.0 MiB unzipped")

    code, _ = run_deploy(tmp_path, "--yes", build=build)

    assert code == 1
    assert "build failed: the deps layer is 121.0 MiB" in capsys.readouterr().err
    assert pulumi.commands() == [["whoami"], ["<build>"]]


@pytest.mark.usefixtures("moto_sts")
def test_a_stack_that_cannot_be_exported_is_not_deployed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pulumi: Recorded,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("FAKE_PULUMI_FAIL", "export")

    code, _ = run_deploy(tmp_path, "--yes", build=FakeBuild(tmp_path / "out", pulumi))

    err = capsys.readouterr().err
    assert code == 1
    assert "no stack named 'sandbox' found" in err
    assert "pulumi stack init sandbox" in err
    assert not any(c[0] == "up" for c in pulumi.commands())


@pytest.mark.usefixtures("moto_sts")
def test_a_failed_up_points_at_the_saved_state(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pulumi: Recorded,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("FAKE_PULUMI_UP_EXIT", "255")

    code, exports = run_deploy(tmp_path, "--yes", build=FakeBuild(tmp_path / "out", pulumi))

    (before,) = _stack.saved_exports("sandbox", exports)  # and no after-deploy
    assert code == 255
    assert f"python scripts/rollback.py --stack sandbox --from-export {before}" in (
        capsys.readouterr().err
    )


# --- the account's Lambda concurrency ----------------------------------------------------------


@pytest.mark.usefixtures("moto_sts")
def test_an_account_whose_concurrency_cannot_hold_the_worker_is_refused_with_the_fix(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pulumi: Recorded,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_aws(monkeypatch, tmp_path)
    build = FakeBuild(tmp_path / "out", pulumi)
    new_account = FakeLambda(limit=10)

    code, _ = run_deploy(tmp_path, "--yes", build=build, lambda_client=new_account)

    err = capsys.readouterr().err
    assert code == 2
    assert build.targets == []
    assert [c[:1] for c in pulumi.commands()] == [["whoami"]]  # nothing built or changed
    assert "the account allows 10 concurrent Lambda executions" in err
    assert "reserved concurrency of 100 plus the 100 Lambda keeps unreserved" in err
    assert "lower sweep:workerReservedConcurrency to 0 or less" in err
    assert "Service Quotas" in err


@pytest.mark.parametrize(
    ("account", "allowed"),
    [
        (FakeLambda(limit=1000), True),
        (FakeLambda(limit=200), True),  # exactly 100 reserved + 100 unreserved
        (FakeLambda(limit=199), False),
        (FakeLambda(limit=1000, unreserved=150), False),  # other functions reserve 850
        (FakeLambda(limit=1000, unreserved=150, worker=100), True),  # a redeploy: ours
    ],
)
def test_the_concurrency_check_counts_what_others_reserve_and_what_the_worker_has(
    account: FakeLambda, allowed: bool
) -> None:
    problem = concurrency_problem(account, 100, "sweep-sandbox-worker")

    assert (problem is None) is allowed
    assert account.asked == ["sweep-sandbox-worker"]
