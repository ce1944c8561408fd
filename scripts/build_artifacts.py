"""Build the Lambda artifacts, reproducibly: the code zip and the dependency layers.

    python scripts/build_artifacts.py [--stack sandbox] [--arch x86_64|arm64] [--python 3.12]

The Pulumi program builds them itself when they are missing or stale (``infra/packaging``); this
command builds them on their own and prints what each holds. Zips land in
``build/lambda/<arch>-py<version>/<sha256>.zip`` with a ``manifest.json``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: the builder lives in the Pulumi program
    sys.path.insert(0, str(REPO))

from infra.packaging import (  # noqa: E402
    KEY_PATTERN,
    SLOTS,
    USE_EXISTING,
    BuildError,
    BuildResult,
    Target,
    build,
    ensure_built,
    report,
)
from infra.packaging.kernels import parse_packages  # noqa: E402
from infra.packaging.target import MACHINES  # noqa: E402

__all__ = [
    "KEY_PATTERN",
    "SLOTS",
    "USE_EXISTING",
    "BuildError",
    "BuildResult",
    "Target",
    "build",
    "ensure_built",
    "main",
    "parse_packages",
    "report",
    "resolve_target",
    "stack_setting",
]


def stack_setting(name: str, stack: str, repo: Path = REPO) -> str | None:
    """A plain ``sweep:`` value of ``Pulumi.<stack>.yaml`` (flat scalars only), if set."""
    path = repo / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        return None
    pattern = re.compile(rf"^\s+{re.escape(name)}:\s*['\"]?([^'\"#\s]+)['\"]?\s*(#.*)?$")
    for line in path.read_text().splitlines():
        match = pattern.match(line)
        if match:
            return match.group(1)
    return None


def resolve_target(stack: str, arch: str | None = None, python: str | None = None) -> Target:
    """The target named on the command line, else in the stack's settings, else the program's
    defaults (arm64, python3.12)."""
    runtime = stack_setting("sweep:lambdaRuntime", stack) or "python3.12"
    return Target(
        arch or stack_setting("sweep:architecture", stack) or "arm64",
        python or runtime.removeprefix("python"),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--stack",
        default="sandbox",
        help="read sweep:lambdaRuntime and sweep:architecture from Pulumi.<stack>.yaml",
    )
    parser.add_argument("--arch", choices=sorted(MACHINES), help="overrides the stack's")
    parser.add_argument(
        "--python", help="runtime Python version, e.g. 3.12 (overrides the stack's)"
    )
    parser.add_argument("--out", type=Path, help="output folder (default build/lambda/<target>)")
    parser.add_argument(
        "--kernel-packages",
        help="comma-separated kernel package folders or wheels for the kernels layer "
        "(default: the stack's sweep:kernelPackages)",
    )
    args = parser.parse_args(argv)
    chosen = args.kernel_packages
    packages = parse_packages(
        chosen if chosen is not None else stack_setting("kernelPackages", args.stack)
    )
    try:
        target = resolve_target(args.stack, args.arch, args.python)
        t0 = time.perf_counter()
        result = build(target, out=args.out, kernel_packages=packages)
    except BuildError as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    print(report(result))
    print(f"built in {time.perf_counter() - t0:.1f} s; manifest {result.out / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
