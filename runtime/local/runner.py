"""The embedded target's detached runner: where its data folder is, and how the runner starts.

The runner (``python -m runtime.local.pool``) owns a pool of worker processes and outlives the
command that started it, so ``sweep run`` may exit, or be interrupted while it waits, without
stopping the run. This module uses the standard library only: ``sweep run`` starts the runner
before its own imports, and the runner and its workers start up while the command validates
and plans, instead of after.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from runtime.local.liveness import new_lock
from sweep_core.settings import DEFAULT_PREFIX

DEFAULT_DATA_DIR = ".sweep"
DEFAULT_SHARD_TIMEOUT = 900.0  # Lambda's maximum
FROM_STDIN = "-"
"""``--tasks -``: the runner starts its workers at once and reads task lines until EOF."""

# Parallelism comes from the worker processes, one per core: a library thread pool inside each
# (OpenBLAS, OpenMP) would oversubscribe the cores and, spinning, slow every worker many times.
_ONE_THREAD = dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1")


def data_dir_from_env(data_dir: str | os.PathLike[str] | None) -> Path:
    """The embedded target's data folder: ``data_dir``, else ``$SWEEP_DATA_DIR``, else .sweep."""
    return Path(data_dir or os.environ.get("SWEEP_DATA_DIR") or DEFAULT_DATA_DIR).resolve()


@dataclass(frozen=True)
class EmbeddedSettings:
    """Everything a local runner and its pool are started with, worked out once (by the CLI
    before its imports, or by the target): an early runner takes a run's tasks only when its
    settings equal the target's."""

    root: str
    prefix: str = DEFAULT_PREFIX
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    shard_timeout: float = DEFAULT_SHARD_TIMEOUT

    @classmethod
    def resolve(
        cls,
        data_dir: str | os.PathLike[str] | None = None,
        workers: int | None = None,
        shard_timeout: float | None = None,
        prefix: str = DEFAULT_PREFIX,
    ) -> EmbeddedSettings:
        """Defaults filled in: ``data_dir_from_env``, one worker per core, Lambda's limit.
        ``ValueError`` for fewer than one worker (a pool of none would never run a shard)."""
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        return cls(
            str(data_dir_from_env(data_dir)),
            prefix,
            workers or os.cpu_count() or 1,
            shard_timeout or DEFAULT_SHARD_TIMEOUT,
        )

    def runner_command(self, tasks: str, lock_fd: int | None = None) -> list[str]:
        """The runner's command line; ``tasks`` is a file of task lines, or ``FROM_STDIN``;
        ``lock_fd`` the descriptor of its liveness lock, which it inherits."""
        lock = [] if lock_fd is None else ["--lock-fd", str(lock_fd)]
        return [
            sys.executable, "-m", "runtime.local.pool", "--data-dir", self.root,
            "--prefix", self.prefix, "--workers", str(self.workers),
            "--shard-timeout", str(self.shard_timeout), "--tasks", tasks, *lock,
        ]  # fmt: skip


class StartedRunner:
    """A runner process, and what starting it made: its log and the folders that held none."""

    def __init__(
        self,
        settings: EmbeddedSettings,
        process: subprocess.Popen[bytes],
        log: str,
        made: list[str],
        runner_id: str = "",
    ) -> None:
        self.settings = settings
        self.process = process
        self.log = log
        self.made = made  # innermost first
        self.runner_id = runner_id
        """Its liveness lock (``runtime.local.liveness``): link a run to it before its tasks."""

    def end_tasks(self) -> None:
        end_tasks(self.process)

    def discard(self) -> None:
        """End it before any task and remove its log and the folders made for it: a request
        refused after the runner started leaves the data folder as it was."""
        self.end_tasks()
        runners = os.path.join(self.settings.root, ".local", "runners")
        for leftover in (os.path.join(runners, f"{self.runner_id}.lock"), self.log):
            with contextlib.suppress(OSError):
                os.unlink(leftover)
        with contextlib.suppress(OSError):  # not empty: other runners' locks are there
            os.rmdir(runners)
        for folder in self.made:
            with contextlib.suppress(OSError):  # not empty: something else wrote there since
                os.rmdir(folder)


def start_runner(settings: EmbeddedSettings, tasks: str) -> StartedRunner:
    """Start the runner in its own session (Ctrl-C in the terminal does not reach it), its
    output appended to a log under the data folder's ``.local``; with ``tasks`` ``FROM_STDIN``
    its stdin is a pipe."""
    root = settings.root
    logs = os.path.join(root, ".local")
    made = []
    folder = logs
    while not os.path.isdir(folder) and folder != os.path.dirname(folder):
        made.append(folder)
        folder = os.path.dirname(folder)
    os.makedirs(logs, exist_ok=True)
    log = os.path.join(logs, f"runner-{uuid.uuid4().hex}.log")
    # Locked here and inherited: the runner holds its lock from its first instant, and the
    # kernel lets go of it when the runner ends, however it ends.
    runner_id, lock_fd = new_lock(root)
    try:
        with open(log, "ab") as out:
            process = subprocess.Popen(
                settings.runner_command(tasks, lock_fd),
                stdin=subprocess.PIPE if tasks == FROM_STDIN else subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                env=child_env(),
                pass_fds=(lock_fd,),
            )
    finally:
        os.close(lock_fd)
    return StartedRunner(settings, process, log, made, runner_id)


def end_tasks(runner: subprocess.Popen[bytes]) -> None:
    """Tell a runner started with ``--tasks -`` that no more tasks are coming: it stops once
    those it has are done, at once if it has none."""
    if runner.stdin is not None:
        with contextlib.suppress(OSError):
            runner.stdin.close()


def child_env() -> dict[str, str]:
    """The environment of the runner and its workers: ours, one library thread, this package
    importable."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        **_ONE_THREAD,
        "PYTHONPATH": root if not path else f"{root}{os.pathsep}{path}",
    }
