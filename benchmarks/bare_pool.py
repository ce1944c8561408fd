"""``python -m benchmarks.bare_pool SPEC --workers N``: what a user would write instead of a sweep.

A bare ``concurrent.futures.ProcessPoolExecutor`` maps the same pure computation over the same
shards (one task per shard, dynamically scheduled) and stores nothing. Prints the points done.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks.workloads import run_shard_pure, shard_ranges


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("spec", type=Path)
    parser.add_argument("--workers", type=int, required=True)
    args = parser.parse_args()
    raw = json.loads(args.spec.read_text())
    ranges = shard_ranges(raw)
    with ProcessPoolExecutor(args.workers) as pool:
        done = sum(pool.map(run_shard_pure, [raw] * len(ranges), *zip(*ranges, strict=True)))
    print(done)


if __name__ == "__main__":
    main()
