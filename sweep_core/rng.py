"""Counter-based random streams: a point's numbers depend only on (seed, point index).

Every stream is numpy's Philox keyed by a 128-bit key. Point ``i`` of a run owns the key
``(seed, i)``; random sampling of the point space owns the key ``(seed, 2**64 - 1)``, an index
no run can reach (runs are limited far below 2**64 points). So neither batch boundaries, shard
sizes, worker counts nor placement (local or Lambda) can change a single number.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

SAMPLING_STREAM = np.uint64(2**64 - 1)
_WORDS_PER_COUNTER = 4  # Philox4x64 yields four 64-bit words per counter increment
_TO_UNIT = 2.0**-53


def point_stream(seed: int, index: int) -> np.random.Generator:
    """The generator owned by point ``index`` of a run seeded with ``seed``.

    This is the definition of a point's stream. It builds a new Philox, whose constructor draws
    OS entropy for a seed it then ignores (about 20 µs): kernels use ``PointStreams``, which
    yields the very same numbers from one reused generator.
    """
    return np.random.Generator(np.random.Philox(key=np.array([seed, index], dtype=np.uint64)))


class PointStreams:
    """The streams of every point of a run, from one Philox reset per point (about 1 µs).

    ``at(i)`` puts the shared bit generator in exactly the state a fresh
    ``Philox(key=[seed, i])`` starts in (counter 0, empty output buffer, no cached 32-bit
    half) and returns the one ``Generator`` wrapping it, so it draws exactly what
    ``point_stream(seed, i)`` draws. The generator returned is only valid until the next
    ``at`` call: finish drawing a point's numbers before moving to the next point.
    """

    def __init__(self, seed: int) -> None:
        self._seed = int(np.uint64(seed))  # the same conversion (and range check) as the key
        self._bitgen = np.random.Philox(key=np.array([seed, 0], dtype=np.uint64))
        self._generator = np.random.Generator(self._bitgen)
        # Plain lists, not arrays: the state setter indexes them element by element, and a
        # list hands back ints without making numpy scalars (3 µs -> under 1 µs per reset).
        self._key = [self._seed, 0]
        # (numpy's stubs want arrays here; plain lists are what the setter reads fastest)
        self._state: Any = {
            "bit_generator": "Philox",
            "state": {"counter": [0, 0, 0, 0], "key": self._key},
            "buffer": [0, 0, 0, 0],
            "buffer_pos": _WORDS_PER_COUNTER,  # buffer empty: the next draw runs the counter
            "has_uint32": 0,
            "uinteger": 0,
        }

    def at(self, index: int) -> np.random.Generator:
        """The generator of point ``index``, at the start of its stream."""
        if not 0 <= index < 2**64:
            raise ValueError(f"point index {index} is not a 64-bit unsigned integer")
        self._key[1] = index
        self._bitgen.state = self._state
        return self._generator


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
