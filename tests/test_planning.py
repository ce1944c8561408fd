"""Shard planning: exact coverage, balance and determinism, for any sizes."""

from __future__ import annotations

import itertools
import json
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sweep_core.contract import SCHEMA_VERSION, Sharding
from sweep_core.convert import dumps
from sweep_core.planning import ShardRange, largest_task_bytes, plan_shards
from sweep_core.validation import parse_request

points = st.integers(min_value=1, max_value=10**12)


def _covers_exactly(bounds: np.ndarray, n: int) -> None:
    assert bounds[0] == 0
    assert bounds[-1] == n
    assert (np.diff(bounds) > 0).all(), "every shard holds at least one point, none overlap"


@given(n=points, count=st.integers(min_value=1, max_value=20_000))
def test_shard_count_covers_once_and_balances(n: int, count: int) -> None:
    count = min(count, n)
    plan = plan_shards(n, Sharding(shard_count=count))
    assert plan.shard_count == count
    _covers_exactly(plan.bounds, n)
    sizes = np.diff(plan.bounds)
    assert sizes.max() - sizes.min() <= 1


@given(n=points, size=st.integers(min_value=1, max_value=10**9))
def test_shard_size_gives_equal_shards_but_the_last(n: int, size: int) -> None:
    if -(-n // size) > 50_000:
        size = -(-n // 50_000)
    plan = plan_shards(n, Sharding(shard_size=size))
    _covers_exactly(plan.bounds, n)
    sizes = np.diff(plan.bounds)
    assert (sizes[:-1] == size).all()
    assert 1 <= sizes[-1] <= size


@given(n=st.integers(min_value=1, max_value=10**6), count=st.integers(1, 500))
def test_shards_iterate_as_contiguous_ranges(n: int, count: int) -> None:
    count = min(count, n)
    plan = plan_shards(n, Sharding(shard_count=count))
    ranges = list(plan)
    assert [r.shard for r in ranges] == list(range(count))
    assert ranges[0].start == 0
    assert ranges[-1].end == n
    assert all(a.end == b.start for a, b in itertools.pairwise(ranges))
    assert plan[count - 1] == ranges[-1]


@given(n=points, count=st.integers(1, 10_000))
def test_identical_input_gives_a_byte_identical_plan(n: int, count: int) -> None:
    count = min(count, n)
    a = plan_shards(n, Sharding(shard_count=count))
    b = plan_shards(n, Sharding(shard_count=count))
    assert a.to_bytes() == b.to_bytes()
    assert a == b


def test_a_billion_points_into_ten_thousand_shards() -> None:
    plan = plan_shards(10**9, Sharding(shard_count=10_000))
    assert (plan.point_count, plan.shard_count) == (10**9, 10_000)
    assert set(np.diff(plan.bounds).tolist()) == {100_000}


def test_more_shards_than_points_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        plan_shards(5, Sharding(shard_count=6))


@pytest.mark.parametrize("points", [0, -1])
def test_a_plan_of_no_points_is_refused(points: int) -> None:
    with pytest.raises(ValueError, match=r"^a plan needs at least one point$"):
        plan_shards(points, Sharding(shard_count=1))


def test_a_plan_encodes_as_its_bounds_in_little_endian_int64() -> None:
    plan = plan_shards(10, Sharding(shard_size=4))
    assert [(r.shard, r.start, r.end) for r in plan] == [(0, 0, 4), (1, 4, 8), (2, 8, 10)]
    assert plan.to_bytes() == struct.pack("<4q", 0, 4, 8, 10)
    assert plan == plan_shards(10, Sharding(shard_size=4))
    assert hash(plan) == hash(plan_shards(10, Sharding(shard_size=4)))
    assert plan != plan_shards(10, Sharding(shard_size=5))
    # Plans are set members and dict keys: distinct plans hash apart (a 64-bit hash of bytes).
    assert hash(plan) != hash(plan_shards(10, Sharding(shard_size=5)))


def test_the_largest_task_size_is_that_of_the_widest_task_a_run_can_send(
    gbm_request: dict[str, Any],
) -> None:
    """The parent refuses a request whose tasks would not fit an asynchronous invoke, and `plan`
    reports the size: it is the compact JSON of a task with a 32-hex run id, an ISO date, a
    10-digit shard number and 16-digit point indices, around the request itself."""
    request = parse_request(gbm_request)
    widest = {
        "run_id": "f" * 32,
        "run_date": "2026-12-31",
        "shard": 9_999_999_999,
        "start": 10**15,
        "end": 10**15,
        "spec": json.loads(dumps(request)),
        "schema_version": SCHEMA_VERSION,
    }
    expected = len(json.dumps(widest, separators=(",", ":")))
    assert largest_task_bytes(request) == expected
    # Every task carries the whole request: a longer label grows the estimate byte for byte.
    gbm_request["label"] += "x" * 100
    assert largest_task_bytes(parse_request(gbm_request)) == expected + 100


def test_a_sharding_with_neither_a_count_nor_a_size_is_an_error_naming_both() -> None:
    with pytest.raises(ValueError, match=r"^sharding needs shard_count or shard_size$"):
        plan_shards(10, Sharding())


def test_a_shard_outside_the_plan_is_an_index_error_naming_the_range() -> None:
    plan = plan_shards(10, Sharding(shard_count=3))
    assert plan[2] == ShardRange(2, 7, 10)
    for k in (3, -1):
        with pytest.raises(IndexError, match=rf"^shard {k} not in \[0, 3\)$"):
            plan[k]
