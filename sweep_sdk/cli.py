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
    from sweep_core.kernels import Kernel, Registered
    from sweep_core.runs import RunStatus
    from sweep_sdk.client import Run, Target

# Each command imports what it needs: ``sweep run`` starts the embedded target's runner first,
# so that the runner and its workers start up while the command validates and plans.


class UserError(Exception):
    """A mistake the user can fix; printed without a traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # An SQL text after options (``sweep query RUN --data-dir D "SQL"``): argparse gives
    # positionals their values before the first option, so take it here.
    if extra and getattr(args, "accepts_sql", False) and args.sql is None and len(extra) == 1:
        args.sql, extra = extra[0], []
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
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
    if isinstance(exc, PermissionError):
        where = f": {exc.filename}" if exc.filename else ""
        print(f"sweep: permission denied{where} (is the data folder writable?)", file=sys.stderr)
        return 2
    from sweep_core.convert import ContractError
    from sweep_core.runs import CommitError
    from sweep_sdk.errors import RepairError, SubmitError

    if isinstance(exc, CommitError | RepairError):
        print(f"sweep: {exc}", file=sys.stderr)
        return 2
    if isinstance(exc, ContractError):
        print("invalid sweep request:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    if isinstance(exc, SubmitError):
        print(f"sweep: {exc}", file=sys.stderr)
        return 2
    return None


DESCRIPTION = """Fan a numeric parameter sweep out over local worker processes or AWS Lambda,
and follow, query and report its runs. A RUN is a run id, 'latest', or a unique start of a run
id. User errors exit with code 2; 'run --wait' and 'redrive --wait' exit 1 when the run settles
with failed shards."""


class _HelpFormatter(argparse.HelpFormatter):
    """Every option says its default, unless it has none or says it itself."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default in (None, False, argparse.SUPPRESS)
            or action.option_strings == []
        ):
            return text
        return f"{text} (default: %(default)s)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sweep", description=DESCRIPTION, formatter_class=_HelpFormatter
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=help, description=help[0].upper() + help[1:] + ".",
            formatter_class=_HelpFormatter,
        )  # fmt: skip

    schema = command("schema", "print the JSON Schema of a sweep request")
    schema.add_argument(
        "--kernel", help="with this kernel's parameters typed (default: any kernel, untyped)"
    )
    schema.set_defaults(handler=_schema)

    kernels = command(
        "kernels",
        "list the registered kernels (entry points and $SWEEP_KERNELS); "
        "`kernels check NAME` tests one before a big sweep",
    )
    kernels.add_argument("--json", action="store_true", help="print one JSON object")
    kernels.set_defaults(handler=_kernels)
    kernel_commands = kernels.add_subparsers(metavar="check", required=False)
    check = kernel_commands.add_parser(
        "check",
        help="evaluate sample points alone and in several batchings; fail unless identical, "
        "of the declared dtypes and shapes, and finite",
        formatter_class=_HelpFormatter,
    )
    check.add_argument("name", help="the kernel")
    check.add_argument("--points", type=int, default=64, help="sample points")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(handler=_check_kernel)

    plan = command("plan", "validate a spec and show its axes and shards; runs nothing")
    plan.add_argument("spec", type=Path, help="sweep request JSON file")
    plan.add_argument("--json", action="store_true", help="print one JSON object, every shard")
    plan.add_argument(
        "--estimate",
        action="store_true",
        help="time a short local sample of the kernel and estimate the run's time and cost",
    )
    plan.add_argument(
        "--workers", type=int, help="local workers to estimate for (default: one per core)"
    )
    plan.add_argument(
        "--memory-mb", type=int, default=1769, help="Lambda worker memory to estimate for"
    )
    plan.add_argument(
        "--arch", choices=("arm64", "x86_64"), default="arm64", help="Lambda architecture"
    )
    plan.set_defaults(handler=_plan)

    run = command("run", "submit a sweep (its shards run in the background)")
    run.add_argument("spec", type=Path, help="sweep request JSON file")
    _target_options(run)
    _workers_option(run)
    run.add_argument("--wait", action="store_true", help="wait until every shard has settled")
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.set_defaults(handler=_run)

    runs = command("runs", "list the runs, newest first")
    runs.add_argument(
        "--since", help="only runs created on or after DATE (YYYY-MM-DD), UTC (default: any date)"
    )
    runs.add_argument(
        "--label", metavar="TEXT", help="only runs whose label contains TEXT (default: any)"
    )
    runs.add_argument("--kernel", help="only runs of this kernel (default: any)")
    _target_options(runs)
    runs.add_argument("--json", action="store_true", help="print one JSON object per run")
    runs.set_defaults(handler=_runs)

    status = command("status", "shards succeeded, failed and missing")
    _run_argument(status, optional=True)
    _target_options(status)
    status.add_argument("--wait", action="store_true", help="wait until every shard has settled")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(handler=_status)

    cancel = command("cancel", "stop a run: no more of its shards start")
    _run_argument(cancel)
    _target_options(cancel)
    cancel.add_argument("--json", action="store_true", help="print one JSON object")
    cancel.set_defaults(handler=_cancel)

    results = command("results", "write a run's points to Parquet, CSV or NetCDF")
    _run_argument(results)
    results.add_argument(
        "--out",
        type=Path,
        required=True,
        help="FILE.parquet, FILE.csv or FILE.nc (NetCDF needs the xarray extra)",
    )
    _target_options(results)
    results.set_defaults(handler=_results)

    redrive = command("redrive", "re-run only the shards without a success")
    _run_argument(redrive)
    _target_options(redrive)
    _workers_option(redrive)
    redrive.add_argument(
        "--force", action="store_true", help="redrive a cancelled run (its cancel is overridden)"
    )
    redrive.add_argument("--wait", action="store_true", help="wait until every shard has settled")
    redrive.add_argument("--json", action="store_true", help="print one JSON object")
    redrive.add_argument(
        "--repair",
        action="store_true",
        help="also re-run the shards whose committed points `sweep verify` finds damaged",
    )
    redrive.add_argument(
        "--allow-kernel-change",
        action="store_true",
        help="redrive even if the kernel's version changed since the run was submitted",
    )
    redrive.set_defaults(handler=_redrive)

    verify = command("verify", "check every committed points object of a run against its commit")
    _run_argument(verify, optional=True)
    _target_options(verify)
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.set_defaults(handler=_verify)

    query = command("query", "run Athena SQL over a run (DuckDB locally); each ? takes the run id")
    _run_argument(query)
    query.add_argument("sql", nargs="?", help="one SQL statement (or --name)")
    query.add_argument(
        "--name",
        choices=QUERY_NAMES,
        help="a shipped query instead of SQL (default: the SQL given)",
    )
    _target_options(query)
    query.add_argument("--json", action="store_true", help="print rows as JSON lines")
    query.set_defaults(handler=_query, accepts_sql=True)

    report = command("report", "write PNG figures and one self-contained HTML page about a run")
    _run_argument(report)
    report.add_argument("--out", type=Path, help="folder for the files (default: report-RUN_ID)")
    report.add_argument("--metric", help="metric to plot over the axes (default: the first)")
    report.add_argument("--open", action="store_true", help="open the page in the web browser")
    _target_options(report)
    report.set_defaults(handler=_write_report)

    compact = command(
        "compact",
        "rewrite a settled run's shard objects into a few large Parquet files "
        "(embedded target; every query answer stays the same)",
    )
    _run_argument(compact)
    _data_dir_option(compact)
    compact.add_argument("--json", action="store_true", help="print one JSON object")
    compact.set_defaults(handler=_compact)

    serve = command("serve", "a local HTTP gateway (the deployed API) over the embedded target")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on")
    _data_dir_option(serve)
    _workers_option(serve)
    serve.add_argument(
        "--auth",
        action="store_true",
        help="require requests signed with SigV4 by your current AWS credentials, "
        "as API Gateway's AWS_IAM authorization does",
    )
    serve.add_argument("--region", default="us-east-1", help="region signatures must name")
    serve.set_defaults(handler=_serve)

    openapi = command("openapi", "print the API's OpenAPI document")
    openapi.add_argument(
        "--parent-invoke-arn",
        default="${parent_invoke_arn}",
        help="the parent function's invoke ARN, or a placeholder for the stack to fill",
    )
    openapi.add_argument("--region", default="${region}", help="AWS region, or a placeholder")
    openapi.set_defaults(handler=_openapi)
    return parser


