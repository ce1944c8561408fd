"""The ``sweep`` command line.

User errors end with a message on stderr and exit code 2 (no traceback). ``run --wait`` and
``redrive --wait`` exit 1 when the run settles with failed shards, so scripts notice.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweep_core.named_queries import QUERY_NAMES, QueryError

if TYPE_CHECKING:
    from runtime.local.runner import StartedRunner
    from sweep_core.runs import RunStatus
    from sweep_sdk.client import Run, Target

# Each command imports what it needs: ``sweep run`` starts the embedded target's runner first,
# so that the runner and its workers start up while the command validates and plans.


class UserError(Exception):
    """A mistake the user can fix; printed without a traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
        return result
    except Exception as exc:
        code = _user_error(exc)
        if code is None:
            raise
        return code


def _user_error(exc: Exception) -> int | None:
    """Print a mistake the user can fix and return the exit code; None for anything else."""
    if isinstance(exc, UserError | LookupError | QueryError | TimeoutError):
        print(f"sweep: {exc}", file=sys.stderr)  # a missing file imports nothing more
        return 2
    from sweep_core.convert import ContractError
    from sweep_sdk.errors import SubmitError

    if isinstance(exc, ContractError):
        print("invalid sweep request:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    if isinstance(exc, SubmitError):
        print(f"sweep: {exc}", file=sys.stderr)
        return 2
    return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sweep", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    schema = commands.add_parser("schema", help="print the JSON Schema of a sweep request")
    schema.set_defaults(handler=_schema)

    plan = commands.add_parser("plan", help="validate a spec and show how it would be sharded")
    plan.add_argument("spec", type=Path, help="sweep request JSON file")
    plan.add_argument("--json", action="store_true", help="print one JSON object")
    plan.set_defaults(handler=_plan)

    run = commands.add_parser("run", help="submit a sweep (its shards run in the background)")
    run.add_argument("spec", type=Path, help="sweep request JSON file")
    _target_options(run)
    run.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    run.add_argument("--wait", action="store_true", help="wait until every shard has settled")
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.set_defaults(handler=_run)

    status = commands.add_parser("status", help="shards succeeded, failed and missing")
    status.add_argument("run_id")
    _target_options(status)
    status.add_argument("--wait", action="store_true", help="wait until every shard has settled")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(handler=_status)

    results = commands.add_parser("results", help="write a run's points to Parquet or CSV")
    results.add_argument("run_id")
    results.add_argument("--out", type=Path, required=True, help="FILE.parquet or FILE.csv")
    _target_options(results)
    results.set_defaults(handler=_results)

    redrive = commands.add_parser("redrive", help="re-run only the shards without a success")
    redrive.add_argument("run_id")
    _target_options(redrive)
    redrive.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    redrive.add_argument("--wait", action="store_true", help="wait until every shard has settled")
    redrive.add_argument("--json", action="store_true", help="print one JSON object")
    redrive.set_defaults(handler=_redrive)

    query = commands.add_parser(
        "query", help="run Athena SQL over a run (DuckDB locally); ? takes the run id"
    )
    query.add_argument("run_id")
    what = query.add_mutually_exclusive_group(required=True)
    what.add_argument("sql", nargs="?", help="one SQL statement")
    what.add_argument("--name", choices=QUERY_NAMES, help="a shipped query")
    _target_options(query)
    query.add_argument("--json", action="store_true", help="print rows as JSON lines")
    query.set_defaults(handler=_query)

    report = commands.add_parser(
        "report", help="write PNG figures and one self-contained HTML page about a run"
    )
    report.add_argument("run_id")
    report.add_argument("--out", type=Path, help="folder for the files (default report-RUN_ID)")
    report.add_argument("--metric", help="metric to plot over the axes (default: the first)")
    _target_options(report)
    report.set_defaults(handler=_write_report)

    compact = commands.add_parser(
        "compact",
        help="rewrite a finished run's shard objects into a few large Parquet files "
        "(embedded target; every query answer stays the same)",
    )
    compact.add_argument("run_id")
    compact.add_argument(
        "--data-dir", help="data folder of the embedded target (default $SWEEP_DATA_DIR or .sweep)"
    )
    compact.add_argument("--json", action="store_true", help="print one JSON object")
    compact.set_defaults(handler=_compact)

    serve = commands.add_parser(
        "serve", help="a local HTTP gateway (POST /runs, GET /runs/{id}) over the embedded target"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--data-dir", help="data folder (default $SWEEP_DATA_DIR or .sweep)")
    serve.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    serve.add_argument(
        "--auth",
        action="store_true",
        help="require requests signed with SigV4 by your current AWS credentials, "
        "as API Gateway's AWS_IAM authorization does",
    )
    serve.add_argument("--region", default="us-east-1", help="region signatures must name")
    serve.set_defaults(handler=_serve)

    openapi = commands.add_parser("openapi", help="print the API's OpenAPI document")
    openapi.add_argument("--parent-invoke-arn", default="${parent_invoke_arn}")
    openapi.add_argument("--region", default="${region}")
    openapi.set_defaults(handler=_openapi)
    return parser


def _target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", help="data folder of the embedded target (default $SWEEP_DATA_DIR or .sweep)"
    )
    parser.add_argument(
        "--target",
        help="'embedded', or saved `pulumi stack output --json` of a deployed stack "
        "(default: $SWEEP_API_URL and friends if set, else embedded)",
    )


def read_spec(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"no such spec file: {path}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON: {exc}") from None


def _schema(args: argparse.Namespace) -> int:
    from sweep_core.schema import request_json_schema

    print(json.dumps(request_json_schema(), indent=2))
    return 0


def _plan(args: argparse.Namespace) -> int:
    from sweep_core.planning import plan_shards
    from sweep_core.validation import validate_request

    sized = validate_request(read_spec(args.spec))
    request, points = sized.request, sized.point_count
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


def _target(args: argparse.Namespace, runner: StartedRunner | None = None) -> Target:
    from sweep_sdk.client import resolve_target

    # Detached: embedded workers live in their own process, so this command may exit (or be
    # interrupted while waiting) without stopping the run.
    return resolve_target(
        args.target, data_dir=args.data_dir, workers=getattr(args, "workers", None), detach=True,
        runner=runner,
    )  # fmt: skip


def _early_runner(args: argparse.Namespace) -> StartedRunner | None:
    """The embedded target's runner, started before this command imports what validation and
    planning need; the tasks follow on its stdin. None for a remote target."""
    from runtime.local.runner import FROM_STDIN, EmbeddedSettings, start_runner
    from sweep_sdk.targets import embedded_chosen

    if not embedded_chosen(args.target, args.data_dir):
        return None
    # The target works its settings out the same way, and uses this runner only if they match.
    return start_runner(EmbeddedSettings.resolve(args.data_dir, args.workers), FROM_STDIN)


def _open(args: argparse.Namespace) -> Run:
    from sweep_sdk.client import Run

    run = Run(args.run_id, _target(args))
    _ = run.manifest
    return run


def _run(args: argparse.Namespace) -> int:
    spec = read_spec(args.spec)
    runner = _early_runner(args)
    try:
        target = _target(args, runner)
        accepted = target.submit(spec)
    except BaseException:
        if runner is not None:
            runner.discard()
        raise
    if runner is not None:
        runner.end_tasks()  # no more: it ends once those it has are done (none: at once)
    from sweep_sdk.client import Run

    run = Run(accepted.run_id, target, accepted)
    if not args.json:
        print(
            f"run {accepted.run_id}: {accepted.point_count:,} points in "
            f"{accepted.shard_count:,} shards" + (" (existing run)" if accepted.existing else "")
        )
    return _settle(run, args) if args.wait else _report(run.status(), run, args, final=False)


def _status(args: argparse.Namespace) -> int:
    run = _open(args)
    return _settle(run, args) if args.wait else _report(run.status(), run, args, final=False)


def _redrive(args: argparse.Namespace) -> int:
    run = _open(args)
    shards = run.redrive()
    if not args.json:
        print(f"run {run.run_id}: dispatched {len(shards)} shard(s) again")
    return _settle(run, args) if args.wait else _report(run.status(), run, args, final=False)


def _settle(run: Run, args: argparse.Namespace) -> int:
    try:
        status = run.wait(progress=not args.json)
    except KeyboardInterrupt:
        print(
            f"\nstopped waiting; the run goes on. Watch it with: sweep status {run.run_id} --wait",
            file=sys.stderr,
        )
        return 130
    return _report(status, run, args, final=True)


def _report(status: RunStatus, run: Run, args: argparse.Namespace, final: bool) -> int:
    summary = {**status.as_dict(), "where": run.target.location}
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{status.succeeded:,} succeeded, {status.failed:,} failed, {status.missing:,} missing"
            f" of {status.total:,} shards ({status.points_total:,} points)"
        )
        if status.failed:
            print(f"  see why: sweep query {run.run_id} --name slowest_shards; "
                  f"re-run failed shards: sweep redrive {run.run_id}")  # fmt: skip
    return 1 if final and (status.failed or status.missing) else 0


