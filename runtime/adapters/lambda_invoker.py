"""The ``Invoker`` on AWS Lambda: one asynchronous (``Event``) invoke per shard task or dispatch
slice, made from a bounded pool of threads."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config

from sweep_core.contract import DispatchSlice, ShardTask
from sweep_core.convert import dumps
from sweep_core.settings import MAX_ASYNC_PAYLOAD


class InvokeError(Exception):
    """Some invokes failed after botocore's retries; every one of them was attempted.

    ``failures`` pairs each failed payload's label (``shard 42``) with its error, in the order
    the payloads were given.
    """

    def __init__(self, function: str, total: int, failures: Sequence[tuple[str, Exception]]):
        self.function = function
        self.total = total
        self.failures = tuple(failures)
        label, first = self.failures[0]
        super().__init__(
            f"{len(self.failures)} of {total} invokes of {function} failed; "
            f"first: {label}: {type(first).__name__}: {first}"
        )


class UnexpectedStatus(Exception):
    """Lambda answered an ``Event`` invoke with something other than 202 Accepted."""


def lambda_client(threads: int = 32, region: str | None = None) -> Any:
    """A boto3 Lambda client for ``threads`` concurrent invokes.

    Adaptive retries back off on throttling (``TooManyRequestsException``) and pace the whole
    client; the pool holds a connection per thread so none waits for a socket.
    """
    config = Config(
        retries={"mode": "adaptive", "max_attempts": 10},
        max_pool_connections=max(threads, 10),
        connect_timeout=5,
        read_timeout=15,
    )
    return boto3.session.Session().client("lambda", region_name=region, config=config)


class LambdaInvoker:
    """Invokes ``worker_function`` with shard tasks and ``dispatcher_function`` with slices.

    A call returns once Lambda has queued every event (202), or raises ``InvokeError`` after
    trying them all, so no shard is dropped silently.
    """

    def __init__(
        self,
        client: Any,
        worker_function: str,
        dispatcher_function: str,
        threads: int = 32,
        max_payload: int = MAX_ASYNC_PAYLOAD,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        self.client = client
        self.worker_function = worker_function
        self.dispatcher_function = dispatcher_function
        self.threads = threads
        self.max_payload = max_payload

    def invoke_async(self, tasks: Sequence[ShardTask]) -> None:
        payloads = [(f"shard {t.shard}", dumps(t).encode()) for t in tasks]
        self._invoke_all(self.worker_function, payloads)

    def dispatch_async(self, slices: Sequence[DispatchSlice]) -> None:
        payloads = [(_slice_label(s), dumps(s).encode()) for s in slices]
        self._invoke_all(self.dispatcher_function, payloads)

    def _invoke_all(self, function: str, payloads: Sequence[tuple[str, bytes]]) -> None:
        # Checked before the first call: a half-dispatched run is worse than a refused one.
        oversized = [(label, len(p)) for label, p in payloads if len(p) > self.max_payload]
        if oversized:
            label, size = oversized[0]
            raise ValueError(
                f"{len(oversized)} of {len(payloads)} payloads for {function} exceed the "
                f"{self.max_payload:,}-byte limit of an asynchronous invoke; first: {label}, "
                f"{size:,} bytes"
            )
        if not payloads:
            return
        with ThreadPoolExecutor(
            max_workers=min(self.threads, len(payloads)), thread_name_prefix="invoke"
        ) as pool:
            futures: list[tuple[str, Future[None]]] = [
                (label, pool.submit(self._invoke_one, function, payload))
                for label, payload in payloads
            ]
        failures: list[tuple[str, Exception]] = []
        for label, future in futures:
            exc = future.exception()
            if exc is None:
                continue
            if not isinstance(exc, Exception):
                raise exc  # an interrupt is not an invoke failure
            failures.append((label, exc))
        if failures:
            raise InvokeError(function, len(payloads), failures)

    def _invoke_one(self, function: str, payload: bytes) -> None:
        response = self.client.invoke(
            FunctionName=function, InvocationType="Event", Payload=payload
        )
        body = response.get("Payload")
        if body is not None:
            # Reading the (empty) streamed body hands its connection back to the pool.
            body.read()
        status = response.get("StatusCode")
        if status != 202:
            raise UnexpectedStatus(f"{function} answered an Event invoke with status {status}")


def _slice_label(job: DispatchSlice) -> str:
    if not job.shards:
        return "empty slice"
    return f"slice of {len(job.shards)} shards from shard {job.shards[0]}"
