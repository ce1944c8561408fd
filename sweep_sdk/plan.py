"""``sweep plan``: what a spec would run (axes, shards, task size) and, from a short local
sample of its kernel, what it would cost in time here and on Lambda (an estimate)."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from sweep_core.contract import SweepRequest
from sweep_core.kernels import KERNELS, evaluate
from sweep_core.planning import largest_task_bytes, plan_shards
from sweep_core.space import PointSpace, grid_values
from sweep_core.validation import validate_request

LAMBDA_GB_SECOND_USD = {"x86_64": 0.0000166667, "arm64": 0.0000133334}
"""Public on-demand Lambda prices per GB-second (us-east-1, first pricing tier)."""
LAMBDA_REQUEST_USD = 0.20 / 1_000_000
FULL_VCPU_MB = 1769
"""Lambda gives a function one full vCPU at 1,769 MB, and a proportional share below."""


def plan_summary(raw: Any) -> dict[str, Any]:
    """The validated spec's kernel, axes with their sizes, and every shard.

    Raises
    ------
    ContractError
        The spec is invalid (every problem listed).
    """
    sized = validate_request(raw)
    request, points = sized.request, sized.point_count
    kernel = KERNELS[request.kernel].spec
    params = {p.name: p for p in kernel.params}
    plan = plan_shards(points, request.sharding)
    sizes = plan.bounds[1:] - plan.bounds[:-1]
    grid = request.sampling.method == "grid"
    axes = []
    for name, axis in request.axes.items():
        if grid:
            size: int | None = len(grid_values(axis, params[name]))
        else:
            size = len(axis.values) if axis.values is not None else None
        axes.append({"name": name, "form": axis.form, "size": size})
    return {
        "kernel": request.kernel,
        "sampling": request.sampling.method,
        "seed": request.seed,
        "points": points,
        "shards": plan.shard_count,
        "smallest_shard": int(sizes.min()),
        "largest_shard": int(sizes.max()),
        "task_bytes": largest_task_bytes(request),
        "axes": axes,
        "shard_ranges": [
            {"shard": k, "start": int(lo), "end": int(hi), "points": int(hi - lo)}
            for k, (lo, hi) in enumerate(zip(plan.bounds[:-1], plan.bounds[1:], strict=True))
        ],
        "_request": request,
    }


def estimate_run(
    request: SweepRequest,
    summary: dict[str, Any],
    workers: int | None = None,
    memory_mb: int = FULL_VCPU_MB,
    arch: str = "arm64",
    sample_points: int = 256,
    sample_seconds: float = 2.0,
) -> dict[str, Any]:
    """Time the kernel on up to ``sample_points`` points spread over the run (a warm-up batch
    first), then scale: locally over ``workers`` cores, on Lambda at ``memory_mb``."""
    kernel = KERNELS[request.kernel]
    space = PointSpace(request, kernel.spec)
    n = summary["points"]
    index = np.unique(np.linspace(0, n - 1, min(n, sample_points)).astype(np.int64))
    evaluate(kernel, space.decode(index[:4]), index[:4], request.seed)  # imports, caches
    done, began = 0, time.perf_counter()
    while True:
        evaluate(kernel, space.decode(index), index, request.seed)
        done += len(index)
        elapsed = time.perf_counter() - began
        if elapsed >= sample_seconds / 4 or done >= 4 * len(index):
            break
    rate = done / elapsed
    workers = workers or os.cpu_count() or 1
    share = min(1.0, memory_mb / FULL_VCPU_MB)  # a kernel runs on one core
    shard_seconds = [s["points"] / (rate * share) for s in summary["shard_ranges"]]
    gb_seconds = sum(shard_seconds) * memory_mb / 1024
    requests = summary["shards"]
    cost = gb_seconds * LAMBDA_GB_SECOND_USD[arch] + requests * LAMBDA_REQUEST_USD
    return {
        "sample_points": done,
        "points_per_second": rate,
        "local": {"workers": workers, "seconds": n / (rate * workers)},
        "lambda": {
            "memory_mb": memory_mb,
            "arch": arch,
            "longest_shard_seconds": max(shard_seconds),
            "gb_seconds": gb_seconds,
            "requests": requests,
            "cost_usd": cost,
        },
    }
