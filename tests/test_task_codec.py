"""The local pool's task lines: the spec encoded and decoded once per run, nothing else changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runtime.local.pool import TaskCodec
from sweep_core.contract import ShardTask
from sweep_core.convert import ContractError, dumps, loads, structure
from sweep_core.validation import parse_request

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RUN_ID = "20260101T000000Z-0000000a"


def _spec(reverse_axes: bool = False) -> Any:
    raw = json.loads((EXAMPLES / "gbm_grid.json").read_text())
    if reverse_axes:
        raw["axes"] = dict(reversed(list(raw["axes"].items())))
    return parse_request(raw)


def _task(spec: Any, shard: int) -> ShardTask:
    return ShardTask(RUN_ID, "2026-01-01", shard, shard * 200, shard * 200 + 200, spec)


def test_a_line_is_exactly_what_dumps_writes() -> None:
    codec = TaskCodec()
    for spec in (_spec(), _spec(reverse_axes=True)):
        for shard in range(3):
            task = _task(spec, shard)
            assert codec.encode(task) == (dumps(task) + "\n").encode()


def test_decoding_reuses_the_spec_but_never_confuses_axis_order() -> None:
    encoder, decoder = TaskCodec(), TaskCodec()
    plain, reversed_ = _spec(), _spec(reverse_axes=True)
    for spec in (plain, plain, reversed_, reversed_, plain):
        task = _task(spec, 7)
        decoded = decoder.decode(encoder.encode(task))
        assert decoded == task
        # attrs equality compares the axes dict without its order; the grid does not
        assert list(decoded.spec.axes) == list(spec.axes)
    first = decoder.decode(encoder.encode(_task(plain, 1)))
    second = decoder.decode(encoder.encode(_task(plain, 2)))
    assert first.spec is second.spec  # decoded once


@pytest.mark.parametrize(
    "change",
    [
        {"shard": "3"},
        {"shard": 2.5},
        {"schema_version": "9.0"},
        {"run_id": None},
        {"end": None},
    ],
)
def test_an_odd_line_after_a_good_one_is_decoded_as_the_contract_decodes_it(
    change: dict[str, Any],
) -> None:
    codec = TaskCodec()
    good = codec.encode(_task(_spec(), 0))
    codec.decode(good)
    odd = json.loads(good)
    odd.update(change)
    line = json.dumps(odd)
    try:
        expected: Any = structure(loads(line), ShardTask)
    except ContractError as exc:
        expected = type(exc)
    try:
        got: Any = codec.decode(line)
    except ContractError as exc:
        got = type(exc)
    assert got == expected
