"""Roll the stack back to the Lambda artifacts an earlier state ran, byte for byte.

    python scripts/rollback.py --list [--stack sandbox]
    python scripts/rollback.py --from-export .stack-exports/sandbox/<time>-before-deploy.json
    python scripts/rollback.py --version 41        # pulumi stack export --version 41
        [--stack sandbox] [--profile NAME] [--yes] [--dry-run] [--allow-long-lived-keys]

The export says what ran: the S3 key of every function's code (``lambda/code/<sha256>.zip``)
and of every layer version attached to it, and the functions' architecture and runtime. The
rollback redeploys exactly those with ``pulumi up`` and ``sweep:useExistingArtifacts=true``:
the program builds and uploads nothing and points the functions at the existing objects (kept in
the artifacts bucket for this). ``--dry-run`` prints the choice and the command, and runs nothing.
Same preflight as deploy; the state before the rollback is saved too.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import build_artifacts as ba
from _aws_session import PreflightFailed, Session, preflight
from _stack import (
    EXPORTS,
    Pulumi,
    StackError,
    child_env,
    parse_export,
    save_export,
    saved_exports,
    up_args,
)
from attrs import frozen
from deploy import add_session_arguments

FUNCTION = "aws:lambda/function:Function"
LAYER_VERSION = "aws:lambda/layerVersion:LayerVersion"


class RollbackError(RuntimeError):
    """The export does not say unambiguously what ran; the message says why."""


@frozen
class Deployed:
    """The artifacts one state of the stack ran."""

    code_key: str
    layer_keys: dict[str, str]
    """Layer name (``deps``, ``scipy``) → S3 key."""
    architecture: str | None
    runtime: str | None
    functions: tuple[str, ...]

    def config(self) -> dict[str, str]:
        """The stack config that redeploys exactly these artifacts.

        Every artifact key is set, a layer the state did not have to "" (none), so nothing a
        later or earlier deploy left in the stack file leaks into the rollback.
        """
        values = {ba.USE_EXISTING: "true", ba.SLOTS["code"].existing_key: self.code_key}
        for name, slot in ba.SLOTS.items():
            if name != "code":
                values[slot.existing_key] = self.layer_keys.get(name, "")
        if self.architecture:
            values["sweep:architecture"] = self.architecture
        if self.runtime:
            values["sweep:lambdaRuntime"] = self.runtime
        return values

    def describe(self) -> str:
        lines = [f"functions: {', '.join(self.functions)}"]
        lines.append(f"  runtime {self.runtime or '?'}, architecture {self.architecture or '?'}")
        lines.append(f"  code           {self.code_key}")
        for name, key in sorted(self.layer_keys.items()):
            lines.append(f"  layer {name:8s} {key}")
        return "\n".join(lines)


def _props(resource: Mapping[str, Any]) -> dict[str, Any]:
    """A resource's outputs (what AWS reported) over its inputs (what the program asked)."""
    return {**(resource.get("inputs") or {}), **(resource.get("outputs") or {})}


def _plain(value: Any) -> Any:
    # A secret is an object with Pulumi's signature key: its value is not readable here.
    return None if isinstance(value, dict) else value


def deployed_artifacts(export: Mapping[str, Any], source: str = "the export") -> Deployed:
    """What the functions in ``export`` (a ``pulumi stack export`` document) ran.

    Raises
    ------
    RollbackError
        No function in the state, functions on different code or layers, a layer that is not a
        layer version of this stack, or a key that is not a content-addressed artifact key.
    """
    resources = [
        r
        for r in (export.get("deployment") or {}).get("resources") or []
        if not r.get("delete")  # replaced resources awaiting deletion did not run last
    ]
    layer_by_arn = {
        _props(r).get("arn"): _props(r) for r in resources if r.get("type") == LAYER_VERSION
    }
    functions = [r for r in resources if r.get("type") == FUNCTION]
    if not functions:
        raise RollbackError(f"{source} holds no Lambda function: the stack ran nothing then")
    codes: dict[str, list[str]] = {}
    layers: dict[str, dict[str, list[str]]] = {}
    shapes: dict[tuple[str | None, str | None], list[str]] = {}
    names = []
    for function in functions:
        props = _props(function)
        name = str(_plain(props.get("name")) or function.get("urn", "?").rsplit("::", 1)[-1])
        names.append(name)
        codes.setdefault(_artifact_key(props.get("s3Key"), "code", name), []).append(name)
        for arn in props.get("layers") or []:
            layer = layer_by_arn.get(arn)
            if layer is None:
                raise RollbackError(f"{name} uses layer {arn}, which is not in {source}")
            key = _artifact_key(layer.get("s3Key"), None, name)
            slot = _slot_of(key)
            layers.setdefault(slot, {}).setdefault(key, []).append(name)
        architectures = _plain(props.get("architectures")) or [None]
        shapes.setdefault((architectures[0], _plain(props.get("runtime"))), []).append(name)
    if len(codes) != 1:
        raise RollbackError(f"functions in {source} ran different code: {_listed(codes)}")
    for slot, keys in layers.items():
        if len(keys) != 1:
            raise RollbackError(
                f"functions in {source} ran different {slot} layers: {_listed(keys)}"
            )
    if len(shapes) != 1:
        raise RollbackError(f"functions in {source} differ in architecture or runtime: {shapes}")
    (architecture, runtime) = next(iter(shapes))
    return Deployed(
        code_key=next(iter(codes)),
        layer_keys={slot: next(iter(keys)) for slot, keys in layers.items()},
        architecture=architecture,
        runtime=runtime,
        functions=tuple(sorted(names)),
    )