def _run_argument(parser: argparse.ArgumentParser, optional: bool = False) -> None:
    if optional:
        parser.add_argument(
            "run_id", nargs="?", default="latest", metavar="RUN",
            help="a run id, 'latest', or a unique start of a run id (default: latest)",
        )  # fmt: skip
    else:
        parser.add_argument(
            "run_id", metavar="RUN", help="a run id, 'latest', or a unique start of a run id"
        )


def _workers_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers", type=_workers, help="worker processes of the embedded target (default: one "
        "per core)",
    )  # fmt: skip


def _data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", help="data folder of the embedded target (default: $SWEEP_DATA_DIR or "
        ".sweep)",
    )  # fmt: skip


def _target_options(parser: argparse.ArgumentParser) -> None:
    _data_dir_option(parser)
    parser.add_argument(
        "--target",
        help="'embedded', or saved `pulumi stack output --json` of a deployed stack "
        "(default: $SWEEP_API_URL and friends if set, else embedded)",
    )


MAX_SPEC_BYTES = 4 * 1024 * 1024  # sweep_core.validation.MAX_REQUEST_BYTES, without its imports


def read_spec(path: Path) -> Any:
    """The spec file's JSON; ``UserError`` naming the file for anything that keeps it from
    being read (missing, a directory, unreadable, too large, not UTF-8, not JSON)."""
    try:
        if path.is_dir():
            raise UserError(f"{path} is a directory, not a spec file")
        size = path.stat().st_size
        if size > MAX_SPEC_BYTES:  # before reading it: a 52 MB file is refused at once
            raise UserError(f"{path} is {size:,} bytes; a sweep request is at most "
                            f"{MAX_SPEC_BYTES:,}")  # fmt: skip
        return json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise UserError(f"no such spec file: {path}") from None
    except PermissionError:
        raise UserError(f"cannot read {path}: permission denied") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise UserError(f"{path} is not valid JSON: nested too deeply") from None


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _schema(args: argparse.Namespace) -> int:
    from sweep_core.schema import kernel_request_json_schema, request_json_schema

    if args.kernel is None:
        print(json.dumps(request_json_schema(), indent=2))
        return 0
    print(json.dumps(kernel_request_json_schema(_kernel(args.kernel).spec), indent=2))
    return 0


