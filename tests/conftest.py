"""Shared fixtures: a typical valid request, as a user would write it."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sweep_core.contract import DispatchSlice, ShardTask

GBM_REQUEST: dict[str, Any] = {
    "schema_version": "1.0",
    "kernel": "gbm_european_option",
    "params": {"s0": 100.0, "rate": 0.02, "maturity": 1.0, "paths": 2000, "option": "call"},
    "axes": {
        "sigma": {"linspace": {"start": 0.05, "stop": 0.8, "num": 16}},
        "strike": {"values": [80, 90, 100, 110, 120]},
    },
    "sampling": {"method": "grid"},
    "sharding": {"shard_size": 64},
    "seed": 42,
    "label": "vol-smile",
    "client_token": "optional-idempotency-key",
}


GRID_120: dict[str, Any] = {
    "schema_version": "1.0",
    "kernel": "gbm_european_option",
    "params": {"s0": 100.0, "rate": 0.02, "maturity": 1.0, "paths": 16, "option": "call"},
    "axes": {
        "sigma": {"linspace": {"start": 0.1, "stop": 0.5, "num": 12}},
        "strike": {"linspace": {"start": 90.0, "stop": 110.0, "num": 10}},
    },
    "sampling": {"method": "grid"},
    "sharding": {"shard_count": 12},
    "seed": 11,
}
"""120 cheap points in 12 shards of 10: the run the compaction and commit tests break."""


@pytest.fixture
def gbm_request() -> dict[str, Any]:
    """A fresh, valid request dict that a test may mutate."""
    return copy.deepcopy(GBM_REQUEST)


def tiny_request(token: str | None = None, paths: int = 200) -> dict[str, Any]:
    """Four GBM points in two shards: a worker finishes it in well under a second."""
    raw: dict[str, Any] = {
        "schema_version": "1.0",
        "kernel": "gbm_european_option",
        "params": {"s0": 100.0, "rate": 0.02, "maturity": 1.0, "paths": paths, "option": "call"},
        "axes": {"sigma": {"values": [0.1, 0.3]}, "strike": {"values": [90.0, 110.0]}},
        "sampling": {"method": "grid"},
        "sharding": {"shard_count": 2},
        "seed": 7,
    }
    if token is not None:
        raw["client_token"] = token
    return raw


T0 = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
"""When the held runs of the tests begin."""


class Ticking:
    """A clock one second further on at each call: distinct, ordered timestamps."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


class HeldInvoker:
    """Keeps the tasks a parent dispatches, for the test to run when and where it chooses."""

    def __init__(self) -> None:
        self.tasks: list[ShardTask] = []

    def invoke_async(self, tasks: Sequence[ShardTask]) -> None:
        self.tasks.extend(tasks)

    def dispatch_async(self, slices: Sequence[DispatchSlice]) -> None:
        raise AssertionError("no fan-out tree locally")


class HeldRun:
    """The 120-point run submitted through the real parent into a local folder, its tasks held
    for the test to run (or break) one by one, under a ticking clock."""

    def __init__(self, root: Path, store: Any = None, start: datetime = T0) -> None:
        from runtime.adapters.local_store import LocalStore
        from runtime.handlers.parent import Fanout, ParentDeps, submit_run
        from runtime.handlers.worker import WorkerDeps
        from sweep_core.layout import Layout
        from sweep_sdk.client import Run
        from sweep_sdk.embedded import EmbeddedTarget

        self.root = root
        self.store = store if store is not None else LocalStore(root)
        self.layout = Layout("results")
        self.clock = Ticking(start)
        self.invoker = HeldInvoker()
        tokens = iter(["00c0ffee", "00c0ffef"])
        self.parent = ParentDeps(
            self.store, self.layout, self.invoker, self.clock, lambda: next(tokens),
            fanout=Fanout.local(),
        )  # fmt: skip
        self.worker = WorkerDeps(self.store, self.layout, self.clock)
        accepted = submit_run(GRID_120, self.parent).body
        self.run_id: str = accepted.run_id  # type: ignore[union-attr]
        self.target = EmbeddedTarget(root)
        self.run = Run(self.run_id, self.target)
