"""Whole sweeps through the real handlers on the embedded target: processes, files, DuckDB."""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from sweep_core.convert import ContractError
from sweep_sdk import Run, submit
from sweep_sdk.embedded import EmbeddedTarget

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example(name: str) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return raw


def black_scholes(s0: float, k: float, r: float, sigma: float, t: float, call: bool) -> float:
    def cdf(x: float) -> float:
        return 0.5 * (1 + math.erf(x / math.sqrt(2)))

    d1 = (math.log(s0 / k) + (r + sigma**2 / 2) * t) / (sigma * math.sqrt(t))
    d2 = d1 - sigma * math.sqrt(t)
    if call:
        return s0 * cdf(d1) - k * math.exp(-r * t) * cdf(d2)
    return k * math.exp(-r * t) * cdf(-d2) - s0 * cdf(-d1)


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    run = submit(example("mixed_failures.json"), data_dir=tmp_path_factory.mktemp("mixed"))
    run.wait(timeout=120, progress=False)
    return run


def test_prices_through_the_whole_path_match_black_scholes(tmp_path: Path) -> None:
    spec = example("gbm_grid.json")
    spec["axes"] = {
        "sigma": {"values": [0.1, 0.3, 0.6]},
        "strike": {"values": [85.0, 100.0, 115.0]},
        "option": {"values": ["call", "put"]},
    }
    del spec["params"]["option"]
    spec["sharding"] = {"shard_count": 4}
    run = submit(spec, data_dir=tmp_path, workers=2)
    assert run.wait(timeout=120, progress=False).succeeded == 4
    rows = run.results().to_pylist()
    assert len(rows) == 18
    for row in rows:
        exact = black_scholes(
            row["s0"], row["strike"], row["rate"], row["sigma"], row["maturity"],
            call=row["option"] == "call",
        )  # fmt: skip
        assert abs(row["price"] - exact) <= 4 * row["stderr"], row


def test_mixed_sweep_leaves_a_record_for_every_shard(mixed_run: Run) -> None:
    status = mixed_run.status()
    assert status.missing == 0
    assert status.succeeded > 0
    assert status.failed > 0
    outcomes = mixed_run.outcomes().to_pylist()
    by_shard: dict[int, list[str]] = {}
    for row in outcomes:
        by_shard.setdefault(row["shard"], []).append(row["status"])
    assert sorted(by_shard) == list(range(status.total))
    for statuses in by_shard.values():
        assert statuses == ["success"] or set(statuses) == {"failure"}
    failures = [r for r in outcomes if r["status"] == "failure"]
    assert {r["error_code"] for r in failures} == {"EPIDEMIC_NOT_OVER"}
    assert all("increase" in r["error_message"] or "days" in r["error_message"] for r in failures)


def test_failed_shards_leave_no_points_and_successes_leave_all(mixed_run: Run) -> None:
    succeeded = [r for r in mixed_run.outcomes().to_pylist() if r["status"] == "success"]
    expected = sorted(i for r in succeeded for i in range(r["point_start"], r["point_end"]))
    assert mixed_run.results().column("point_index").to_pylist() == expected


def test_failure_rate_query_agrees_with_outcome_counts(mixed_run: Run) -> None:
    status = mixed_run.status()
    [row] = [r for r in mixed_run.named("failure_rate_by_run").to_pylist()
             if r["run_id"] == mixed_run.run_id]  # fmt: skip
    assert row["shards_settled"] == status.total
    assert row["shards_failed"] == status.failed
    assert row["failure_rate"] == pytest.approx(status.failed / status.total)
    [day] = mixed_run.named("failure_rate_by_day").to_pylist()
    assert day["shards_failed"] == status.failed
    [summary] = mixed_run.named("run_summary").to_pylist()
    assert summary["shards_succeeded"] == status.succeeded
    assert summary["shards_failed"] == status.failed
    assert summary["points_succeeded"] == mixed_run.results().num_rows


def _points(tmp: Path, spec: dict[str, Any], workers: int) -> pa.Table:
    run = submit(spec, data_dir=tmp, workers=workers)
    assert run.wait(timeout=120, progress=False).succeeded == run.status().total
    return run.results()


def test_results_do_not_depend_on_shard_size_or_workers(tmp_path: Path) -> None:
    spec = example("sir_sobol.json")
    spec["sampling"] = {"method": "random", "n": 400}
    spec["params"]["population"] = 5000
    tables = []
    for i, (sharding, workers) in enumerate(
        [({"shard_size": 7}, 2), ({"shard_size": 1000}, 1), ({"shard_size": 7}, 1)]
    ):
        tables.append(_points(tmp_path / str(i), {**spec, "sharding": sharding}, workers))
    assert tables[0].num_rows == 400
    assert tables[0].equals(tables[1])
    assert tables[0].equals(tables[2])