def _kernel(name: str) -> Kernel:
    from sweep_core.kernels import KERNELS

    try:
        return KERNELS[name]
    except KeyError:
        raise UserError(KERNELS.describe_unknown(name)) from None


def _kernels(args: argparse.Namespace) -> int:
    """Every registered kernel; exit 1 when a source is broken (the others are still listed)."""
    from sweep_core.kernels import KERNELS

    described = [_describe_kernel(KERNELS.registered(name)) for name in KERNELS]
    problems = [str(p) for p in KERNELS.problems]
    if args.json:
        print(json.dumps({"kernels": described, "problems": problems}, indent=2))
    else:
        for kernel in described:
            print(f"{kernel['name']} (version {kernel['version']}, {kernel['source']})")
            print(f"  {kernel['doc']}")
            for p in kernel["params"]:
                default = "" if p["default"] is None else f", default {p['default']!r}"
                print(f"  param  {p['name']}: {p['kind']} {p['bounds']}{default} - {p['doc']}")
            for m in kernel["metrics"]:
                print(f"  metric {m['name']}: {m['kind']} - {m['doc']}")
        if not described:
            print("no kernels are registered")
        for problem in problems:
            print(f"sweep: broken kernel source: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _describe_kernel(registered: Registered) -> dict[str, Any]:
    spec = registered.kernel.spec
    return {
        "name": spec.name,
        "version": spec.version,
        "source": str(registered.source),
        "doc": spec.doc,
        "params": [
            {
                "name": p.name,
                "kind": p.kind,
                "low": p.low,
                "high": p.high,
                "choices": list(p.choices),
                "bounds": p.bounds_text(),
                "default": p.default,
                "doc": p.doc,
            }
            for p in spec.params
        ],
        "metrics": [{"name": m.name, "kind": m.kind, "doc": m.doc} for m in spec.metrics],
    }


def _check_kernel(args: argparse.Namespace) -> int:
    from sweep_sdk.kernel_check import check_kernel, describe

    if args.points < 2:
        raise UserError(f"--points must be at least 2, not {args.points}")
    report = check_kernel(_kernel(args.name), points=args.points)
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        for line in describe(report):
            print(line)
    return 0 if report.passed else 1


def _plan(args: argparse.Namespace) -> int:
    from sweep_sdk.plan import estimate_run, plan_summary

    summary = plan_summary(read_spec(args.spec))
    request = summary.pop("_request")
    if args.estimate:
        summary["estimate"] = estimate_run(
            request, summary, workers=args.workers, memory_mb=args.memory_mb, arch=args.arch
        )
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"kernel {summary['kernel']}, {summary['sampling']} sampling, seed {summary['seed']}")
    print(f"{summary['points']:,} points in {summary['shards']:,} shards "
          f"({summary['smallest_shard']:,} to {summary['largest_shard']:,} points each); "
          f"a shard task is at most {summary['task_bytes']:,} bytes")  # fmt: skip
    print("axes:")
    for axis in summary["axes"]:
        size = "sampled" if axis["size"] is None else f"{axis['size']:,} values"
        print(f"  {axis['name']}: {axis['form']}, {size}")
    shards = summary["shard_ranges"]
    shown = shards if len(shards) <= 8 else [*shards[:4], None, *shards[-3:]]
    print(f"{'shard':>8} {'start':>14} {'end':>14} {'points':>10}")
    for r in shown:
        if r is None:
            print(f"{'...':>8}")
        else:
            print(f"{r['shard']:>8,} {r['start']:>14,} {r['end']:>14,} {r['points']:>10,}")
    print(f"({len(shards):,} shards)")
    if args.estimate:
        _print_estimate(summary["estimate"])
    return 0