def _results(args: argparse.Namespace) -> int:
    table = _open(args).results()
    suffix = args.out.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, args.out)
    elif suffix == ".csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, args.out)
    else:
        raise UserError(f"--out must end in .parquet or .csv, not {args.out.name!r}")
    print(f"wrote {table.num_rows:,} points to {args.out}")
    return 0


def _query(args: argparse.Namespace) -> int:
    from sweep_core.named_queries import named_query

    run = _open(args)
    table = run.query(named_query(args.name) if args.name else args.sql)
    if args.json:
        for row in table.to_pylist():
            print(json.dumps(row, default=str))
    else:
        print(format_table(table.column_names, table.to_pylist()))
    return 0


def _write_report(args: argparse.Namespace) -> int:
    from sweep_sdk.report import ReportError, write_report  # matplotlib: this command only

    run = _open(args)
    try:
        report = write_report(run, args.out or Path(f"report-{run.run_id}"), metric=args.metric)
    except ReportError as exc:
        raise UserError(str(exc)) from None
    for figure in report.figures:
        print(f"wrote {figure.path}")
    print(f"wrote {report.html}")
    return 0


def _compact(args: argparse.Namespace) -> int:
    from sweep_sdk.compact import CompactionError, compact_run
    from sweep_sdk.embedded import EmbeddedTarget

    target = EmbeddedTarget.from_env(args.data_dir)
    target.manifest(args.run_id)  # LookupError (exit 2) when there is no such run
    try:
        report = compact_run(target.store, target.layout, args.run_id)
    except CompactionError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print(json.dumps(report.as_dict()))
        return 0
    if report.recovered:
        print(f"finished an interrupted compaction: deleted {report.recovered:,} objects")
    if not report.partitions:
        print(f"run {args.run_id}: nothing to compact")
        return 0
    for part in report.partitions:
        print(
            f"{part.partition}: {part.objects:,} objects -> {len(part.files)} file(s), "
            f"{part.rows:,} rows verified (sha256 {part.digest[:12]})"
        )
    print(f"run {args.run_id}: {report.objects_before:,} objects -> {report.files_after} files")
    return 0


