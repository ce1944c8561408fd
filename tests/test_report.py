"""``sweep report``: the figures open, show something, and the page embeds them with numbers
that match ``Run.status()``."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from attrs import define, evolve
from PIL import Image

from runtime.handlers.parent import redrive_run
from sweep_core.contract import RunManifest
from sweep_core.runs import RunStatus
from sweep_sdk import open_run, submit
from sweep_sdk.cli import main
from sweep_sdk.client import Run, Target
from sweep_sdk.embedded import EmbeddedTarget
from sweep_sdk.report import Report, ReportError, collect, draw_metric, write_report

pytest.importorskip("matplotlib")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
STATUS_KEYS = ("points", "shards", "succeeded", "failed", "missing", "failed_attempts")


def example(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return spec


def small_gbm() -> dict[str, Any]:
    spec = example("gbm_grid.json")
    spec["axes"]["sigma"]["linspace"]["num"] = 6
    spec["axes"]["strike"]["linspace"]["num"] = 5
    spec["params"]["paths"] = 500
    spec["sharding"] = {"shard_size": 4}
    return spec


def small_sobol() -> dict[str, Any]:
    spec = example("sir_sobol.json")
    spec["sampling"]["n"] = 64
    return spec


def gbm(axes: dict[str, Any], sampling: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {"s0": 100.0, "rate": 0.02, "maturity": 1.0, "paths": 200,
                              "option": "call", "strike": 100.0, "sigma": 0.2}  # fmt: skip
    return {
        "schema_version": "1.0",
        "kernel": "gbm_european_option",
        "params": {k: v for k, v in params.items() if k not in axes},
        "axes": axes,
        "sampling": sampling,
        "sharding": {"shard_count": 3},
        "seed": 1,
    }


SPECS: dict[str, Callable[[], dict[str, Any]]] = {
    "gbm_grid": small_gbm,
    "mixed_failures": lambda: example("mixed_failures.json"),
    "sir_sobol": small_sobol,
}
SHAPES: dict[str, Callable[[], dict[str, Any]]] = {
    # one grid axis: a line
    "line": lambda: gbm(
        {"sigma": {"linspace": {"start": 0.05, "stop": 0.8, "num": 12}}}, {"method": "grid"}
    ),
    # three grid axes: a heatmap per value of the third
    "small-multiples": lambda: gbm(
        {
            "sigma": {"linspace": {"start": 0.1, "stop": 0.6, "num": 4}},
            "strike": {"values": [90, 110]},
            "maturity": {"geomspace": {"start": 0.25, "stop": 4, "num": 3}},
        },
        {"method": "grid"},
    ),
    # three sampled axes, one of them a choice: a scatter per pair of axes
    "pairs": lambda: gbm(
        {
            "option": {"values": ["call", "put"]},
            "sigma": {"loguniform": {"low": 0.05, "high": 1.0}},
            "strike": {"uniform": {"low": 80, "high": 120}},
        },
        {"method": "random", "n": 40},
    ),
}
FIGURES = {
    "gbm_grid": ["metric", "timeline", "durations"],
    "mixed_failures": ["metric", "timeline", "durations", "failures"],
    "sir_sobol": ["metric", "timeline", "durations"],
}


@define
class Done:
    run: Run
    report: Report
    data_dir: Path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every run of this module, submitted at once (their worker pools start side by side)."""
    data_dir = tmp_path_factory.mktemp("data")
    specs = {**SPECS, **SHAPES}
    submitted = {name: submit(spec(), data_dir=data_dir, workers=1) for name, spec in specs.items()}
    for run in submitted.values():
        run.wait(progress=False)
    return submitted


@pytest.fixture(scope="module")
def done(runs: dict[str, Run], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Done]:
    root = tmp_path_factory.mktemp("report")
    data_dir = Path(runs["gbm_grid"].target.location)
    return {
        name: Done(runs[name], write_report(runs[name], root / name), data_dir) for name in SPECS
    }