def _print_estimate(estimate: dict[str, Any]) -> None:
    local, cloud = estimate["local"], estimate["lambda"]
    print(
        f"estimate, from {estimate['sample_points']:,} sample points at "
        f"{estimate['points_per_second']:,.0f} points/s on one core here:"
    )
    print(f"  locally on {local['workers']} workers: about {_duration(local['seconds'])}")
    print(
        f"  on Lambda ({cloud['memory_mb']} MB, {cloud['arch']}): about "
        f"{cloud['gb_seconds']:,.0f} GB-s and {cloud['requests']:,} requests, "
        f"${cloud['cost_usd']:,.4f} at public on-demand prices (an estimate; free tier and "
        "taxes not counted)"
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:,.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds / 3600:,.1f} h"


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

    target = _target(args)
    run = Run(target.resolve(args.run_id), target)
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
    from sweep_core.run_index import RunCancelled

    run = _open(args)
    try:
        shards = run.redrive(
            force=args.force, repair=args.repair, allow_kernel_change=args.allow_kernel_change
        )
    except RunCancelled as exc:
        raise UserError(str(exc)) from None
    if not args.json:
        print(f"run {run.run_id}: dispatched {len(shards)} shard(s) again")
    return _settle(run, args) if args.wait else _report(run.status(), run, args, final=False)


