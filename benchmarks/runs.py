"""Figure 10: ``sweep runs`` over a thousand settled runs, listed from their recorded summaries,
beside the baseline of working every run's status out from its outcome objects."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, Figure, say, show
from sweep_core.run_index import list_runs, run_folders
from sweep_core.runs import read_manifest, run_status

EXAMPLE = ROOT / "examples" / "gbm_grid.json"


def _clone(data: Path, run_id: str, count: int) -> None:
    """``count`` copies of a settled run under new ids: its manifest (with the new id) and its
    outcome objects, as a thousand real runs would leave them."""
    results = data / "results"
    day = f"{run_id[:4]}-{run_id[4:6]}-{run_id[6:8]}"
    runs = results / "runs" / f"run_date={day}"
    outcomes = results / "outcomes" / f"run_date={day}"
    manifest = (runs / f"run_id={run_id}" / "manifest.json").read_text()
    for k in range(count):
        clone = f"{run_id[:-8]}{k:08x}"
        folder = runs / f"run_id={clone}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "manifest.json").write_text(manifest.replace(run_id, clone))
        shutil.copytree(outcomes / f"run_id={run_id}", outcomes / f"run_id={clone}")


def _status_each_time(data: Path) -> int:
    """The baseline: every run's manifest read and its status listed, as no summary existed."""
    from runtime.adapters.local_store import LocalStore
    from sweep_core.layout import Layout

    store, layout = LocalStore(data), Layout()
    settled = 0
    for run_id in sorted(run_folders(store, layout), reverse=True):
        manifest = read_manifest(store, layout, run_id)
        assert manifest is not None
        settled += run_status(store, layout, manifest).settled
    return settled


def run(count: int = 1000, rounds: int = 3) -> list[Figure]:
    from runtime.adapters.local_store import LocalStore
    from sweep_core.layout import Layout
    from sweep_sdk import submit

    say(f"[10] sweep runs over {count:,} settled runs (4 shards each)")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        spec = json.loads(EXAMPLE.read_text())
        spec["params"]["paths"] = 100
        spec["axes"]["sigma"]["linspace"]["num"] = 2
        spec["axes"]["strike"] = {"values": [90, 110]}
        spec["sharding"] = {"shard_count": 4}
        spec.pop("client_token", None)
        seed = submit(spec, data_dir=data, workers=1)
        seed.wait(timeout=120, progress=False)
        _clone(data, seed.run_id, count - 1)
        store, layout = LocalStore(data), Layout()
        t0 = time.perf_counter()
        first = list_runs(store, layout)
        recording = time.perf_counter() - t0
        listed, baseline = [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            again = list_runs(store, layout)
            listed.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            _status_each_time(data)
            baseline.append(time.perf_counter() - t0)
        assert again == first
        assert len(first) == count
    best, base = min(listed), min(baseline)
    return [
        show(Figure("10", f"list {count:,} settled runs (summaries recorded)", f"{best:.3f} s",
                    "< 1 s", best < 1.0,
                    f"{base / best:.1f}x faster than listing each run's status ({base:.3f} s); "
                    f"the first listing, which records the summaries, took {recording:.2f} s")),
    ]  # fmt: skip
