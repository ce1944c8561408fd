"""The parent core: a raw request in, a manifest written and one shard task per shard dispatched.

It answers with the accepted run (HTTP 202) or an error response listing every problem (400),
and never waits for workers. The Lambda entry point and the embedded target both call it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from attrs import evolve, field, frozen

from sweep_core._version import __version__
from sweep_core.contract import (
    AcceptedRun,
    ClientTokenRecord,
    DispatchSlice,
    ErrorBody,
    ErrorResponse,
    Problem,
    RedrivenShard,
    RedriveRecord,
    RunManifest,
    ShardTask,
    SweepRequest,
)
from sweep_core.convert import ContractError, dumps, loads, structure
from sweep_core.kernel_spec import KernelCatalog
from sweep_core.layout import Layout, new_run_id, run_date_of
from sweep_core.planning import largest_task_bytes, plan_shards
from sweep_core.ports import Clock, Invoker, NotFound, ObjectStore, PartitionRegistrar
from sweep_core.run_index import RunCancelled, is_cancelled
from sweep_core.runs import read_manifest, shard_records
from sweep_core.settings import MAX_ASYNC_PAYLOAD, default
from sweep_core.validation import Limits, validate_request

"""Lambda's limit on an asynchronous invocation's payload."""


@frozen
class Fanout:
    """How dispatch spreads: a parent invokes at most ``leaf`` workers itself; larger sets of
    shards go in slices of at most ``leaf`` to dispatchers (invocations of the parent), so the
    parent answers API Gateway well inside its 29 s limit whatever the run size."""

    leaf: int | None = default("fanout_leaf")

    @classmethod
    def local(cls) -> Fanout:
        """No tree: a local pool takes every task directly."""
        return cls(leaf=None)


@frozen
class ParentDeps:
    store: ObjectStore
    layout: Layout
    invoker: Invoker
    clock: Clock
    new_token: Callable[[], str]
    """Eight hex characters of entropy for a new run id."""
    limits: Limits = field(factory=Limits)
    catalog: KernelCatalog | None = None
    fanout: Fanout = field(factory=Fanout)
    max_task_bytes: int = MAX_ASYNC_PAYLOAD
    partitions: PartitionRegistrar | None = None
    """Registers each run's Glue partitions at run start (cloud); locally DuckDB needs none."""


@frozen
class ParentResponse:
    status_code: int
    body: AcceptedRun | ErrorResponse


def submit_run(raw: Any, deps: ParentDeps) -> ParentResponse:
    """Validate, plan, write the manifest (put-if-absent), dispatch every shard, answer."""
    try:
        sized = validate_request(raw, catalog=deps.catalog, limits=deps.limits)
        kernel_version = _kernels(deps)[sized.request.kernel].version
    except ContractError as exc:
        return error_response(400, exc.code, "the sweep request is invalid", exc)
    request = sized.request
    too_big = _oversized_task(request, deps.max_task_bytes)
    if too_big is not None:
        return too_big
    # Validated and sized before the token is claimed: a token is claimed only by a request
    # that will be accepted, so a corrected retry with the same token is not refused for ever.
    run_id = new_run_id(deps.clock(), deps.new_token())
    if request.client_token is not None:
        claimed = _claim_token(request, run_id, deps)
        if isinstance(claimed, ParentResponse):
            return claimed
        run_id = claimed
        existing = read_manifest(deps.store, deps.layout, run_id)
        if existing is not None:
            return ParentResponse(202, accepted(existing, deps.layout, existing=True))
    if deps.partitions is not None:
        deps.partitions.register_run(run_id, request.kernel)
    manifest = RunManifest(
        run_id=run_id,
        run_date=run_date_of(run_id),
        created_at=deps.clock().isoformat(),
        point_count=sized.point_count,
        shard_count=sized.shard_count,
        spec=request,
        worker_version=__version__,
        kernel_version=kernel_version,
    )
    if not deps.store.put_if_absent(deps.layout.manifest_key(run_id), dumps(manifest).encode()):
        existing = read_manifest(deps.store, deps.layout, run_id)
        if request.client_token is not None and existing is not None:
            # a concurrent repeat of this submit wrote it first: that one dispatches
            return ParentResponse(202, accepted(existing, deps.layout, existing=True))
        return error_response(500, "RUN_ID_COLLISION", f"run {run_id} already exists; retry")
    dispatch(manifest, range(manifest.shard_count), deps)
    return ParentResponse(202, accepted(manifest, deps.layout))


