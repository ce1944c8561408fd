"""The worker core: one shard task in, points Parquet and one outcome record out.

Pure logic over injected adapters; the Lambda entry point and the local process pool both call
``run_shard``. Writes are put-if-absent, so a duplicate delivery ends as a no-op and a failure
never replaces a success. The success record is the commit of the shard's points: it names
the points object with its rows, size and SHA-256, and readers read nothing else.
``record_failure`` is also the core of the failure recorder that turns
a crash, timeout or out-of-memory kill (seen from outside the dead worker) into a record.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from datetime import datetime

import numpy as np
from attrs import evolve, frozen

from sweep_core._version import __version__
from sweep_core.contract import ShardOutcome, ShardTask, SweepRequest
from sweep_core.kernels import KERNELS, Kernel, KernelError, UnavailableKernel, evaluate
from sweep_core.layout import COMPACTED_STEM, Layout
from sweep_core.ports import Clock, InvocationContext, ObjectStore, TransientStoreError
from sweep_core.records import PointsWriter, outcome_entries, outcome_parquet, read_outcome
from sweep_core.run_index import is_cancelled
from sweep_core.runs import CANCELLED
from sweep_core.space import PointSpace
from sweep_core.tables import points_table

WORKER_VERSION = __version__


@frozen
class WorkerDeps:
    store: ObjectStore
    layout: Layout
    clock: Clock
    kernels: Mapping[str, Kernel] = KERNELS
    batch_points: int = 4096
    """Points evaluated at once: bounds memory and how often the deadline is checked."""
    safety_ms: int = 3000
    """Time kept in hand for writing results when the deadline nears."""


class DeadlineExceeded(Exception):
    pass


def run_shard(task: ShardTask, context: InvocationContext, deps: WorkerDeps) -> ShardOutcome:
    """Evaluate the task's points and record how it went.

    Returns the success or failure outcome this attempt wrote, or the existing success when the
    shard had already succeeded (a duplicate delivery).

    Raises
    ------
    TransientStoreError
        After recording the failed attempt, so the platform's retry can run again.
    """
    layout, store = deps.layout, deps.store
    success_key = layout.success_key(task.run_id, task.shard)
    if store.exists(success_key):
        return _existing(task, deps)
    if is_cancelled(store, layout, task.run_id):
        message = "the run was cancelled before this shard started"
        return record_failure(task, CANCELLED, message, deps)
    started = deps.clock()
    t0 = time.perf_counter()
    try:
        kernel = _kernel(task, deps)
    except KernelError as exc:
        return record_failure(task, exc.code, exc.message, deps, started, t0)
    version = kernel.spec.version
    try:
        points = _evaluate(task, kernel, context, deps)
        attempt = _failed_attempts(task, deps) + 1
        name = _publish_points(task, kernel.spec.name, points, attempt, deps)
        outcome = evolve(
            _outcome(task, attempt, started, t0, deps, "success", kernel_version=version),
            points_object=name,
            points_rows=task.end - task.start,
            points_bytes=len(points),
            points_sha256=hashlib.sha256(points).hexdigest(),
        )
        # The success record is the commit: readers read only the points objects a success
        # names, so points written by an attempt that died before this line are never read.
        if not store.put_if_absent(success_key, outcome_parquet(outcome)):
            return _existing(task, deps)  # a concurrent delivery of the task won the write
        return outcome
    except KernelError as exc:
        return record_failure(task, exc.code, exc.message, deps, started, t0, version)
    except DeadlineExceeded as exc:
        return record_failure(task, "DEADLINE_EXCEEDED", str(exc), deps, started, t0, version)
    except TransientStoreError as exc:
        record_failure(task, "TRANSIENT_ERROR", str(exc), deps, started, t0, version)
        raise


def _publish_points(
    task: ShardTask, kernel: str, points: bytes, attempt: int, deps: WorkerDeps
) -> str:
    """Write the shard's points and return the object's name in the points partition.

    The usual key may already hold an object: the same bytes (a duplicate delivery, a retry:
    points are deterministic) are used as they are; other bytes (a truncated or foreign object
    an earlier attempt left without a commit) are never overwritten: this attempt's points go
    to a key of its own.
    """
    layout, store = deps.layout, deps.store
    prefix = layout.points_prefix(kernel, task.run_id)
    key = layout.points_key(kernel, task.run_id, task.shard)
    number = attempt
    while not store.put_if_absent(key, points):
        if store.get(key) == points:
            break
        key = layout.points_attempt_key(kernel, task.run_id, task.shard, number)
        number += 1
    return key[len(prefix) :]


def _kernel(task: ShardTask, deps: WorkerDeps) -> Kernel:
    """The task's kernel; a ``KernelError`` when this worker has no usable kernel of its name."""
    name = task.spec.kernel
    try:
        return deps.kernels[name]
    except UnavailableKernel as exc:
        raise KernelError("KERNEL_UNAVAILABLE", str(exc)) from None
    except KeyError:
        raise KernelError(
            "UNKNOWN_KERNEL", f"no kernel {name!r} is registered where this worker runs"
        ) from None


