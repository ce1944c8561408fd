"""The sweeps the benchmarks run, and the pure computation every comparison is measured against.

``run_shard_pure`` is what each competitor (our workers, a bare process pool, Lithops) must do
for one shard, with nothing else: decode the shard's points and evaluate the kernel on them.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def gbm_spec(shards: int, points_per_shard: int, paths: int, seed: int = 1) -> dict[str, Any]:
    """A CPU-bound GBM grid of exactly ``shards`` shards of ``points_per_shard`` points."""
    return {
        "schema_version": "1.0",
        "kernel": "gbm_european_option",
        "params": {"s0": 100.0, "rate": 0.02, "maturity": 1.0, "paths": paths, "option": "call"},
        "axes": {
            "sigma": {"linspace": {"start": 0.1, "stop": 0.6, "num": shards}},
            "strike": {"linspace": {"start": 80.0, "stop": 120.0, "num": points_per_shard}},
        },
        "sampling": {"method": "grid"},
        "sharding": {"shard_size": points_per_shard},
        "seed": seed,
    }


def write_spec(spec: dict[str, Any], folder: Path, name: str = "spec.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(spec))
    return path


def shard_ranges(raw: dict[str, Any]) -> list[tuple[int, int]]:
    from sweep_core.planning import plan_shards
    from sweep_core.space import point_count
    from sweep_core.validation import parse_request

    spec = parse_request(raw)
    plan = plan_shards(point_count(spec), spec.sharding)
    return [(r.start, r.end) for r in plan]


_SPACE: dict[str, Any] = {}


def run_shard_pure(raw: dict[str, Any], start: int, end: int) -> int:
    """Decode and evaluate points ``[start, end)``; no storage. Returns the number of points."""
    from sweep_core.kernels import KERNELS, evaluate
    from sweep_core.space import PointSpace
    from sweep_core.validation import parse_request

    key = json.dumps(raw, sort_keys=True)
    if key not in _SPACE:
        spec = parse_request(raw)
        kernel = KERNELS[spec.kernel]
        _SPACE.clear()
        _SPACE[key] = (spec, kernel, PointSpace(spec, kernel.spec))
    spec, kernel, space = _SPACE[key]
    index = np.arange(start, end, dtype=np.int64)
    evaluate(kernel, space.decode(index), index, spec.seed)
    return end - start


def pure_kernel_seconds(raw: dict[str, Any]) -> float:
    """Sum over the sweep's shards of their pure computation time, one after another."""
    ranges = shard_ranges(raw)
    run_shard_pure(raw, *ranges[0])  # warm: imports and the point space, not the kernel
    total = 0.0
    for start, end in ranges:
        t0 = time.perf_counter()
        run_shard_pure(raw, start, end)
        total += time.perf_counter() - t0
    return total


def main() -> None:
    """``python -m benchmarks.workloads SPEC``: print the pure kernel seconds of a sweep."""
    raw = json.loads(Path(sys.argv[1]).read_text())
    print(pure_kernel_seconds(raw))


if __name__ == "__main__":
    main()
