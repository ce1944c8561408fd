"""The Lambda artifacts the stack deploys: the code zip and the dependency layers, each known by
the sha256 of exactly the bytes uploaded, under the content-addressed key
``lambda/<kind>/<sha256>.zip``.

By default the program builds them itself (``infra.packaging``), reusing the cached build while its
inputs are unchanged. A deploy may instead name zips it built (``codeZip``, ``layerZip``,
``scipyLayerZip``, all three), or, with ``useExistingArtifacts``, objects already in the
artifacts bucket by their keys (``codeArtifactKey`` ...), for a rollback to an earlier build.
Whichever way, every artifact is there: no setting deploys a function without its layers.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pulumi
from attrs import frozen

from infra import packaging
from infra.config import ArtifactSettings
from infra.packaging.zips import sha256_file

KINDS = {name: slot.kind for name, slot in packaging.SLOTS.items()}
"""The middle of each artifact's key (``code``, ``layer``, ``layer-scipy``)."""
KEY_PATTERN = packaging.KEY_PATTERN

Builder = Callable[[packaging.Target, Path], dict[str, Path]]
"""Builds (or finds cached) the artifacts for a target under a build folder: name → zip."""


def default_builder(target: packaging.Target, build_dir: Path) -> dict[str, Path]:
    built = packaging.ensure_built(target, build_dir=build_dir, log=pulumi.log.info)
    return {name: artifact.file for name, artifact in built.items()}


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
        return cls(name, sha256_file(path), path)

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
    deps: Artifact
    scipy: Artifact

    def all(self) -> list[Artifact]:
        return [self.code, self.deps, self.scipy]


_ZIP_KEYS = {"code": "codeZip", "deps": "layerZip", "scipy": "scipyLayerZip"}
_EXISTING_KEYS = {
    "code": "codeArtifactKey",
    "deps": "layerArtifactKey",
    "scipy": "scipyLayerArtifactKey",
}


def resolve_artifacts(
    settings: ArtifactSettings,
    source_root: Path,
    target: packaging.Target,
    builder: Builder = default_builder,
) -> Artifacts:
    """The artifacts ``settings`` name, else those ``builder`` makes for ``target``; relative
    paths are taken from ``source_root``.

    Raises
    ------
    FileNotFoundError
        For a configured zip that does not exist.
    ValueError
        For a partial set of zips or keys (a function would miss its layer), or a malformed key.
    BuildError
        When the build cannot succeed (the message says why).
    """
    if settings.use_existing:
        keys = {
            "code": settings.code_key,
            "deps": settings.layer_key,
            "scipy": settings.scipy_layer_key,
        }
        _all_set(keys, _EXISTING_KEYS, "useExistingArtifacts needs every artifact key; missing")
        return Artifacts(**{name: Artifact.of_key(name, str(key)) for name, key in keys.items()})
    zips = {
        "code": settings.code_zip,
        "deps": settings.layer_zip,
        "scipy": settings.scipy_layer_zip,
    }
    if any(zips.values()):
        _all_set(
            zips,
            _ZIP_KEYS,
            "prebuilt zips come as a set (or none: the program builds them); missing",
        )
        paths = {name: source_root / str(path) for name, path in zips.items()}
    else:
        paths = builder(target, source_root / settings.build_dir)
        missing = sorted(set(_ZIP_KEYS) - set(paths))
        if missing:
            raise ValueError(f"the build made no {', '.join(missing)} artifact")
    return Artifacts(**{name: Artifact.of_file(name, paths[name]) for name in _ZIP_KEYS})


def _all_set(values: dict[str, str | None], keys: dict[str, str], why: str) -> None:
    missing = [f"sweep:{keys[name]}" for name, value in values.items() if not value]
    if missing:
        raise ValueError(f"{why} {', '.join(missing)}")
