"""The Lambda artifacts the stack deploys: the code zip and the dependency layers, each known by
the sha256 of exactly the bytes uploaded, under the content-addressed key
``lambda/<kind>/<sha256>.zip`` that ``scripts/build_artifacts.py`` also uses.

Each artifact is either a zip on disk that the stack uploads (``codeZip``, ``layerZip``,
``scipyLayerZip``; without ``codeZip`` the program zips the packages itself), or, with
``useExistingArtifacts``, an object already in the artifacts bucket, named by its key
(``codeArtifactKey`` ...), for a rollback to a build deployed before.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import zipfile
from pathlib import Path

from attrs import frozen

from infra.config import ArtifactSettings

CODE_PACKAGES = ("sweep_core", "sweep_kernels", "runtime")
"""The folders the functions import (handlers are ``runtime.lambda_entry.*``)."""
KINDS = {"code": "code", "deps": "layer", "scipy": "layer-scipy"}
"""The middle of each artifact's key, as the build script names them."""
KEY_PATTERN = re.compile(r"^lambda/(?P<kind>[a-z][a-z-]*)/(?P<sha256>[0-9a-f]{64})\.zip$")
_SHIPPED = (".py", ".sql")
_MARKERS = ("py.typed",)
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


@frozen
class Artifact:
    """One artifact: its name (``code``, ``deps``, ``scipy``), digest, and the zip to upload
    (``None`` when the object is already in the artifacts bucket)."""

    name: str
    sha256: str
    path: Path | None = None

    @property
    def kind(self) -> str:
        return KINDS[self.name]

    @property
    def key(self) -> str:
        """Content-addressed object key: a changed artifact is a new object."""
        return f"lambda/{self.kind}/{self.sha256}.zip"

    @property
    def sha256_base64(self) -> str:
        """The digest as Lambda reports it (``CodeSha256``)."""
        return base64.b64encode(bytes.fromhex(self.sha256)).decode()

    @classmethod
    def of_file(cls, name: str, path: Path) -> Artifact:
        if not path.is_file():
            raise FileNotFoundError(f"{name} artifact {path} does not exist; build it first")
        return cls(name, hashlib.sha256(path.read_bytes()).hexdigest(), path)

    @classmethod
    def of_key(cls, name: str, key: str) -> Artifact:
        """An artifact already uploaded; its key names its digest."""
        match = KEY_PATTERN.match(key)
        if match is None or match.group("kind") != KINDS[name]:
            raise ValueError(
                f"{key!r} is not a {name} artifact key (lambda/{KINDS[name]}/<sha256>.zip)"
            )
        return cls(name, match.group("sha256"))


@frozen
class Artifacts:
    """What the functions run: code on every function, the ``deps`` layer on every function,
    the ``scipy`` layer on the worker only (only Sobol decoding, in the worker, imports scipy)."""

    code: Artifact
    deps: Artifact | None = None
    scipy: Artifact | None = None

    def all(self) -> list[Artifact]:
        return [a for a in (self.code, self.deps, self.scipy) if a is not None]


def shipped_files(source_root: Path) -> list[Path]:
    """The files of the code packages that go into the zip, sorted (caches left out)."""
    files = []
    for package in CODE_PACKAGES:
        for path in (source_root / package).rglob("*"):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            if path.suffix in _SHIPPED or path.name in _MARKERS:
                files.append(path)
    return sorted(files, key=lambda p: p.relative_to(source_root).as_posix())


def code_zip_bytes(source_root: Path) -> bytes:
    """The code zip: same files, same bytes, whatever the checkout's timestamps."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in shipped_files(source_root):
            info = zipfile.ZipInfo(path.relative_to(source_root).as_posix(), date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    return buffer.getvalue()


def build_code_zip(source_root: Path, out_dir: Path) -> Artifact:
    """Write the code zip under ``out_dir`` (named by its digest) and describe it."""
    data = code_zip_bytes(source_root)
    digest = hashlib.sha256(data).hexdigest()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"lambda-code-{digest[:16]}.zip"
    if not path.is_file() or path.read_bytes() != data:
        path.write_bytes(data)
    return Artifact("code", digest, path)


def resolve_artifacts(settings: ArtifactSettings, source_root: Path) -> Artifacts:
    """The artifacts ``settings`` name; relative paths are taken from ``source_root``.

    Raises
    ------
    FileNotFoundError
        For a configured zip that does not exist.
    ValueError
        For ``useExistingArtifacts`` without a valid ``codeArtifactKey``, or a malformed key.
    """
    if settings.use_existing:
        if not settings.code_key:
            raise ValueError("useExistingArtifacts needs codeArtifactKey")
        return Artifacts(
            code=Artifact.of_key("code", settings.code_key),
            deps=Artifact.of_key("deps", settings.layer_key) if settings.layer_key else None,
            scipy=(
                Artifact.of_key("scipy", settings.scipy_layer_key)
                if settings.scipy_layer_key
                else None
            ),
        )

    def zipped(name: str, path: str | None) -> Artifact | None:
        return Artifact.of_file(name, source_root / path) if path else None

    code = zipped("code", settings.code_zip) or build_code_zip(
        source_root, source_root / settings.build_dir
    )
    return Artifacts(
        code=code,
        deps=zipped("deps", settings.layer_zip),
        scipy=zipped("scipy", settings.scipy_layer_zip),
    )
