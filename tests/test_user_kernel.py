"""A user's own kernel, in a project folder outside this repository, end to end through the
``sweep`` command with ``SWEEP_KERNELS``: list, check, run, status, results, query, report and
redrive, with results identical across shard layouts and worker counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

SWEEP = str(Path(sys.executable).with_name("sweep"))
"""The ``sweep`` script installed beside this interpreter."""

USER_MODEL = textwrap.dedent('''
    """Biased coins: how many heads in n flips, and whether heads won."""
    import os

    import numpy as np
    from sweep_sdk.kernels import Kernel, KernelError, KernelSpec, MetricSpec, ParamSpec
    from sweep_sdk.kernels import PointStreams

    SPEC = KernelSpec(
        name="coin_flips",
        version=os.environ.get("COIN_VERSION", "1"),
        doc="flips a biased coin n times",
        params=(
            ParamSpec("p", "float", "probability of heads", 0.0, 1.0),
            ParamSpec("n", "int", "flips", 1, 10_000, default=101),
        ),
        metrics=(
            MetricSpec("heads", "int64", "heads seen"),
            MetricSpec("fraction", "float64", "heads / n"),
            MetricSpec("majority", "bool", "more heads than tails"),
            MetricSpec("verdict", "string", "'heads' or 'tails', whichever won"),
        ),
    )

    def compute(params, index, seed):
        p, n = params["p"], params["n"]
        if os.environ.get("COIN_REFUSE") and (p > 0.8).any():
            raise KernelError("COIN_REFUSED", "p above 0.8 refused today")
        streams = PointStreams(seed)
        heads = np.array(
            [int((streams.at(int(i)).random(int(k)) < q).sum())
             for i, k, q in zip(index, n, p)],
            dtype=np.int64,
        )
        majority = 2 * heads > n
        return {
            "heads": heads,
            "fraction": heads / n,
            "majority": majority,
            "verdict": np.where(majority, "heads", "tails"),
        }

    KERNEL = Kernel(SPEC, compute)
''')

SPEC: dict[str, Any] = {
    "schema_version": "1.0",
    "kernel": "coin_flips",
    "params": {"n": 101},
    "axes": {"p": {"linspace": {"start": 0.0, "stop": 1.0, "num": 60}}},
    "sampling": {"method": "grid"},
    "sharding": {"shard_size": 7},
    "seed": 2026,
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "my_project"
    folder.mkdir()
    (folder / "coin_model.py").write_text(USER_MODEL)
    return folder


def sweep(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed ``sweep`` script, run in the user's folder; the repository is nowhere on
    its path but through the installed package."""
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environ |= {"SWEEP_KERNELS": "coin_model:KERNEL", "SWEEP_DATA_DIR": str(project / "data")}
    return subprocess.run(
        [SWEEP, *args], cwd=project, env={**environ, **env},
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip


def run_spec(project: Path, name: str, spec: dict[str, Any], *args: str, **env: str) -> str:
    path = project / f"{name}.json"
    path.write_text(json.dumps(spec))
    done = sweep(project, "run", path.name, "--wait", "--json", *args, **env)
    assert done.returncode in (0, 1), done.stderr
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return str(summary["run_id"])


@pytest.mark.slow
def test_a_user_kernel_outside_the_repository_runs_end_to_end(project: Path) -> None:
    listed = sweep(project, "kernels", "--json")
    assert listed.returncode == 0, listed.stderr
    kernels = {k["name"]: k for k in json.loads(listed.stdout)["kernels"]}
    assert kernels["coin_flips"]["source"] == "SWEEP_KERNELS item 'coin_model:KERNEL'"
    assert [m["kind"] for m in kernels["coin_flips"]["metrics"]] == [
        "int64", "float64", "bool", "string"
    ]  # fmt: skip
    assert {"gbm_european_option", "sir_epidemic"} <= set(kernels)

    checked = sweep(project, "kernels", "check", "coin_flips", "--points", "24", "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)["passed"] is True

    # One layout with two workers, another with one: the same points, bit for bit.
    many = run_spec(project, "many", SPEC, "--workers", "2")
    few = run_spec(project, "few", {**SPEC, "sharding": {"shard_size": 50}}, "--workers", "1")
    tables = []
    for run_id in (many, few):
        status = sweep(project, "status", run_id, "--json")
        assert json.loads(status.stdout)["succeeded"] == json.loads(status.stdout)["shards"]
        out = project / f"{run_id}.parquet"
        assert sweep(project, "results", run_id, "--out", str(out)).returncode == 0
        tables.append(pq.read_table(out))
    assert tables[0].num_rows == 60
    assert tables[0].equals(tables[1])
    rows = tables[0].to_pylist()
    assert (rows[0]["heads"], rows[0]["verdict"]) == (0, "tails")  # p = 0 never lands heads
    assert (rows[-1]["heads"], rows[-1]["majority"]) == (101, True)  # p = 1 always does

    query = sweep(
        project, "query", many,
        "SELECT verdict, count(*) AS points, CAST(sum(heads) AS BIGINT) AS heads "
        "FROM points_coin_flips WHERE run_id = ? GROUP BY verdict ORDER BY verdict", "--json",
    )  # fmt: skip
    assert query.returncode == 0, query.stderr
    answer = [json.loads(line) for line in query.stdout.splitlines()]
    by_verdict = {v: [r for r in rows if r["verdict"] == v] for v in ("heads", "tails")}
    assert answer == [
        {
            "verdict": v,
            "points": len(by_verdict[v]),
            "heads": sum(r["heads"] for r in by_verdict[v]),
        }
        for v in ("heads", "tails")
    ]

    report = sweep(
        project, "report", many, "--out", str(project / "report"), "--metric", "fraction"
    )
    assert report.returncode == 0, report.stderr
    assert [p.suffix for p in (project / "report").iterdir()].count(".html") == 1


@pytest.mark.slow
def test_a_redrive_after_the_user_changed_the_model_version_is_refused_unless_allowed(
    project: Path,
) -> None:
    run_id = run_spec(project, "refused", SPEC, "--workers", "2", COIN_REFUSE="1")
    status = json.loads(sweep(project, "status", run_id, "--json").stdout)
    assert status["failed"] > 0

    refused = sweep(project, "redrive", run_id, COIN_VERSION="2")
    assert refused.returncode == 2
    assert "KERNEL_CHANGED" in refused.stderr
    assert "coin_flips version '1'" in refused.stderr
    assert "--allow-kernel-change" in refused.stderr
    assert json.loads(sweep(project, "status", run_id, "--json").stdout) == status

    allowed = sweep(
        project, "redrive", run_id, "--allow-kernel-change", "--wait", "--json", COIN_VERSION="2"
    )
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout.strip().splitlines()[-1])["missing"] == 0
    versions = sweep(
        project, "query", run_id,
        "SELECT status, kernel_version, count(*) AS records FROM outcomes WHERE run_id = ? "
        "GROUP BY status, kernel_version ORDER BY status, kernel_version", "--json",
    )  # fmt: skip
    records = [json.loads(line) for line in versions.stdout.splitlines()]
    assert {(r["status"], r["kernel_version"]) for r in records} == {
        ("failure", "1"), ("success", "1"), ("success", "2")
    }  # fmt: skip


@pytest.mark.slow
def test_the_example_package_installed_registers_through_its_entry_point(tmp_path: Path) -> None:
    from infra.packaging.kernels import build_wheels

    repo = Path(__file__).resolve().parents[1]
    [wheel] = build_wheels(["examples/kernels"], repo, tmp_path)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
         str(wheel.wheel)],
        check=True, timeout=120,
    )  # fmt: skip
    environ = {k: v for k, v in os.environ.items() if k not in ("SWEEP_KERNELS", "PYTHONPATH")}
    listed = subprocess.run(
        [SWEEP, "kernels", "--json"], cwd=tmp_path, capture_output=True, text=True,
        env={**environ, "PYTHONPATH": str(site)}, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    kernels = {k["name"]: k for k in json.loads(listed.stdout)["kernels"]}
    assert kernels["damped_oscillator"]["source"] == (
        "entry point 'damped_oscillator' (sweep_oscillator.kernel:KERNEL) of sweep-oscillator"
    )
    assert kernels["damped_oscillator"]["version"] == "1.0.0"
    checked = subprocess.run(
        [SWEEP, "kernels", "check", "damped_oscillator", "--points", "12"], cwd=tmp_path,
        capture_output=True, text=True, env={**environ, "PYTHONPATH": str(site)}, timeout=300,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "passed: identical alone and in any batching" in checked.stdout
