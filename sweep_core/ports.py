"""The seams of the runtime: what the handler cores need from the world, as small protocols.

Cloud adapters (S3, Lambda) and local ones (a folder, a process pool) both implement these; the
cores never know which they were given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Protocol

from sweep_core.contract import DispatchSlice, ShardTask

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware UTC."""


def utc_now() -> datetime:
    """The system's ``Clock``: what every wiring passes where a clock is asked for."""
    return datetime.now(UTC)


class NotFound(KeyError):
    """The key does not exist in the store."""


class StoreAccessDenied(PermissionError):
    """The store refused to say whether a key exists or to hand it over (S3's 403): the role's
    permissions are wrong. Never read as "missing"."""


class TransientStoreError(Exception):
    """The store failed in a way a retry may fix (throttling, a 5xx)."""


class ObjectStore(Protocol):
    def put_if_absent(self, key: str, body: bytes) -> bool:
        """Write ``body`` at ``key`` unless something is already there. True if this call wrote."""
        ...

    def get(self, key: str) -> bytes:
        """The object at ``key``; raises ``NotFound``."""
        ...

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds an object; raises ``StoreAccessDenied`` if the store will not
        say."""
        ...

    def list(self, prefix: str) -> Iterator[str]:
        """Every key that starts with ``prefix`` (which may end mid-name)."""
        ...


class Invoker(Protocol):
    def invoke_async(self, tasks: Sequence[ShardTask]) -> None:
        """Hand the tasks to workers and return without waiting for them to finish."""
        ...

    def dispatch_async(self, slices: Sequence[DispatchSlice]) -> None:
        """Hand slices of a run to dispatchers, each of which dispatches its shards."""
        ...


class PartitionRegistrar(Protocol):
    def register_run(self, run_id: str, kernel: str) -> None:
        """Make the run's partitions visible to the query engine before anything is written."""
        ...


class InvocationContext(Protocol):
    """The part of Lambda's context object the worker uses; a local context fits too."""

    @property
    def aws_request_id(self) -> str: ...

    def get_remaining_time_in_millis(self) -> int: ...