def format_table(columns: list[str], rows: list[dict[str, Any]]) -> str:
    """A plain text table, numbers right-aligned."""
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    numeric = [
        all(isinstance(row[c], int | float) or row[c] is None for row in rows) for c in columns
    ]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric, strict=True)
        )

    out = [line(columns), line(["-" * w for w in widths]), *(line(r) for r in cells)]
    return "\n".join(out) + f"\n({len(rows)} row{'s' if len(rows) != 1 else ''})"


def _cell(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _serve(args: argparse.Namespace) -> int:
    from sweep_sdk.embedded import EmbeddedTarget
    from sweep_sdk.gateway import run_forever, serve

    credentials = None
    if args.auth:
        import botocore.session

        found = botocore.session.Session().get_credentials()
        if found is None:
            raise UserError("--auth needs AWS credentials (none found in the usual chain)")
        frozen = found.get_frozen_credentials()
        credentials = {frozen.access_key: frozen.secret_key}
    # Not detached: the server process runs the workers itself.
    target = EmbeddedTarget.from_env(args.data_dir, workers=args.workers)
    server = serve(target, args.host, args.port, credentials=credentials, region=args.region)
    print(f"sweep gateway on {server.url} (data in {target.data_dir}); Ctrl-C stops it")
    run_forever(server)
    return 0


def _openapi(args: argparse.Namespace) -> int:
    from sweep_core.openapi import openapi_document

    print(json.dumps(openapi_document(args.parent_invoke_arn, args.region), indent=2))
    return 0
