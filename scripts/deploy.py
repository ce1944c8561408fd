"""Deploy the sweep stack: preflight, build, save the current state, ``pulumi up``.

    python scripts/deploy.py [--stack sandbox] [--profile NAME] [--yes]
                             [--allow-long-lived-keys] [--min-validity-minutes 15]

1. Preflight, before anything is built: a valid AWS session (STS GetCallerIdentity) with
   temporary credentials (a session token, valid for at least ``--min-validity-minutes``;
   long-lived keys only with ``--allow-long-lived-keys``), a region, and a logged-in Pulumi CLI.
   A failure prints its fix (``aws sso login --profile NAME`` or ``aws login``) and exits 2.
   The account's Lambda concurrency must leave the worker's reserved concurrency plus the 100
   unreserved executions Lambda insists on (``GetAccountSettings``); new accounts often have a
   limit of 10, and the deploy would fail half way.
2. Build the code zip and layers for the stack's runtime and architecture (``infra/packaging``,
   cached: the Pulumi program then finds them built; exits 1 if the build cannot succeed).
3. Save ``pulumi stack export`` of the current state under ``.stack-exports/<stack>/``
   (git-ignored): what a rollback restores.
4. ``pulumi up --stack <stack>`` with ``sweep:useExistingArtifacts=false`` (undoing a rollback)
   and no prebuilt zips named, so the program deploys the build it finds cached, exactly as a
   plain ``pulumi up`` would; Pulumi shows the preview and asks unless ``--yes``. Then the new
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

import boto3
import build_artifacts as ba
from _aws_session import PreflightFailed, concurrency_problem, preflight
from _stack import EXPORTS, Pulumi, StackError, child_env, save_export

Build = Callable[[ba.Target, tuple[str, ...]], ba.BuildResult]
"""Builds the artifacts for a target with the stack's kernel packages (``sweep:kernelPackages``),
as the program will look for them in its cache."""


def default_build(target: ba.Target, kernel_packages: tuple[str, ...] = ()) -> ba.BuildResult:
    return ba.build(target, kernel_packages=kernel_packages)


def main(
    argv: Sequence[str] | None = None,
    *,
    build: Build = default_build,
    env: Mapping[str, str] | None = None,
    sts: Any | None = None,
    lambda_client: Any | None = None,
    now: datetime | None = None,
    exports: Path = EXPORTS,
) -> int:
    """Run the deploy; returns the exit code. Tests inject ``build``, ``env``, ``sts`` and
    ``lambda_client``."""
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
        reserved = ba.stack_setting("sweep:workerReservedConcurrency", args.stack)
        client = lambda_client or boto3.Session(profile_name=args.profile).client(
            "lambda", region_name=session.region
        )
        worker = f"{ba.stack_setting('sweep:namePrefix', args.stack) or 'sweep'}-worker"
        problem = concurrency_problem(client, int(reserved) if reserved else 0, worker)
        if problem is not None:
            raise PreflightFailed([problem])
    except PreflightFailed as failed:
        print(failed.report("deploy"), file=sys.stderr)
        return 2
    print(session.describe())
    print(f"building for {target.runtime} {target.arch} ...", flush=True)
    try:
        packages = tuple(ba.parse_packages(ba.stack_setting("kernelPackages", args.stack)))
        result = build(target, packages)
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
    code = pulumi.up(deploy_config(), yes=args.yes)
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


def deploy_config() -> dict[str, str]:
    """What ``pulumi up`` is given: deploy the build (not a rollback's keys), and name no
    prebuilt zip, so the program finds the build cached by its inputs, as a plain ``pulumi up``
    does, and no build path is written into the stack file."""
    values = {ba.USE_EXISTING: "false"}
    values.update({slot.zip_key: "" for slot in ba.SLOTS.values()})
    return values


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
