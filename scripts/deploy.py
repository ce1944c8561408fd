"""Deploy the sweep stack: preflight, build, save the current state, ``pulumi up``.

    python scripts/deploy.py [--stack sandbox] [--profile NAME] [--yes]
                             [--allow-long-lived-keys] [--min-validity-minutes 15]

1. Preflight, before anything is built: a valid AWS session (STS GetCallerIdentity) with
   temporary credentials (a session token, valid for at least ``--min-validity-minutes``;
   long-lived keys only with ``--allow-long-lived-keys``), a region, and a logged-in Pulumi CLI.
   A failure prints its fix (``aws sso login --profile NAME`` or ``aws login``) and exits 2.
2. Build the code zip and layers for the stack's runtime and architecture
   (``scripts/build_artifacts.py``; exits 1 if over budget).
3. Save ``pulumi stack export`` of the current state under ``.stack-exports/<stack>/``
   (git-ignored): what a rollback restores.
4. ``pulumi up --stack <stack>`` with the built zips set in the stack config
   (``sweep:useExistingArtifacts=false``, ``sweep:codeZip``, ``sweep:layerZip``,
   ``sweep:scipyLayerZip``); Pulumi shows the preview and asks unless ``--yes``. Then the new
   state is saved too.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import build_artifacts as ba
from _aws_session import PreflightFailed, preflight
from _stack import EXPORTS, Pulumi, StackError, child_env, save_export

Build = Callable[[ba.Target], ba.BuildResult]


def default_build(target: ba.Target) -> ba.BuildResult:
    return ba.build(target)


def main(
    argv: Sequence[str] | None = None,
    *,
    build: Build = default_build,
    env: Mapping[str, str] | None = None,
    sts: Any | None = None,
    now: datetime | None = None,
    exports: Path = EXPORTS,
) -> int:
    """Run the deploy; returns the exit code. Tests inject ``build``, ``env`` and ``sts``."""
    args = parse_args(argv)
    env = dict(os.environ if env is None else env)
    try:
        target = ba.resolve_target(args.stack)
    except ba.BuildError as exc:
        print(f"deploy refused: {exc}", file=sys.stderr)
        return 2
    try:
        session = preflight(
            profile=args.profile,
            region=ba.stack_setting("sweep:region", args.stack),
            allow_long_lived=args.allow_long_lived_keys,
            min_validity=timedelta(minutes=args.min_validity_minutes),
            env=env,
            now=now,
            sts=sts,
        )
    except PreflightFailed as failed:
        print(failed.report("deploy"), file=sys.stderr)
        return 2
    print(session.describe())
    print(f"building for {target.runtime} {target.arch} ...", flush=True)
    try:
        result = build(target)
    except ba.BuildError as exc:
        print(f"deploy stopped: build failed: {exc}", file=sys.stderr)
        return 1
    print(ba.report(result))
    pulumi = Pulumi(session.pulumi, args.stack, env=child_env(env, args.profile, session.region))
    try:
        before = save_export(pulumi.export(), args.stack, "before-deploy", exports, now)
    except StackError as exc:
        print(f"deploy stopped before any change: {exc}", file=sys.stderr)
        return 1
    print(f"saved the current state: {before}")
    print(f"  (to go back: python scripts/rollback.py --stack {args.stack} --from-export {before})")
    code = pulumi.up(result.config(), yes=args.yes)
    if code != 0:
        rollback = f"python scripts/rollback.py --stack {args.stack} --from-export {before}"
        print(
            f"pulumi up failed ({code}); the state before it is in {before}\n"
            f"roll back with: {rollback}",
            file=sys.stderr,
        )
        return code
    try:
        after = save_export(pulumi.export(), args.stack, "after-deploy", exports, now)
    except StackError as exc:
        print(f"deployed, but the new state could not be saved: {exc}", file=sys.stderr)
        return 1
    print(f"deployed; the new state is saved in {after}")
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(__doc__ or "").split("\n\n", 2)[-1],
    )
    add_session_arguments(parser)
    return parser.parse_args(argv)


def add_session_arguments(parser: argparse.ArgumentParser) -> None:
    """The options deploy and rollback share."""
    parser.add_argument("--stack", default="sandbox", help="the Pulumi stack (default sandbox)")
    parser.add_argument(
        "--profile", help="the AWS profile (default: AWS_PROFILE or the environment)"
    )
    parser.add_argument("--yes", action="store_true", help="skip Pulumi's confirmation prompt")
    parser.add_argument(
        "--allow-long-lived-keys",
        action="store_true",
        help="accept access keys without a session token (refused by default)",
    )
    parser.add_argument(
        "--min-validity-minutes",
        type=int,
        default=15,
        help="refuse temporary credentials that expire sooner (default 15)",
    )


if __name__ == "__main__":
    sys.exit(main())
