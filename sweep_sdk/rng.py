"""Counter-based random streams: a point's numbers depend only on (seed, point index).

Every stream is numpy's Philox keyed by a 128-bit key. Point ``i`` of a run owns the key
``(seed, i)``; random sampling of the point space owns the key ``(seed, 2**64 - 1)``, an index
no run can reach (runs are limited far below 2**64 points). So neither batch boundaries, shard
sizes, worker counts nor placement (local or Lambda) can change a single number.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

SAMPLING_STREAM = np.uint64(2**64 - 1)
_WORDS_PER_COUNTER = 4  # Philox4x64 yields four 64-bit words per counter increment
_TO_UNIT = 2.0**-53


def point_stream(seed: int, index: int) -> np.random.Generator:
    """The generator owned by point ``index`` of a run seeded with ``seed``."""
    return np.random.Generator(np.random.Philox(key=np.array([seed, index], dtype=np.uint64)))


def sampling_uniforms(seed: int, start: int, stop: int, dims: int) -> NDArray[np.float64]:
    """Uniforms in [0, 1) of shape ``(stop - start, dims)`` for points ``[start, stop)``.

    Point ``i`` reads counters ``[i * c, (i + 1) * c)`` of the sampling stream, where
    ``c = ceil(dims / 4)``, so any range is produced by jumping straight to its first counter.
    """
    if stop < start:
        raise ValueError(f"empty or reversed range [{start}, {stop})")
    counters = -(-dims // _WORDS_PER_COUNTER)
    bitgen = np.random.Philox(key=np.array([seed, SAMPLING_STREAM], dtype=np.uint64))
    bitgen.advance(start * counters)
    words = counters * _WORDS_PER_COUNTER
    raw = bitgen.random_raw((stop - start) * words).reshape(stop - start, words)[:, :dims]
    return (raw >> np.uint64(11)).astype(np.float64) * _TO_UNIT
