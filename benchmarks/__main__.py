"""``python -m benchmarks``: run every benchmark (or ``--only`` some) and print one table.

Benchmarks, in the order they run (the issue's figure numbers in brackets):
  core      [5, 6]  planning 10^9 points; GBM kernel vs a plain numpy loop (one core)
  dispatch  [4]     the parent's dispatch of 10,000 shards with a 30 ms Invoke
  worker    [8]     worker import time; peak RSS on a 10^6-point shard
  local     [1-3]   `sweep run` vs the ideal, a bare ProcessPoolExecutor and Lithops
  scale     [9, 7]  10^6 points in 10,000 shards end to end; run_summary before and after
                    `sweep compact`
  runs      [10]    `sweep runs` over 1,000 settled runs, against working out each status
  coldstart [15.7]  the Lambda worker's cold start from the built artifacts (with and without
                    .pyc) in a clean Python 3.12; code and layer sizes

Subprocesses run with the worker environment (one BLAS thread) and, like an ordinary
installation, may cache bytecode (PYTHONDONTWRITEBYTECODE is dropped for them), so every
interpreter start pays imports, not compilation.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from benchmarks.common import Figure, cores, machine, parallel_capacity, say

NAMES = ("core", "dispatch", "worker", "local", "scale", "runs", "coldstart")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(NAMES)}")
    parser.add_argument("--quick", action="store_true", help="smaller sweeps, fewer repeats")
    parser.add_argument("--rounds", type=int, help="interleaved repeats (default 3, quick 1)")
    parser.add_argument("--workers", type=int, default=min(cores(), 2))
    parser.add_argument("--shards", type=int, help="shards of the local sweep (default 400)")
    parser.add_argument("--no-lithops", action="store_true", help="skip the Lithops comparison")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    chosen = NAMES if not args.only else tuple(n.strip() for n in args.only.split(","))
    unknown = set(chosen) - set(NAMES)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    rounds = args.rounds or (1 if args.quick else 3)
    command = "python -m benchmarks " + shlex.join(argv if argv is not None else sys.argv[1:])

    facts = machine()
    say("machine: " + "; ".join(f"{k} {v}" for k, v in facts.items()))
    capacity = parallel_capacity(args.workers)
    say(f"parallel capacity now: {args.workers} CPU-bound processes get {capacity:.2f} cores' "
        "worth of CPU (a shared VM delivers less than it shows)")  # fmt: skip
    started = time.perf_counter()
    figures: list[Figure] = []
    for name in chosen:
        figures += _run(name, args, rounds)
    elapsed = time.perf_counter() - started
    table = _table(figures)
    say("\n" + table)
    lines = [
        f"Command: `{command.strip()}` (from the repository root, in `.venv`); "
        f"{elapsed / 60:.1f} minutes.",
        "",
        "Machine: "
        + "; ".join(f"{k}: {v}" for k, v in facts.items())
        + f"; parallel capacity at start: {args.workers} CPU-bound processes got "
        f"{capacity:.2f} cores' worth.",
        "",
        table,
    ]
    say("\n".join(lines[:3]))
    if args.markdown:
        args.markdown.write_text("\n".join(lines) + "\n")
        say(f"wrote {args.markdown}")
    return 0


def _run(name: str, args: argparse.Namespace, rounds: int) -> list[Figure]:
    quick = args.quick
    say("")
    if name == "core":
        from benchmarks import core

        return core.run(rounds)
    if name == "dispatch":
        from benchmarks import dispatch

        return dispatch.run(direct=not quick)
    if name == "worker":
        from benchmarks import worker

        return worker.run(rounds, points=10**5 if quick else 10**6)
    if name == "local":
        from benchmarks import local

        shards = args.shards or (60 if quick else 400)
        return local.run(shards, 100, args.workers, rounds, lithops=not args.no_lithops)
    if name == "runs":
        from benchmarks import runs

        return runs.run(count=200 if quick else 1000, rounds=rounds)
    if name == "coldstart":
        from benchmarks import cold_start

        return cold_start.run(rounds)
    from benchmarks import scale

    if quick:
        return scale.run(args.workers, rounds, points=100_000, shards=1_000)
    return scale.run(args.workers, rounds)


def _table(figures: list[Figure]) -> str:
    rows = ["| # | figure | measured | target | verdict |", "| --- | --- | --- | --- | --- |"]
    for f in figures:
        name = f.name.strip()
        rows.append(f"| {f.number} | {name} | {f.value} | {f.target} | {f.verdict} |")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