def _artifact_key(value: Any, kind: str | None, function: str) -> str:
    key = _plain(value)
    match = ba.KEY_PATTERN.match(key) if isinstance(key, str) else None
    if match is None:
        raise RollbackError(
            f"{function} runs {key!r}, not a content-addressed artifact "
            "(lambda/<kind>/<sha256>.zip): this state cannot be redeployed by key"
        )
    if kind is not None and match["kind"] != kind:
        raise RollbackError(f"{function} runs code from {key}, which is not a code artifact")
    return str(key)


def _slot_of(key: str) -> str:
    match = ba.KEY_PATTERN.match(key)
    assert match is not None
    for name, slot in ba.SLOTS.items():
        if name != "code" and slot.kind == match["kind"]:
            return name
    raise RollbackError(f"layer artifact {key} is of no known kind ({sorted(ba.SLOTS)})")


def _listed(groups: Mapping[str, list[str]]) -> str:
    return "; ".join(f"{key} ({', '.join(names)})" for key, names in sorted(groups.items()))


def load(path: Path) -> Deployed:
    return deployed_artifacts(parse_export(path.read_text(), str(path)), str(path))


def main(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    sts: Any | None = None,
    now: datetime | None = None,
    exports: Path = EXPORTS,
) -> int:
    """Run the rollback; returns the exit code. Tests inject ``env``, ``sts`` and ``exports``."""
    args = parse_args(argv)
    env = dict(os.environ if env is None else env)
    if args.list:
        return list_exports(args.stack, exports)
    session: Session | None = None
    try:
        if args.from_export is not None:
            source = Path(args.from_export)
            deployed = load(source)
        else:
            session = _preflight(args, env, sts, now)
            pulumi = _pulumi(session, args, env)
            text = pulumi.export(version=args.version)
            source = save_export(text, args.stack, f"version-{args.version}", exports, now)
            deployed = load(source)
    except PreflightFailed as failed:
        print(failed.report("rollback"), file=sys.stderr)
        return 2
    except (RollbackError, StackError, OSError) as exc:
        print(f"rollback refused: {exc}", file=sys.stderr)
        return 2
    config = deployed.config()
    print(f"rolling back {args.stack} to what {source} ran:\n{deployed.describe()}")
    if args.dry_run:
        print("dry run; would run: pulumi " + " ".join(up_args(args.stack, config, args.yes)))
        return 0
    try:
        session = session or _preflight(args, env, sts, now)
        pulumi = _pulumi(session, args, env)
        before = save_export(pulumi.export(), args.stack, "before-rollback", exports, now)
    except PreflightFailed as failed:
        print(failed.report("rollback"), file=sys.stderr)
        return 2
    except StackError as exc:
        print(f"rollback stopped before any change: {exc}", file=sys.stderr)
        return 1
    print(session.describe())
    print(f"saved the current state: {before}")
    try:
        current = load(before)
    except (RollbackError, StackError):
        pass  # the stack runs nothing content-addressed now: nothing to compare
    else:
        if current.config() == config:
            print("the stack already runs exactly these artifacts; pulumi up should change nothing")
        else:
            print(f"it runs now: code {_short(current.code_key)}; rolling back to "
                  f"code {_short(deployed.code_key)}")  # fmt: skip
    code = pulumi.up(config, yes=args.yes)
    if code != 0:
        print(f"pulumi up failed ({code}); the state before it is in {before}", file=sys.stderr)
        return code
    try:
        after = save_export(pulumi.export(), args.stack, "after-rollback", exports, now)
    except StackError as exc:
        print(f"rolled back, but the new state could not be saved: {exc}", file=sys.stderr)
        return 1
    print(f"rolled back; the new state is saved in {after}")
    return 0


def _preflight(
    args: argparse.Namespace, env: Mapping[str, str], sts: Any | None, now: datetime | None
) -> Session:
    return preflight(
        profile=args.profile,
        region=ba.stack_setting("sweep:region", args.stack),
        allow_long_lived=args.allow_long_lived_keys,
        min_validity=timedelta(minutes=args.min_validity_minutes),
        env=env,
        now=now,
        sts=sts,
    )


def _pulumi(session: Session, args: argparse.Namespace, env: Mapping[str, str]) -> Pulumi:
    return Pulumi(session.pulumi, args.stack, env=child_env(env, args.profile, session.region))


def list_exports(stack: str, exports: Path = EXPORTS) -> int:
    """Print the saved exports of ``stack`` with the artifacts each ran, oldest first."""
    paths = saved_exports(stack, exports)
    if not paths:
        print(f"no saved exports of {stack} under {exports / stack}")
        return 0
    for path in paths:
        try:
            deployed = load(path)
        except (RollbackError, StackError) as exc:
            print(f"{path}\n  (not usable: {exc})")
            continue
        layers = ", ".join(f"{n} {_short(k)}" for n, k in sorted(deployed.layer_keys.items()))
        print(
            f"{path}\n  code {_short(deployed.code_key)}; layers {layers or 'none'}; "
            f"{deployed.runtime} {deployed.architecture}"
        )
    return 0


def _short(key: str) -> str:
    match = ba.KEY_PATTERN.match(key)
    return match["sha256"][:12] if match else key


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(__doc__ or "").split("\n\n", 2)[-1],
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--from-export", metavar="FILE", help="a saved pulumi stack export")
    which.add_argument("--version", help="a stack version: pulumi stack export --version N")
    which.add_argument("--list", action="store_true", help="list the saved exports and exit")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    add_session_arguments(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
