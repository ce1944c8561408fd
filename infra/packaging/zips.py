"""Zips that depend on their content only (fixed timestamps, sorted entries, chosen modes), so
their SHA-256 names them."""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

EPOCH = (1980, 1, 1, 0, 0, 0)
"""The timestamp of every zip entry: the earliest a zip can hold."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_zip(out: Path, root: Path, files: Mapping[str, int]) -> None:
    """Zip ``files`` (path relative to ``root`` → mode 0o644/0o755) into ``out``, reproducibly.

    Every entry, folders included, gets the same timestamp, Unix permissions chosen here rather
    than read from disk, and a place in sorted order; the result depends on content only.
    """
    folders = {"/".join(p.split("/")[:i]) + "/" for p in files for i in range(1, p.count("/") + 1)}
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(temp, "w") as archive:
        for name in sorted(folders | set(files)):
            info = zipfile.ZipInfo(name, EPOCH)
            info.create_system = 3  # Unix, so external_attr carries permissions
            if name.endswith("/"):
                info.external_attr = (0o40755 << 16) | 0x10
                archive.writestr(info, b"")
                continue
            info.external_attr = (0o100000 | files[name]) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (root / name).read_bytes(), compresslevel=6)
    os.replace(temp, out)


def unzipped_size(path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        return sum(info.file_size for info in archive.infolist())
