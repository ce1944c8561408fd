"""The local pool supervises its worker processes the way Lambda does: every shard it is given
ends with exactly one record, whatever happens to the process running it."""

from __future__ import annotations

import os
import platform
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import HeldInvoker

from runtime.local.pool import WorkerPool
from runtime.local.runner import FROM_STDIN, EmbeddedSettings, start_runner
from sweep_sdk import Run
from sweep_sdk.embedded import EmbeddedTarget


def _gbm(spec: dict[str, Any], points: int, paths: int, shard_size: int) -> dict[str, Any]:
    spec["params"].update(paths=paths, strike=100.0)
    spec["axes"] = {"sigma": {"linspace": {"start": 0.1, "stop": 0.6, "num": points}}}
    spec["sharding"] = {"shard_size": shard_size}
    return spec


_READ_SYSCALL = {"x86_64": 0, "aarch64": 63}[platform.machine()]


def _waits_for_a_task(pid: int) -> bool:
    """Whether the worker process is blocked reading its standard input (its next task)."""
    number, first_argument, *_ = Path(f"/proc/{pid}/syscall").read_text().split()
    return number == str(_READ_SYSCALL) and int(first_argument, 16) == 0


def _failures(run: Run) -> list[dict[str, Any]]:
    return [r for r in run.outcomes().to_pylist() if r["status"] == "failure"]


def test_reports_that_pile_up_while_the_supervisor_is_busy_all_end_their_shards(
    tmp_path: Path, gbm_request: dict[str, Any]
) -> None:
    # Three shards, one worker: it gets the first and the second queued behind it. Holding the
    # supervisor until both are done leaves two reports in the pipe and nothing more to come;
    # one read must end both shards, or the second would be left running forever and the
    # third never sent.
    target = EmbeddedTarget.from_env(tmp_path, workers=1)
    accepted = target.submit(_gbm(gbm_request, points=3, paths=16, shard_size=1))
    pool = target.invoker.pool  # type: ignore[attr-defined]
    store, layout = target.store, target.layout
    deadline = time.monotonic() + 30
    while not pool.busy_pids() and time.monotonic() < deadline:
        time.sleep(0.001)
    with pool._lock:  # taken once the supervisor has handed out the first two shards
        done = [layout.success_key(accepted.run_id, shard) for shard in (0, 1)]
        [worker] = pool.busy_pids()
        # A worker writes a shard's report before it reads its next task: once both records
        # exist and it waits on its input again, both reports are in the pipe.
        while time.monotonic() < deadline and not (
            all(map(store.exists, done)) and _waits_for_a_task(worker)
        ):
            time.sleep(0.001)
        assert all(map(store.exists, done))
        assert _waits_for_a_task(worker)
    assert target.join(30), "the pool never went idle: a worker's report was left unread"
    status = Run(accepted.run_id, target, accepted).status()
    assert (status.succeeded, status.failed, status.missing) == (3, 0, 0)


def test_a_killed_worker_fails_its_running_shard_and_no_other(
    tmp_path: Path, gbm_request: dict[str, Any]
) -> None:
    # One worker and many shards: besides the shard it runs, the worker holds the next one
    # queued in its pipe. Killing it fails the first; the queued one runs on its replacement.
    # The worker is stopped (SIGSTOP) before any shard reaches it, so however fast the machine,
    # its first shard has not ended when it is killed.
    target = EmbeddedTarget.from_env(tmp_path, workers=1)
    pool = target.invoker.pool  # type: ignore[attr-defined]
    pool.warm_up()
    [worker] = pool.worker_pids()
    os.kill(worker, signal.SIGSTOP)
    accepted = target.submit(_gbm(gbm_request, points=8, paths=16, shard_size=1))
    run = Run(accepted.run_id, target, accepted)
    deadline = time.monotonic() + 30
    while not pool.busy_pids() and time.monotonic() < deadline:
        time.sleep(0.001)
    with pool._lock:  # the supervisor hands out both shards before it lets go
        assert pool.busy_pids() == [worker]
        os.kill(worker, signal.SIGKILL)
    pool.release()

    status = run.wait(timeout=60, progress=False)
    assert (status.succeeded, status.failed, status.missing) == (7, 1, 0)
    [died] = _failures(run)
    assert (died["shard"], died["error_code"]) == (0, "WORKER_DIED")
    assert run.results().num_rows == 7
    assert target.join(30)


def test_a_shard_past_its_hard_limit_is_killed_and_recorded_as_a_timeout(
    tmp_path: Path, gbm_request: dict[str, Any]
) -> None:
    # The worker is stopped (SIGSTOP) while it runs its one batch: its own deadline check,
    # between batches, never runs however fast the machine, so the pool must kill it at the
    # hard limit.
    target = EmbeddedTarget.from_env(tmp_path, workers=1, shard_timeout=3.5)
    pool = target.invoker.pool  # type: ignore[attr-defined]
    pool.hard_limit_grace = 0.3
    accepted = target.submit(_gbm(gbm_request, points=200, paths=1_000_000, shard_size=200))
    run = Run(accepted.run_id, target, accepted)
    began = time.monotonic()
    while not pool.busy_pids() and time.monotonic() < began + 30:
        time.sleep(0.001)
    os.kill(pool.busy_pids()[0], signal.SIGSTOP)
    status = run.wait(timeout=60, progress=False)
    assert (status.failed, status.missing) == (1, 0)
    [failure] = _failures(run)
    assert failure["error_code"] == "TIMEOUT"
    assert "hard time limit of 3.5 s" in failure["error_message"]
    assert time.monotonic() - began < 30  # killed, not left to finish
    assert run.results().num_rows == 0
    assert target.join(30)


