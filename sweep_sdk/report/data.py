"""What a report shows, read once from a run through the ``Run`` API (local or remote alike)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from attrs import frozen
from numpy.typing import NDArray

from sweep_core.contract import Axis, RunManifest
from sweep_core.kernel_spec import KernelSpec
from sweep_core.kernels import KERNELS
from sweep_core.runs import RunStatus
from sweep_core.space import PointSpace, grid_values
from sweep_sdk.client import Run

MAX_DECODED = 200_000
"""Failed points whose parameters are decoded at most (an even subsample beyond)."""


class ReportError(ValueError):
    """The report cannot be drawn as asked (an unknown metric, matplotlib missing)."""


@frozen
class Attempt:
    """One outcome row: one attempt at one shard. Times are seconds since the epoch (UTC)."""

    shard: int
    attempt: int
    status: str
    point_start: int
    point_end: int
    point_count: int
    started: float
    finished: float
    duration_ms: float
    error_code: str | None
    error_message: str | None


@frozen
class AxisInfo:
    """One swept parameter as the figures need it."""

    name: str
    form: str
    categorical: bool
    log: bool
    grid: NDArray[Any] | None
    """Every grid value in grid order (grid sampling only)."""
    categories: tuple[str, ...] = ()
    """A categorical axis's values in the order given, once each."""


@frozen
class FailedPoints:
    """Points of shards that ended in failure (no success), possibly an even subsample."""

    index: NDArray[np.int64]
    codes: NDArray[Any]
    params: dict[str, NDArray[Any]]
    total: int
    """Points of failed shards in all (``index`` may hold fewer)."""


@frozen
class RunData:
    """Everything a report shows, read once through the ``Run`` API."""

    manifest: RunManifest
    status: RunStatus
    kernel: KernelSpec
    metric: str
    axes: tuple[AxisInfo, ...]
    points: dict[str, NDArray[Any]]
    """``point_index``, every swept parameter and the metric of every computed point."""
    attempts: tuple[Attempt, ...]
    failed_shards: dict[int, Attempt]
    """The last attempt of every failed shard, by shard (see ``last_failures``)."""
    failed: FailedPoints

    @property
    def is_grid(self) -> bool:
        return self.manifest.spec.sampling.method == "grid"


def last_failures(status: RunStatus, attempts: Sequence[Attempt]) -> dict[int, Attempt]:
    """The last attempt of every shard ``status`` counts as failed, by shard: the status tally's
    meaning (``sweep_core.runs.failed_shards``), so a redriven shard whose new attempt is still
    awaited is not a failure here either."""
    last: dict[int, Attempt] = {}
    for a in attempts:
        if a.shard not in status.failed_shards or a.status == "success":
            continue
        if a.shard not in last or a.attempt > last[a.shard].attempt:
            last[a.shard] = a
    return dict(sorted(last.items()))


# --- reading the run ----------------------------------------------------------------------


def collect(run: Run, metric: str | None = None) -> RunData:
    """Read what a report needs from ``run``; ``metric`` defaults to the kernel's first."""
    manifest = run.manifest
    kernel = KERNELS[manifest.spec.kernel].spec
    names = [m.name for m in kernel.metrics]
    chosen = metric or names[0]
    if chosen not in names:
        raise ReportError(
            f"{chosen!r} is not a metric of {kernel.name}; choose one of {', '.join(names)}"
        )
    status = run.status()
    axes = tuple(_axis_info(manifest, kernel, n, a) for n, a in manifest.spec.axes.items())
    table = run.results()
    wanted = ["point_index", *(a.name for a in axes), chosen]
    points = {c: table.column(c).to_numpy(zero_copy_only=False) for c in wanted}
    attempts = tuple(_attempt(row) for row in run.outcomes().to_pylist())
    failures = last_failures(status, attempts)
    failed = _failed_points(manifest, kernel, axes, failures)
    return RunData(manifest, status, kernel, chosen, axes, points, attempts, failures, failed)


def _axis_info(manifest: RunManifest, kernel: KernelSpec, name: str, axis: Axis) -> AxisInfo:
    param = kernel.param(name)
    if param is None:
        raise ReportError(f"{name!r} is not a parameter of {kernel.name}")
    grid = grid_values(axis, param) if manifest.spec.sampling.method == "grid" else None
    categorical = param.kind == "choice"
    if grid is not None and not categorical and len(np.unique(grid)) != len(grid):
        categorical = True  # repeated values: keep them apart, in the order given
    log = axis.geomspace is not None or axis.loguniform is not None
    if log and grid is not None:
        log = bool(np.all(grid.astype(np.float64) > 0))
    categories: tuple[str, ...] = ()
    if categorical:
        given = axis.values if axis.values is not None else grid
        categories = tuple(
            dict.fromkeys(format_value(v) for v in (given if given is not None else ()))
        )
    return AxisInfo(name, axis.form, categorical, log, grid, categories)


