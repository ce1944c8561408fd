"""``python -m benchmarks.lithops_map SPEC --workers N``: the same shards mapped with Lithops.

Lithops' localhost backend (worker processes on this machine) and localhost storage (a folder),
from the bench-only ``requirements-bench.txt``. The function is the same pure computation the
other competitors run; Lithops stores each call's status and result in its storage, as it
always does. Prints the points done.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.workloads import run_shard_pure, shard_ranges


def one_shard(raw: dict[str, Any], start: int, end: int) -> int:
    return run_shard_pure(raw, start, end)


def main() -> None:
    import lithops

    parser = argparse.ArgumentParser()
    parser.add_argument("spec", type=Path)
    parser.add_argument("--workers", type=int, required=True)
    args = parser.parse_args()
    raw = json.loads(args.spec.read_text())
    ranges = shard_ranges(raw)
    config = {
        "lithops": {"backend": "localhost", "storage": "localhost", "log_level": "WARNING"},
        # the runtime is this interpreter (the default, `python` on the PATH, lacks lithops)
        "localhost": {"runtime": sys.executable, "worker_processes": args.workers},
    }
    executor = lithops.FunctionExecutor(config=config)
    try:
        futures = executor.map(one_shard, [(raw, start, end) for start, end in ranges])
        done = sum(executor.get_result(fs=futures))
    finally:
        executor.clean()
    print(done)


if __name__ == "__main__":
    main()
