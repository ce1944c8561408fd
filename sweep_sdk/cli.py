"""The ``sweep`` command line. User errors end with a message on stderr and exit code 2."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sweep_sdk.convert import ContractError
from sweep_sdk.planning import plan_shards
from sweep_sdk.schema import request_json_schema
from sweep_sdk.space import point_count
from sweep_sdk.validation import parse_request


class UserError(Exception):
    """A mistake the user can fix; printed without a traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
        return result
    except ContractError as exc:
        print("invalid sweep request:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except UserError as exc:
        print(f"sweep: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sweep", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    schema = commands.add_parser("schema", help="print the JSON Schema of a sweep request")
    schema.set_defaults(handler=_schema)

    plan = commands.add_parser("plan", help="validate a spec and show how it would be sharded")
    plan.add_argument("spec", type=Path, help="sweep request JSON file")
    plan.add_argument("--json", action="store_true", help="print one JSON object")
    plan.set_defaults(handler=_plan)
    return parser


def read_spec(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"no such spec file: {path}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON: {exc}") from None


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(request_json_schema(), indent=2))
    return 0


def _plan(args: argparse.Namespace) -> int:
    request = parse_request(read_spec(args.spec))
    points = point_count(request)
    plan = plan_shards(points, request.sharding)
    sizes = plan.bounds[1:] - plan.bounds[:-1]
    summary = {
        "kernel": request.kernel,
        "points": points,
        "shards": plan.shard_count,
        "smallest_shard": int(sizes.min()),
        "largest_shard": int(sizes.max()),
        "axes": {name: axis.form for name, axis in request.axes.items()},
        "sampling": request.sampling.method,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:>15}: {value}")
    return 0