def test_a_warm_pool_starts_its_workers_first_and_keeps_them_until_released(
    tmp_path: Path, gbm_request: dict[str, Any]
) -> None:
    # What the runner of `sweep run` does: workers start while the tasks are still being
    # planned, and tasks arriving in several batches all run on those same workers.
    captured = EmbeddedTarget.from_env(tmp_path / "plan")
    capture = HeldInvoker()
    captured._invoker = capture  # type: ignore[assignment]
    captured.submit(_gbm(gbm_request, points=6, paths=16, shard_size=1))
    tasks = capture.tasks

    pool = WorkerPool(str(tmp_path / "plan"), captured.layout, workers=2)
    pool.warm_up()
    started = sorted(pool.worker_pids())
    assert len(started) == 2
    pool.submit(tasks[:3])
    assert not pool.join(1.0), "the pool let go of its workers before release()"
    assert sorted(pool.worker_pids()) == started
    pool.submit(tasks[3:])
    pool.release()
    assert pool.join(30)
    assert pool.worker_pids() == []
    store, layout = captured.store, captured.layout
    assert all(store.exists(layout.success_key(t.run_id, t.shard)) for t in tasks)


def test_an_early_runner_with_other_settings_ends_and_the_tasks_still_run(
    tmp_path: Path, gbm_request: dict[str, Any]
) -> None:
    early = start_runner(
        EmbeddedSettings.resolve(tmp_path, workers=3, shard_timeout=60), FROM_STDIN
    )
    target = EmbeddedTarget.from_env(tmp_path, workers=1, detach=True, runner=early)
    accepted = target.submit(_gbm(gbm_request, points=4, paths=16, shard_size=1))
    assert early.process.wait(30) == 0  # told no task will come, it stopped its workers
    status = Run(accepted.run_id, target, accepted).wait(timeout=60, progress=False)
    assert (status.succeeded, status.failed, status.missing) == (4, 0, 0)


def test_tasks_for_an_early_runner_that_has_died_go_to_a_new_one(
    tmp_path: Path, gbm_request: dict[str, Any]
) -> None:
    early = start_runner(EmbeddedSettings.resolve(tmp_path, workers=1), FROM_STDIN)
    early.process.kill()
    early.process.wait(30)
    target = EmbeddedTarget.from_env(tmp_path, workers=1, detach=True, runner=early)
    accepted = target.submit(_gbm(gbm_request, points=4, paths=16, shard_size=1))
    status = Run(accepted.run_id, target, accepted).wait(timeout=60, progress=False)
    assert (status.succeeded, status.failed, status.missing) == (4, 0, 0)


def test_a_killed_runner_leaves_lost_shards_and_wait_says_redrive_finishes_the_run(
    tmp_path: Path, gbm_request: dict[str, Any], capsys: Any
) -> None:
    from sweep_sdk.cli import main as cli_main
    from sweep_sdk.errors import RunnerGone

    early = start_runner(EmbeddedSettings.resolve(tmp_path, workers=1), FROM_STDIN)
    group = os.getpgid(early.process.pid)  # its own session: the runner and its workers
    os.killpg(group, signal.SIGSTOP)  # holds the tasks unrun, whatever the machine's speed
    target = EmbeddedTarget.from_env(tmp_path, workers=1, detach=True, runner=early)
    accepted = target.submit(_gbm(gbm_request, points=4, paths=16, shard_size=1))
    run = Run(accepted.run_id, target, accepted)
    status = run.status()
    assert (status.missing, status.lost) == (4, 0)  # stopped, not gone: still its runner

    os.killpg(group, signal.SIGKILL)  # as an OOM killer or a reboot would
    early.process.wait(30)
    status = run.status()
    assert (status.missing, status.lost, status.as_dict()["lost"]) == (4, 4, 4)
    with pytest.raises(RunnerGone, match="runner is gone") as gone:
        run.wait(timeout=60, progress=False)
    assert f"sweep redrive {accepted.run_id}" in str(gone.value)

    assert cli_main(["status", accepted.run_id, "--wait", "--data-dir", str(tmp_path)]) == 1
    assert "redrive" in capsys.readouterr().err
    assert cli_main(["status", accepted.run_id, "--data-dir", str(tmp_path)]) == 0
    assert "4 lost" in capsys.readouterr().out
    [row] = target.runs()
    assert (row.run_id, row.state, row.missing) == (accepted.run_id, "lost", 4)

    assert sorted(run.redrive()) == [0, 1, 2, 3]  # a new runner: nothing is lost any more
    status = run.wait(timeout=60, progress=False)
    assert (status.succeeded, status.missing, status.lost) == (4, 0, 0)
