"""The wire contract: round trips, unknown keys, schema versions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sweep_core.contract import (
    SCHEMA_VERSION,
    AcceptedRun,
    ErrorBody,
    ErrorResponse,
    Problem,
    RunManifest,
    ShardOutcome,
    ShardTask,
    SweepRequest,
)
from sweep_core.convert import ContractError, dumps, structure, unstructure
from sweep_core.validation import parse_request


def _request(raw: dict[str, Any]) -> SweepRequest:
    return parse_request(raw)


def test_request_round_trips_through_json(gbm_request: dict[str, Any]) -> None:
    request = _request(gbm_request)
    again = structure(json.loads(dumps(request)), SweepRequest)
    assert again == request
    assert json.loads(dumps(request)) == gbm_request


def test_axis_serialises_as_the_single_form_it_holds(gbm_request: dict[str, Any]) -> None:
    request = _request(gbm_request)
    assert unstructure(request.axes["sigma"]) == {
        "linspace": {"start": 0.05, "stop": 0.8, "num": 16}
    }


def test_every_envelope_carries_the_schema_version(gbm_request: dict[str, Any]) -> None:
    spec = _request(gbm_request)
    envelopes = [
        spec,
        ShardTask("r1", "2026-11-23", 3, 192, 256, spec),
        ShardOutcome("r1", 3, 1, "success", 192, 256, 64, "t0", "t1", 12.5, "0.1.0"),
        RunManifest("r1", "2026-11-23", "t0", 80, 2, spec, "0.1.0"),
        AcceptedRun("r1", "2026-11-23", spec.kernel, 80, 2, "runs/x/manifest.json"),
        ErrorResponse(ErrorBody("INVALID_REQUEST", "bad", (Problem("$.seed", "is required"),))),
    ]
    for envelope in envelopes:
        raw = json.loads(dumps(envelope))
        assert raw["schema_version"] == SCHEMA_VERSION
        assert structure(raw, type(envelope)) == envelope


def test_unknown_major_version_is_a_clear_error(gbm_request: dict[str, Any]) -> None:
    gbm_request["schema_version"] = "2.0"
    with pytest.raises(ContractError) as caught:
        parse_request(gbm_request)
    assert caught.value.code == "UNSUPPORTED_SCHEMA_VERSION"
    assert [str(p) for p in caught.value.problems] == [
        "$.schema_version: unsupported schema version '2.0': this build reads 1.x"
    ]


def test_newer_minor_version_is_accepted(gbm_request: dict[str, Any]) -> None:
    gbm_request["schema_version"] = "1.7"
    assert parse_request(gbm_request).schema_version == "1.7"


def test_shard_task_with_unknown_key_is_rejected_with_its_path(
    gbm_request: dict[str, Any],
) -> None:
    task = json.loads(dumps(ShardTask("r1", "2026-11-23", 0, 0, 64, _request(gbm_request))))
    task["spec"]["sharding"]["extra"] = 1
    with pytest.raises(ContractError) as caught:
        structure(task, ShardTask)
    assert any("extra" in str(p) and "spec.sharding" in p.path for p in caught.value.problems)


def test_outcome_from_a_future_major_version_is_refused() -> None:
    raw = {"schema_version": "3.1", "run_id": "r"}
    with pytest.raises(ContractError) as caught:
        structure(raw, ShardOutcome)
    assert caught.value.code == "UNSUPPORTED_SCHEMA_VERSION"
