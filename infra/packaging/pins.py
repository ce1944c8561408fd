"""The pinned third-party packages of the layers (``requirements-lambda.txt``), each in the layer
its ``# layer: NAME`` group names."""

from __future__ import annotations

import re
from pathlib import Path

from attrs import frozen

from infra.packaging.errors import BuildError


@frozen
class Pin:
    name: str
    version: str
    layer: str

    @property
    def key(self) -> str:
        return normalise(self.name)


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> list[Pin]:
    """The ``name==version`` lines of ``path``, each in the layer its ``# layer:`` group names."""
    pins: list[Pin] = []
    layer: str | None = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        marker = re.match(r"#\s*layer:\s*([a-z][a-z0-9]*)", line)
        if marker:
            layer = marker.group(1)
            continue
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.!+_-]+)", line)
        if match is None:
            raise BuildError(f"{path.name}:{number}: expected name==version, got {raw!r}")
        if layer is None:
            raise BuildError(f"{path.name}:{number}: {raw!r} comes before any '# layer:' line")
        pins.append(Pin(match.group(1), match.group(2), layer))
    seen: set[str] = set()
    for pin in pins:
        if pin.key in seen:
            raise BuildError(f"{path.name}: {pin.name} is pinned twice")
        seen.add(pin.key)
    return pins
