"""The fast stream construction draws exactly what the defining one draws, bit for bit.

``PointStreams.at(i)`` resets one reused Philox instead of building ``point_stream(seed, i)``
anew, and the GBM kernel now prices a block of points at a time. These tests hold both to the
old construction: the reference kernels below are the kernels as they were before (one new
``point_stream`` per point, one point at a time), kept here verbatim in their arithmetic.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from sweep_core.kernels import Arrays, evaluate
from sweep_core.rng import PointStreams, point_stream, sampling_uniforms
from sweep_kernels import gbm, sir

SEED = 20240611


def _bits(values: NDArray[np.generic]) -> bytes:
    return np.ascontiguousarray(values).tobytes()


@pytest.mark.parametrize("seed", [0, 1, SEED, 2**63 + 7, 2**64 - 1])
def test_a_reset_stream_draws_what_a_new_one_draws(seed: int) -> None:
    streams = PointStreams(seed)
    indices = [0, 1, 2, 77, 2**32 + 5, 2**63, 2**64 - 2]
    for i in indices:
        # Leave the shared generator mid-buffer and holding a cached 32-bit half, so the reset
        # has to clear both.
        dirty = streams.at(indices[(indices.index(i) + 1) % len(indices)])
        dirty.integers(0, 2**31, size=3, dtype=np.uint32)
        dirty.random(5)
        fresh = point_stream(seed, i)
        reused = streams.at(i)
        assert _bits(reused.standard_normal(1001)) == _bits(fresh.standard_normal(1001))
        assert _bits(reused.integers(0, 2**31, size=7, dtype=np.uint32)) == _bits(
            fresh.integers(0, 2**31, size=7, dtype=np.uint32)
        )
        assert reused.binomial(1000, 0.3) == fresh.binomial(1000, 0.3)
        assert _bits(reused.random(9)) == _bits(fresh.random(9))


def _plain(state: Any) -> dict[str, Any]:
    return {
        k: _plain(v) if isinstance(v, dict) else np.asarray(v).tolist() for k, v in state.items()
    }


@pytest.mark.parametrize("seed", [0, SEED, 2**64 - 1])
def test_a_reset_leaves_exactly_the_state_a_new_philox_starts_in(seed: int) -> None:
    # counter 0, an empty output buffer of zeros, no cached 32-bit half: the whole state
    streams = PointStreams(seed)
    for i in [3, 0, 2**64 - 2]:
        streams.at(i + 1).random(3)  # leave it mid-buffer first
        reused = streams.at(i).bit_generator.state
        fresh = np.random.Philox(key=np.array([seed, i], dtype=np.uint64)).state
        assert _plain(reused) == _plain(fresh)


def test_an_index_outside_64_bits_is_refused() -> None:
    streams = PointStreams(1)
    with pytest.raises(ValueError, match="64-bit"):
        streams.at(-1)
    with pytest.raises(ValueError, match="64-bit"):
        streams.at(2**64)


# --- the kernels as they were ----------------------------------------------------------------


def _reference_gbm(params: Arrays, index: NDArray[np.int64], seed: int) -> dict[str, list[float]]:
    s0 = params["s0"].astype(np.float64)
    strike = params["strike"].astype(np.float64)
    rate = params["rate"].astype(np.float64)
    sigma = params["sigma"].astype(np.float64)
    maturity = params["maturity"].astype(np.float64)
    drift = ((rate - 0.5 * sigma * sigma) * maturity).tolist()
    vol = (sigma * np.sqrt(maturity)).tolist()
    moneyness = (strike / s0).tolist()
    scale = (s0 * np.exp(-rate * maturity)).tolist()
    calls = (params["option"] == "call").tolist()
    counts = params["paths"].astype(np.int64).tolist()
    price, stderr = [], []
    for j, point in enumerate(index.tolist()):
        n = counts[j]
        x = np.empty(n)
        point_stream(seed, point).standard_normal(out=x)
        np.multiply(x, vol[j], out=x)
        np.add(x, drift[j], out=x)
        np.exp(x, out=x)
        if calls[j]:
            np.subtract(x, moneyness[j], out=x)
        else:
            np.subtract(moneyness[j], x, out=x)
        np.maximum(x, 0.0, out=x)
        mean = float(np.add.reduce(x)) / n
        np.subtract(x, mean, out=x)
        np.square(x, out=x)
        sum_sq = float(np.add.reduce(x))
        price.append(scale[j] * mean)
        stderr.append(scale[j] * math.sqrt(sum_sq / (n - 1) / n))
    return {"price": price, "stderr": stderr}


def _reference_sir(params: Arrays, index: NDArray[np.int64], seed: int) -> dict[str, list[float]]:
    recover = (-np.expm1(-params["gamma"].astype(np.float64))).tolist()
    beta = (params["r0"].astype(np.float64) * np.asarray(recover)).tolist()
    sizes = params["population"].astype(np.int64).tolist()
    starts = params["initial_infected"].astype(np.int64).tolist()
    horizons = params["days"].astype(np.int64).tolist()
    attack, peak_frac, peak_day = [], [], []
    for j, point in enumerate(index.tolist()):
        binomial = point_stream(seed, point).binomial
        n, q, pressure = sizes[j], recover[j], beta[j] / sizes[j]
        infected = starts[j]
        susceptible = n - infected
        peak, peak_at, day = infected, 0, 0
        while infected and day < horizons[j]:
            day += 1
            new_inf = binomial(susceptible, -math.expm1(-pressure * infected))
            new_rec = binomial(infected, q)
            susceptible -= new_inf
            infected += new_inf - new_rec
            if infected > peak:
                peak, peak_at = infected, day
        assert infected == 0
        attack.append((n - susceptible) / n)
        peak_frac.append(peak / n)
        peak_day.append(peak_at)
    return {"attack_rate": attack, "peak_infected_fraction": peak_frac, "peak_day": peak_day}


def _gbm_batch(paths: list[int], options: list[str]) -> Arrays:
    rng = np.random.default_rng(3)
    n = len(paths)
    return {
        "s0": rng.uniform(50, 150, n),
        "strike": rng.uniform(50, 150, n),
        "rate": rng.uniform(-0.05, 0.1, n),
        "sigma": np.concatenate([[1e-6, 1e-4], rng.uniform(0.01, 1.5, n - 2)]),
        "maturity": rng.uniform(0.05, 5.0, n),
        "paths": np.array(paths, dtype=np.int64),
        "option": np.array(options),
    }


@pytest.mark.parametrize(
    ("paths", "points"),
    [
        # a block of many rows; rows of odd lengths; blocks of one row; rows longer than any
        # internal buffer numpy's reductions might use
        (64, 700),
        (2, 40),
        (1_000, 150),
        (1_237, 60),
        (20_000, 9),
        (40_000, 4),
    ],
)
def test_gbm_is_bit_identical_to_one_new_stream_per_point(paths: int, points: int) -> None:
    options = ["call" if j % 3 else "put" for j in range(points)]
    params = _gbm_batch([paths] * points, options)
    index = np.arange(10**6, 10**6 + points, dtype=np.int64) * 7919
    new = gbm.compute(params, index, SEED)
    old = _reference_gbm(params, index, SEED)
    for name in ("price", "stderr"):
        assert _bits(new[name]) == _bits(np.array(old[name], dtype=np.float64)), name


def test_gbm_with_mixed_path_counts_is_bit_identical_to_the_old_kernel() -> None:
    paths = [64, 1_000, 64, 5, 20_000, 1_000, 3, 64, 33_000, 2] * 6
    options = ["call", "put", "put", "call", "call", "call", "put", "call", "put", "call"] * 6
    params = _gbm_batch(paths, options)
    index = np.arange(len(paths), dtype=np.int64)[::-1] + 12
    new = evaluate(gbm.KERNEL, params, index, SEED)
    old = _reference_gbm(params, index, SEED)
    for name in ("price", "stderr"):
        assert _bits(new[name]) == _bits(np.array(old[name], dtype=np.float64)), name


def test_sir_is_bit_identical_to_one_new_stream_per_point() -> None:
    n = 40
    rng = np.random.default_rng(5)
    params: Arrays = {
        # repeated populations make Generator.binomial reuse its cached set-up across points
        "population": np.array([200, 5_000, 200, 100_000] * (n // 4), dtype=np.int64),
        "r0": rng.uniform(0.5, 5.0, n),
        "gamma": rng.uniform(0.1, 1.0, n),
        "initial_infected": np.array([1, 3, 10, 2] * (n // 4), dtype=np.int64),
        "days": np.full(n, 3_650, dtype=np.int64),
    }
    index = np.arange(n, dtype=np.int64) * 31 + 4
    new = sir.compute(params, index, SEED)
    old = _reference_sir(params, index, SEED)
    assert _bits(new["attack_rate"]) == _bits(np.array(old["attack_rate"]))
    assert _bits(new["peak_infected_fraction"]) == _bits(np.array(old["peak_infected_fraction"]))
    assert _bits(new["peak_day"]) == _bits(np.array(old["peak_day"], dtype=np.int64))


def test_an_empty_point_range_draws_nothing_and_a_reversed_one_is_refused() -> None:
    assert sampling_uniforms(7, 5, 5, 3).shape == (0, 3)
    assert sampling_uniforms(7, 0, 2, 3).shape == (2, 3)
    with pytest.raises(ValueError, match=r"^empty or reversed range \[5, 4\)$"):
        sampling_uniforms(7, 5, 4, 3)
