"""Whether a local run still has a runner: a lock each runner holds for as long as it lives.

A runner (the detached ``python -m runtime.local.pool``, or a process running its own pool)
holds an exclusive ``flock`` on ``.local/runners/<id>.lock`` under the data folder, and each
run it was given has a link ``.local/runs/<run_id>/<id>``. The kernel drops the lock when the
process ends, however it ends (``kill -9``, the OOM killer, a reboot), so a reader that can
take the lock knows that runner is gone: no heartbeat to age, no clock to trust. The starter
takes the lock before the runner exists and hands the locked file to it, so there is no moment
at which a run is linked to a runner whose lock is free. Standard library only: the runner's
module imports it before anything else.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid

_RUNNERS = (".local", "runners")
_RUNS = (".local", "runs")


def new_lock(root: str) -> tuple[str, int]:
    """A new runner id and a descriptor of its lock file, locked (close it to let go)."""
    folder = os.path.join(root, *_RUNNERS)
    os.makedirs(folder, exist_ok=True)
    runner_id = uuid.uuid4().hex
    fd = os.open(os.path.join(folder, f"{runner_id}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else holds it
    return runner_id, fd


def link_run(root: str, run_id: str, runner_id: str) -> None:
    """Record that ``runner_id`` runs shards of ``run_id`` (before it is given any)."""
    folder = os.path.join(root, *_RUNS, run_id)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, runner_id), "a"):
        pass


def run_alive(root: str, run_id: str) -> bool | None:
    """True while a runner linked to the run lives; False once every one is gone; None when
    no local runner was ever linked to it (a run of another machine or target)."""
    try:
        runners = os.listdir(os.path.join(root, *_RUNS, run_id))
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not runners:
        return None
    return any(_held(os.path.join(root, *_RUNNERS, f"{r}.lock")) for r in runners)


def _held(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return False


_OWN: dict[str, str] = {}
"""This process's own runner id per data folder (a process running a pool itself)."""
_OWN_FDS: list[int] = []


def own_runner(root: str) -> str:
    """The id of this process as a runner of ``root``: locked once, held until it exits."""
    if root not in _OWN:
        runner_id, fd = new_lock(root)
        _OWN_FDS.append(fd)
        _OWN[root] = runner_id
    return _OWN[root]
