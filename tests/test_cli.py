"""The ``sweep`` command line as a user drives it: exit codes, JSON output, clear errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def sweep(*args: str, data_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    where = [] if data_dir is None else ["--data-dir", str(data_dir)]
    return subprocess.run(
        [sys.executable, "-m", "sweep_sdk", *args, *where],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_run_wait_json_prints_one_object_and_exits_1_when_shards_fail(tmp_path: Path) -> None:
    done = sweep("run", str(EXAMPLES / "mixed_failures.json"), "--wait", "--json",
                 data_dir=tmp_path)  # fmt: skip
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    assert summary["points"] == 144
    assert summary["shards"] == 24
    assert summary["succeeded"] + summary["failed"] == 24
    assert summary["failed"] > 0
    assert summary["missing"] == 0
    run_id = summary["run_id"]

    status = json.loads(sweep("status", run_id, "--json", data_dir=tmp_path).stdout)
    assert status == {**summary, "where": str(tmp_path.resolve())}

    out = tmp_path / "points.csv"
    written = sweep("results", run_id, "--out", str(out), data_dir=tmp_path)
    assert written.returncode == 0, written.stderr
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 * summary["succeeded"]
    assert {"point_index", "r0", "gamma", "attack_rate", "peak_day"} <= set(rows[0])

    query = sweep("query", run_id, "--name", "run_summary", "--json", data_dir=tmp_path)
    assert json.loads(query.stdout)["shards_failed"] == summary["failed"]

    sql = sweep("query", run_id, "SELECT count(*) AS n FROM outcomes WHERE run_id = ?",
                "--json", data_dir=tmp_path)  # fmt: skip
    assert json.loads(sql.stdout) == {"n": 24}


def test_sweep_results_writes_every_point_to_parquet(tmp_path: Path) -> None:
    spec = json.loads((EXAMPLES / "sir_sobol.json").read_text())
    spec["sampling"]["n"] = 64
    spec["sharding"] = {"shard_count": 2}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    run = sweep("run", str(path), "--wait", "--json", data_dir=tmp_path)
    assert run.returncode == 0, run.stderr
    run_id = json.loads(run.stdout)["run_id"]
    out = tmp_path / "points.parquet"
    assert sweep("results", run_id, "--out", str(out), data_dir=tmp_path).returncode == 0
    assert pq.read_table(out).num_rows == 64


def test_invalid_spec_lists_every_problem_without_a_traceback(tmp_path: Path) -> None:
    spec = json.loads((EXAMPLES / "gbm_grid.json").read_text())
    spec["axes"]["sigma"]["linspace"]["num"] = 0
    spec["seed"] = "forty-two"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(spec))
    done = sweep("run", str(path), data_dir=tmp_path / "data")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "$.axes.sigma.linspace.num: must be >= 1" in done.stderr
    assert "$.seed: must be an integer" in done.stderr
    assert not (tmp_path / "data").exists()
    # The runner `sweep run` starts before it validates stops too, with its workers.
    deadline = time.monotonic() + 30
    while _processes_naming(str(tmp_path / "data")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_naming(str(tmp_path / "data")) == []


def _processes_naming(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # it ended meanwhile
        if text.encode() in args:
            found.append(cmdline.parent.name)
    return found


def test_user_errors_are_one_line_on_stderr(tmp_path: Path) -> None:
    missing = sweep("run", str(tmp_path / "nope.json"), data_dir=tmp_path)
    assert (missing.returncode, missing.stderr.strip()) == (
        2, f"sweep: no such spec file: {tmp_path / 'nope.json'}",
    )  # fmt: skip
    unknown = sweep("status", "20261123T000000Z-00000000", data_dir=tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("sweep: no run 20261123T000000Z-00000000")
    malformed = sweep("status", "not-a-run", data_dir=tmp_path)
    assert malformed.returncode == 2
    assert "is not a run id" in malformed.stderr
    assert "Traceback" not in unknown.stderr + malformed.stderr


def test_plan_shows_the_sharding() -> None:
    done = sweep("plan", str(EXAMPLES / "gbm_grid.json"), "--json")
    assert json.loads(done.stdout)["shards"] == 50


def test_serve_accepts_runs_over_http_and_openapi_prints_the_document(tmp_path: Path) -> None:
    from sweep_sdk.remote import RemoteApi

    server = subprocess.Popen(
        [sys.executable, "-m", "sweep_sdk", "serve", "--port", "0", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        url = banner.split()[3]
        spec = json.loads((EXAMPLES / "mixed_failures.json").read_text())
        accepted = RemoteApi(url, "us-east-1", credentials_provider=lambda: None).submit(spec)
        assert accepted.point_count == 144
        assert (tmp_path / "results" / "runs").is_dir()
    finally:
        server.terminate()
        server.wait(timeout=30)

    document = json.loads(sweep("openapi").stdout)
    assert set(document["paths"]) >= {"/runs", "/runs/{run_id}"}
