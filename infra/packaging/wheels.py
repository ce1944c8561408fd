"""The registry's manylinux wheels of the pins for a target, downloaded once into a cache."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from infra.packaging.errors import BuildError
from infra.packaging.pins import Pin, normalise
from infra.packaging.target import Target


def wheel_cache(target: Target, build: Path) -> Path:
    return build / "wheels" / f"{target.abi}-{target.machine}"


def _wheel_of(pin: Pin, cache: Path) -> Path | None:
    for wheel in sorted(cache.glob("*.whl")):
        name, version = wheel.name.split("-")[:2]
        if normalise(name) == pin.key and version == pin.version:
            if not zipfile.is_zipfile(wheel):  # a download cut short: fetch it again
                wheel.unlink()
                return None
            return wheel
    return None


def fetch_wheels(pins: Sequence[Pin], target: Target, cache: Path) -> dict[str, Path]:
    """The wheel of every pin for ``target``, downloading only what ``cache`` lacks."""
    cache.mkdir(parents=True, exist_ok=True)
    missing = [pin for pin in pins if _wheel_of(pin, cache) is None]
    if missing:
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--no-deps", "--only-binary=:all:", "--implementation", "cp",
            "--python-version", target.python, "--abi", target.abi,
            *(arg for tag in target.platforms for arg in ("--platform", tag)),
            "--dest", str(cache),
            *(f"{pin.name}=={pin.version}" for pin in missing),
        ]  # fmt: skip
        listed = ", ".join(f"{p.name}=={p.version}" for p in missing)
        print(f"downloading {len(missing)} wheels for {target.name}: {listed}", flush=True)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BuildError(
                f"pip could not download wheels for {target.runtime} {target.arch} "
                f"(is there a manylinux wheel of each pin for this platform?):\n"
                + result.stderr.strip()[-4000:]
            )
    wheels: dict[str, Path] = {}
    for pin in pins:
        wheel = _wheel_of(pin, cache)
        if wheel is None:
            raise BuildError(f"no wheel of {pin.name}=={pin.version} for {target.name} in {cache}")
        wheels[pin.key] = wheel
    return wheels


def wheel_paths(wheel: zipfile.ZipFile) -> Iterator[tuple[zipfile.ZipInfo, str]]:
    """Each file of a wheel with its installed path (``.data/purelib|platlib`` folded in)."""
    for info in sorted(wheel.infolist(), key=lambda i: i.filename):
        if info.is_dir():
            continue
        name = info.filename
        parts = name.split("/")
        if name.startswith("/") or ".." in parts:
            raise BuildError(f"unsafe path {name!r} in {wheel.filename}")
        if parts[0].endswith(".data"):
            if len(parts) > 2 and parts[1] in ("purelib", "platlib"):
                yield info, "/".join(parts[2:])
            continue  # scripts, headers, data: nothing a layer imports
        yield info, name