def test_invalid_request_writes_nothing(tmp_path: Path) -> None:
    spec = example("gbm_grid.json")
    spec["axes"]["sigma"]["linspace"]["num"] = 0
    spec["params"]["rate"] = 9.0
    with pytest.raises(ContractError) as caught:
        submit(spec, data_dir=tmp_path)
    # every problem at once: the schema's and the bounds of the parts it accepted
    assert [str(p) for p in caught.value.problems] == [
        "$.axes.sigma.linspace.num: must be >= 1",
        "$.params.rate: 9.0 is out of bounds: rate must be in [-0.5, 1]",
    ]
    assert list(tmp_path.rglob("*")) == []


def test_killed_worker_becomes_a_failure_and_redrive_completes(tmp_path: Path) -> None:
    spec = example("gbm_grid.json")
    spec["params"]["paths"] = 2_000
    spec["axes"] = {"sigma": {"values": [0.2, 0.3]}, "strike": {"values": [90.0, 100.0, 110.0]}}
    spec["sharding"] = {"shard_count": 2}
    target = EmbeddedTarget.from_env(tmp_path, workers=1)
    pool = target.invoker.pool  # type: ignore[attr-defined]
    # Stopped before any shard reaches it: its first shard cannot end before the kill,
    # however fast the machine.
    pool.warm_up()
    [worker] = pool.worker_pids()
    os.kill(worker, signal.SIGSTOP)
    accepted = target.submit(spec)
    run = Run(accepted.run_id, target, accepted)
    deadline = time.monotonic() + 30
    while not pool.busy_pids() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(worker, signal.SIGKILL)
    pool.release()

    status = run.wait(timeout=60, progress=False)
    assert (status.succeeded, status.failed, status.missing) == (1, 1, 0)
    died = [r for r in run.outcomes().to_pylist() if r["status"] == "failure"]
    assert [(r["shard"], r["error_code"]) for r in died] == [(0, "WORKER_DIED")]
    assert "SIGKILL" in died[0]["error_message"]

    redriven = run.redrive()
    assert redriven == [0]
    status = run.wait(timeout=60, progress=False)
    assert (status.succeeded, status.failed, status.missing) == (2, 0, 0)
    assert run.results().num_rows == 6
    assert len([r for r in run.outcomes().to_pylist() if r["status"] == "failure"]) == len(died)
    target.join(30)


def test_a_shard_that_cannot_meet_its_deadline_ends_with_deadline_exceeded(tmp_path: Path) -> None:
    spec = example("gbm_grid.json")
    spec["axes"] = {"sigma": {"values": [0.2]}, "strike": {"values": [100.0]}}
    spec["sharding"] = {"shard_count": 1}
    target = EmbeddedTarget.from_env(tmp_path, workers=1, shard_timeout=1.0)
    accepted = target.submit(spec)
    run = Run(accepted.run_id, target, accepted)
    assert run.wait(timeout=60, progress=False).failed == 1
    [failure] = run.outcomes().to_pylist()
    assert failure["error_code"] == "DEADLINE_EXCEEDED"
    assert run.results().num_rows == 0
    target.join(30)


def test_repeated_submit_with_a_client_token_returns_the_same_run(tmp_path: Path) -> None:
    spec = example("mixed_failures.json")
    spec["client_token"] = "nightly-2026-11-23"
    first = submit(spec, data_dir=tmp_path)
    again = submit(spec, data_dir=tmp_path)
    assert again.run_id == first.run_id
    assert again.accepted is not None
    assert again.accepted.existing
    first.wait(timeout=120, progress=False)
    runs = list((tmp_path / "results" / "runs").rglob("manifest.json"))
    assert len(runs) == 1


def test_axes_iterate_in_the_order_the_request_gives_them(tmp_path: Path) -> None:
    spec = example("gbm_grid.json")
    spec["params"]["paths"] = 100
    spec["axes"] = {
        "strike": {"values": [90.0, 110.0]},
        "sigma": {"values": [0.1, 0.2, 0.3]},
    }  # not alphabetical: strike is the outer axis, sigma varies fastest
    spec["sharding"] = {"shard_count": 2}
    run = submit(spec, data_dir=tmp_path, workers=1)
    run.wait(timeout=60, progress=False)
    assert list(run.manifest.spec.axes) == ["strike", "sigma"]
    rows = run.results().to_pylist()
    assert [(r["strike"], r["sigma"]) for r in rows] == [
        (90.0, 0.1), (90.0, 0.2), (90.0, 0.3), (110.0, 0.1), (110.0, 0.2), (110.0, 0.3),
    ]  # fmt: skip
