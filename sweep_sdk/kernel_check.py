"""``sweep kernels check``: the conformance check a user runs on a kernel before a big sweep.

It samples points of the declared space (the defaults, the bounds and values between them),
evaluates each point alone, then all of them in one batch, in smaller batches taken in reverse
order, and in one batch again, and fails on the first point whose numbers differ between any
two of those: a kernel whose results depend on the batching (a global or per-batch random
generator, the position of a point rather than its index) would make a sweep's results depend
on its shard layout. Dtypes, shapes and finiteness are checked by ``evaluate`` on every batch.

A ``KernelError`` other than the ones that mean a broken kernel (``KERNEL_ERROR``,
``KERNEL_CONTRACT_VIOLATION``, ``NON_FINITE_RESULT``) marks a point the model refuses: it is
reported and left out of the batches.
"""

from __future__ import annotations

import math
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from attrs import define, field
from numpy.typing import NDArray

from sweep_core.kernels import Kernel, KernelError, ParamSpec, evaluate

BROKEN_CODES = frozenset({"KERNEL_ERROR", "KERNEL_CONTRACT_VIOLATION", "NON_FINITE_RESULT"})
"""Codes that say the kernel, not the point, is at fault: the check fails on them."""
CHECK_SEED = 20_260_101
LAMBDA_SHARD_SECONDS = 10.0
FIRST_INDEX = 1_000
"""Sample points get the indices FIRST_INDEX, FIRST_INDEX + INDEX_STEP, ...: a kernel that
uses a point's position in its batch instead of its index cannot pass by chance."""
INDEX_STEP = 7

Columns = dict[str, NDArray[Any]]


@define
class CheckReport:
    kernel: str
    version: str
    points: int
    failure: str | None = None
    refused: dict[str, int] = field(factory=dict)
    """Points the kernel refused, by ``KernelError`` code (left out of the batches)."""
    refusal_example: str | None = None
    points_per_second: float | None = None
    peak_memory_bytes: int | None = None

    @property
    def passed(self) -> bool:
        return self.failure is None

    @property
    def lambda_shard_size(self) -> int | None:
        """Points that take about ``LAMBDA_SHARD_SECONDS`` at the measured rate."""
        if not self.points_per_second:
            return None
        return max(1, int(self.points_per_second * LAMBDA_SHARD_SECONDS))

    def as_dict(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel,
            "version": self.version,
            "passed": self.passed,
            "failure": self.failure,
            "points": self.points,
            "refused": self.refused,
            "refusal_example": self.refusal_example,
            "points_per_second": self.points_per_second,
            "peak_memory_bytes": self.peak_memory_bytes,
            "shard_size_for_10_s": self.lambda_shard_size,
        }


def sample_points(kernel: Kernel, n: int, seed: int = CHECK_SEED) -> Columns:
    """``n`` points of the kernel's declared space: point 0 takes every default (or the middle
    of the bounds), the others draw each parameter from its bounds, often at a bound."""
    rng = np.random.default_rng(seed)
    return {p.name: _sample(p, n, rng) for p in kernel.spec.params}


def _sample(param: ParamSpec, n: int, rng: np.random.Generator) -> NDArray[Any]:
    if param.kind == "choice":
        picks = rng.integers(0, len(param.choices), n)
        values: NDArray[Any] = np.array(param.choices)[picks]
        if param.default is not None:
            values[0] = param.default
        return values
    low, high = param.low, param.high
    lo = low if low is not None else _unbounded_side(param, -1)
    hi = high if high is not None else _unbounded_side(param, 1)
    u = rng.random(n)
    wide = lo > 0 and hi / lo >= 1e3
    inner = np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo))) if wide else lo + u * (hi - lo)
    which = rng.random(n)
    values = np.where(which < 0.2, lo, np.where(which < 0.4, hi, inner))
    middle = math.sqrt(lo * hi) if wide else (lo + hi) / 2
    values[0] = param.default if param.default is not None else middle
    if param.kind == "int":
        ints: NDArray[np.int64] = np.clip(np.rint(values), math.ceil(lo), math.floor(hi)).astype(
            np.int64
        )
        return ints
    return values.astype(np.float64)


def _unbounded_side(param: ParamSpec, sign: int) -> float:
    centre = float(param.default) if isinstance(param.default, int | float) else 0.0
    bound = param.low if sign > 0 else param.high
    if bound is not None:
        centre = float(bound)
    return centre + sign * max(1.0, abs(centre))


