"""Mutants run, killed and surviving per module, from what ``mutmut run`` left in ``mutants/``.

    python scripts/mutation_report.py [--min-killed 0.9]

Prints one Markdown table row per module and every surviving mutant by name (``mutmut show
NAME`` prints its diff). Exits 1 when a module kills less than ``--min-killed`` of the mutants
its tests ran, so ``make mutation`` fails when a promise loses its test.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

# A mutant is detected when a test fails on it or it makes a test run far past its normal
# time (an endless loop); "no tests" means no selected test calls the mutated function.
KILLED = {1, 3}
TIMEOUT = {-24, 24, 36, 152, 255}
SURVIVED = {0}
NO_TESTS = {5, 33}


def results(root: Path) -> dict[str, dict[str, int | None]]:
    """Exit code by mutant name, per module (``a.b.c``), of the mutants a run checked."""
    by_module: dict[str, dict[str, int | None]] = {}
    for meta in sorted(root.rglob("*.py.meta")):
        module = ".".join(meta.relative_to(root).with_suffix("").with_suffix("").parts)
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        checked = {name: code for name, code in codes.items() if code is not None}
        if checked:
            by_module[module] = checked
    return by_module


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=Path, default=Path("mutants"))
    parser.add_argument("--min-killed", type=float, default=0.9)
    args = parser.parse_args(argv)

    by_module = results(args.mutants)
    if not by_module:
        print(f"no checked mutants under {args.mutants}: run `make mutation` first")
        return 1
    print("| module | mutants run | killed | surviving | no tests | killed % |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    short: list[str] = []
    survivors: list[str] = []
    totals: Counter[str] = Counter()
    for module, codes in by_module.items():
        kinds = Counter(_kind(code) for code in codes.values())
        run = kinds["killed"] + kinds["survived"]
        share = kinds["killed"] / run if run else 1.0
        totals.update(kinds)
        print(
            f"| {module} | {run} | {kinds['killed']} | {kinds['survived']} "
            f"| {kinds['no tests']} | {100 * share:.1f} |"
        )
        if share < args.min_killed:
            short.append(module)
        survivors += sorted(n for n, c in codes.items() if _kind(c) == "survived")
    run = totals["killed"] + totals["survived"]
    print(
        f"| **all** | {run} | {totals['killed']} | {totals['survived']} "
        f"| {totals['no tests']} | {100 * totals['killed'] / max(run, 1):.1f} |"
    )
    if survivors:
        print("\nsurviving mutants (`mutmut show NAME` prints each diff):")
        print("\n".join(f"  {name}" for name in survivors))
    if short:
        print(f"\nunder {args.min_killed:.0%} killed: {', '.join(short)}")
        return 1
    return 0


def _kind(code: int | None) -> str:
    if code in KILLED or code in TIMEOUT:
        return "killed"
    if code in SURVIVED:
        return "survived"
    if code in NO_TESTS:
        return "no tests"
    return "other"


if __name__ == "__main__":
    raise SystemExit(main())
