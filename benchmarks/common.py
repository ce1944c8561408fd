"""What every benchmark shares: figures, timing, processes, memory and the machine."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Figure:
    """One measured figure and its target; ``met`` is None where there is no target."""

    number: str
    name: str
    value: str
    target: str
    met: bool | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        return {True: "meets", False: "MISSES", None: "-"}[self.met]


def say(text: str) -> None:
    print(text, flush=True)


def show(figure: Figure) -> Figure:
    note = f"  ({figure.note})" if figure.note else ""
    say(f"  [{figure.number}] {figure.name}: {figure.value}   target {figure.target}"
        f"   {figure.verdict}{note}")  # fmt: skip
    return figure


def best_of_interleaved(rounds: int, cases: Mapping[str, Callable[[], float]]) -> dict[str, float]:
    """Each case returns a duration; run them in turn, ``rounds`` times, keep each one's best."""
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):
        for name, case in cases.items():
            best[name] = min(best[name], case())
    return best


def timed(fn: Callable[[], object]) -> Callable[[], float]:
    def run() -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    return run


def worker_env() -> dict[str, str]:
    """The environment of a sweep worker (one library thread, this package importable)."""
    from runtime.local.runner import child_env

    return child_env()


def run_command(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    timeout: float = 3600,
    cwd: Path = ROOT,
) -> tuple[float, str]:
    """Wall time of a whole command, from launch to exit, and its standard output."""
    t0 = time.perf_counter()
    done = subprocess.run(
        list(args), env=dict(env or worker_env()), cwd=cwd, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} exited with {done.returncode}:\n{done.stderr[-3000:]}"
        )
    return elapsed, done.stdout


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy
    import pyarrow

    return {
        "cores": str(cores()),
        "cpu": cpu,
        "memory": _memory(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pyarrow": pyarrow.__version__,
        "os": f"{platform.system()} {platform.release()}",
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 2**20:.0f} GiB"
    except OSError:
        pass
    return "unknown"


_SPIN = (
    "import time, numpy as np\n"
    "x = np.random.default_rng(1).standard_normal(20_000)\n"
    "t = time.perf_counter()\n"
    "for _ in range(2_000): np.exp(x)\n"
    "print(time.perf_counter() - t)\n"
)


def parallel_capacity(workers: int) -> float:
    """How many cores' worth of CPU ``workers`` processes get right now (ideally ``workers``).

    Times a fixed CPU-bound loop alone, then ``workers`` copies at once: a VM that shares its
    cores with other tenants delivers less than it shows, which bounds every parallel figure.
    """
    env = worker_env()

    def one_batch(n: int) -> float:
        procs = [
            subprocess.Popen(python("-c", _SPIN), stdout=subprocess.PIPE, text=True, env=env)
            for _ in range(n)
        ]
        return max(float(p.communicate()[0]) for p in procs)

    alone = min(one_batch(1) for _ in range(2))
    together = min(one_batch(workers) for _ in range(2))
    return workers * alone / together


# --- memory ----------------------------------------------------------------------------------


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a live process (VmHWM), in MB."""
    return _status_kb(pid, "VmHWM") / 1024


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class TreeMemory:
    """Samples the resident memory of a process and all its descendants (every ``interval``).

    Reports the largest sum seen at one instant and each process's own peak (VmHWM): a
    detached runner and its workers are descendants of the command that started them.
    """

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid, self.interval = pid, interval
        self.peak_sum_mb = 0.0
        self.peaks: dict[int, float] = {}
        self.names: dict[int, str] = {}
        self.cpu: dict[int, float] = {}
        """CPU seconds (user + system) of each process, as last seen."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            total = 0.0
            for pid in [self.pid, *descendants(self.pid)]:
                rss = _status_kb(pid, "VmRSS") / 1024
                total += rss
                cpu = _cpu_seconds(pid)
                if cpu is not None:
                    self.cpu[pid] = cpu
                hwm = peak_rss_mb(pid)
                if hwm:
                    self.peaks[pid] = max(self.peaks.get(pid, 0.0), hwm)
                    if pid not in self.names:
                        self.names[pid] = _name(pid)
            self.peak_sum_mb = max(self.peak_sum_mb, total)
            self._stop.wait(self.interval)


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def _name(pid: int) -> str:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(a.decode(errors="replace") for a in args if a)
    for marker in ("--serve-worker", "runtime.local.pool", "sweep_sdk"):
        if marker in text:
            return {"--serve-worker": "worker", "runtime.local.pool": "runner"}.get(
                marker, "sweep CLI"
            )
    return text[:40]