def _attempt(row: dict[str, Any]) -> Attempt:
    return Attempt(
        shard=int(row["shard"]),
        attempt=int(row["attempt"]),
        status=str(row["status"]),
        point_start=int(row["point_start"]),
        point_end=int(row["point_end"]),
        point_count=int(row["point_count"]),
        started=_epoch(row["started_at"]),
        finished=_epoch(row["finished_at"]),
        duration_ms=float(row["duration_ms"]),
        error_code=row.get("error_code"),
        error_message=row.get("error_message"),
    )


def _epoch(value: Any) -> float:
    """Seconds since the epoch of a timestamp; naive ones (Athena's) are UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace(" UTC", "").replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        raise TypeError(f"not a timestamp: {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return float(value.timestamp())


def _empty_failed(axes: Sequence[AxisInfo]) -> FailedPoints:
    empty = np.zeros(0, dtype=np.int64)
    return FailedPoints(empty, np.zeros(0, dtype=object), {a.name: empty for a in axes}, 0)


def _failed_points(
    manifest: RunManifest,
    kernel: KernelSpec,
    axes: Sequence[AxisInfo],
    failures: dict[int, Attempt],
) -> FailedPoints:
    """Decode the parameters of the failed shards' points (they have no rows of their own)."""
    shards = list(failures.values())
    total = sum(a.point_end - a.point_start for a in shards)
    if not total:
        return _empty_failed(axes)
    stride = max(1, math.ceil(total / MAX_DECODED))
    parts = [np.arange(a.point_start, a.point_end, stride, dtype=np.int64) for a in shards]
    index = np.concatenate(parts)
    codes = np.concatenate(
        [
            np.full(len(p), a.error_code or "UNKNOWN", dtype=object)
            for p, a in zip(parts, shards, strict=True)
        ]
    )
    decoded = PointSpace(manifest.spec, kernel).decode(index)
    params = {a.name: decoded[a.name] for a in axes}
    return FailedPoints(index, codes, params, total)


# --- the summary --------------------------------------------------------------------------

SUMMARY_ROWS: tuple[tuple[str, str], ...] = (
    ("points", "points in the run"),
    ("shards", "shards"),
    ("succeeded", "shards succeeded"),
    ("failed", "shards failed"),
    ("missing", "shards missing (not run yet, running or redriven)"),
    ("failed_attempts", "failed attempts"),
    ("attempts", "attempts recorded"),
    ("points_computed", "points computed"),
    ("wall_clock_s", "wall clock, first start to last finish (s)"),
    ("shard_time_total_s", "shard time, all attempts (s)"),
    ("shard_time_mean_s", "shard time per attempt, mean (s)"),
    ("shard_time_median_s", "shard time per attempt, median (s)"),
    ("shard_time_max_s", "shard time per attempt, max (s)"),
    ("points_per_s", "points computed per second of wall clock"),
)


def summarize(data: RunData) -> dict[str, int | float]:
    """The summary table's numbers; the shard counts are ``Run.status()``'s."""
    status = data.status
    durations = np.array([a.duration_ms for a in data.attempts], dtype=np.float64) / 1000
    computed = len(data.points["point_index"])
    wall = 0.0
    if data.attempts:
        wall = max(a.finished for a in data.attempts) - min(a.started for a in data.attempts)
    empty = not durations.size
    return {
        "points": status.points_total,
        "shards": status.total,
        "succeeded": status.succeeded,
        "failed": status.failed,
        "missing": status.missing,
        "failed_attempts": status.failed_attempts,
        "attempts": len(data.attempts),
        "points_computed": computed,
        "wall_clock_s": round(wall, 3),
        "shard_time_total_s": round(float(durations.sum()), 3),
        "shard_time_mean_s": 0.0 if empty else round(float(np.mean(durations)), 4),
        "shard_time_median_s": 0.0 if empty else round(float(np.median(durations)), 4),
        "shard_time_max_s": 0.0 if empty else round(float(np.max(durations)), 4),
        "points_per_s": round(computed / wall, 1) if wall > 0 else 0.0,
    }


def format_value(value: Any) -> str:
    """A parameter value as the report writes it (floats to four significant digits)."""
    if isinstance(value, float | np.floating):
        return f"{float(value):.4g}"
    return str(value)