def _cancel(args: argparse.Namespace) -> int:
    run = _open(args)
    record = run.cancel()
    if args.json:
        print(json.dumps({"run_id": run.run_id, "cancelled_at": record.created_at}))
    else:
        print(
            f"run {run.run_id}: cancelled at {record.created_at}; no more shards start "
            f"(running ones finish). Run the rest later with: sweep redrive {run.run_id} --force"
        )
    return 0


def _runs(args: argparse.Namespace) -> int:
    from sweep_sdk.client import RUN_LIST_COLUMNS

    try:
        rows = _target(args).runs(since=args.since, label=args.label, kernel=args.kernel)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        for row in rows:
            print(json.dumps(row.as_dict()))
        return 0
    listed = [{**row.as_dict(), "created_at": row.created_at[:19]} for row in rows]
    print(format_table(list(RUN_LIST_COLUMNS), listed))
    return 0


def _verify(args: argparse.Namespace) -> int:
    run = _open(args)
    problems = run.verify()
    if args.json:
        print(json.dumps({"run_id": run.run_id, "problems": [p.as_dict() for p in problems]}))
    elif problems:
        for problem in problems:
            print(problem)
        print(f"re-run them: sweep redrive {run.run_id} --repair")
    else:
        print(f"run {run.run_id}: every committed points object matches its commit")
    return 1 if problems else 0


def _settle(run: Run, args: argparse.Namespace) -> int:
    from sweep_sdk.errors import RunnerGone

    try:
        status = run.wait(progress=not args.json)
    except RunnerGone as exc:
        print(f"sweep: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"\nstopped waiting; the run goes on. Watch it with: sweep status {run.run_id} "
            f"--wait; stop it with: sweep cancel {run.run_id}",
            file=sys.stderr,
        )
        return 130
    return _report(status, run, args, final=True)


def _report(status: RunStatus, run: Run, args: argparse.Namespace, final: bool) -> int:
    summary = {**status.as_dict(), "where": run.target.location}
    if args.json:
        print(json.dumps(summary))
    else:
        lost = f" ({status.lost:,} lost: the runner is gone)" if status.lost else ""
        print(
            f"{status.succeeded:,} succeeded, {status.failed:,} failed, {status.missing:,} missing"
            f"{lost} of {status.total:,} shards ({status.points_total:,} points)"
        )
        if status.cancelled:
            print(f"  cancelled: {status.cancelled:,} of the failed shards were never run")
        if status.lost:
            print(f"  finish the run: sweep redrive {run.run_id}")
        if status.failed:
            print(f"  see why: sweep query {run.run_id} --name slowest_shards; "
                  f"re-run failed shards: sweep redrive {run.run_id}")  # fmt: skip
    return 1 if final and (status.failed or status.missing) else 0


def _results(args: argparse.Namespace) -> int:
    run = _open(args)
    table = run.results()
    suffix = args.out.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, args.out)
    elif suffix == ".csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, args.out)
    elif suffix == ".nc":
        from sweep_sdk.arrays import results_dataset

        try:
            dataset = results_dataset(run.manifest, table)
        except ImportError as exc:
            raise UserError(str(exc)) from None
        dataset.to_netcdf(args.out)
    else:
        raise UserError(f"--out must end in .parquet, .csv or .nc, not {args.out.name!r}")
    print(f"wrote {table.num_rows:,} points to {args.out}")
    return 0


def _query(args: argparse.Namespace) -> int:
    from sweep_core.named_queries import named_query

    if (args.sql is None) == (args.name is None):
        raise UserError("give one SQL statement or --name of a shipped query, not both")
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
    if args.open:
        import webbrowser

        if not webbrowser.open(Path(report.html).resolve().as_uri()):
            print("no web browser to open it with here", file=sys.stderr)
    return 0


def _compact(args: argparse.Namespace) -> int:
    from sweep_sdk.compact import CompactionError, compact_run
    from sweep_sdk.embedded import EmbeddedTarget

    target = EmbeddedTarget.from_env(args.data_dir)
    args.run_id = target.resolve(args.run_id)
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