def _evaluate(
    task: ShardTask, kernel: Kernel, context: InvocationContext, deps: WorkerDeps
) -> bytes:
    space = _point_space(task.spec, kernel)
    writer = PointsWriter(points_table(kernel.spec))
    slowest_batch_ms = 0.0
    for lo in range(task.start, task.end, deps.batch_points):
        hi = min(lo + deps.batch_points, task.end)
        remaining = context.get_remaining_time_in_millis()
        if remaining < deps.safety_ms + 2 * slowest_batch_ms:
            raise DeadlineExceeded(
                f"stopped at point {lo} of [{task.start}, {task.end}) with {remaining} ms left: "
                "the shard does not fit the time limit; use smaller shards"
            )
        b0 = time.perf_counter()
        index = np.arange(lo, hi, dtype=np.int64)
        params = space.decode(index)
        metrics = evaluate(kernel, params, index, task.spec.seed)
        writer.write(index, params, metrics)
        slowest_batch_ms = max(slowest_batch_ms, (time.perf_counter() - b0) * 1000)
    return writer.finish()


_SPACES: dict[tuple[int, int], tuple[SweepRequest, Kernel, PointSpace]] = {}


def _point_space(spec: SweepRequest, kernel: Kernel) -> PointSpace:
    """The point space of ``spec``, built once per spec a process sees, not once per shard.

    A worker runs shard after shard of one run; building the space (grid axes, checks) costs
    as much as the points of a small shard. Keyed by identity, holding the objects it keys.
    """
    key = (id(spec), id(kernel))
    cached = _SPACES.get(key)
    if cached is not None and cached[0] is spec and cached[1] is kernel:
        return cached[2]
    space = PointSpace(spec, kernel.spec)
    if len(_SPACES) >= 8:
        _SPACES.clear()
    _SPACES[key] = (spec, kernel, space)
    return space


def record_failure(
    task: ShardTask,
    code: str,
    message: str,
    deps: WorkerDeps,
    started: datetime | None = None,
    t0: float | None = None,
    kernel_version: str | None = None,
) -> ShardOutcome:
    """Write a failure record for a new attempt at the task's shard, unless it has succeeded.

    ``started``/``t0`` are the attempt's start (wall clock and perf counter) and
    ``kernel_version`` the version of the kernel it ran; the failure recorder, which sees only
    the dead attempt's task, leaves them out.
    """
    if deps.store.exists(deps.layout.success_key(task.run_id, task.shard)):
        return _existing(task, deps)
    started_at = started or deps.clock()
    attempt = _failed_attempts(task, deps) + 1
    while True:
        outcome = _outcome(
            task, attempt, started_at, t0, deps, "failure", code, message[:4096], kernel_version
        )
        key = deps.layout.failure_key(task.run_id, task.shard, attempt)
        if deps.store.put_if_absent(key, outcome_parquet(outcome)):
            return outcome
        attempt += 1  # a concurrent attempt took this number


def _failed_attempts(task: ShardTask, deps: WorkerDeps) -> int:
    """Failed attempts recorded so far: the shard's failure objects, plus its rows in the
    run's compacted failure files (present only after ``sweep compact`` and a redrive)."""
    layout, store = deps.layout, deps.store
    count = sum(1 for _ in store.list(layout.failure_prefix(task.run_id, task.shard)))
    compacted = f"{layout.status_prefix(task.run_id, 'failure')}{COMPACTED_STEM}"
    for key in store.list(compacted):
        count += sum(1 for shard, _ in outcome_entries(store.get(key)) if shard == task.shard)
    return count


def _outcome(
    task: ShardTask,
    attempt: int,
    started: datetime,
    t0: float | None,
    deps: WorkerDeps,
    status: str,
    code: str | None = None,
    message: str | None = None,
    kernel_version: str | None = None,
) -> ShardOutcome:
    finished = deps.clock()
    duration = 0.0 if t0 is None else (time.perf_counter() - t0) * 1000
    return ShardOutcome(
        run_id=task.run_id,
        shard=task.shard,
        attempt=attempt,
        status="success" if status == "success" else "failure",
        start=task.start,
        end=task.end,
        point_count=task.end - task.start,
        started_at=started.isoformat(),
        finished_at=finished.isoformat(),
        duration_ms=round(duration, 3),
        worker_version=WORKER_VERSION,
        error_code=code,
        error_message=message,
        kernel_version=kernel_version,
    )


def _existing(task: ShardTask, deps: WorkerDeps) -> ShardOutcome:
    """The success already recorded for this shard (read back from its Parquet object)."""
    body = deps.store.get(deps.layout.success_key(task.run_id, task.shard))
    return read_outcome(body, task.run_id, "success")
