"""``sweep report``: PNG figures and one self-contained HTML page about a run.

``data`` reads what the report shows, ``figures`` draws the PNGs, ``page`` writes the HTML.
"""

from __future__ import annotations

from pathlib import Path

from attrs import frozen

from sweep_sdk.client import Run
from sweep_sdk.report.data import ReportError, RunData, collect, summarize
from sweep_sdk.report.figures import (
    FigureFile,
    draw_durations,
    draw_failures,
    draw_metric,
    draw_timeline,
)
from sweep_sdk.report.page import render_html

__all__ = [
    "FigureFile",
    "Report",
    "ReportError",
    "RunData",
    "collect",
    "draw_metric",
    "write_report",
]


@frozen
class Report:
    """What ``write_report`` wrote."""

    run_id: str
    html: Path
    figures: tuple[FigureFile, ...]
    summary: dict[str, int | float]


def write_report(run: Run, out_dir: str | Path, metric: str | None = None) -> Report:
    """Write ``out_dir/*.png`` and ``out_dir/report.html`` about ``run``.

    Parameters
    ----------
    run
        Any run, local or remote, settled or not (an unsettled run is reported as it stands).
    out_dir
        Folder for the files; created when missing, same-named files are replaced.
    metric
        Metric to plot over the axes; the kernel's first metric by default.

    Raises
    ------
    ReportError
        ``metric`` is not one of the kernel's, or matplotlib is not installed.
    """
    data = collect(run, metric)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    drawn = (
        draw_metric(data, out),
        draw_timeline(data, out),
        draw_durations(data, out),
        draw_failures(data, out),
    )
    figures = tuple(f for f in drawn if f is not None)
    summary = summarize(data)
    page = out / "report.html"
    page.write_text(render_html(data, summary, figures), encoding="utf-8")
    return Report(run.run_id, page, figures, summary)
