"""LocalStore: put-if-absent is an exclusive create, readers see whole objects or nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from runtime.adapters.local_store import LocalContext, LocalStore
from sweep_core.ports import NotFound

REPO = Path(__file__).resolve().parents[1]


def hidden_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name.startswith(".")]


def body_of(writer: int, size: int) -> bytes:
    """A body that tells its writer apart at every byte, so a torn or mixed object shows."""
    return bytes([writer % 251 + 1]) * size


def test_put_if_absent_writes_once_and_keeps_the_first_body(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    assert store.put_if_absent("a/b/c.parquet", b"first") is True
    assert store.put_if_absent("a/b/c.parquet", b"second") is False
    assert store.get("a/b/c.parquet") == b"first"
    assert store.exists("a/b/c.parquet")
    assert hidden_files(tmp_path) == []


def test_get_of_a_missing_key_raises_not_found(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    with pytest.raises(NotFound, match="no/such/key"):
        store.get("no/such/key")
    assert not store.exists("no/such/key")


@pytest.mark.parametrize(
    "key", ["../x", "a/../../x", "/abs", "a//b", "a/", "", ".", "..", "a/..", "a/./b"]
)
def test_invalid_keys_are_rejected(tmp_path: Path, key: str) -> None:
    store = LocalStore(tmp_path / "root")
    with pytest.raises(ValueError, match="invalid object key"):
        store.put_if_absent(key, b"x")
    with pytest.raises(ValueError, match="invalid object key"):
        store.get(key)
    assert not (tmp_path / "x").exists()
    assert list(tmp_path.rglob("*")) == []


def test_list_matches_a_prefix_ending_mid_name_in_key_order_without_temp_files(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path)
    keys = [
        "r/s=failure/shard=00001-attempt=0002.parquet",
        "r/s=failure/shard=00001-attempt=0001.parquet",
        "r/s=failure/shard=00010-attempt=0001.parquet",
        "r/s=failure/shard=00002-attempt=0001.parquet",
        "r/s=failure/z.parquet",
        "r/s=failure/sub/a.parquet",
        "r/s=failure-x/a.parquet",
        "r/other.parquet",
        "top.parquet",  # a key with no folder, as S3 allows
    ]
    for key in keys:
        assert store.put_if_absent(key, key.encode())
    # What a writer leaves while publishing (or after a crash): hidden, never listed.
    (tmp_path / "r/s=failure/.shard=00001-attempt=0003.parquet.abc.tmp").write_bytes(b"partial")

    assert list(store.list("r/s=failure/shard=00001-")) == [
        "r/s=failure/shard=00001-attempt=0001.parquet",
        "r/s=failure/shard=00001-attempt=0002.parquet",
    ]
    assert list(store.list("r/s=failure/sh")) == [
        "r/s=failure/shard=00001-attempt=0001.parquet",
        "r/s=failure/shard=00001-attempt=0002.parquet",
        "r/s=failure/shard=00002-attempt=0001.parquet",
        "r/s=failure/shard=00010-attempt=0001.parquet",
    ]
    # A prefix ending mid-name also matches folders; the whole listing is in key order
    # ("s=failure-x/" < "s=failure/", and a folder's subfolder keys interleave with its files).
    assert list(store.list("r/s=fail")) == sorted(k for k in keys if k.startswith("r/s=fail"))
    assert list(store.list("")) == sorted(keys)
    assert list(store.list("r/")) == sorted(k for k in keys if k.startswith("r/"))
    assert list(store.list("to")) == ["top.parquet"]
    assert list(store.list("r/nothing-here")) == []
    assert list(store.list("missing/dir/")) == []


def race_threads(store: LocalStore, key: str, writers: int, size: int) -> list[bool]:
    """Release ``writers`` threads at once on one key; what each put_if_absent answered."""
    barrier = threading.Barrier(writers)
    results = [False] * writers

    def write(i: int) -> None:
        barrier.wait()
        results[i] = store.put_if_absent(key, body_of(i, size))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_threads_racing_on_one_key_leave_exactly_the_winners_complete_body(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path)
    writers, size = 12, 64 * 1024
    for round_ in range(15):
        key = f"race/{round_}/shard=00000.parquet"
        results = race_threads(store, key, writers, size)
        winners = [i for i, won in enumerate(results) if won]
        assert len(winners) == 1, f"round {round_}: winners {winners}"
        assert store.get(key) == body_of(winners[0], size)
    assert hidden_files(tmp_path) == []


_RACER = """
import os, sys, time
from runtime.adapters.local_store import LocalStore
root, go = sys.argv[1:3]
me, keys, size = map(int, sys.argv[3:6])
store = LocalStore(root)
body = bytes([me % 251 + 1]) * size
open(f"{go}.ready{me}", "w").close()
deadline = time.monotonic() + 30
while not os.path.exists(go) and time.monotonic() < deadline:
    pass
