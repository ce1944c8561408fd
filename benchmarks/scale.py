"""Figures 9 and 7: a 10^6-point, 10,000-shard local run (its wall time, its coverage, the
memory of its whole process tree), then the run-summary query over its 10,000 shard objects,
`sweep compact`, and the same query over the compacted run.

The kernel is cheap on purpose (GBM, 64 paths per point: ~2 ms of work per 100-point shard),
so what this measures is the cost of a shard: task hand-off, Parquet writes, records, polling.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    ROOT,
    Figure,
    TreeMemory,
    best_of_interleaved,
    python,
    say,
    show,
    worker_env,
)
from benchmarks.workloads import write_spec

SCALE_SPEC: dict[str, Any] = {
    "schema_version": "1.0",
    "kernel": "gbm_european_option",
    "params": {"s0": 100.0, "rate": 0.02, "maturity": 1.0, "paths": 64, "option": "call"},
    "axes": {
        "sigma": {"linspace": {"start": 0.05, "stop": 0.8, "num": 1000}},
        "strike": {"linspace": {"start": 50.0, "stop": 150.0, "num": 1000}},
    },
    "sampling": {"method": "grid"},
    "sharding": {"shard_count": 10_000},
    "seed": 42,
}


def run(workers: int, rounds: int, points: int = 10**6, shards: int = 10_000) -> list[Figure]:
    spec = dict(SCALE_SPEC)
    assert points % 1000 == 0, "points must be a multiple of 1,000"
    spec["axes"] = {
        "sigma": {"linspace": {"start": 0.05, "stop": 0.8, "num": 1000}},
        "strike": {"linspace": {"start": 50.0, "stop": 150.0, "num": points // 1000}},
    }
    spec["sharding"] = {"shard_count": shards}
    say(f"scale: {points:,} points in {shards:,} shards (GBM, 64 paths), {workers} workers, "
        "then the run-summary query before and after `sweep compact`")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = write_spec(spec, folder)
        data = folder / "data"
        figures, run_id, kernel_s = _scale_run(path, data, workers, points, shards)
        figures += _queries(data, run_id, rounds)
        say(f"  (sum of the shards' own durations: {kernel_s:.1f} s)")
    return figures


def _scale_run(
    spec: Path, data: Path, workers: int, points: int, shards: int
) -> tuple[list[Figure], str, float]:
    t0 = time.perf_counter()
    process = subprocess.Popen(
        python("-m", "sweep_sdk", "run", str(spec), "--wait", "--json",
               "--workers", str(workers), "--data-dir", str(data)),
        cwd=ROOT, env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    with TreeMemory(process.pid) as memory:
        out, err = process.communicate()
    wall = time.perf_counter() - t0
    if process.returncode != 0:
        raise RuntimeError(f"sweep run failed: {err[-2000:]}")
    summary = json.loads(out.strip().splitlines()[-1])
    run_id = summary["run_id"]
    # The detached runner outlives the command by a moment; wait for it to leave.
    _wait_for_runner(data)
    from sweep_sdk import open_run

    run = open_run(run_id, data_dir=data)
    status = run.status()
    table = run.results()
    index = table["point_index"].to_numpy()
    exact = bool(
        status.succeeded == shards
        and table.num_rows == points
        and np.array_equal(index, np.arange(points))
    )
    durations = run.outcomes()["duration_ms"].to_numpy()
    kernel_s = float(durations.sum()) / 1000
    worker_peak = max(
        (mb for pid, mb in memory.peaks.items() if memory.names.get(pid) == "worker"),
        default=0.0,
    )
    cpu = sum(memory.cpu.values())
    figures = [
        show(Figure(
            "9", f"{points:,} points / {shards:,} shards, local, {workers} workers",
            f"{wall:.1f} s wall ({shards / wall:,.0f} shards/s, {wall / shards * workers * 1e3:.1f}"
            f" ms per shard per worker); coverage "
            f"{'exact' if exact else 'NOT EXACT'} ({status.succeeded:,} successes, "
            f"{table.num_rows:,} rows, indices 0..{points - 1} once each)",
            "completes, exact coverage", exact,
        )),
        show(Figure(
            "9", "  peak memory of the process tree (CLI + runner + workers)",
            f"{memory.peak_sum_mb:.0f} MB summed at one instant; largest worker {worker_peak:.0f} "
            f"MB; CPU {cpu:.1f} s in all (shards' own durations {kernel_s:.1f} s)",
            "report", None,
        )),
    ]  # fmt: skip
    return figures, run_id, kernel_s


def _wait_for_runner(data: Path, timeout: float = 30.0) -> None:
    queue = data / ".local" / "queue"
    deadline = time.monotonic() + timeout
    while queue.is_dir() and any(queue.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)


def _queries(data: Path, run_id: str, rounds: int) -> list[Figure]:
    from runtime.adapters.outcome_index import INDEX_DIR
    from sweep_sdk import open_run
    from sweep_sdk.compact import compact_run
    from sweep_sdk.embedded import EmbeddedTarget

    run = open_run(run_id, data_dir=data)
    objects = sum(1 for _ in (data / "results").rglob("*.parquet"))
    outcome_objects = sum(1 for _ in (data / "results" / "outcomes").rglob("*.parquet"))
    index = data / INDEX_DIR

    def summary_without_index() -> float:
        shutil.rmtree(index, ignore_errors=True)
        return _timed(lambda: run.named("run_summary"))

    # The first query, as the run left the folder: the pool indexed its workers' outcomes.
    summary_indexed = run.named("run_summary").to_pylist()
    results_before = run.results()
    before = best_of_interleaved(rounds, {
        "summary": lambda: _timed(lambda: run.named("run_summary")),
        "no_index": summary_without_index,
        "status": lambda: _timed(run.status),
    })  # fmt: skip
    summary_objects = run.named("run_summary").to_pylist()  # index rebuilt from the objects
    target = EmbeddedTarget.from_env(data)
    t0 = time.perf_counter()
    report = compact_run(target.store, target.layout, run_id)
    compact_s = time.perf_counter() - t0
    objects_after = sum(1 for _ in (data / "results").rglob("*.parquet"))
    after = best_of_interleaved(rounds, {
        "summary": lambda: _timed(lambda: run.named("run_summary")),
        "status": lambda: _timed(run.status),
    })  # fmt: skip
    summary_after = run.named("run_summary").to_pylist()
    same_index = _same_summary(summary_objects, summary_indexed)
    same = _same_summary(summary_objects, summary_after) and run.results().equals(results_before)
    return [
        show(Figure(
            "7", f"run_summary on DuckDB, run of {objects:,} shard objects, as the run left it",
            f"{before['summary'] * 1e3:.0f} ms (outcome index filled by the pool; "
            f"answers {'identical' if same_index else 'DIFFERENT'} to reading every object)",
            "< 2 s", before["summary"] < 2 and same_index,
        )),
        show(Figure(
            "7", "  the same query with the outcome index deleted",
            f"{before['no_index']:.2f} s (DuckDB opens each of the {outcome_objects:,} outcome "
            "objects, then the index is written again)", "report", None,
        )),
        show(Figure(
            "7", "  `sweep compact` then the same query",
            f"{after['summary'] * 1e3:.0f} ms; {before['no_index'] / after['summary']:.0f}× "
            f"faster than with no index ({objects:,} → {objects_after} objects, "
            f"{report.objects_before:,} replaced, compaction {compact_s:.1f} s; answers "
            f"{'identical' if same else 'DIFFERENT'})",
            "report; answers unchanged", same,
        )),
        show(Figure(
            "-", "  status() of the run (lists its outcomes)",
            f"{before['status'] * 1e3:.0f} ms before, {after['status'] * 1e3:.0f} ms after "
            "compaction", "report", None,
        )),
    ]  # fmt: skip


def _same_summary(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Counts and maxima exactly; a sum of doubles to 1e-9 (DuckDB's threads add in varying
    order); approx_percentile (a t-digest, which varies from one run of the query to the next
    on the same files) to 2%."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        for key, value in x.items():
            other = y[key]
            tolerance = 0.02 if key in ("p50_ms", "p90_ms", "p99_ms") else 1e-9
            if isinstance(value, float) and isinstance(other, float):
                if abs(value - other) > tolerance * max(1.0, abs(value)):
                    return False
            elif value != other:
                return False
    return True


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