def check_kernel(kernel: Kernel, points: int = 64, seed: int = CHECK_SEED) -> CheckReport:
    """Run the conformance check (see the module docstring) on ``points`` sample points."""
    spec = kernel.spec
    report = CheckReport(spec.name, spec.version, points)
    if points < 2:
        report.failure = "the check needs at least 2 points"
        return report
    params = sample_points(kernel, points)
    index = FIRST_INDEX + INDEX_STEP * np.arange(points, dtype=np.int64)

    alone: list[Columns | None] = []
    for j in range(points):
        one = slice(j, j + 1)
        try:
            alone.append(evaluate(kernel, _take(params, one), index[one], seed))
        except KernelError as exc:
            if exc.code in BROKEN_CODES:
                report.failure = f"point {int(index[j])} evaluated alone: {exc}"
                return report
            report.refused[exc.code] = report.refused.get(exc.code, 0) + 1
            report.refusal_example = report.refusal_example or str(exc)
            alone.append(None)
    kept = np.array([j for j, result in enumerate(alone) if result is not None], dtype=np.intp)
    if len(kept) < 2:
        report.failure = (
            f"the kernel refused {points - len(kept)} of {points} sample points "
            f"({report.refusal_example}); nothing left to compare"
        )
        return report
    params, index = _take(params, kept), index[kept]
    reference = _concat([result for result in alone if result is not None])

    layouts: list[tuple[str, list[slice]]] = [
        ("in one batch", [slice(0, len(index))]),
        ("in batches of 1 to 5 points, last batch first", list(reversed(_uneven(len(index))))),
        ("in one batch again", [slice(0, len(index))]),
    ]
    for what, batches in layouts:
        t0 = time.perf_counter()
        try:
            parts = {b.start: evaluate(kernel, _take(params, b), index[b], seed) for b in batches}
        except KernelError as exc:
            report.failure = f"{what}: {exc} (each of these points passed alone)"
            return report
        seconds = time.perf_counter() - t0
        if what == "in one batch":
            report.points_per_second = round(len(index) / seconds, 1) if seconds > 0 else None
        got = _concat([parts[start] for start in sorted(parts)])
        difference = _first_difference(reference, got, index)
        if difference is not None:
            report.failure = (
                f"{difference} evaluated alone and {what}: the results depend on the batching. "
                "A point must draw its randomness only from PointStreams(seed).at(index[j]) and "
                "depend on nothing but its own parameters"
            )
            return report

    tracemalloc.start()
    try:
        evaluate(kernel, params, index, seed)
        report.peak_memory_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return report


def _uneven(n: int) -> list[slice]:
    """Consecutive batches of 1, 2, 3, 4, 5, 1, 2, ... points covering ``[0, n)``."""
    out, start, size = [], 0, 1
    while start < n:
        out.append(slice(start, min(n, start + size)))
        start += size
        size = size % 5 + 1
    return out


def _take(params: Columns, rows: slice | NDArray[np.intp]) -> Columns:
    return {name: values[rows] for name, values in params.items()}


def _concat(parts: Sequence[Columns]) -> Columns:
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _first_difference(expected: Columns, got: Columns, index: NDArray[np.int64]) -> str | None:
    for name, want in expected.items():
        have = got[name]
        same = _bitwise_equal(want, have)
        if not same.all():
            j = int(np.argmin(same))
            return f"point {int(index[j])}: {name} is {want[j]!r} and {have[j]!r}"
    return None


def _bitwise_equal(a: NDArray[Any], b: NDArray[Any]) -> NDArray[np.bool_]:
    if a.dtype.kind == "f" and b.dtype.kind == "f":
        return np.asarray(a.view(np.int64) == b.view(np.int64))
    return np.asarray(a == b)


def describe(report: CheckReport) -> Iterator[str]:
    """The report as lines of text."""
    yield f"kernel {report.kernel} version {report.version}: {report.points} sample points"
    if report.refused:
        counts = ", ".join(f"{n} {code}" for code, n in sorted(report.refused.items()))
        yield f"  refused by the kernel (left out): {counts}; e.g. {report.refusal_example}"
    if report.failure is not None:
        yield f"  FAILED: {report.failure}"
        return
    yield "  passed: identical alone and in any batching; declared dtypes and shapes; finite"
    if report.points_per_second is not None:
        yield f"  {report.points_per_second:,.1f} points/s on this machine (one batch)"
    if report.peak_memory_bytes is not None:
        yield f"  peak memory of one batch: {report.peak_memory_bytes / 2**20:,.1f} MiB"
    if report.lambda_shard_size is not None:
        yield (
            f"  a ~{LAMBDA_SHARD_SECONDS:.0f} s shard holds about {report.lambda_shard_size:,} "
            'points at this rate: "sharding": {"shard_size": '
            f"{report.lambda_shard_size}}}"
        )
