"""Figure 4: the parent's dispatch of a 10,000-shard run through ``LambdaInvoker`` on a fake
Lambda whose invoke takes 30 ms, with the dispatcher tree and without it, side by side."""

from __future__ import annotations

import tempfile
import threading
import time
from datetime import UTC, datetime
from typing import Any

from benchmarks.common import Figure, say, show
from runtime.adapters.lambda_invoker import LambdaInvoker
from runtime.adapters.local_store import LocalStore
from runtime.handlers.parent import Fanout, ParentDeps, handle_dispatch, submit_run
from sweep_core.contract import DispatchSlice
from sweep_core.convert import structure
from sweep_core.layout import Layout

SHARDS = 10_000
INVOKE_S = 0.030
THREADS = 32
WORKER, DISPATCHER = "sweep-worker", "sweep-dispatcher"
REQUEST: dict[str, Any] = {
    "schema_version": "1.0",
    "kernel": "gbm_european_option",
    "params": {"s0": 100.0, "rate": 0.02, "maturity": 1.0, "paths": 1000, "option": "call"},
    "axes": {
        "sigma": {"linspace": {"start": 0.05, "stop": 0.8, "num": 100}},
        "strike": {"linspace": {"start": 50.0, "stop": 150.0, "num": 100}},
    },
    "sampling": {"method": "grid"},
    "sharding": {"shard_count": SHARDS},
    "seed": 42,
}


class FakeLambda:
    """Answers every invoke with 202 after ``delay_s``, as a network round trip would."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.calls: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()

    def invoke(self, *, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:  # noqa: N803 (boto3's names)
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            self.calls.append((FunctionName, Payload))
        return {"StatusCode": 202}

    def slices(self) -> list[DispatchSlice]:
        return [structure(p, DispatchSlice) for name, p in self.calls if name == DISPATCHER]

    def count(self, function: str) -> int:
        return sum(1 for name, _ in self.calls if name == function)


def deps(root: str, client: FakeLambda, leaf: int | None, threads: int) -> ParentDeps:
    tokens = iter(f"{n:08x}" for n in range(1, 1000))
    return ParentDeps(
        store=LocalStore(root),
        layout=Layout("results"),
        invoker=LambdaInvoker(client, WORKER, DISPATCHER, threads=threads),
        clock=lambda: datetime.now(UTC),
        new_token=lambda: next(tokens),
        fanout=Fanout(leaf=leaf),
    )


def tree_depth(root: str, first: FakeLambda, leaf: int) -> tuple[int, int]:
    """Levels of invokes down to the workers, and how many worker invokes they end in.

    Replays the dispatchers with an instant fake: the shape of the tree, not its timing.
    """
    depth, level, workers = 1, first.slices(), first.count(WORKER)
    while level:
        depth += 1
        below = FakeLambda(0.0)
        for job in level:
            handle_dispatch(job, deps(root, below, leaf, THREADS))
        workers += below.count(WORKER)
        level = below.slices()
    return depth, workers


def measure(leaf: int | None, threads: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as root:
        client = FakeLambda(INVOKE_S)
        t0 = time.perf_counter()
        response = submit_run(REQUEST, deps(root, client, leaf, threads))
        parent_s = time.perf_counter() - t0
        assert response.status_code == 202, response
        figures: dict[str, Any] = {
            "parent_s": parent_s,
            "parent_invokes": len(client.calls),
            "slice_s": None,
            "slice_invokes": None,
        }
        if leaf is None:
            figures["depth"], figures["workers"] = 1, client.count(WORKER)
            return figures
        slices = client.slices()
        dispatcher = FakeLambda(INVOKE_S)
        t0 = time.perf_counter()
        handle_dispatch(slices[0], deps(root, dispatcher, leaf, threads))
        figures["slice_s"] = time.perf_counter() - t0
        figures["slice_invokes"] = len(dispatcher.calls)
        figures["depth"], figures["workers"] = tree_depth(root, client, leaf)
        return figures


def run(direct: bool = True) -> list[Figure]:
    say(f"dispatch: {SHARDS:,} shards, fake Invoke of {INVOKE_S * 1e3:.0f} ms, LocalStore manifest")
    cases: list[tuple[str, int | None, int]] = [("tree, leaf=250", 250, THREADS)]
    if direct:
        cases += [("direct, no tree", None, THREADS), ("direct, no tree", None, 4 * THREADS)]
    tree: dict[str, Any] = {}
    for name, leaf, threads in cases:
        f = measure(leaf, threads)
        rate = f["parent_invokes"] / f["parent_s"]
        line = (f"  {name:<16} {threads:>4} threads, depth {f['depth']}: parent "
                f"{f['parent_s']:.2f} s for {f['parent_invokes']:,} invokes ({rate:,.0f}/s); "
                f"{f['workers']:,} worker invokes in all")  # fmt: skip
        if f["slice_s"] is not None:
            last = f["parent_s"] + (f["depth"] - 1) * f["slice_s"]
            line += (f"; one slice {f['slice_s']:.2f} s/{f['slice_invokes']} invokes; last "
                     f"worker invoke after ≈ {last:.2f} s")  # fmt: skip
            tree = f
        say(line)
    assert tree["workers"] == SHARDS
    return [show(Figure(
        "4", "parent dispatch of 10,000 shards, 30 ms Invoke (dispatcher tree)",
        f"{tree['parent_s']:.2f} s at the parent ({tree['parent_invokes']} invokes; every worker "
        f"invoked after ≈ {tree['parent_s'] + (tree['depth'] - 1) * tree['slice_s']:.2f} s)",
        "< 5 s", tree["parent_s"] < 5,
    ))]  # fmt: skip
