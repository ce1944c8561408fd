"""The artifacts unpacked the way Lambda unpacks them: the code zip into ``var/task``, every
layer, in order, into one ``opt`` (``opt/python`` on the path), under a folder of our choosing;
what the artifact tests and the cold-start benchmark run from."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path


def unpack_like_lambda(artifacts: Mapping[str, Path], root: Path) -> list[Path]:
    """Unpack ``artifacts`` (``code`` and each layer, in attach order) under ``root`` and return
    the ``sys.path`` entries Lambda would put first: the code, then the layers."""
    task, opt = root / "var" / "task", root / "opt"
    with zipfile.ZipFile(artifacts["code"]) as archive:
        archive.extractall(task)
    for name, path in artifacts.items():
        if name != "code":
            with zipfile.ZipFile(path) as archive:
                archive.extractall(opt)  # a later layer adds to (or overwrites) earlier ones
    return [task, opt / "python"]