def dispatch(manifest: RunManifest, shards: Sequence[int], deps: ParentDeps) -> None:
    """Invoke a worker for each shard, or, beyond ``fanout.leaf`` shards, hand slices to
    dispatchers that each do the same for their slice (a tree of depth log_leaf(shards))."""
    leaf = deps.fanout.leaf
    if leaf is None or len(shards) <= leaf:
        deps.invoker.invoke_async(list(shard_tasks(manifest, shards)))
        return
    # Slices of at most `leaf`, but no more than `leaf` of them at this level either.
    size = max(leaf, -(-len(shards) // leaf))
    slices = [tuple(shards[i : i + size]) for i in range(0, len(shards), size)]
    deps.invoker.dispatch_async([DispatchSlice(manifest.run_id, s) for s in slices])


def handle_dispatch(job: DispatchSlice, deps: ParentDeps) -> None:
    """A dispatcher's work: the shards of one slice, through the same ``dispatch``."""
    manifest = read_manifest(deps.store, deps.layout, job.run_id)
    if manifest is None:
        raise NotFound(f"no run {job.run_id}")
    dispatch(manifest, job.shards, deps)


class KernelChanged(Exception):
    """A redrive refused: the run's kernel is no longer registered at the run's version."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _kernels(deps: ParentDeps) -> KernelCatalog:
    if deps.catalog is not None:
        return deps.catalog
    from sweep_core.kernels import catalog

    return catalog()


def check_kernel_version(manifest: RunManifest, kernels: KernelCatalog, allow_change: bool) -> None:
    """Raise ``KernelChanged`` unless the run's kernel is registered at the run's version (or
    ``allow_change``, when it is registered at another): one run, one model version."""
    name = manifest.spec.kernel
    spec = kernels.get(name)
    if spec is None:
        known = ", ".join(sorted(kernels)) or "none"
        raise KernelChanged(
            "KERNEL_UNAVAILABLE",
            f"run {manifest.run_id} evaluates kernel {name!r}, which is not registered here "
            f"(registered: {known}); nothing was dispatched",
        )
    if spec.version != manifest.kernel_version and not allow_change:
        raise KernelChanged(
            "KERNEL_CHANGED",
            f"run {manifest.run_id} was made by {name} version {manifest.kernel_version!r}, "
            f"and version {spec.version!r} is registered now: a redrive would mix two versions "
            "of the model in one run. Nothing was dispatched; to redrive anyway (each outcome "
            "record names the version that made it) allow the kernel change "
            "(sweep redrive --allow-kernel-change)",
        )


def redrive_run(
    run_id: str, deps: ParentDeps, force: bool = False, allow_kernel_change: bool = False
) -> list[int]:
    """Dispatch again every shard of the run that has no success; return their numbers.

    A redrive record lists them first, with the failures each had, so every reader of the
    layout counts them as in flight until a newer record arrives. The redrive starts a new
    dispatch generation, which a cancel of the last one does not stop.

    Raises
    ------
    NotFound
        No such run.
    RunCancelled
        The run was cancelled and ``force`` is not given.
    KernelChanged
        The run's kernel is not registered, or is at another version than the run's and
        ``allow_kernel_change`` is false.
    """
    manifest = read_manifest(deps.store, deps.layout, run_id)
    if manifest is None:
        raise NotFound(f"no run {run_id}")
    if not force and is_cancelled(deps.store, deps.layout, run_id):
        raise RunCancelled(
            f"run {run_id} was cancelled; redrive it with --force (force=True) to run its "
            "shards without a success again"
        )
    records = shard_records(deps.store, deps.layout, run_id)
    missing = [k for k in range(manifest.shard_count) if k not in records.succeeded]
    if not missing:
        return []
    check_kernel_version(manifest, _kernels(deps), allow_kernel_change)
    shards = tuple(RedrivenShard(k, records.failed_attempts[k]) for k in missing)
    number = sum(1 for _ in deps.store.list(deps.layout.redrive_prefix(run_id))) + 1
    while True:
        record = RedriveRecord(run_id, number, deps.clock().isoformat(), shards)
        if deps.store.put_if_absent(
            deps.layout.redrive_key(run_id, number), dumps(record).encode()
        ):
            break
        number += 1  # a concurrent redrive took this number
    if deps.partitions is not None:
        deps.partitions.register_run(run_id, manifest.spec.kernel)
    dispatch(manifest, missing, deps)
    return missing


def shard_tasks(manifest: RunManifest, shards: Iterable[int] | None = None) -> Iterator[ShardTask]:
    plan = plan_shards(manifest.point_count, manifest.spec.sharding)
    for k in range(plan.shard_count) if shards is None else shards:
        r = plan[k]
        yield ShardTask(manifest.run_id, manifest.run_date, r.shard, r.start, r.end, manifest.spec)


def accepted(manifest: RunManifest, layout: Layout, existing: bool = False) -> AcceptedRun:
    return AcceptedRun(
        run_id=manifest.run_id,
        run_date=manifest.run_date,
        kernel=manifest.spec.kernel,
        point_count=manifest.point_count,
        shard_count=manifest.shard_count,
        manifest_key=layout.manifest_key(manifest.run_id),
        existing=existing,
    )


def error_response(
    status: int, code: str, message: str, exc: ContractError | None = None
) -> ParentResponse:
    problems = exc.problems if exc is not None else ()
    return ParentResponse(status, ErrorResponse(ErrorBody(code, message, problems)))


def _oversized_task(request: SweepRequest, limit: int) -> ParentResponse | None:
    """Refuse a request whose shard tasks could not be delivered by an async invoke."""
    size = largest_task_bytes(request)
    if size <= limit:
        return None
    exc = ContractError(
        [Problem("$.axes", f"each shard task would be {size:,} bytes, over the {limit:,}-byte "
                 "limit of an asynchronous invocation: give fewer axis values")]
    )  # fmt: skip
    return error_response(400, "REQUEST_TOO_LARGE", "the sweep request is too large", exc)


def request_digest(request: SweepRequest) -> str:
    """A digest of everything in the request but its client token."""
    return hashlib.sha256(dumps(evolve(request, client_token=None)).encode()).hexdigest()


def _claim_token(request: SweepRequest, run_id: str, deps: ParentDeps) -> str | ParentResponse:
    """The run id this client token stands for: ours if we claimed it first, else the first."""
    assert request.client_token is not None
    key = deps.layout.token_key(request.client_token)
    record = ClientTokenRecord(run_id=run_id, request_digest=request_digest(request))
    if deps.store.put_if_absent(key, dumps(record).encode()):
        return run_id
    earlier = structure(loads(deps.store.get(key)), ClientTokenRecord)
    if earlier.request_digest != record.request_digest:
        return error_response(
            409,
            "CLIENT_TOKEN_REUSED",
            "this client_token already started a different request; use a new token",
        )
    return earlier.run_id
