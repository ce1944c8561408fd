"""Figures 5-6 and the pure core: planning, kernel throughput against a plain numpy loop,
validation. Pinned to one core (a worker's share); interleaved, best of several repeats."""

from __future__ import annotations

import json
import os
import time

import numpy as np

from benchmarks.common import ROOT, Figure, best_of_interleaved, say, show, timed
from sweep_core.contract import Sharding
from sweep_core.kernels import KERNELS, evaluate
from sweep_core.planning import plan_shards
from sweep_core.space import PointSpace
from sweep_core.validation import parse_request

EXAMPLE = ROOT / "examples" / "gbm_grid.json"


def plain_numpy_gbm(seed: int, points: int, paths: int) -> None:
    """The baseline: one Philox stream per point, one normal per path, textbook numpy."""
    s0, strike, rate, sigma, t = 100.0, 100.0, 0.02, 0.2, 1.0
    for i in range(points):
        gen = np.random.Generator(np.random.Philox(key=np.array([seed, i], dtype=np.uint64)))
        z = gen.standard_normal(paths)
        st = s0 * np.exp((rate - 0.5 * sigma**2) * t + sigma * np.sqrt(t) * z)
        payoff = np.exp(-rate * t) * np.maximum(st - strike, 0.0)
        _ = payoff.mean(), payoff.std(ddof=1) / np.sqrt(paths)


def gbm_batch(points: int, paths: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    index = np.arange(points, dtype=np.int64)
    params = {
        "s0": np.full(points, 100.0),
        "strike": np.full(points, 100.0),
        "rate": np.full(points, 0.02),
        "sigma": np.full(points, 0.2),
        "maturity": np.full(points, 1.0),
        "paths": np.full(points, paths, dtype=np.int64),
        "option": np.full(points, "call"),
    }
    return params, index


def run(rounds: int) -> list[Figure]:
    affinity = None
    if hasattr(os, "sched_setaffinity"):
        affinity = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(affinity)})  # one core: what one worker has
    try:
        return _run(rounds)
    finally:
        if affinity is not None:
            os.sched_setaffinity(0, affinity)


def _run(rounds: int) -> list[Figure]:
    say("core (one core)")
    figures = []
    sharding = Sharding(shard_count=10_000)
    plan_shards(10**9, sharding)
    best = best_of_interleaved(20, {"plan": timed(lambda: plan_shards(10**9, sharding))})
    figures.append(show(Figure(
        "5", "plan 10^9 points into 10,000 shards", f"{best['plan'] * 1e3:.3f} ms", "< 50 ms",
        best["plan"] < 0.050,
    )))  # fmt: skip

    kernel = KERNELS["gbm_european_option"]
    for points, paths in ((100, 20_000), (2_000, 1_000)):
        params, index = gbm_batch(points, paths)
        best = best_of_interleaved(max(rounds, 3), {
            "ours": timed(lambda p=params, i=index: evaluate(kernel, p, i, 42)),  # type: ignore[misc]
            "plain": timed(lambda n=points, m=paths: plain_numpy_gbm(42, n, m)),  # type: ignore[misc]
        })  # fmt: skip
        ours, plain = points * paths / best["ours"], points * paths / best["plain"]
        figures.append(show(Figure(
            "6", f"GBM kernel vs plain numpy loop, {paths:,} paths/point",
            f"{ours / plain:.2f}× ({ours / 1e6:.1f} vs {plain / 1e6:.1f} M paths/s; "
            f"{best['ours'] / points * 1e6:.0f} vs {best['plain'] / points * 1e6:.0f} µs/point)",
            "≥ 0.8×", ours / plain >= 0.8,
        )))  # fmt: skip

    raw = json.loads(EXAMPLE.read_text())
    parse_request(raw)
    best = best_of_interleaved(
        5, {"validate": timed(lambda: [parse_request(raw) for _ in range(200)])}
    )
    figures.append(show(Figure(
        "-", "validate a typical request", f"{best['validate'] / 200 * 1e3:.3f} ms", "< 1 ms",
        best["validate"] / 200 < 1e-3,
    )))  # fmt: skip
    spec = parse_request(raw)
    space = PointSpace(spec, kernel.spec)
    t0 = time.perf_counter()
    space.decode(np.arange(space.size))
    say(f"  decode {space.size:,} grid points: {(time.perf_counter() - t0) * 1e3:.2f} ms")
    return figures
