"""Input an attacker or an unlucky user sends: every one is refused with a clear error naming
what is wrong (exit code 2, HTTP 4xx, ``ContractError``), never a traceback, a 500 or a hang."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import tiny_request

from runtime.adapters.local_store import LocalStore
from sweep_core.convert import ContractError
from sweep_core.layout import Layout
from sweep_core.runs import CommitError
from sweep_core.validation import MAX_REQUEST_BYTES, parse_request, shape_problem
from sweep_sdk import submit
from sweep_sdk.cli import main as cli_main
from sweep_sdk.embedded import EmbeddedTarget
from sweep_sdk.gateway import Gateway
from sweep_sdk.sigv4 import StaticCredentials, sign_request

DEEP = "[" * 10_000 + "]" * 10_000


def tiny(token: str | None = None) -> dict[str, Any]:
    return tiny_request(token, paths=16)


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.fixture
def gateway(tmp_path: Path) -> Gateway:
    return Gateway(EmbeddedTarget(tmp_path / "data", workers=1))


def post(gateway: Gateway, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return gateway.handle("POST", "/runs", headers or {"content-type": "application/json"}, body)


# --- nesting and size ----------------------------------------------------------------------


def test_json_nested_ten_thousand_deep_is_refused_everywhere(
    tmp_path: Path, gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ContractError, match="nested too deeply"):
        parse_request(DEEP)
    spec = tmp_path / "deep.json"
    spec.write_text(DEEP)
    assert cli_main(["plan", str(spec)]) == 2
    assert "nested too deeply" in one_error_line(capsys)
    response = post(gateway, DEEP.encode())
    assert response.status == 400
    assert "nested too deeply" in json.dumps(response.body)
    nested: Any = []
    for _ in range(10_000):  # a dict an SDK user built, never text
        nested = [nested]
    with pytest.raises(ContractError, match="nested more than"):
        parse_request({**tiny(), "label": nested})


def test_a_huge_spec_is_refused_by_its_size_before_it_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "huge.json"
    with spec.open("wb") as out:  # 52 MB, sparse: refused by its size, so never read
        out.truncate(52 * 1024 * 1024)
    assert cli_main(["run", str(spec), "--data-dir", str(tmp_path / "data")]) == 2
    assert "a sweep request is at most" in one_error_line(capsys)
    assert not (tmp_path / "data").exists()  # no runner started, nothing written
    with pytest.raises(ContractError, match="a request is at most") as caught:
        submit(spec, data_dir=tmp_path / "data")
    assert caught.value.code == "REQUEST_TOO_LARGE"
    with pytest.raises(ContractError, match="a request is at most"):
        parse_request(" " * (MAX_REQUEST_BYTES + 1))


def test_a_request_of_too_many_values_is_refused_before_any_work_per_value() -> None:
    raw = tiny()
    raw["axes"]["strike"] = {"values": [[1.0]] * 600_000}  # 1.2 million values
    problem = shape_problem(raw)
    assert problem is not None
    assert "more than 1,000,000 values" in problem.message
    with pytest.raises(ContractError) as caught:
        parse_request(raw)
    assert caught.value.code == "REQUEST_TOO_LARGE"


def test_a_body_of_many_wrong_values_gets_a_bounded_answer(gateway: Gateway) -> None:
    raw = tiny()
    raw["axes"]["strike"] = {"values": ["x"] * 90_000}  # ~500 KB, every value wrong
    response = post(gateway, json.dumps(raw).encode())
    assert response.status == 400
    problems = response.body["error"]["problems"]
    assert 1 < len(problems) <= 51
    assert {"path": "$", "message": "more problems after the first 50"} in problems


# --- integers ------------------------------------------------------------------------------


def test_integers_past_two_to_the_63_are_refused_and_do_not_burn_the_client_token(
    gateway: Gateway,
) -> None:
    bad = tiny("retry-me")
    bad["sharding"] = {"shard_size": 2**63}
    bad["seed"] = 2**64
    response = post(gateway, json.dumps(bad).encode())
    assert response.status == 400
    paths = {p["path"] for p in response.body["error"]["problems"]}
    assert {"$.sharding.shard_size", "$.seed"} <= paths
    with pytest.raises(ContractError, match="must be <="):
        parse_request(bad)
    response = post(gateway, json.dumps(tiny("retry-me")).encode())  # the corrected request
    assert response.status == 202, response.body
    assert gateway.target.join(60)


def test_an_integer_parameter_value_past_the_safe_range_is_refused() -> None:
    raw = tiny()
    raw["params"]["paths"] = 2**70
    with pytest.raises(ContractError) as caught:
        parse_request(raw)
    assert [p.path for p in caught.value.problems] == ["$.params.paths"]


# --- files and text ------------------------------------------------------------------------


def test_an_unreadable_spec_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    latin = tmp_path / "latin1.json"
    latin.write_bytes('{"label": "café"}'.encode("latin-1"))
    for path, reason in ((latin, "not UTF-8"), (tmp_path, "is a directory")):
        assert cli_main(["plan", str(path)]) == 2
        err = one_error_line(capsys)
        assert reason in err
        assert str(path) in err
        with pytest.raises(ContractError, match=reason.replace("is a ", "")):
            submit(path, data_dir=tmp_path / "data")


@pytest.mark.parametrize("text", ["[1]", "", "   ", "not json", "42", '"a string"'])
def test_submit_raises_contract_error_for_any_bad_text(tmp_path: Path, text: str) -> None:
    with pytest.raises(ContractError):
        submit(text, data_dir=tmp_path / "data")
    assert not any((tmp_path / "data").rglob("manifest.json"))


@pytest.mark.parametrize("workers", ["0", "-1", "two"])
def test_workers_below_one_are_refused_and_leave_no_runner(
    tmp_path: Path, workers: str, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(tiny()))
    data = tmp_path / "data"
    with pytest.raises(SystemExit) as exited:
        cli_main(["run", str(spec), "--workers", workers, "--data-dir", str(data)])
    assert exited.value.code == 2
    assert "--workers" in capsys.readouterr().err
    assert not data.exists()
    if workers != "two":
        with pytest.raises(ValueError, match="at least 1"):
            submit(tiny(), data_dir=data, workers=int(workers))
        assert not data.exists()


# --- signatures ----------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["Signature", "X-Amz-Content-SHA256"])
def test_non_ascii_signature_headers_are_a_403_not_a_500(tmp_path: Path, header: str) -> None:
    key = StaticCredentials("AKIDLOCAL", "local-secret")
    gateway = Gateway(
        EmbeddedTarget(tmp_path / "data", workers=1), {key.access_key: key.secret_key}, "eu-west-1"
    )
    body = json.dumps(tiny()).encode()
    headers = sign_request(
        "POST", "http://127.0.0.1:8080/runs", body, key, "eu-west-1", "execute-api",
        headers={"Content-Type": "application/json", "Host": "127.0.0.1:8080"},
    )  # fmt: skip
    lowered = {k.lower(): v for k, v in headers.items()}
    if header == "Signature":
        lowered["authorization"] = lowered["authorization"].rsplit("=", 1)[0] + "=é" * 64
    else:
        lowered["x-amz-content-sha256"] = "é" * 64
    response = gateway.handle("POST", "/runs", lowered, body)
    assert response.status == 403, response.body


# --- records and folders -------------------------------------------------------------------


def test_a_corrupt_manifest_is_reported_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    run = submit(tiny(), data_dir=data, workers=1)
    run.wait(timeout=60, progress=False)
    key = Layout().manifest_key(run.run_id)
    path = LocalStore(data).path(key)
    path.write_text(path.read_text()[:40])
    assert cli_main(["status", run.run_id, "--data-dir", str(data)]) == 2
    err = one_error_line(capsys)
    assert key in err
    assert "corrupt" in err
    assert "invalid sweep request" not in err
    from sweep_sdk import open_run

    with pytest.raises(CommitError, match="corrupt"):
        open_run(run.run_id, data_dir=data)

    from runtime.handlers.api import handle_request
    from sweep_sdk.embedded import EmbeddedTarget

    target = EmbeddedTarget.from_env(data)
    event = {"httpMethod": "GET", "resource": "/runs/{run_id}", "path": f"/runs/{run.run_id}",
             "pathParameters": {"run_id": run.run_id}}  # fmt: skip
    answer = handle_request(event, target.parent_deps)
    assert answer["statusCode"] == 500
    error = json.loads(answer["body"])["error"]
    assert error["code"] == "DAMAGED_RUN_RECORD"
    assert key in error["message"]


def _read_only(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A data folder nobody may write to. Root writes through file modes, so as root the
    writes themselves are made to fail as the kernel would fail them."""
    if os.geteuid() != 0:
        for folder, _dirs, _ in os.walk(data):
            os.chmod(folder, 0o555)
        return

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied", str(data))

    monkeypatch.setattr(LocalStore, "put_if_absent", refuse)
    monkeypatch.setattr(LocalStore, "delete", refuse)
    monkeypatch.setattr("runtime.local.runner.os.makedirs", refuse)


def test_a_read_only_data_folder_is_a_clear_error_for_run_and_compact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    run = submit(tiny(), data_dir=data, workers=1)
    run.wait(timeout=60, progress=False)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(tiny()))
    _read_only(data, monkeypatch)
    try:
        assert cli_main(["run", str(spec), "--data-dir", str(data)]) == 2
        assert "permission denied" in one_error_line(capsys)
        assert cli_main(["compact", run.run_id, "--data-dir", str(data)]) == 2
        assert "permission denied" in one_error_line(capsys)
    finally:
        for folder, _, _ in os.walk(data):
            os.chmod(folder, 0o755)
