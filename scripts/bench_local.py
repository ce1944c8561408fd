"""Moved to the benchmark suite: ``python -m benchmarks --only local`` (this path still works).

``python -m benchmarks`` runs every benchmark and prints one table; see benchmarks/RESULTS.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.__main__ import main

if __name__ == "__main__":
    raise SystemExit(main(["--only", "local", *sys.argv[1:]]))
