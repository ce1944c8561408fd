"""AWS Lambda entry points (``parent``, ``worker``, ``failure_recorder``): each builds its cloud
adapters once per container from the environment and calls the core the embedded target runs.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from typing import Any

from attrs import frozen

from runtime.handlers.api import handle_request
from runtime.handlers.parent import Fanout, ParentDeps, handle_dispatch
from runtime.handlers.worker import WorkerDeps, record_failure, run_shard
from sweep_core.contract import DispatchSlice, ShardTask
from sweep_core.convert import ContractError, structure
from sweep_core.layout import Layout
from sweep_core.ports import InvocationContext, utc_now
from sweep_core.settings import BY_NAME, parse_environment
from sweep_core.validation import Limits

log = logging.getLogger("sweep")
_LOG_LEVEL = BY_NAME["log_level"]
log.setLevel(os.environ.get(_LOG_LEVEL.env) or str(_LOG_LEVEL.default))


@frozen
class CloudConfig:
    """What the entry points need from their environment (set by the Pulumi stack from the
    same table, ``sweep_core.settings``)."""

    bucket: str
    prefix: str
    worker_function: str
    dispatcher_function: str
    max_points: int
    max_shards: int
    fanout_leaf: int
    invoke_threads: int
    glue_database: str | None = None
    log_level: str = str(_LOG_LEVEL.default)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CloudConfig:
        """Raises ``ConfigError`` listing every missing or invalid variable."""
        return cls(**parse_environment(env))  # type: ignore[arg-type]


@frozen
class CloudAdapters:
    config: CloudConfig
    parent: ParentDeps
    worker: WorkerDeps


def build_adapters(
    config: CloudConfig, s3: Any | None = None, lambda_: Any | None = None, glue: Any | None = None
) -> CloudAdapters:
    """The adapters of one container; tests pass moto or stubbed clients."""
    from runtime.adapters.glue import GlueRegistrar, glue_client
    from runtime.adapters.lambda_invoker import LambdaInvoker, lambda_client
    from runtime.adapters.local_store import random_token
    from runtime.adapters.s3 import S3Store, s3_client
    from sweep_core.kernels import catalog

    store = S3Store(s3 if s3 is not None else s3_client(), config.bucket)
    layout = Layout(config.prefix)
    invoker = LambdaInvoker(
        lambda_ if lambda_ is not None else lambda_client(config.invoke_threads),
        config.worker_function,
        config.dispatcher_function,
        threads=config.invoke_threads,
    )
    parent = ParentDeps(
        store,
        layout,
        invoker,
        utc_now,
        random_token,
        limits=Limits(max_points=config.max_points, max_shards=config.max_shards),
        fanout=Fanout(leaf=config.fanout_leaf),
        partitions=None
        if config.glue_database is None
        else GlueRegistrar(
            glue if glue is not None else glue_client(),
            config.glue_database,
            config.bucket,
            layout,
            catalog(),
        ),
    )
    return CloudAdapters(config, parent, WorkerDeps(store, layout, utc_now))


@functools.cache
def _container_adapters() -> CloudAdapters:
    return build_adapters(CloudConfig.from_env(os.environ))


_adapters_override: list[CloudAdapters] = []


def use_adapters(adapters: CloudAdapters | None) -> None:
    """Make the handlers use ``adapters`` (tests); ``None`` restores the environment's."""
    _adapters_override.clear()
    if adapters is not None:
        _adapters_override.append(adapters)


def adapters() -> CloudAdapters:
    return _adapters_override[0] if _adapters_override else _container_adapters()


# --- parent ----------------------------------------------------------------------------------


def parent(event: Mapping[str, Any], context: InvocationContext) -> dict[str, Any] | None:
    """API Gateway proxy requests, and dispatcher slices of the fan-out tree."""
    if "httpMethod" in event:
        return handle_request(event, lambda: adapters().parent, context.aws_request_id)
    job = structure(dict(event), DispatchSlice)
    handle_dispatch(job, adapters().parent)
    log.info("dispatched %d shards of run %s", len(job.shards), job.run_id)
    return None


# --- worker ----------------------------------------------------------------------------------


def worker(event: Mapping[str, Any], context: InvocationContext) -> dict[str, Any]:
    """One shard. Raises only for transient errors, so Lambda retries only those."""
    task = structure(dict(event), ShardTask)
    outcome = run_shard(task, context, adapters().worker)
    log.info(
        "run %s shard %d attempt %d: %s %s",
        task.run_id, task.shard, outcome.attempt, outcome.status, outcome.error_code or "",
    )  # fmt: skip
    return {"run_id": task.run_id, "shard": task.shard, "status": outcome.status}


# --- failure recorder ------------------------------------------------------------------------


def failure_recorder(event: Mapping[str, Any], context: InvocationContext) -> dict[str, Any]:
    """An on-failure destination record of a worker invocation → that shard's failure record."""
    try:
        task = structure(event.get("requestPayload"), ShardTask)
    except ContractError as exc:
        log.error("on-failure record without a readable shard task: %s", exc)
        raise
    code, message = crash_reason(event)
    outcome = record_failure(task, code, message, adapters().worker)
    return {"run_id": task.run_id, "shard": task.shard, "status": outcome.status, "code": code}


def crash_reason(record: Mapping[str, Any]) -> tuple[str, str]:
    """The error code and message for an on-failure destination record (pure)."""
    condition = (record.get("requestContext") or {}).get("condition", "")
    payload = record.get("responsePayload") or {}
    error_type = str(payload.get("errorType") or "")
    message = str(payload.get("errorMessage") or "")
    attempts = (record.get("requestContext") or {}).get("approximateInvokeCount")
    suffix = f" (after {attempts} attempts)" if attempts else ""
    if condition == "EventAgeExceeded":
        return "EVENT_EXPIRED", f"the invocation waited too long in the queue{suffix}: {message}"
    if "Task timed out" in message or error_type == "Sandbox.Timedout":
        return "TIMEOUT", f"the worker ran out of time{suffix}: {message}"
    if error_type == "Runtime.OutOfMemory" or "signal: killed" in message:
        return "WORKER_DIED", f"the worker was killed, most likely out of memory{suffix}: {message}"
    if "exited before completing" in message or error_type.startswith("Runtime."):
        return "WORKER_DIED", f"the worker process exited{suffix}: {message}"
    detail = f"{error_type}: {message}" if error_type else message
    return "RETRIES_EXHAUSTED", f"every attempt failed{suffix}: {detail}"
