"""The main job a newcomer runs first (``make demo``): real sweeps end to end on this machine.

Submits the 10,000-point option-pricing grid and the mixed-failures epidemic sweep through the
same handlers the cloud runs, waits for them, then prints the run summary, the failure-rate
query and where the Parquet lies.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from sweep_sdk import Run, submit
from sweep_sdk.cli import format_table
from sweep_sdk.embedded import EmbeddedTarget

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def show(title: str, run: Run, name: str) -> None:
    table = run.named(name)
    print(f"\n== {title} (sweep query {run.run_id} --name {name})")
    print(format_table(table.column_names, table.to_pylist()))


def black_scholes_call(s0: float, k: float, r: float, sigma: float, t: float) -> float:
    def cdf(x: float) -> float:
        return 0.5 * (1 + math.erf(x / math.sqrt(2)))

    d1 = (math.log(s0 / k) + (r + sigma**2 / 2) * t) / (sigma * math.sqrt(t))
    return s0 * cdf(d1) - k * math.exp(-r * t) * cdf(d1 - sigma * math.sqrt(t))


def main() -> None:
    started = time.perf_counter()
    grid = submit(EXAMPLES / "gbm_grid.json", target="embedded")
    accepted = grid.accepted
    assert accepted is not None
    print(
        f"submitted {accepted.run_id}: {accepted.point_count:,} points in "
        f"{accepted.shard_count} shards (gbm_european_option, 20,000 paths per point)"
    )
    status = grid.wait()
    print(f"settled in {time.perf_counter() - started:.1f} s: {status.as_dict()}")
    show("run summary", grid, "run_summary")

    points = grid.results()
    row = points.slice(points.num_rows // 2 + 50, 1).to_pylist()[0]
    exact = black_scholes_call(row["s0"], row["strike"], row["rate"], row["sigma"], row["maturity"])
    print(
        f"\npoint {row['point_index']}: sigma={row['sigma']:.4f} strike={row['strike']:.2f} "
        f"price={row['price']:.4f} ± {row['stderr']:.4f} (Black–Scholes {exact:.4f})"
    )

    mixed = submit(EXAMPLES / "mixed_failures.json", target="embedded")
    print(f"\nsubmitted {mixed.run_id}: the epidemic sweep with a 120-day horizon")
    print(f"settled: {mixed.wait().as_dict()}")
    show("failure rate per run, across every run in the data folder", mixed, "failure_rate_by_run")

    target = grid.target
    assert isinstance(target, EmbeddedTarget)
    root, layout = target.data_dir, target.layout
    print("\n== where the Parquet lies")
    print(f"points:   {root / layout.points_prefix(accepted.kernel, grid.run_id)}")
    print(f"outcomes: {root / layout.outcomes_prefix(grid.run_id)}")
    print(
        f"next: sweep status {grid.run_id} · sweep results {grid.run_id} --out smile.csv · "
        f"sweep query {mixed.run_id} --name slowest_shards"
    )


if __name__ == "__main__":
    main()
