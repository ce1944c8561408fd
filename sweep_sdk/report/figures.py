"""The report's PNG figures, drawn with matplotlib's ``Figure`` (the Agg canvas, never pyplot).
matplotlib is imported inside the drawing functions: only ``sweep report`` loads it."""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from attrs import frozen
from numpy.typing import NDArray

from sweep_sdk.report.data import AxisInfo, ReportError, RunData, format_value

DPI = 100
SINGLE = (9.0, 6.0)
"""Inches of a one-panel figure: 900 x 600 pixels at ``DPI``."""
MULTI = (12.0, 8.0)
"""Inches of a figure of several panels: 1200 x 800 pixels."""
MAX_PANELS = 12
MAX_DRAWN = 50_000
"""Points drawn at most in one scatter (an even subsample beyond)."""
MAX_CELL_MAP = 250_000
"""Largest two-axis grid whose failures are drawn as a map of cells rather than a scatter."""

SUCCESS_COLOUR = "#2ca02c"
FAILURE_COLOUR = "#d62728"
NO_RESULT_COLOUR = "#c8c8c8"
CODE_COLOURS = ("#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
CODE_MARKERS = ("X", "s", "^", "D", "v", "P", "*")


@frozen
class FigureFile:
    """One PNG of a report and what the HTML page says about it."""

    name: str
    path: Path
    title: str
    caption: str
    width: int
    height: int


def _new_figure(size: tuple[float, float] = SINGLE) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ReportError(
            "sweep report needs matplotlib: pip install 'sweep[report]' (or matplotlib)"
        ) from None
    return Figure(figsize=size, dpi=DPI, layout="constrained")


def _save(fig: Any, out: Path, name: str, title: str, caption: str) -> FigureFile:
    path = out / f"{name}.png"
    fig.savefig(path, dpi=DPI, facecolor="white")
    width, height = (round(x * DPI) for x in fig.get_size_inches())
    return FigureFile(name, path, title, caption, width, height)


def _tick(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return f"{float(value):.3g}"
    return str(value)


def _thin(count: int, most: int) -> NDArray[np.int64]:
    """At most ``most`` evenly spread positions of ``count``, first and last included."""
    return np.unique(np.linspace(0, count - 1, min(count, most)).round().astype(np.int64))


def _even_subsample(count: int, most: int) -> NDArray[np.int64]:
    if count <= most:
        return np.arange(count, dtype=np.int64)
    return np.linspace(0, count - 1, most).round().astype(np.int64)


def _edges(values: NDArray[np.float64], log: bool) -> NDArray[np.float64]:
    """Cell edges around sorted distinct centres: half way between neighbours."""
    v = np.log(values) if log else values
    if v.size == 1:
        half = 0.1 if log else (0.5 * abs(v[0]) or 0.5)
        edges = np.array([v[0] - half, v[0] + half])
    else:
        mids = (v[1:] + v[:-1]) / 2
        edges = np.concatenate([[2 * v[0] - mids[0]], mids, [2 * v[-1] - mids[-1]]])
    result: NDArray[np.float64] = np.exp(edges) if log else edges
    return result


class _Cells:
    """How one grid axis lies along a heatmap side: cell order, edges and ticks."""

    def __init__(self, axis: AxisInfo) -> None:
        assert axis.grid is not None
        values = axis.grid
        self.axis = axis
        self.count = len(values)
        if axis.categorical:
            self.order = np.arange(self.count)
            self.edges = np.arange(self.count + 1, dtype=np.float64) - 0.5
            self.centres = np.arange(self.count, dtype=np.float64)
        else:
            self.order = np.argsort(values, kind="stable")
            self.centres = values[self.order].astype(np.float64)
            self.edges = _edges(self.centres, axis.log)
        self.labels = [_tick(v) for v in values[self.order]]

    def dress(self, ax: Any, which: str, label: bool = True) -> None:
        """Scale, ticks and label of side ``which`` (``"x"`` or ``"y"``) of ``ax``."""
        side = _side(ax, which, self.axis.log, float(self.edges[0]), float(self.edges[-1]))
        at_values = self.axis.form in ("values", "range", "geomspace") and self.count <= 12
        if self.axis.categorical or at_values:
            from matplotlib.ticker import NullLocator

            keep = _thin(self.count, 12 if which == "y" else 8)
            side.set_ticks(self.centres[keep], labels=[self.labels[i] for i in keep])
            side.set_minor_locator(NullLocator())
        if label:
            side.set_label_text(self.axis.name)


def _side(ax: Any, which: str, log: bool, low: float, high: float) -> Any:
    """The x or y axis of ``ax``; log-scaled with plain-number ticks when ``log``."""
    side = ax.xaxis if which == "x" else ax.yaxis
    if log and 0 < low < high:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        (ax.set_xscale if which == "x" else ax.set_yscale)("log")
        decades = math.log10(high / low)
        subs: tuple[float, ...] = (1.0, 2.0, 5.0) if decades <= 3 else (1.0,)
        if decades <= 1.2:
            subs = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
        side.set_major_locator(LogLocator(subs=subs, numticks=12))
        side.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        side.set_minor_formatter(NullFormatter())
    return side


def _metric_norm(values: NDArray[np.float64]) -> Any:
    from matplotlib.colors import Normalize

    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if low == high:
        low, high = low - 0.5, high + 0.5
    return Normalize(low, high)


def _cmap(name: str = "viridis") -> Any:
    from matplotlib import colormaps

    return colormaps[name].with_extremes(bad=NO_RESULT_COLOUR)


def _no_result_patch() -> Any:
    from matplotlib.patches import Patch

    return Patch(facecolor=NO_RESULT_COLOUR, edgecolor="#888888", label="no result")


def _grid_cube(data: RunData) -> NDArray[np.float64]:
    """The metric over the full grid, NaN where no point was computed; axes in spec order."""
    shape = tuple(len(a.grid) for a in data.axes if a.grid is not None)
    cube = np.full(shape, np.nan)
    index = data.points["point_index"].astype(np.int64)
    cube[np.unravel_index(index, shape)] = data.points[data.metric].astype(np.float64)
    return cube


def _positions(axis: AxisInfo, values: NDArray[Any]) -> NDArray[np.float64]:
    """Positions along a scatter side: the values, or (jittered) category numbers."""
    if not axis.categorical:
        return values.astype(np.float64)
    lookup = {c: i for i, c in enumerate(axis.categories)}
    positions = np.array([lookup.get(format_value(v), -1) for v in values], dtype=np.float64)
    # spread each category's points across its column, so that their density shows
    jittered: NDArray[np.float64] = positions + np.random.default_rng(0).uniform(
        -0.25, 0.25, len(positions)
    )
    return jittered


def _dress_scatter(ax: Any, which: str, axis: AxisInfo, shown: Sequence[NDArray[Any]]) -> None:
    """Scale, ticks and label of a scatter side showing the positions ``shown``."""
    finite = [v[np.isfinite(v)] for v in shown]
    low = min((float(v.min()) for v in finite if v.size), default=0.0)
    high = max((float(v.max()) for v in finite if v.size), default=0.0)
    side = _side(ax, which, axis.log, low, high)
    if axis.categorical:
        keep = _thin(len(axis.categories), 12)
        side.set_ticks(keep.astype(np.float64), labels=[axis.categories[i] for i in keep])
    side.set_label_text(axis.name)


def _metric_doc(data: RunData) -> str:
    return next(m.doc for m in data.kernel.metrics if m.name == data.metric)


def draw_metric(data: RunData, out: Path) -> FigureFile | None:
    """The metric over the swept axes; ``None`` while no point has been computed."""
    if not len(data.points["point_index"]):
        return None
    if data.is_grid:
        if len(data.axes) == 1:
            return _metric_line(data, out)
        if len(data.axes) == 2:
            return _metric_heatmap(data, out)
        return _metric_panels(data, out)
    return _metric_scatter(data, out)


def _metric_caption(data: RunData, how: str) -> str:
    return f"{data.metric}: {_metric_doc(data)}. {how}"


def _metric_line(data: RunData, out: Path) -> FigureFile:
    axis = data.axes[0]
    cells = _Cells(axis)
    line = _grid_cube(data)[cells.order]
    fig = _new_figure()
    ax = fig.add_subplot()
    marker = "o" if cells.count <= 60 else None
    ax.plot(cells.centres, line, marker=marker, color="#1f77b4", markersize=4)
    missing = ~np.isfinite(line)
    if missing.any():
        # a rug along the bottom edge, whatever the metric's range
        rug = np.full(missing.sum(), 0.02)
        ax.plot(
            cells.centres[missing],
            rug,
            "x",
            color=FAILURE_COLOUR,
            transform=ax.get_xaxis_transform(),
            label="no result (failed or not run yet)",
        )
        ax.legend(loc="best")
    cells.dress(ax, "x")
    ax.set_ylabel(data.metric)
    ax.grid(True, alpha=0.3)
    title = f"{data.metric} over {axis.name}"
    ax.set_title(title)
    caption = _metric_caption(data, "Gaps are points without a result (failed or not yet run).")
    return _save(fig, out, "metric", title, caption)


def _metric_heatmap(data: RunData, out: Path) -> FigureFile:
    x, y = (_Cells(a) for a in data.axes)
    cube = _grid_cube(data)
    values = cube[np.ix_(x.order, y.order)]
    fig = _new_figure()
    ax = fig.add_subplot()
    cmap, norm = _cmap(), _metric_norm(values)
    mesh = ax.pcolormesh(x.edges, y.edges, np.ma.masked_invalid(values.T), cmap=cmap, norm=norm)
    x.dress(ax, "x")
    y.dress(ax, "y")
    fig.colorbar(mesh, ax=ax, label=data.metric)
    if np.isnan(values).any():
        fig.legend(handles=[_no_result_patch()], loc="outside lower right", frameon=False)
    title = f"{data.metric} over {x.axis.name} × {y.axis.name}"
    ax.set_title(title)
    caption = _metric_caption(data, "Grey cells have no result (failed shards or not yet run).")
    return _save(fig, out, "metric", title, caption)


def _panel_grid(count: int) -> tuple[int, int]:
    columns = math.ceil(math.sqrt(count))
    return math.ceil(count / columns), columns


def _metric_panels(data: RunData, out: Path) -> FigureFile:
    """Small multiples: a heatmap of the first two axes per value of the third."""
    x, y, z = (_Cells(a) for a in data.axes[:3])
    cube = _grid_cube(data)
    rest = data.axes[3:]
    if rest:
        cube = _nanmean(cube, tuple(range(3, cube.ndim)))
    shown = _thin(z.count, MAX_PANELS)
    rows, columns = _panel_grid(len(shown))
    fig = _new_figure(MULTI)
    axes = fig.subplots(rows, columns, sharex=True, sharey=True, squeeze=False)
    cmap, norm = _cmap(), _metric_norm(cube)
    mesh = None
    for k, ax in enumerate(axes.flat):
        if k >= len(shown):
            ax.set_visible(False)
            continue
        layer = cube[:, :, z.order[shown[k]]][np.ix_(x.order, y.order)]
        mesh = ax.pcolormesh(x.edges, y.edges, np.ma.masked_invalid(layer.T), cmap=cmap, norm=norm)
        ax.set_title(f"{z.axis.name} = {z.labels[shown[k]]}", fontsize="medium")
        x.dress(ax, "x", label=k // columns == rows - 1 or k + columns >= len(shown))
        y.dress(ax, "y", label=k % columns == 0)
        ax.tick_params(labelbottom=k + columns >= len(shown))
    fig.colorbar(mesh, ax=axes, label=data.metric, shrink=0.9)
    if np.isnan(cube).any():
        fig.legend(handles=[_no_result_patch()], loc="outside lower right", frameon=False)
    title = f"{data.metric} over {x.axis.name} × {y.axis.name}, one panel per {z.axis.name}"
    note = ""
    if len(shown) < z.count:
        note += f" ({len(shown)} of {z.count} values of {z.axis.name} shown)"
    if rest:
        note += f"; mean over {', '.join(a.name for a in rest)}"
    fig.suptitle(title + note)
    caption = _metric_caption(data, "Grey cells have no result (failed shards or not yet run).")
    return _save(fig, out, "metric", title + note, caption)


def _nanmean(cube: NDArray[np.float64], axes: tuple[int, ...]) -> NDArray[np.float64]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices stay NaN
        mean: NDArray[np.float64] = np.nanmean(cube, axis=axes)
    return mean


def _metric_scatter(data: RunData, out: Path) -> FigureFile:
    """Random and Sobol samples: the points themselves, coloured by the metric."""
    method = data.manifest.spec.sampling.method
    metric = data.points[data.metric].astype(np.float64)
    keep = _even_subsample(len(metric), MAX_DRAWN)
    size = float(np.clip(6000 / max(len(keep), 1), 3, 40))
    cmap, norm = _cmap(), _metric_norm(metric)
    drawn = f" ({len(keep):,} of {len(metric):,} points drawn)" if len(keep) < len(metric) else ""
    failed = data.failed
    if len(data.axes) == 1:
        axis = data.axes[0]
        fig = _new_figure()
        ax = fig.add_subplot()
        xs = _positions(axis, data.points[axis.name][keep])
        ax.scatter(xs, metric[keep], s=size, c=metric[keep], cmap=cmap, norm=norm)
        _dress_scatter(ax, "x", axis, [xs])
        ax.set_ylabel(data.metric)
        ax.grid(True, alpha=0.3)
        title = f"{data.metric} over {axis.name}, {method} sample of {len(metric):,} points"
        ax.set_title(title + drawn)
    else:
        pairs = [(i, j) for j in range(min(len(data.axes), 4)) for i in range(j)]
        rows, columns = _panel_grid(len(pairs))
        fig = _new_figure(SINGLE if len(pairs) == 1 else MULTI)
        axes = fig.subplots(rows, columns, squeeze=False)
        points = None
        for k, ax in enumerate(axes.flat):
            if k >= len(pairs):
                ax.set_visible(False)
                continue
            i, j = pairs[k]
            a, b = data.axes[i], data.axes[j]
            xs = _positions(a, data.points[a.name][keep])
            ys = _positions(b, data.points[b.name][keep])
            shown = _even_subsample(len(failed.index), MAX_DRAWN)
            fx = _positions(a, failed.params[a.name][shown])
            fy = _positions(b, failed.params[b.name][shown])
            if len(shown):
                ax.scatter(
                    fx,
                    fy,
                    s=size,
                    marker="x",
                    color=NO_RESULT_COLOUR,
                    label="no result (failed shard)",
                )
                ax.legend(loc="upper right", fontsize="small", framealpha=0.9)
            points = ax.scatter(xs, ys, s=size, c=metric[keep], cmap=cmap, norm=norm)
            _dress_scatter(ax, "x", a, [xs, fx])
            _dress_scatter(ax, "y", b, [ys, fy])
        fig.colorbar(points, ax=axes, label=data.metric, shrink=0.9)
        names = " × ".join(a.name for a in data.axes[:4])
        title = f"{data.metric} over {names}, {method} sample of {len(metric):,} points"
        if len(pairs) == 1:
            axes[0, 0].set_title(title + drawn)
        else:
            fig.suptitle(title + drawn)
    caption = _metric_caption(data, "Each dot is one computed point, coloured by the metric.")
    return _save(fig, out, "metric", title + drawn, caption)


def draw_timeline(data: RunData, out: Path) -> FigureFile | None:
    """One bar per attempt from its start to its end, y = shard, coloured by status."""
    if not data.attempts:
        return None
    origin = min(a.started for a in data.attempts)
    span = max(a.finished for a in data.attempts) - origin
    fig = _new_figure()
    ax = fig.add_subplot()
    for status, colour in (("success", SUCCESS_COLOUR), ("failure", FAILURE_COLOUR)):
        chosen = [a for a in data.attempts if a.status == status]
        if not chosen:
            continue
        starts = np.array([a.started - origin for a in chosen])
        # At least two pixels wide, so that instant failures still show.
        least = 2 * span / (SINGLE[0] * DPI)
        widths = np.array([max(a.finished - a.started, least) for a in chosen])
        ax.barh(
            [a.shard for a in chosen],
            widths,
            left=starts,
            height=0.8,
            color=colour,
            # many shards: an outline keeps bars thinner than a pixel visible
            edgecolor=colour,
            linewidth=0 if data.manifest.shard_count <= 200 else 0.5,
            label=f"{status} ({len(chosen):,} attempts)",
        )
    end = span
    ax.set_xlim(0, end * 1.01 if end > 0 else 1)
    ax.set_ylim(data.manifest.shard_count - 0.5, -0.5)
    ax.yaxis.set_major_locator(_integer_locator())
    ax.set_xlabel("seconds since the first shard started")
    ax.set_ylabel("shard")
    ax.grid(True, axis="x", alpha=0.3)
    fig.legend(loc="outside lower center", ncols=2, frameon=False)
    title = (
        f"Execution timeline: {len(data.attempts):,} attempts on "
        f"{data.manifest.shard_count:,} shards over {end:.3g} s"
    )
    ax.set_title(title)
    caption = (
        "One bar per shard attempt from its start to its end. Gaps show dispatch and queueing; "
        "long bars are slow shards; red bars are failed attempts."
    )
    return _save(fig, out, "timeline", title, caption)


def _integer_locator() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(nbins=12, integer=True)


def draw_durations(data: RunData, out: Path) -> FigureFile | None:
    """Histogram of attempt durations, stacked by status."""
    if not data.attempts:
        return None
    durations = np.array([a.duration_ms for a in data.attempts])
    seconds = durations.max() >= 2000
    scale, unit = (1000.0, "s") if seconds else (1.0, "ms")
    groups, colours, labels = [], [], []
    for status, colour in (("success", SUCCESS_COLOUR), ("failure", FAILURE_COLOUR)):
        chosen = np.array([a.duration_ms for a in data.attempts if a.status == status]) / scale
        if chosen.size:
            groups.append(chosen)
            colours.append(colour)
            labels.append(f"{status} ({chosen.size:,})")
    fig = _new_figure()
    ax = fig.add_subplot()
    count = int(np.clip(math.sqrt(len(durations)) * 2, 10, 60))
    low, high = float(durations.min()) / scale, float(durations.max()) / scale
    # cold starts and stragglers can be 100 times the typical shard: bins on a log scale then
    log = low > 0 and high / float(np.median(durations / scale)) > 10
    bins: Any = np.geomspace(low, high, count + 1) if log else count
    ax.hist(
        groups,
        bins=bins,
        stacked=True,
        color=colours,
        label=labels,
        edgecolor="white",
        linewidth=0.3,
    )
    median, p95 = np.percentile(durations / scale, [50, 95])
    ax.axvline(
        median, color="#333333", linestyle="--", linewidth=1, label=f"median {median:.3g} {unit}"
    )
    ax.axvline(p95, color="#333333", linestyle=":", linewidth=1, label=f"p95 {p95:.3g} {unit}")
    ax.yaxis.set_major_locator(_integer_locator())
    _side(ax, "x", log, low, high)
    ax.set_xlabel(f"attempt duration ({unit}{', log scale' if log else ''})")
    ax.set_ylabel("attempts")
    ax.legend(loc="upper right", framealpha=0.9)
    ax.grid(True, axis="y", alpha=0.3)
    title = f"Shard durations: {len(durations):,} attempts"
    ax.set_title(title)
    caption = "Wall time of each attempt as its worker measured it."
    return _save(fig, out, "durations", title, caption)


def draw_failures(data: RunData, out: Path) -> FigureFile | None:
    """Where the failed shards' points lie, marked by error code; ``None`` without failures."""
    failed = data.failed
    if not failed.total:
        return None
    codes = sorted(set(failed.codes.tolist()))
    shards = data.failed_shards
    shard_counts = Counter(a.error_code or "UNKNOWN" for a in shards.values())
    point_counts = Counter(failed.codes.tolist())
    scale = failed.total / len(failed.index)

    def label(code: str) -> str:
        points = round(point_counts[code] * scale)
        return f"{code} ({points:,} points, {shard_counts[code]:,} shards)"

    grid_map = data.is_grid and len(data.axes) == 2 and data.manifest.point_count <= MAX_CELL_MAP
    fig = _new_figure()
    ax = fig.add_subplot()
    if grid_map:
        _failure_cells(ax, data, codes, label)
    elif len(data.axes) == 1:
        _failure_strip(ax, data, codes, label)
    else:
        _failure_scatter(ax, data, codes, label)
    title = (
        f"Where shards failed: {failed.total:,} points in {len(shards):,} failed "
        f"shard{'s' if len(shards) != 1 else ''}"
    )
    if len(data.axes) > 2:
        title += f" (over {data.axes[0].name} × {data.axes[1].name})"
    ax.set_title(title)
    caption = (
        "Failed shards have no points of their own: their points' parameters are decoded from "
        "the shard's index range. A shard fails as a whole, so the marked region is every point "
        "of a failed shard, not only the one that broke it."
    )
    return _save(fig, out, "failures", title, caption)


def _failure_cells(ax: Any, data: RunData, codes: list[str], label: Any) -> None:
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    x, y = (_Cells(a) for a in data.axes)
    shape = (x.count, y.count)
    category = np.full(shape, np.nan)
    computed = data.points["point_index"].astype(np.int64)
    category[np.unravel_index(computed, shape)] = 0
    for k, code in enumerate(codes, start=1):
        index = data.failed.index[data.failed.codes == code]
        category[np.unravel_index(index, shape)] = k
    colours = [NO_RESULT_COLOUR, *(CODE_COLOURS[k % len(CODE_COLOURS)] for k in range(len(codes)))]
    cmap = ListedColormap(colours).with_extremes(bad="white")
    norm = BoundaryNorm(np.arange(len(colours) + 1) - 0.5, len(colours))
    values = category[np.ix_(x.order, y.order)]
    lines = max(x.count, y.count) <= 20
    ax.pcolormesh(
        x.edges,
        y.edges,
        np.ma.masked_invalid(values.T),
        cmap=cmap,
        norm=norm,
        edgecolors="white",
        linewidth=0.5 if lines else 0,
    )
    x.dress(ax, "x")
    y.dress(ax, "y")
    handles = [Patch(facecolor=NO_RESULT_COLOUR, label=f"computed ({len(computed):,} points)")]
    handles += [Patch(facecolor=colours[k], label=label(c)) for k, c in enumerate(codes, 1)]
    if np.isnan(values).any():
        handles.append(Patch(facecolor="white", edgecolor="#888888", label="not run yet"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")


def _failure_scatter(ax: Any, data: RunData, codes: list[str], label: Any) -> None:
    a, b = data.axes[0], data.axes[1]
    ok = _even_subsample(len(data.points["point_index"]), MAX_DRAWN)
    xs = _positions(a, data.points[a.name][ok])
    ys = _positions(b, data.points[b.name][ok])
    computed = len(data.points["point_index"])
    if computed:
        label_ok = f"computed ({computed:,} points)"
        ax.scatter(xs, ys, s=6, color=NO_RESULT_COLOUR, label=label_ok)
    all_x, all_y = [xs], [ys]
    for k, code in enumerate(codes):
        chosen = np.flatnonzero(data.failed.codes == code)
        chosen = chosen[_even_subsample(len(chosen), MAX_DRAWN)]
        fx = _positions(a, data.failed.params[a.name][chosen])
        fy = _positions(b, data.failed.params[b.name][chosen])
        all_x.append(fx)
        all_y.append(fy)
        ax.scatter(
            fx,
            fy,
            s=22,
            marker=CODE_MARKERS[k % len(CODE_MARKERS)],
            color=CODE_COLOURS[k % len(CODE_COLOURS)],
            label=label(code),
        )
    _dress_scatter(ax, "x", a, all_x)
    _dress_scatter(ax, "y", b, all_y)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")


def _failure_strip(ax: Any, data: RunData, codes: list[str], label: Any) -> None:
    """One axis: a row per outcome (computed, then each error code) over the axis."""
    axis = data.axes[0]
    ok = _even_subsample(len(data.points["point_index"]), MAX_DRAWN)
    xs = _positions(axis, data.points[axis.name][ok])
    ax.scatter(xs, np.zeros(len(xs)), s=40, color="#888888", marker="|")
    shown = [xs]
    for k, code in enumerate(codes, start=1):
        chosen = np.flatnonzero(data.failed.codes == code)
        chosen = chosen[_even_subsample(len(chosen), MAX_DRAWN)]
        fx = _positions(axis, data.failed.params[axis.name][chosen])
        shown.append(fx)
        ax.scatter(
            fx,
            np.full(len(fx), k),
            s=22,
            marker=CODE_MARKERS[(k - 1) % len(CODE_MARKERS)],
            color=CODE_COLOURS[(k - 1) % len(CODE_COLOURS)],
        )
    ax.set_yticks(range(len(codes) + 1), labels=["computed", *(label(c) for c in codes)])
    ax.set_ylim(-0.6, len(codes) + 0.6)
    _dress_scatter(ax, "x", axis, shown)
    ax.grid(True, axis="x", alpha=0.3)
