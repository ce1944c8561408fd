"""The local invoker: shard tasks on a pool of worker processes, supervised the way Lambda is;
``python -m runtime.local.pool`` runs one detached (``runtime.local.runner`` starts it).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from attrs import define, field

from runtime.adapters.local_store import LocalStore
from runtime.local.liveness import link_run, own_runner
from runtime.local.runner import (
    DEFAULT_SHARD_TIMEOUT,
    FROM_STDIN,
    EmbeddedSettings,
    StartedRunner,
    child_env,
    start_runner,
)
from sweep_core.layout import Layout
from sweep_core.ports import utc_now

if TYPE_CHECKING:
    from runtime.handlers.worker import WorkerDeps
    from sweep_core.contract import DispatchSlice, ShardTask, SweepRequest

# The contract and its converter (attrs classes, cattrs) are imported where a task is encoded or
# decoded: the detached runner passes task lines through untouched and starts sooner without.

_HARD_LIMIT_GRACE = 5.0  # beyond the soft deadline the worker checks itself
_QUEUED_LINE_MAX = 16 * 1024  # two tasks in a pipe stay well inside its 64 KiB


class TaskCodec:
    """Shard tasks as JSON lines (``convert.dumps``'s form), the spec done once per run.

    Every task of a run carries the same spec, and encoding or decoding it through cattrs costs
    more than a small shard's points: the encoder reuses the spec's JSON while the spec object
    stays the same, and the decoder reuses the decoded spec while the spec's JSON stays the
    same (compared as text, since key order is meaningful: axes iterate in their given order).
    """

    def __init__(self) -> None:
        self._spec: SweepRequest | None = None
        self._spec_json = ""
        self._version = ""

    def encode(self, task: ShardTask) -> bytes:
        from sweep_core.convert import dumps

        if task.spec is not self._spec:
            self._spec, self._spec_json = task.spec, dumps(task.spec)
        # The fields of ShardTask in their order, exactly as dumps(task) writes them.
        return (
            f'{{"run_id":{json.dumps(task.run_id)},"run_date":{json.dumps(task.run_date)},'
            f'"shard":{task.shard:d},"start":{task.start:d},"end":{task.end:d},'
            f'"spec":{self._spec_json},"schema_version":{json.dumps(task.schema_version)}}}\n'
        ).encode()

    def decode(self, line: str | bytes) -> ShardTask:
        from sweep_core.contract import ShardTask
        from sweep_core.convert import loads, structure

        raw = loads(line)
        spec_raw = raw.get("spec") if isinstance(raw, dict) else None
        spec_json = json.dumps(spec_raw, separators=(",", ":"))
        if self._spec is None or spec_json != self._spec_json:
            task = structure(raw, ShardTask)  # validates everything, the version included
            self._spec, self._spec_json, self._version = task.spec, spec_json, task.schema_version
            return task
        # Same spec as the last task: validate the rest against the contract's types.
        try:
            task = ShardTask(
                run_id=_typed(raw["run_id"], str),
                run_date=_typed(raw["run_date"], str),
                shard=_typed(raw["shard"], int),
                start=_typed(raw["start"], int),
                end=_typed(raw["end"], int),
                spec=self._spec,
                schema_version=_typed(raw["schema_version"], str),
            )
        except (KeyError, TypeError):
            return structure(raw, ShardTask)  # let the contract say what is wrong
        if task.schema_version != self._version:
            return structure(raw, ShardTask)
        return task


def _typed(value: Any, kind: type) -> Any:
    if type(value) is not kind:
        raise TypeError(f"{value!r} is not {kind.__name__}")
    return value


def serve_worker(root: str, prefix: str, timeout: float) -> None:
    """Body of a worker process: one task per line on stdin; on stdout, one report per task:
    the outcome it wrote (or found) as JSON, which the pool puts into the outcome index."""
    from runtime.adapters.local_store import LocalContext
    from runtime.handlers.worker import WorkerDeps, record_failure, run_shard
    from sweep_core.convert import dumps
    from sweep_core.ports import TransientStoreError

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the waiting, not the run
    deps = WorkerDeps(LocalStore(root), Layout(prefix), utc_now)
    codec = TaskCodec()
    for line in sys.stdin:
        task = codec.decode(line)
        try:
            report = dumps(run_shard(task, LocalContext.with_timeout(timeout), deps))
        except TransientStoreError:
            report = _NO_OUTCOME  # run_shard recorded the attempt; its record stays unread
        except Exception as exc:  # a bug, not the kernel's domain: record it, keep serving
            outcome = record_failure(task, "WORKER_ERROR", f"{type(exc).__name__}: {exc}", deps)
            report = dumps(outcome)
        try:
            sys.stdout.write(report + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            # The pool's process has ended (a server stopped mid-run): the shard's records
            # stand, and nobody is left to serve. The exit must not flush into the pipe again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return


_NO_OUTCOME = "-"
"""A worker's report of a task whose outcome it does not hold (one line per task)."""


def _index_reports(root: str, layout: Layout, reports: Sequence[bytes]) -> None:
    """Put the outcomes the workers reported into the data folder's outcome index, so the first
    query after the run takes their rows from there instead of opening each outcome object."""
    from runtime.adapters.outcome_index import OutcomeIndex
    from sweep_core.contract import ShardOutcome
    from sweep_core.convert import loads, structure
    from sweep_core.records import outcome_table

    no_outcome = _NO_OUTCOME.encode()
    try:
        outcomes = [structure(loads(r), ShardOutcome) for r in reports if r.strip() != no_outcome]
        if not outcomes:
            return
        keys = [
            layout.success_key(o.run_id, o.shard)
            if o.status == "success"
            else layout.failure_key(o.run_id, o.shard, o.attempt)
            for o in outcomes
        ]
        OutcomeIndex(Path(root), layout).record(keys, outcome_table(outcomes))
    except Exception:  # a cache: a query reads whatever objects the index lacks
        import logging

        logging.getLogger(__name__).warning("outcome index not updated", exc_info=True)


def _set_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


@define
class _Job:
    """A task as its worker receives it: the JSON line, and the task when already decoded."""

    line: bytes
    task: ShardTask | None = None

    def decoded(self) -> ShardTask:
        from sweep_core.contract import ShardTask
        from sweep_core.convert import loads, structure

        if self.task is None:
            self.task = structure(loads(self.line), ShardTask)
        return self.task


@define
class _LineReader:
    """Whole lines from a pipe as they arrive, for a caller that waits on the pipe itself.

    One unbuffered read of what is there per call: a buffered ``readline`` could take two
    lines from the pipe and return one, and the pipe, then empty, would not wake the caller
    for the other.
    """

    fd: int
    _rest: bytes = b""  # the start of a line not yet ended by its newline

    def read(self) -> list[bytes] | None:
        """The lines ended since the last call (maybe none), or None once the pipe has ended."""
        data = os.read(self.fd, 1 << 16)
        if not data:
            return None
        *lines, self._rest = (self._rest + data).split(b"\n")
        return lines


@define
class _Worker:
    process: subprocess.Popen[bytes]
    reports: _LineReader
    # The jobs written to its stdin, in order; the first is the one it runs.
    jobs: collections.deque[_Job] = field(factory=collections.deque)
    hard_deadline: float = 0.0  # of the first job

    @property
    def stdin(self) -> IO[bytes]:
        assert self.process.stdin is not None
        return self.process.stdin


@define
class WorkerPool:
    """Worker processes fed by a supervisor thread; ``submit`` never blocks on the work.

    The supervisor hands each task to an idle worker process over that worker's own pipe, so it
    always knows which task every process holds. A process that dies (killed, out of memory) or
    outlives the hard time limit becomes a failure record for its shard, as Lambda's on-failure
    destination does in the cloud, and is replaced; a run never hangs on a lost worker. When a
    batch has ended, the pool puts the outcomes its workers reported (the rows they wrote) into
    the data folder's outcome index, so the first query after a run opens no outcome object.
    """

    root: str
    layout: Layout
    workers: int = field(factory=lambda: os.cpu_count() or 1)
    shard_timeout: float = DEFAULT_SHARD_TIMEOUT
    hard_limit_grace: float = _HARD_LIMIT_GRACE
    _pending: collections.deque[_Job] = field(factory=collections.deque)
    _lock: threading.Lock = field(factory=threading.Lock)
    _supervisor: threading.Thread | None = None
    _wake: tuple[mpc.Connection, mpc.Connection] = field(factory=lambda: mp.Pipe(duplex=False))
    _idle: threading.Event = field(factory=_set_event)  # idle until the first submit
    _pool: list[_Worker] = field(factory=list)
    _reports: list[bytes] = field(factory=list)  # of the tasks ended since the last index
    _held: bool = False  # warm: workers kept while no task is pending, until release()

    def submit(self, tasks: Sequence[ShardTask]) -> None:
        codec = TaskCodec()
        self._enqueue(_Job(codec.encode(t), t) for t in tasks)

    def submit_lines(self, lines: Iterable[bytes]) -> None:
        """Tasks already encoded as JSON lines (what ``DetachedLocalInvoker`` spools)."""
        self._enqueue(_Job(line if line.endswith(b"\n") else line + b"\n") for line in lines)

    def warm_up(self) -> None:
        """Start every worker now and keep the pool until ``release``, so that tasks about to
        arrive find the workers imported and waiting; ``join`` waits for the release too."""
        with self._lock:
            self._held = True
            while len(self._pool) < self.workers:
                self._spawn()
            self._wake_supervisor()

    def release(self) -> None:
        """No more tasks are coming: the pool stops its workers once those given have ended."""
        with self._lock:
            self._held = False
            self._wake_supervisor()

    def _enqueue(self, jobs: Iterable[_Job]) -> None:
        with self._lock:
            self._pending.extend(jobs)
            self._wake_supervisor()

    def _wake_supervisor(self) -> None:
        self._idle.clear()
        if self._supervisor is None or not self._supervisor.is_alive():
            # not a daemon: a script that submits and exits still finishes its run
            self._supervisor = threading.Thread(target=self._supervise, name="sweep-supervisor")
            self._supervisor.start()
        else:
            self._wake[1].send(b"")

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every submitted task has ended; False if ``timeout`` passed first."""
        return self._idle.wait(timeout)

    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._pool]

    def busy_pids(self) -> list[int]:
        return [w.process.pid for w in self._pool if w.jobs]

    # --- the supervisor thread ------------------------------------------------------------

    def _supervise(self) -> None:
        try:
            while True:
                with self._lock:
                    self._assign()
                    ended = not (self._pending or self._held or any(w.jobs for w in self._pool))
                    if ended:
                        self._stop_workers()
                        reports, self._reports = self._reports, []
                if not ended:
                    self._wait_and_reap()
                    continue
                # Indexed before join() returns, outside the lock so that submit never waits
                # (a task submitted meanwhile gets new workers).
                _index_reports(self.root, self.layout, reports)
                with self._lock:
                    if not (self._pending or self._held):
                        self._idle.set()
                        self._supervisor = None
                        return
        except BaseException:
            self._idle.set()
            raise

    def _assign(self) -> None:
        # An idle worker (or a new one, up to the limit) gets the next job. While more jobs wait
        # than there are workers, a busy worker also gets its next one queued in its pipe, so it
        # starts that the moment it reports the last instead of waiting for this thread (about
        # a millisecond a shard). Near the end of a batch no job queues behind another, which
        # may be far longer than the rest; nor does a long line, which could fill the pipe.
        while self._pending:
            worker = next((w for w in self._pool if not w.jobs), None)
            if worker is None and len(self._pool) < self.workers:
                worker = self._spawn()
            if worker is None:
                break
            self._send(worker, self._pending.popleft())
        for worker in self._pool:
            if len(self._pending) <= len(self._pool):
                break
            if len(worker.jobs) == 1 and len(self._pending[0].line) <= _QUEUED_LINE_MAX:
                self._send(worker, self._pending.popleft())

    def _send(self, worker: _Worker, job: _Job) -> None:
        worker.jobs.append(job)
        if len(worker.jobs) == 1:
            self._started(worker)
        try:
            worker.stdin.write(job.line)
            worker.stdin.flush()
        except OSError:
            pass  # it died: reaped as a death with its first job, like Lambda would

    def _started(self, worker: _Worker) -> None:
        """Start the hard time limit of the worker's first job."""
        worker.hard_deadline = time.monotonic() + self.shard_timeout + self.hard_limit_grace

    def _spawn(self) -> _Worker:
        # A fresh interpreter per worker, as Lambda runs its own: no fork of a threaded
        # process, and no re-import of the caller's main script as multiprocessing would do.
        process = subprocess.Popen(
            [sys.executable, "-m", "runtime.local.pool", "--serve-worker",
             "--data-dir", self.root, "--prefix", self.layout.prefix,
             "--shard-timeout", str(self.shard_timeout)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=child_env(),
        )  # fmt: skip
        assert process.stdout is not None
        worker = _Worker(process, _LineReader(process.stdout.fileno()))
        self._pool.append(worker)
        return worker

    def _wait_and_reap(self) -> None:
        busy = [w for w in self._pool if w.jobs]
        now = time.monotonic()
        timeout = max(0.0, min((w.hard_deadline for w in busy), default=now + 1.0) - now)
        ready = mpc.wait([self._wake[0], *(w.reports.fd for w in busy)], timeout=timeout)
        with self._lock:
            if self._wake[0] in ready:
                while self._wake[0].poll():
                    self._wake[0].recv_bytes()
            for w in busy:
                if w.reports.fd in ready:
                    reports = w.reports.read()
                    for report in reports or ():
                        w.jobs.popleft()
                        self._reports.append(report)
                        if w.jobs:  # the queued job has started
                            self._started(w)
                    if reports is None:  # end of file: the process is gone
                        self._record_death(w, timed_out=False)
                elif time.monotonic() > w.hard_deadline:
                    w.process.kill()
                    self._record_death(w, timed_out=True)

    def _deps(self) -> WorkerDeps:
        from runtime.handlers.worker import WorkerDeps  # the supervisor itself never runs a kernel

        return WorkerDeps(LocalStore(self.root), self.layout, utc_now)

    def _record_death(self, w: _Worker, timed_out: bool) -> None:
        from runtime.handlers.worker import record_failure

        task = w.jobs.popleft().decoded()
        exitcode = w.process.wait()
        if timed_out:
            code = "TIMEOUT"
            message = (
                f"shard ran past its hard time limit of {self.shard_timeout:g} s and was killed"
            )
        else:
            code = "WORKER_DIED"
            message = f"worker process {_describe_exit(exitcode)} while running the shard"
        from sweep_core.convert import dumps

        outcome = record_failure(task, code, message, self._deps())
        self._reports.append(dumps(outcome).encode())
        self._pending.extendleft(reversed(w.jobs))  # queued, never started: run them elsewhere
        self._pool.remove(w)
        _close(w)

    def _stop_workers(self) -> None:
        for w in self._pool:
            _close(w)
        for w in self._pool:
            try:
                w.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                w.process.kill()
                w.process.wait()
        self._pool.clear()


def _close(w: _Worker) -> None:
    for stream in (w.process.stdin, w.process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        hint = " (killed; out of memory, for example)" if name == "SIGKILL" else ""
        return f"was ended by {name}{hint}"
    return f"exited with code {code}"


@define
class LocalInvoker:
    """Runs shard tasks on a ``WorkerPool`` inside this process."""

    pool: WorkerPool

    def invoke_async(self, tasks: Sequence[ShardTask]) -> None:
        runner_id = own_runner(self.pool.root)  # this process runs them: it is the runner
        for run_id in sorted({t.run_id for t in tasks}):
            link_run(self.pool.root, run_id, runner_id)
        self.pool.submit(tasks)

    def dispatch_async(self, slices: Sequence[DispatchSlice]) -> None:
        raise NotImplementedError("a local pool takes every task directly (Fanout.local)")


@define
class DetachedLocalInvoker:
    """Runs shard tasks on a pool in a separate, detached process that outlives the caller."""

    settings: EmbeddedSettings
    runner: StartedRunner | None = None
    """A runner started early with ``FROM_STDIN``: the tasks go to its stdin, which its starter
    closes (``end_tasks``) when no more are coming. Used only if its settings are these."""

    def dispatch_async(self, slices: Sequence[DispatchSlice]) -> None:
        raise NotImplementedError("a local pool takes every task directly (Fanout.local)")

    def invoke_async(self, tasks: Sequence[ShardTask]) -> None:
        if not tasks:
            return
        codec = TaskCodec()
        lines = b"".join(codec.encode(t) for t in tasks)
        run_ids = sorted({t.run_id for t in tasks})
        runner = self.runner
        if runner is not None and runner.process.stdin is not None:
            if runner.settings == self.settings:
                try:
                    for run_id in run_ids:
                        link_run(self.settings.root, run_id, runner.runner_id)
                    runner.process.stdin.write(lines)
                    runner.process.stdin.flush()
                    return
                except OSError:
                    pass  # it has gone: a runner of its own takes the tasks (a task the first
                    # had already run keeps its one record: records are written once)
            runner.end_tasks()  # started with other settings: it ends with no task
            self.runner = None
        spool = Path(self.settings.root) / ".local" / "queue"
        spool.mkdir(parents=True, exist_ok=True)
        batch = spool / f"{uuid.uuid4().hex}.jsonl"
        batch.write_bytes(lines)
        started = start_runner(self.settings, str(batch))
        for run_id in run_ids:  # before it could finish: a run is never seen without a runner
            link_run(self.settings.root, run_id, started.runner_id)


def main(argv: Sequence[str] | None = None) -> int:
    """A pool detached from the submitting process (what the CLI uses, so ``sweep run`` returns
    at once and the run survives the terminal)."""
    parser = argparse.ArgumentParser(description="Run a batch of shard tasks on a local pool.")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--shard-timeout", type=float, default=DEFAULT_SHARD_TIMEOUT)
    parser.add_argument("--tasks", help=f"a file of task lines, or {FROM_STDIN} for stdin")
    parser.add_argument("--serve-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--lock-fd", type=int, help=argparse.SUPPRESS)  # held while we live
    args = parser.parse_args(argv)
    if args.serve_worker:
        serve_worker(args.data_dir, args.prefix, args.shard_timeout)
        return 0
    if args.tasks is None:
        parser.error("--tasks is required")
    # The lines go to the workers as they are: this process decodes a task only if its worker
    # dies (to record the failure), so it takes no CPU from them.
    pool = WorkerPool(args.data_dir, Layout(args.prefix), args.workers, args.shard_timeout)
    if args.tasks == FROM_STDIN:
        pool.warm_up()
        for lines in _lines_until_eof(sys.stdin.fileno()):
            pool.submit_lines(lines)
        pool.release()
        pool.join()
        return 0
    tasks = Path(args.tasks)
    pool.submit_lines(line for line in tasks.read_bytes().splitlines() if line.strip())
    pool.join()
    tasks.unlink()
    return 0


def _lines_until_eof(fd: int) -> Iterator[list[bytes]]:
    reader = _LineReader(fd)
    while (lines := reader.read()) is not None:
        if lines := [line for line in lines if line.strip()]:
            yield lines


if __name__ == "__main__":
    raise SystemExit(main())
