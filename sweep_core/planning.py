"""Shard planning: cut ``[0, N)`` into contiguous half-open ranges, in O(shards)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from attrs import field, frozen
from numpy.typing import NDArray

from sweep_core.contract import Sharding, ShardTask, SweepRequest


@frozen
class ShardRange:
    shard: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


@frozen(eq=False)
class ShardPlan:
    """Shard ``k`` covers points ``[bounds[k], bounds[k + 1])``."""

    point_count: int
    bounds: NDArray[np.int64] = field(repr=False)

    @property
    def shard_count(self) -> int:
        return len(self.bounds) - 1

    def __len__(self) -> int:
        return self.shard_count

    def __getitem__(self, k: int) -> ShardRange:
        if not 0 <= k < self.shard_count:
            raise IndexError(f"shard {k} not in [0, {self.shard_count})")
        return ShardRange(k, int(self.bounds[k]), int(self.bounds[k + 1]))

    def __iter__(self) -> Iterator[ShardRange]:
        starts, ends = self.bounds[:-1].tolist(), self.bounds[1:].tolist()
        for k, (start, end) in enumerate(zip(starts, ends, strict=True)):
            yield ShardRange(k, start, end)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ShardPlan):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def to_bytes(self) -> bytes:
        """A canonical encoding: equal plans, equal bytes."""
        return self.bounds.astype("<i8").tobytes()


def shard_count_for(point_count: int, sharding: Sharding) -> int:
    """How many shards ``sharding`` makes of ``point_count`` points."""
    if sharding.shard_count is not None:
        return sharding.shard_count
    if sharding.shard_size is None:
        raise ValueError("sharding needs shard_count or shard_size")
    return -(-point_count // sharding.shard_size)


def plan_shards(point_count: int, sharding: Sharding) -> ShardPlan:
    """Contiguous shards covering ``[0, point_count)`` exactly once.

    With ``shard_count`` the sizes differ by at most one (the larger ones first); with
    ``shard_size`` every shard but the last has exactly that size.
    """
    if point_count < 1:
        raise ValueError("a plan needs at least one point")
    count = shard_count_for(point_count, sharding)
    if count > point_count:
        raise ValueError(f"{count} shards cannot split {point_count} points: shards would be empty")
    if sharding.shard_count is not None:
        base, extra = divmod(point_count, count)
        sizes = np.full(count, base, dtype=np.int64)
        sizes[:extra] += 1
        bounds = np.zeros(count + 1, dtype=np.int64)
        np.cumsum(sizes, out=bounds[1:])
    else:
        assert sharding.shard_size is not None
        bounds = np.minimum(np.arange(count + 1, dtype=np.int64) * sharding.shard_size, point_count)
    return ShardPlan(point_count, bounds)


def largest_task_bytes(request: SweepRequest) -> int:
    """The size of the request's largest shard task as sent to a worker (JSON bytes): every
    task carries the whole request, so this bounds what an asynchronous invoke must take."""
    from sweep_core.convert import dumps

    largest = ShardTask("0" * 32, "2026-01-01", 10**9, 10**15, 10**15, request)
    return len(dumps(largest).encode())
