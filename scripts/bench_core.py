"""Benchmarks of the pure core: planning, kernel throughput against a plain numpy loop, validation.

Run: ``make bench`` (or ``python scripts/bench_core.py``). Each figure is the best of several
repeats; the kernel is compared with its baseline in the same run, side by side, because these
machines are noisy. Prints a table; asserts nothing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from runtime.kernels import KERNELS, evaluate
from sweep_sdk.contract import Sharding
from sweep_sdk.planning import plan_shards
from sweep_sdk.space import PointSpace
from sweep_sdk.validation import parse_request

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gbm_grid.json"


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def plain_numpy_gbm(seed: int, points: int, paths: int) -> None:
    """The baseline: one Philox stream per point, one normal per path, textbook numpy."""
    s0, strike, rate, sigma, t = 100.0, 100.0, 0.02, 0.2, 1.0
    for i in range(points):
        gen = np.random.Generator(np.random.Philox(key=np.array([seed, i], dtype=np.uint64)))
        z = gen.standard_normal(paths)
        st = s0 * np.exp((rate - 0.5 * sigma**2) * t + sigma * np.sqrt(t) * z)
        payoff = np.exp(-rate * t) * np.maximum(st - strike, 0.0)
        _ = payoff.mean(), payoff.std(ddof=1) / np.sqrt(paths)


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    rows: list[tuple[str, str, str]] = []

    plan_s = best_of(20, lambda: plan_shards(10**9, Sharding(shard_count=10_000)))
    rows.append(("plan 10^9 points into 10,000 shards", f"{plan_s * 1e3:.2f} ms", "< 50 ms"))

    points, paths = 200, 20_000
    kernel = KERNELS["gbm_european_option"]
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
    ours = best_of(5, lambda: evaluate(kernel, params, index, 42))
    base = best_of(5, lambda: plain_numpy_gbm(42, points, paths))
    ours_rate, base_rate = points * paths / ours, points * paths / base
    rows.append(
        ("gbm_european_option, 20,000 paths/point", f"{ours_rate / 1e6:.1f} M paths/s", "≥ 29 M")
    )
    rows.append(("  plain numpy loop, same run", f"{base_rate / 1e6:.1f} M paths/s", "(baseline)"))
    rows.append(("  ratio ours / baseline", f"{ours_rate / base_rate:.2f}", "≥ 0.8"))

    raw = json.loads(EXAMPLE.read_text())
    parse_request(raw)
    per_request = best_of(5, lambda: [parse_request(raw) for _ in range(1000)]) / 1000
    rows.append(("validate a typical request", f"{per_request * 1e3:.3f} ms", "< 1 ms"))

    spec = parse_request(raw)
    space = PointSpace(spec, kernel.spec)
    decode = best_of(5, lambda: space.decode(np.arange(space.size)))
    rows.append((f"decode {space.size} grid points", f"{decode * 1e3:.2f} ms", "-"))

    width = max(len(r[0]) for r in rows)
    print(f"{'benchmark':<{width}}  {'measured':>18}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>18}  {target}")


if __name__ == "__main__":
    main()
