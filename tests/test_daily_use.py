"""Living with many runs: list them, name them by 'latest' or a prefix, cancel them, see the
plan and its cost first, and analyse results as xarray, in a notebook or a shell."""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import HeldInvoker

from sweep_core.contract import ShardTask
from sweep_core.layout import Layout
from sweep_core.planning import plan_shards
from sweep_core.run_index import list_runs, resolve_run_id
from sweep_core.runs import CANCELLED
from sweep_core.space import point_count
from sweep_core.validation import parse_request
from sweep_sdk import cli, open_run, submit
from sweep_sdk.client import Run, RunList, progress_kind, runs
from sweep_sdk.embedded import EmbeddedTarget
from sweep_sdk.plan import LAMBDA_GB_SECOND_USD, LAMBDA_REQUEST_USD, estimate_run, plan_summary

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _tiny(spec: dict[str, Any], label: str, points: int = 4, shard_size: int = 2) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    spec["params"]["paths"] = 16
    spec["axes"] = {"sigma": {"linspace": {"start": 0.1, "stop": 0.5, "num": points}}}
    spec["params"]["strike"] = 100.0
    spec["sharding"] = {"shard_size": shard_size}
    spec["label"] = label
    spec.pop("client_token", None)
    return spec


def sweep(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sweep_sdk", *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def _captured(tmp_path: Path) -> tuple[EmbeddedTarget, HeldInvoker]:
    target = EmbeddedTarget.from_env(tmp_path)
    capture = HeldInvoker()
    target._invoker = capture  # type: ignore[assignment]
    return target, capture


def _run_tasks(target: EmbeddedTarget, tasks: list[ShardTask]) -> list[str | None]:
    from runtime.adapters.local_store import LocalContext
    from runtime.handlers.worker import WorkerDeps, run_shard
    from sweep_core.ports import utc_now

    deps = WorkerDeps(target.store, target.layout, utc_now)
    return [run_shard(t, LocalContext.with_timeout(60), deps).error_code for t in tasks]


# --- find runs ---------------------------------------------------------------------------


@pytest.fixture
def three_runs(tmp_path: Path, gbm_request: dict[str, Any]) -> list[Run]:
    made = []
    for label in ("smile-a", "term", "smile-b"):
        run = submit(_tiny(gbm_request, label), data_dir=tmp_path, workers=1)
        run.wait(timeout=60, progress=False)
        made.append(run)
    return made


def test_runs_lists_newest_first_with_their_counts_and_filters(
    tmp_path: Path, three_runs: list[Run]
) -> None:
    listed = runs(data_dir=tmp_path)
    assert [r.run_id for r in listed] == [r.run_id for r in reversed(three_runs)]
    assert [r.label for r in listed] == ["smile-b", "term", "smile-a"]
    assert all((r.points, r.shards, r.succeeded, r.failed, r.missing) == (4, 2, 2, 0, 0)
               for r in listed)  # fmt: skip
    assert all(r.state == "settled" and r.duration_s is not None for r in listed)
    assert [r.label for r in runs(data_dir=tmp_path, label="SMILE")] == ["smile-b", "smile-a"]
    assert runs(data_dir=tmp_path, kernel="sir_epidemic") == []
    assert len(runs(data_dir=tmp_path, since="2000-01-01")) == 3
    assert runs(data_dir=tmp_path, since="2999-01-01") == []
    table = listed.to_arrow()
    assert table.column("run_id").to_pylist() == [r.run_id for r in listed]

    done = sweep("runs", "--json", "--label", "term", data_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    [row] = [json.loads(line) for line in done.stdout.splitlines()]
    assert (row["label"], row["succeeded"], row["state"]) == ("term", 2, "settled")
    text = sweep("runs", data_dir=tmp_path).stdout
    assert text.index("smile-b") < text.index("term") < text.index("smile-a")
    bad = sweep("runs", "--since", "yesterday", data_dir=tmp_path)
    assert bad.returncode == 2
    assert "--since 'yesterday' is not a date" in bad.stderr


def test_a_settled_run_is_listed_from_its_summary_without_opening_an_outcome(
    tmp_path: Path, three_runs: list[Run]
) -> None:
    target = EmbeddedTarget.from_env(tmp_path)
    first = list_runs(target.store, target.layout)  # records the summaries
    opened: list[str] = []

    class Counting:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def get(self, key: str) -> bytes:
            opened.append(key)
            return bytes(self.inner.get(key))

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    again = list_runs(Counting(target.store), target.layout)
    assert again == first
    assert opened
    assert not [k for k in opened if "/outcomes/" in k or "/manifest" in k]


def test_a_summary_is_not_used_once_a_redrive_starts_a_new_generation(
    tmp_path: Path, gbm_request: dict[str, Any]
) -> None:
    from runtime.handlers.worker import WorkerDeps, record_failure
    from sweep_core.ports import utc_now

    target, capture = _captured(tmp_path)
    run = Run(target.submit(_tiny(gbm_request, "g")).run_id, target)
    first, second = capture.tasks
    _run_tasks(target, [first])
    [row] = runs(target=target)
    assert (row.succeeded, row.missing, row.state) == (1, 1, "running")
    record_failure(
        second, "WORKER_DIED", "killed", WorkerDeps(target.store, target.layout, utc_now)
    )
    [row] = runs(target=target)  # settled: its summary is recorded now
    assert (row.succeeded, row.failed, row.state) == (1, 1, "settled")
    capture.tasks.clear()
    assert run.redrive() == [1]
    [row] = runs(target=target)
    assert (row.succeeded, row.failed, row.missing, row.state) == (1, 0, 1, "running")
    _run_tasks(target, capture.tasks)
    [row] = runs(target=target)
    assert (row.succeeded, row.failed, row.state) == (2, 0, "settled")


def test_latest_and_a_unique_prefix_name_a_run(tmp_path: Path, three_runs: list[Run]) -> None:
    newest = three_runs[-1].run_id
    assert open_run("latest", data_dir=tmp_path).run_id == newest
    assert open_run(newest[:-2], data_dir=tmp_path).run_id == newest
    status = sweep("status", "--json", data_dir=tmp_path)  # no run id: the latest
    assert json.loads(status.stdout)["run_id"] == newest
    ids = [r.run_id for r in three_runs]
    with pytest.raises(LookupError, match="is the start of 3 run ids"):
        resolve_run_id(ids[0][:4], ids)
    # Two runs in one second: the manifest's time, not the random suffix, says which is newer.
    later, earlier = "20261123T152100Z-00000001", "20261123T152100Z-ffffffff"
    times = {later: "2026-11-23T15:21:00.900000+00:00", earlier: "2026-11-23T15:21:00.100000+00:00"}
    assert resolve_run_id("latest", [later, earlier], times.__getitem__) == later
    with pytest.raises(LookupError, match="there is no run yet"):
        resolve_run_id("latest", [])
    shared = sweep("status", ids[0][:4], data_dir=tmp_path)
    assert shared.returncode == 2
    assert "is the start of 3 run ids" in shared.stderr


# --- stop runs ---------------------------------------------------------------------------


def test_a_cancelled_run_starts_no_more_shards_and_redrive_needs_force(
    tmp_path: Path, gbm_request: dict[str, Any]
) -> None:
    target, capture = _captured(tmp_path)
    run = Run(target.submit(_tiny(gbm_request, "stop", points=8)).run_id, target)
    assert _run_tasks(target, capture.tasks[:1]) == [None]  # one shard ran before the cancel
    done = sweep("cancel", run.run_id, data_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"sweep redrive {run.run_id} --force" in done.stdout
    assert _run_tasks(target, capture.tasks[1:]) == [CANCELLED] * 3  # queued ones do not run
    status = run.status()
    assert (status.succeeded, status.failed, status.cancelled, status.missing) == (1, 3, 3, 0)
    assert run.results().num_rows == 2
    assert runs(target=target)[0].state == "cancelled"
    shown = sweep("status", run.run_id, data_dir=tmp_path).stdout
    assert "cancelled: 3 of the failed shards were never run" in shown

    refused = sweep("redrive", run.run_id, data_dir=tmp_path)
    assert refused.returncode == 2
    assert "--force" in refused.stderr
    capture.tasks.clear()
    assert sorted(run.redrive(force=True)) == [1, 2, 3]
    assert _run_tasks(target, capture.tasks) == [None] * 3  # a new generation runs
    status = run.status()
    assert (status.succeeded, status.failed, status.cancelled) == (4, 0, 0)


def test_cancel_of_an_unknown_run_is_a_clear_error(tmp_path: Path) -> None:
    done = sweep("cancel", "20261123T000000Z-00000000", data_dir=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("sweep: no run 20261123T000000Z-00000000 in ")


def test_ctrl_c_while_waiting_says_how_to_cancel(
    tmp_path: Path,
    gbm_request: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target, _ = _captured(tmp_path)
    run = Run(target.submit(_tiny(gbm_request, "w")).run_id, target)

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(Run, "wait", interrupted)
    args = types.SimpleNamespace(json=True)
    assert cli._settle(run, args) == 130  # type: ignore[arg-type]
    assert f"sweep cancel {run.run_id}" in capsys.readouterr().err


# --- see the plan ------------------------------------------------------------------------


def test_plan_lists_every_shard_the_run_would_have(gbm_request: dict[str, Any]) -> None:
    summary = plan_summary(gbm_request)
    request = summary.pop("_request")
    plan = plan_shards(point_count(parse_request(gbm_request)), request.sharding)
    assert summary["points"] == 80
    assert summary["shards"] == plan.shard_count == 2
    assert summary["shard_ranges"] == [
        {"shard": 0, "start": 0, "end": 64, "points": 64},
        {"shard": 1, "start": 64, "end": 80, "points": 16},
    ]
    assert summary["axes"] == [
        {"name": "sigma", "form": "linspace", "size": 16},
        {"name": "strike", "form": "values", "size": 5},
    ]
    done = subprocess.run(
        [sys.executable, "-m", "sweep_sdk", "plan", str(EXAMPLES / "gbm_grid.json")],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "sigma: linspace, 100 values" in done.stdout
    assert "{" not in done.stdout  # no Python dict
    lines = done.stdout.splitlines()
    assert lines[-1] == "(50 shards)"
    assert lines[-2].split() == ["49", "9,800", "10,000", "200"]


def test_the_estimate_scales_the_measured_rate(gbm_request: dict[str, Any]) -> None:
    summary = plan_summary(gbm_request)
    request = summary.pop("_request")
    estimate = estimate_run(request, summary, workers=4, memory_mb=3538, arch="x86_64")
    rate = estimate["points_per_second"]
    assert rate > 0
    assert estimate["sample_points"] >= 80
    assert estimate["local"]["seconds"] == pytest.approx(80 / (rate * 4))
    cloud = estimate["lambda"]
    # Above one vCPU's memory a single-threaded kernel runs no faster, but pays for the memory.
    assert cloud["gb_seconds"] == pytest.approx(80 / rate * 3538 / 1024)
    assert cloud["cost_usd"] == pytest.approx(
        cloud["gb_seconds"] * LAMBDA_GB_SECOND_USD["x86_64"] + 2 * LAMBDA_REQUEST_USD
    )


# --- analyse -----------------------------------------------------------------------------


def test_a_grid_run_becomes_a_dataset_with_failed_points_masked(tmp_path: Path) -> None:
    pytest.importorskip("xarray")
    spec = json.loads((EXAMPLES / "mixed_failures.json").read_text())
    run = submit(spec, data_dir=tmp_path, workers=1)
    status = run.wait(timeout=120, progress=False)
    assert status.failed > 0
    table = run.results()
    data = run.to_xarray()
    assert data["attack_rate"].dims == ("gamma", "r0")  # the order the request gives
    assert data["gamma"].values.tolist() == [0.1, 0.2, 0.35, 0.5]
    assert np.allclose(data["r0"].values, np.linspace(0.5, 4.0, 36))
    computed = data["computed"].values
    assert computed.sum() == table.num_rows < 144
    # Point i of a grid is (i // 36, i % 36): the last axis varies fastest.
    rows = {r["point_index"]: r for r in table.to_pylist()}
    for i in range(144):
        g, r = divmod(i, 36)
        value = data["attack_rate"].values[g, r]
        if i in rows:
            assert value == rows[i]["attack_rate"]
            assert computed[g, r]
        else:
            assert np.isnan(value)
            assert not computed[g, r]
    out = tmp_path / "x.nc"
    done = sweep("results", run.run_id, "--out", str(out), data_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    import xarray as xr

    with xr.open_dataset(out) as reread:
        assert np.array_equal(reread["attack_rate"].values, data["attack_rate"].values, True)


def test_a_sobol_run_becomes_a_dataset_over_its_points(tmp_path: Path) -> None:
    pytest.importorskip("xarray")
    spec = json.loads((EXAMPLES / "sir_sobol.json").read_text())
    spec["sampling"]["n"] = 32
    spec["sharding"] = {"shard_count": 2}
    run = submit(spec, data_dir=tmp_path, workers=1)
    run.wait(timeout=120, progress=False)
    data = run.to_xarray()
    table = run.results()
    assert data["attack_rate"].dims == ("point",)
    assert data["r0"].values.tolist() == table.column("r0").to_pylist()
    assert data["point"].values.tolist() == list(range(32))


def test_notebooks_get_compact_html_tables(tmp_path: Path, gbm_request: dict[str, Any]) -> None:
    target, capture = _captured(tmp_path)
    run = Run(target.submit(_tiny(gbm_request, "<b>bold</b> & co")).run_id, target)
    _run_tasks(target, capture.tasks)
    page = run._repr_html_()
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in page
    assert "<b>bold" not in page
    assert "<td>2</td>" in page  # shards
    status_page = run.status()._repr_html_()
    assert status_page.count("<tr>") == len(run.status().as_dict())
    listing = RunList(runs(target=target))._repr_html_()
    assert listing.count("<tr>") == 2  # the head and one run
    assert run.run_id in listing


def test_wait_shows_a_bar_in_a_notebook_and_on_a_terminal_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kernel = types.SimpleNamespace(config={"IPKernelApp": {}})
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: kernel  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake)
    monkeypatch.setitem(sys.modules, "ipywidgets", types.ModuleType("ipywidgets"))
    assert progress_kind() == "notebook"
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # not installed
    assert progress_kind() == "text"
    monkeypatch.delitem(sys.modules, "IPython")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert progress_kind() is None
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert progress_kind() == "text"


def test_report_open_opens_the_page(
    tmp_path: Path, gbm_request: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    target, capture = _captured(tmp_path)
    run_id = target.submit(_tiny(gbm_request, "r")).run_id
    _run_tasks(target, capture.tasks)
    opened: list[str] = []
    import webbrowser

    def browser(uri: str) -> bool:
        opened.append(uri)
        return True

    monkeypatch.setattr(webbrowser, "open", browser)
    out = tmp_path / "page"
    assert cli.main(["report", run_id[:10], "--out", str(out), "--open",
                     "--data-dir", str(tmp_path)]) == 0  # fmt: skip
    [uri] = opened
    assert uri.startswith("file://")
    assert Path(uri[7:]).is_file()


# --- small things ------------------------------------------------------------------------


def test_query_takes_its_sql_before_or_after_the_options(
    tmp_path: Path, three_runs: list[Run]
) -> None:
    run_id = three_runs[0].run_id
    sql = "SELECT count(*) AS n FROM outcomes WHERE run_id = ?"
    after = sweep("query", run_id, "--json", sql, data_dir=tmp_path)
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout) == {"n": 2}
    neither = sweep("query", run_id, data_dir=tmp_path)
    assert neither.returncode == 2
    assert "give one SQL statement or --name" in neither.stderr


def test_help_is_plain_text_and_every_option_says_its_default() -> None:
    top = subprocess.run([sys.executable, "-m", "sweep_sdk", "--help"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "``" not in top
    parser = cli._parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    silent = []
    for name, sub in commands.choices.items():
        formatter = sub._get_formatter()
        for action in sub._actions:
            if not action.option_strings or action.nargs == 0 or action.required:
                continue  # positionals, flags, required options
            if "default" not in formatter._get_help_string(action):
                silent.append(f"{name} {action.option_strings[0]}")
    assert silent == []
    serve = " ".join(commands.choices["serve"].format_help().split())
    assert "address to listen on (default: 127.0.0.1)" in serve
    assert "port to listen on (default: 8080)" in serve


def test_run_records_are_told_apart_from_other_keys() -> None:
    layout = Layout()
    key = layout.cancel_key("20261123T152100Z-1a2b3c4d", 2)
    assert Layout.run_record(key) == ("20261123T152100Z-1a2b3c4d", "cancel-0002.json")
    assert Layout.run_record(layout.outcomes_prefix("20261123T152100Z-1a2b3c4d") + "x") is None
