"""Two source trees side by side: the fixed and per-shard costs of ``sweep run`` in each."""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import python, run_command, say, worker_env
from benchmarks.workloads import gbm_spec, write_spec

TINY_PATHS = 16


def main() -> None:
    """Measure both trees.

    ``python -m benchmarks.checkouts OLD NEW [--rounds N] [--workers W]``, where OLD and NEW are
    source trees of this project (``git worktree add /tmp/old COMMIT``), both run with this
    interpreter and its packages, interleaved round by round:

    - start: from launch to the first shard's ``started_at``, for a run of 8 tiny shards;
    - per shard: ``sweep run --wait`` of 2,000 shards of 100 points × 16 paths (~0.5 ms of kernel
      each), so the wall is almost all per-shard cost: (wall − start) / shards × workers.

    Both are what a change to the CLI, the runner, the pool or the worker's records moves, and
    neither is a figure of the suite: a back-to-back comparison is what tells a change's effect on
    a machine this noisy.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs=2, type=Path, metavar="TREE")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shards", type=int, default=2000)
    args = parser.parse_args()
    starts: dict[Path, list[float]] = {tree: [] for tree in args.trees}
    walls: dict[Path, list[float]] = {tree: [] for tree in args.trees}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        few = write_spec(gbm_spec(8, 1, TINY_PATHS), folder, "few.json")
        many = write_spec(gbm_spec(args.shards, 100, TINY_PATHS), folder, "many.json")
        for round_ in range(args.rounds):
            for tree in args.trees:
                data = folder / f"data-{round_}-{tree.name}"
                launched = time.time()
                _, out = _sweep_run(tree, few, data / "few", args.workers)
                starts[tree].append(_first_start(data / "few", out) - launched)
                walls[tree].append(_sweep_run(tree, many, data / "many", args.workers)[0])
    for tree in args.trees:
        start, wall = min(starts[tree]), min(walls[tree])
        per_shard = (wall - start) / args.shards * args.workers * 1000
        say(f"{tree}: start best {start:.3f} s, median {statistics.median(starts[tree]):.3f} s; "
            f"{args.shards:,} tiny shards best {wall:.2f} s, median "
            f"{statistics.median(walls[tree]):.2f} s: {per_shard:.2f} ms per shard per worker "
            f"({args.workers} worker{'s' if args.workers > 1 else ''}, best)")  # fmt: skip


def _sweep_run(tree: Path, spec: Path, data: Path, workers: int) -> tuple[float, str]:
    # The tree's own package: its folder first on the path (``-m`` from there), its workers
    # started with it as PYTHONPATH by its own runner.
    env = {**worker_env(), "PYTHONPATH": str(tree)}
    command = python("-m", "sweep_sdk", "run", str(spec), "--wait", "--json",
                     "--workers", str(workers), "--data-dir", str(data))  # fmt: skip
    return run_command(command, env=env, cwd=tree)


def _first_start(data: Path, out: str) -> float:
    from sweep_sdk import open_run

    run = open_run(json.loads(out.strip().splitlines()[-1])["run_id"], data_dir=data)
    started: list[float] = [t.timestamp() for t in run.outcomes()["started_at"].to_pylist()]
    return min(started)


if __name__ == "__main__":
    main()