class Cells(HTMLParser):
    """``data-key`` -> (``data-value``, shown text) of the summary table's cells."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[str, tuple[str, str]] = {}
        self._open: tuple[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "td" and found.get("data-key"):
            self._open = (found["data-key"] or "", found.get("data-value") or "")

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            key, value = self._open
            self.cells[key] = (value, data.strip())
            self._open = None


def summary_cells(page: str) -> dict[str, tuple[str, str]]:
    table = re.search(r'<table id="summary".*?</table>', page, re.S)
    assert table is not None
    parser = Cells()
    parser.feed(table.group(0))
    return parser.cells


def assert_readable_png(path: Path, size: tuple[int, int]) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == size
        pixels = np.asarray(image.convert("RGB"), dtype=np.int64)
    grey = pixels.mean(axis=2)
    assert grey.var() > 300, f"{path.name} is nearly blank"
    # data is drawn in colour (colour maps, status colours); frames and text are not
    coloured = (pixels.max(axis=2) - pixels.min(axis=2)) > 40
    assert coloured.mean() > 0.002, f"{path.name} shows no data"


@pytest.mark.parametrize("name", list(SPECS))
def test_figures_open_at_their_size_and_are_not_blank(done: dict[str, Done], name: str) -> None:
    report = done[name].report
    assert [f.name for f in report.figures] == FIGURES[name]
    for figure in report.figures:
        assert (figure.width, figure.height) == (900, 600)
        assert_readable_png(figure.path, (900, 600))
    pngs = sorted(report.html.parent.glob("*.png"))
    assert pngs == sorted(f.path for f in report.figures)


@pytest.mark.parametrize("name", list(SPECS))
def test_page_embeds_every_figure(done: dict[str, Done], name: str) -> None:
    report = done[name].report
    page = report.html.read_text()
    embedded = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(embedded) == len(list(report.html.parent.glob("*.png")))
    assert {base64.b64decode(e) for e in embedded} == {f.path.read_bytes() for f in report.figures}
    for outside in ("<script", "http://", "https://"):
        assert outside not in page  # self-contained: opens offline


@pytest.mark.parametrize("name", list(SPECS))
def test_summary_numbers_match_the_run_status(done: dict[str, Done], name: str) -> None:
    run, report = done[name].run, done[name].report
    status = run.status().as_dict()
    cells = summary_cells(report.html.read_text())
    for key in STATUS_KEYS:
        value, shown = cells[key]
        assert int(value) == status[key], key
        assert int(shown.replace(",", "")) == status[key], key
        assert report.summary[key] == status[key]
    assert int(cells["points_computed"][0]) == run.results().num_rows
    assert int(cells["attempts"][0]) == run.outcomes().num_rows
    total = sum(run.outcomes().column("duration_ms").to_pylist()) / 1000
    assert float(cells["shard_time_total_s"][0]) == pytest.approx(total, abs=1e-3)


def test_failed_points_are_decoded_and_marked_by_error_code(done: dict[str, Done]) -> None:
    run = done["mixed_failures"].run
    data = collect(run)
    status = run.status()
    assert status.failed > 0
    assert len(data.failed_shards) == status.failed
    assert set(data.failed.codes.tolist()) == {"EPIDEMIC_NOT_OVER"}
    assert data.failed.total == len(data.failed.index) == 6 * status.failed
    # the failed points and the computed points are disjoint and tile the whole grid
    failed = set(
        zip(data.failed.params["gamma"].tolist(), data.failed.params["r0"].tolist(), strict=True)
    )
    computed = set(zip(data.points["gamma"].tolist(), data.points["r0"].tolist(), strict=True))
    assert not failed & computed
    assert len(failed | computed) == run.manifest.point_count
    page = done["mixed_failures"].report.html.read_text()
    table = re.search(r'<table id="failures".*?</table>', page, re.S)
    assert table is not None
    assert "EPIDEMIC_NOT_OVER" in table.group(0)
    assert f"<td class='num'>{status.failed}</td>" in table.group(0)


class Untaken:
    """An invoker that takes tasks and never runs them: a redrive stays awaited."""

    def invoke_async(self, tasks: Any) -> None:
        pass

    def dispatch_async(self, slices: Any) -> None:
        raise AssertionError("a local redrive needs no dispatcher tree")


def test_a_redriven_shard_still_awaited_is_not_reported_as_failed(
    done: dict[str, Done], tmp_path: Path
) -> None:
    finished = done["mixed_failures"].run
    copy = tmp_path / "data"
    shutil.copytree(done["mixed_failures"].data_dir, copy)
    target = EmbeddedTarget(copy)
    failed_before = finished.status().failed
    assert failed_before > 0
    redriven = redrive_run(finished.run_id, evolve(target.parent_deps(), invoker=Untaken()))
    assert len(redriven) == failed_before

    run = open_run(finished.run_id, data_dir=copy)
    assert (run.status().failed, run.status().missing) == (0, failed_before)
    data = collect(run)
    assert data.failed_shards == {}
    assert data.failed.total == 0
    report = write_report(run, tmp_path / "report")
    assert [f.name for f in report.figures] == ["metric", "timeline", "durations"]
    table = re.search(r'<table id="failures".*?</table>', report.html.read_text(), re.S)
    assert table is not None
    assert "<td class='num'>0</td>" in table.group(0)  # shards failed: none, yet


def test_another_metric_can_be_drawn_and_an_unknown_one_lists_the_choices(
    done: dict[str, Done], tmp_path: Path
) -> None:
    run = done["sir_sobol"].run
    metric = draw_metric(collect(run, "peak_day"), tmp_path)
    assert metric is not None
    assert metric.title.startswith("peak_day over r0 × gamma")  # the order the spec gives
    with pytest.raises(ReportError, match="attack_rate, peak_infected_fraction, peak_day"):
        write_report(run, tmp_path, metric="nope")


@pytest.mark.parametrize(
    ("name", "size"),
    [("line", (900, 600)), ("small-multiples", (1200, 800)), ("pairs", (1200, 800))],
)
def test_a_line_small_multiples_or_pairs_of_scatters_show_other_shapes_of_sweep(
    runs: dict[str, Run], tmp_path: Path, name: str, size: tuple[int, int]
) -> None:
    metric = draw_metric(collect(runs[name]), tmp_path)
    assert metric is not None
    assert (metric.name, (metric.width, metric.height)) == ("metric", size)
    assert_readable_png(metric.path, size)


@define
class NothingYet:
    """A target showing a run the moment it was accepted: no outcome, no point."""

    inner: Target

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def manifest(self, run_id: str) -> RunManifest:
        return self.inner.manifest(run_id)

    def status(self, manifest: RunManifest) -> RunStatus:
        return RunStatus(manifest.run_id, manifest.shard_count, 0, 0, 0, manifest.point_count)

    def results(self, manifest: RunManifest) -> pa.Table:
        return self.inner.results(manifest).slice(0, 0)

    def run_query(self, sql: str, params: Any) -> pa.Table:
        return self.inner.run_query(sql, params).slice(0, 0)


def test_a_run_with_nothing_done_yet_reports_without_figures(
    done: dict[str, Done], tmp_path: Path
) -> None:
    finished = done["gbm_grid"].run
    run = Run(finished.run_id, NothingYet(finished.target))
    report = write_report(run, tmp_path)
    assert report.figures == ()
    page = report.html.read_text()
    assert "still running" in page
    assert "No point has been computed yet" in page
    cells = summary_cells(page)
    assert int(cells["missing"][0]) == finished.manifest.shard_count


def test_sweep_report_writes_the_page_and_every_figure_of_a_run_with_failures(
    done: dict[str, Done], tmp_path: Path
) -> None:
    run, data_dir = done["mixed_failures"].run, done["mixed_failures"].data_dir
    out = tmp_path / "out"
    command = [sys.executable, "-m", "sweep_sdk", "report", run.run_id, "--out", str(out),
               "--data-dir", str(data_dir)]  # fmt: skip
    made = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    names = {p.name for p in out.iterdir()}
    assert names == {"report.html", "metric.png", "timeline.png", "durations.png", "failures.png"}
    assert str(out / "report.html") in made.stdout


def test_cli_report_of_an_unknown_metric_is_a_user_error(
    done: dict[str, Done], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, data_dir = done["mixed_failures"].run, done["mixed_failures"].data_dir
    code = main(["report", run.run_id, "--out", str(tmp_path), "--data-dir", str(data_dir),
                 "--metric", "nope"])  # fmt: skip
    assert code == 2
    assert "'nope' is not a metric of sir_epidemic" in capsys.readouterr().err


def test_matplotlib_stays_out_of_the_runtime_and_the_other_commands() -> None:
    code = (
        "import sys, runtime.handlers.worker, runtime.handlers.parent, runtime.lambda_entry, "
        "sweep_sdk.cli, "
        "sweep_sdk.client; "
        "print(sorted(m for m in sys.modules if m.startswith('matplotlib') "
        "or m == 'sweep_sdk.report'))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"
