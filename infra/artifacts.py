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
from infra.packaging import kernels as packaging_kernels
from infra.packaging.zips import sha256_file
from sweep_core.kernel_spec import KernelSpec

KINDS = {name: slot.kind for name, slot in packaging.SLOTS.items()}
"""The middle of each artifact's key (``code``, ``layer``, ``layer-scipy``)."""
KEY_PATTERN = packaging.KEY_PATTERN

Builder = Callable[[packaging.Target, Path, tuple[str, ...]], dict[str, Path]]
"""Builds (or finds cached) the artifacts for a target under a build folder, with the kernel
packages given (the ``kernels`` layer): name → zip."""


def default_builder(
    target: packaging.Target, build_dir: Path, kernel_packages: tuple[str, ...] = ()
) -> dict[str, Path]:
    built = packaging.ensure_built(
        target, build_dir=build_dir, log=pulumi.log.info, kernel_packages=kernel_packages
    )
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
    kernels: Artifact | None = None
    """The kernel packages (``sweep:kernelPackages``), on the worker and the parent."""

    def all(self) -> list[Artifact]:
        return [self.code, self.deps, self.scipy, *([self.kernels] if self.kernels else [])]


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
        existing = {name: Artifact.of_key(name, str(key)) for name, key in keys.items()}
        kernels_key = settings.kernels_layer_key
        return Artifacts(
            **existing,
            kernels=Artifact.of_key("kernels", kernels_key) if kernels_key else None,
        )
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
        if settings.kernel_packages and not settings.kernels_layer_zip:
            raise ValueError(
                "sweep:kernelPackages with prebuilt zips needs sweep:kernelsLayerZip too "
                "(scripts/build_artifacts.py builds it), or no zips: the program builds them"
            )
        if settings.kernels_layer_zip:
            paths["kernels"] = source_root / settings.kernels_layer_zip
    else:
        paths = builder(target, source_root / settings.build_dir, settings.kernel_packages)
        missing = sorted(set(_ZIP_KEYS) - set(paths))
        if settings.kernel_packages and "kernels" not in paths:
            missing.append("kernels")
        if missing:
            raise ValueError(f"the build made no {', '.join(missing)} artifact")
    return Artifacts(
        **{name: Artifact.of_file(name, paths[name]) for name in _ZIP_KEYS},
        kernels=Artifact.of_file("kernels", paths["kernels"]) if "kernels" in paths else None,
    )


def deployed_kernels(artifacts: Artifacts, source_root: Path) -> list[KernelSpec]:
    """The declarations of every kernel the functions will have: the project's own (its entry
    points) and the kernels layer's (its ``sweep-kernels.json``); an existing kernels layer,
    which the program cannot read, adds none.

    Raises
    ------
    BuildError
        A kernels layer without a readable list, or a kernel name registered twice.
    """
    specs = packaging_kernels.project_kernels(source_root)
    if artifacts.kernels is not None and artifacts.kernels.path is not None:
        specs += packaging_kernels.layer_kernels(artifacts.kernels.path)
    names = [s.name for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise packaging.BuildError(f"kernels deployed twice (built in and in a package): {twice}")
    return specs


def _all_set(values: dict[str, str | None], keys: dict[str, str], why: str) -> None:
    missing = [f"sweep:{keys[name]}" for name, value in values.items() if not value]
    if missing:
        raise ValueError(f"{why} {', '.join(missing)}")