won = [store.put_if_absent(f"race/shard={k:05d}.parquet", body) for k in range(keys)]
print("".join("1" if w else "0" for w in won))
"""


def test_processes_racing_on_the_same_keys_leave_exactly_the_winners_complete_body(
    tmp_path: Path,
) -> None:
    root, go = tmp_path / "root", tmp_path / "go"
    racers, keys, size = 3, 40, 256 * 1024
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(root), str(go), str(i), str(keys), str(size)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(racers)
    ]
    deadline = time.monotonic() + 30
    while not all(Path(f"{go}.ready{i}").exists() for i in range(racers)):
        assert time.monotonic() < deadline, "racers did not start"
        assert all(proc.poll() is None for proc in procs), "a racer died before the race"
        time.sleep(0.005)
    go.touch()  # every racer is spinning on this file: they start together
    won = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        won.append(out.strip())

    store = LocalStore(root)
    for k in range(keys):
        winners = [i for i in range(racers) if won[i][k] == "1"]
        assert len(winners) == 1, f"key {k}: winners {winners}"
        assert store.get(f"race/shard={k:05d}.parquet") == body_of(winners[0], size)
    assert hidden_files(root) == []


_READER = """
import sys, time
from runtime.adapters.local_store import LocalStore
from sweep_core.ports import NotFound
root, ready, keys = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = LocalStore(root)
open(ready, "w").close()
deadline = time.monotonic() + 30
for k in range(keys):
    while time.monotonic() < deadline:
        try:
            body = store.get(f"big/{k:03d}.parquet")
        except NotFound:
            continue  # not published yet: read it the moment it appears
        print(len(body), len(set(body)))
        break
"""


def test_a_reader_never_sees_a_partial_object(tmp_path: Path) -> None:
    store, ready = LocalStore(tmp_path / "root"), tmp_path / "ready"
    keys, size = 24, 2 * 1024 * 1024
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, str(store.root), str(ready), str(keys)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert time.monotonic() < deadline, "the reader did not start"
        assert reader.poll() is None, "the reader died before reading"
        time.sleep(0.005)
    for k in range(keys):
        assert store.put_if_absent(f"big/{k:03d}.parquet", body_of(k, size))
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err

    reads = out.split("\n")[:-1]
    assert len(reads) == keys, "the reader missed objects"
    assert [r for r in reads if r != f"{size} 1"] == [], "partial reads: (length, distinct bytes)"
    assert hidden_files(store.root) == []


class _Clock:
    """A monotonic clock the test moves, so deadlines are checked without waiting."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_local_context_counts_down_to_its_deadline_and_stops_at_zero(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker reads the remaining time to stop before the deadline, as on Lambda."""
    clock = _Clock(1000.0)
    monkeypatch.setattr(time, "monotonic", clock)  # the clock LocalContext reads
    context = LocalContext.with_timeout(2.5, "request-7")
    assert context.aws_request_id == "request-7"
    assert context.deadline == 1002.5
    assert context.get_remaining_time_in_millis() == 2500
    clock.now = 1001.25
    assert context.get_remaining_time_in_millis() == 1250
    clock.now = 1002.4995
    assert context.get_remaining_time_in_millis() == 0  # 0.5 ms left: whole milliseconds only
    clock.now = 1010.0
    assert context.get_remaining_time_in_millis() == 0  # past the deadline: never negative


def test_a_local_context_without_a_request_id_gets_a_fresh_one() -> None:
    first, second = LocalContext.with_timeout(1), LocalContext.with_timeout(1)
    assert len(first.aws_request_id) == 32
    int(first.aws_request_id, 16)
    assert first.aws_request_id != second.aws_request_id
