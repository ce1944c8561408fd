"""Figure 8: a worker's cold start (import time of its entry point in a fresh interpreter) and
its peak memory on one 10^6-point shard, which batching (``WorkerDeps.batch_points``) bounds."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, Figure, peak_rss_mb, python, say, show, worker_env
from benchmarks.scale import SCALE_SPEC

ENTRY_POINTS = {
    "local worker (local_pool + worker)": "import runtime.local.pool, runtime.handlers.worker",
    "Lambda entry (runtime.lambda_entry)": "import runtime.lambda_entry",
}


def run(rounds: int, points: int = 10**6) -> list[Figure]:
    say("worker: cold start and memory")
    figures = []
    env = worker_env()

    def wall(code: str) -> float:
        t0 = time.perf_counter()
        subprocess.run(python("-c", code), env=env, cwd=ROOT, check=True)
        return time.perf_counter() - t0

    best = {name: float("inf") for name in ["bare", *ENTRY_POINTS]}
    for _ in range(max(rounds, 5)):
        best["bare"] = min(best["bare"], wall("pass"))
        for name, code in ENTRY_POINTS.items():
            best[name] = min(best[name], wall(code))
    for name in ENTRY_POINTS:
        imports = (best[name] - best["bare"]) * 1e3
        start = best["bare"] * 1e3
        figures.append(show(Figure(
            "8", f"import time, {name}",
            f"{imports:.0f} ms (interpreter start {start:.0f} ms more)", "report", None,
        )))  # fmt: skip
    figures.append(_one_big_shard(points))
    return figures


def _one_big_shard(points: int) -> Figure:
    from runtime.local.pool import TaskCodec
    from sweep_core.contract import ShardTask
    from sweep_core.validation import parse_request

    raw = dict(SCALE_SPEC)
    raw["axes"] = {
        "sigma": {"linspace": {"start": 0.05, "stop": 0.8, "num": 1000}},
        "strike": {"linspace": {"start": 50.0, "stop": 150.0, "num": points // 1000}},
    }
    raw["sharding"] = {"shard_count": 1}
    task = ShardTask("20260101T000000Z-0000beef", "2026-01-01", 0, 0, points, parse_request(raw))
    with tempfile.TemporaryDirectory() as data:
        process = subprocess.Popen(
            python("-m", "runtime.local.pool", "--serve-worker", "--data-dir", data,
                   "--prefix", "results", "--shard-timeout", "900"),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=worker_env(), cwd=ROOT,
        )  # fmt: skip
        assert process.stdin is not None
        assert process.stdout is not None
        t0 = time.perf_counter()
        process.stdin.write(TaskCodec().encode(task))
        process.stdin.flush()
        report = process.stdout.readline().decode().strip()  # the outcome, as JSON
        status = json.loads(report)["status"] if report != "-" else "failure"
        elapsed = time.perf_counter() - t0
        peak = peak_rss_mb(process.pid)
        process.stdin.close()
        process.wait()
        written = sum(f.stat().st_size for f in Path(data).rglob("*.parquet"))
    return show(Figure(
        "8", f"peak RSS of one worker on a {points:,}-point shard (GBM, 64 paths)",
        f"{peak:.0f} MB ({status} in {elapsed:.1f} s; {written / 2**20:.0f} MB of Parquet "
        f"written; batches of {_batch()} points)",
        "< 500 MB", peak < 500 and status == "success",
    ))  # fmt: skip


def _batch() -> int:
    import attrs

    from runtime.handlers.worker import WorkerDeps

    default = attrs.fields(WorkerDeps).batch_points.default
    assert isinstance(default, int)
    return default
