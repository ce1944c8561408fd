"""The build: the code zip and every layer of ``requirements-lambda.txt`` for one target, checked
against Lambda's size limit, byte-compiled, zipped reproducibly (each named by its SHA-256), and
cached by a digest of everything that goes in (sources, pins, runtime, architecture, this
builder), so an unchanged checkout reuses the zips of its last build."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from attrs import frozen

from infra.packaging import kernels
from infra.packaging.bytecode import compile_tree, find_python
from infra.packaging.closure import HANDLERS, CodeClosure, code_closure, code_files
from infra.packaging.errors import BuildError
from infra.packaging.kernels import package_files, project_dist_info
from infra.packaging.pins import Pin, normalise, read_pins
from infra.packaging.target import Target
from infra.packaging.trim import MOVED, PackageSize, stage_layer, top_level_names, trim_reason
from infra.packaging.wheels import fetch_wheels, wheel_cache, wheel_paths
from infra.packaging.zips import sha256_file, unzipped_size, write_zip

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS_NAME = "requirements-lambda.txt"

MIB = 1024 * 1024
LAMBDA_UNZIPPED_LIMIT = 250 * MIB
"""Lambda's limit for a function's code and all its layers, unzipped (AWS's "250 MB")."""
TOTAL_BUDGET = 237 * MIB
"""What the build allows code and layers together: Lambda's limit less a margin, so a small
dependency bump does not stop a deploy at AWS's door."""

UNPACKED_AT = {"code": "/var/task", "layer": "/opt"}
"""Where Lambda unpacks the code zip and each layer: the ``.pyc`` name their sources there."""


@frozen
class Slot:
    """How the Pulumi program knows one artifact (see docs/RUNBOOK.md, "Config keys")."""

    kind: str
    """The middle of its S3 key in the artifacts bucket: ``lambda/<kind>/<sha256>.zip``."""
    zip_key: str
    """Config key naming a built zip to upload (a path relative to the project)."""
    existing_key: str
    """Config key naming an object already in the artifacts bucket (rollbacks)."""


SLOTS = {
    "code": Slot("code", "sweep:codeZip", "sweep:codeArtifactKey"),
    "deps": Slot("layer", "sweep:layerZip", "sweep:layerArtifactKey"),
    "scipy": Slot("layer-scipy", "sweep:scipyLayerZip", "sweep:scipyLayerArtifactKey"),
    "kernels": Slot("layer-kernels", "sweep:kernelsLayerZip", "sweep:kernelsLayerArtifactKey"),
}
"""Every artifact by name: the code, then each layer of ``requirements-lambda.txt``. Another
layer is one more entry here, a ``# layer:`` group, and the functions that attach it."""
USE_EXISTING = "sweep:useExistingArtifacts"
"""``true``: upload nothing and use the ``existing_key`` objects; ``false``: upload the zips."""
KEY_PATTERN = re.compile(r"^lambda/(?P<kind>[a-z][a-z-]*)/(?P<sha256>[0-9a-f]{64})\.zip$")
"""An artifact's S3 key: its kind, then the SHA-256 of its bytes."""


@frozen
class Artifact:
    name: str
    """``code``, or the layer's name (``deps``, ``scipy``)."""
    file: Path
    sha256: str
    zipped_bytes: int
    unzipped_bytes: int

    @property
    def key(self) -> str:
        """The S3 key: content-addressed, so an unchanged artifact is never uploaded again."""
        return f"lambda/{SLOTS[self.name].kind}/{self.sha256}.zip"

    def describe(self) -> dict[str, Any]:
        return {
            "file": self.file.name,
            "sha256": self.sha256,
            "key": self.key,
            "zipped_bytes": self.zipped_bytes,
            "unzipped_bytes": self.unzipped_bytes,
        }


@frozen
class BuildResult:
    target: Target
    out: Path
    code: Artifact
    layers: dict[str, Artifact]
    packages: dict[str, list[PackageSize]]
    trimmed: dict[str, dict[str, int]]
    closure: CodeClosure
    inputs: str = ""
    """The digest of everything that went in (``input_digest``)."""

    def artifacts(self) -> dict[str, Artifact]:
        return {"code": self.code, **dict(sorted(self.layers.items()))}

    def config(self, repo: Path = REPO) -> dict[str, str]:
        """The Pulumi config that deploys these artifacts (paths relative to the project)."""
        values = {USE_EXISTING: "false"}
        for name, artifact in self.artifacts().items():
            try:
                path = artifact.file.relative_to(repo).as_posix()
            except ValueError:
                path = artifact.file.as_posix()
            values[SLOTS[name].zip_key] = path
        return values

    def manifest(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "runtime": self.target.runtime,
            "architecture": self.target.arch,
            "platforms": list(self.target.platforms),
            "handlers": HANDLERS,
            "code": self.code.describe() | {"modules": sorted(self.closure.modules)},
            "layers": {
                name: layer.describe()
                | {
                    "packages": [
                        {
                            "name": p.name,
                            "version": p.version,
                            "wheel": p.wheel,
                            "wheel_sha256": p.wheel_sha256,
                            "kept_bytes": p.kept_bytes,
                            "trimmed_bytes": p.trimmed_bytes,
                        }
                        for p in self.packages[name]
                    ],
                    "trimmed_bytes": self.trimmed[name],
                }
                for name, layer in sorted(self.layers.items())
            },
            "config": self.config(),
        }


def output_dir(target: Target, build_dir: Path) -> Path:
    return build_dir / "lambda" / target.name


# --- inputs and the cache --------------------------------------------------------------------


def input_digest(
    target: Target, repo: Path, requirements: Path, kernel_packages: Sequence[str] = ()
) -> str:
    """A digest of everything a build reads: the target, the pins, the code zip's files, the
    project's entry points, the kernel packages and the builder's own source. Equal digests
    build equal artifacts."""
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    add("target", target.name.encode())
    add("requirements", requirements.read_bytes())
    for path in code_files(code_closure(repo), repo):
        add(f"code:{path.relative_to(repo).as_posix()}", path.read_bytes())
    for name, data in sorted(project_dist_info(repo).items()):
        add(f"dist-info:{name}", data)
    add("kernel packages", "\0".join(kernel_packages).encode())
    for path in package_files(kernel_packages, repo):
        add(f"kernel package:{path.as_posix()}", path.read_bytes())
    builder = Path(__file__).parent
    for path in sorted(builder.glob("*.py")):
        add(f"builder:{path.name}", path.read_bytes())
    return digest.hexdigest()


def _manifest_path(out: Path, inputs: str) -> Path:
    return out / f"build-{inputs[:32]}.json"


def cached(target: Target, out: Path, inputs: str) -> dict[str, Artifact] | None:
    """The artifacts of an earlier build of the same inputs, if every zip is still there with
    the bytes it was built with (a truncated or edited zip means a rebuild)."""
    path = _manifest_path(out, inputs)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("inputs") != inputs or manifest.get("runtime") != target.runtime:
        return None
    entries = {"code": manifest["code"], **manifest["layers"]}
    found: dict[str, Artifact] = {}
    for name, entry in entries.items():
        file = out / entry["file"]
        if not file.is_file() or sha256_file(file) != entry["sha256"]:
            return None
        found[name] = Artifact(
            name, file, entry["sha256"], entry["zipped_bytes"], entry["unzipped_bytes"]
        )
    return found


def ensure_built(
    target: Target,
    *,
    repo: Path = REPO,
    build_dir: Path | None = None,
    log: Any = None,
    kernel_packages: Sequence[str] = (),
) -> dict[str, Artifact]:
    """The code zip and every layer for ``target``: the cached build when its inputs are
    unchanged, a new build otherwise. ``log`` (a callable taking a line) hears which.

    Raises
    ------
    BuildError
        The build cannot succeed; the message says why.
    """
    build_dir = build_dir or repo / "build"
    requirements = repo / REQUIREMENTS_NAME
    out = output_dir(target, build_dir)
    inputs = input_digest(target, repo, requirements, kernel_packages)
    found = cached(target, out, inputs)
    say = log or (lambda line: print(line, file=sys.stderr))
    if found is not None:
        say(f"Lambda artifacts for {target.name} are up to date ({inputs[:12]})")
        return found
    say(f"building the Lambda artifacts for {target.name} (inputs {inputs[:12]}) ...")
    result = build(
        target,
        repo=repo,
        requirements=requirements,
        build_dir=build_dir,
        kernel_packages=kernel_packages,
    )
    say(report(result))
    return result.artifacts()


# --- the build -------------------------------------------------------------------------------


def build_code(closure: CodeClosure, root: Path, out: Path, python: Path | None = None) -> Artifact:
    """The code zip of ``closure`` (files under ``root``), byte-compiled by ``python``."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="code-", dir=out) as staging:
        files: dict[str, int] = {}
        for path in code_files(closure, root):
            name = path.relative_to(root).as_posix()
            (Path(staging) / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(staging) / name)
            files[name] = 0o644
        # The project's entry points: how the registry finds the built-in kernels in Lambda
        for name, data in project_dist_info(root).items():
            (Path(staging) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(staging) / name).write_bytes(data)
            files[name] = 0o644
        if python is not None:
            files = compile_tree(python, Path(staging), files, UNPACKED_AT["code"])
        return _finish("code", out, Path(staging), files)


def _finish(name: str, out: Path, root: Path, files: Mapping[str, int]) -> Artifact:
    temp = out / f".{name}.{os.getpid()}.zip"
    write_zip(temp, root, files)
    digest = sha256_file(temp)
    final = out / f"{digest}.zip"
    os.replace(temp, final)
    return Artifact(name, final, digest, final.stat().st_size, unzipped_size(final))


def build(
    target: Target,
    *,
    repo: Path = REPO,
    requirements: Path | None = None,
    build_dir: Path | None = None,
    out: Path | None = None,
    layers: Sequence[str] | None = None,
    python: Path | None = None,
    kernel_packages: Sequence[str] = (),
) -> BuildResult:
    """Build the code zip and the layers of ``requirements`` for ``target``.

    Parameters
    ----------
    layers
        Only these layers (all by default); a deploy always builds all of them.
    kernel_packages
        Project folders or wheels of kernel packages (``sweep:kernelPackages``), built into the
        ``kernels`` layer with their ``.dist-info`` and what they need beyond the other layers.
    python
        The interpreter that byte-compiles (default: ``find_python(target)``).

    Raises
    ------
    BuildError
        A download failed, the handlers reach code that never belongs in Lambda, a module they
        import is in no layer, no interpreter can byte-compile for the target, or the size
        limit is exceeded. Nothing is left half-written in ``out``.
    """
    requirements = requirements or repo / REQUIREMENTS_NAME
    build_dir = build_dir or repo / "build"
    out = out or output_dir(target, build_dir)
    out.mkdir(parents=True, exist_ok=True)
    inputs = input_digest(target, repo, requirements, kernel_packages)
    pins = read_pins(requirements)
    wanted = sorted({p.layer for p in pins}) if layers is None else sorted(layers)
    unknown = set(wanted) - {p.layer for p in pins}
    if unknown:
        raise BuildError(f"no layer named {', '.join(sorted(unknown))} in {requirements.name}")
    no_slot = [name for name in wanted if name not in SLOTS]
    if no_slot:
        raise BuildError(f"layer {', '.join(no_slot)} has no config keys (infra/packaging SLOTS)")
    python = python or find_python(target)
    closure = code_closure(repo)
    code = build_code(closure, repo, out, python)
    needed = {p.key for p in pins if p.layer in wanted}
    needed |= {normalise(rule.package) for rule in MOVED if rule.layer in wanted}
    layer_pins: list[Pin] = [p for p in pins if p.key in needed]
    wheels = fetch_wheels(layer_pins, target, wheel_cache(target, build_dir))
    built: dict[str, Artifact] = {}
    packages: dict[str, list[PackageSize]] = {}
    trimmed: dict[str, dict[str, int]] = {}
    provided: set[str] = set()
    for name in wanted:
        with tempfile.TemporaryDirectory(prefix=f"layer-{name}-", dir=out) as staging:
            staged = stage_layer(name, layer_pins, wheels, Path(staging))
            files = compile_tree(python, staged.root, staged.files, UNPACKED_AT["layer"])
            built[name] = _finish(name, out, staged.root, files)
            provided |= top_level_names(staged.files)
        packages[name] = staged.packages
        trimmed[name] = staged.trimmed
    if kernel_packages:
        layer, sizes = build_kernels_layer(kernel_packages, target, pins, repo, out, python)
        built["kernels"], packages["kernels"], trimmed["kernels"] = layer, sizes, {}
    result = BuildResult(target, out, code, built, packages, trimmed, closure, inputs)
    check(result, provided, complete=layers is None)
    if layers is None:
        keep = {a.file.name for a in result.artifacts().values()}
        for stale in [*out.glob("*.zip"), *out.glob("build-*.json")]:
            if stale.name not in keep:
                stale.unlink()
    manifest = json.dumps(result.manifest(), indent=2) + "\n"
    (out / "manifest.json").write_text(manifest)
    if layers is None:
        _manifest_path(out, inputs).write_text(manifest)
    return result


def build_kernels_layer(
    kernel_packages: Sequence[str],
    target: Target,
    pins: Sequence[Pin],
    repo: Path,
    out: Path,
    python: Path | None = None,
) -> tuple[Artifact, list[PackageSize]]:
    """The ``kernels`` layer (see ``infra.packaging.kernels``) and its packages' sizes.

    Raises
    ------
    BuildError
        A package cannot be built, what it needs cannot be fetched, it registers no kernel or a
        broken one, or a kernel named like one of the project's own.
    """
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="layer-kernels-", dir=out) as staging:
        root = Path(staging)
        (root / "wheels").mkdir()
        wheels = kernels.build_wheels(kernel_packages, repo, root / "wheels")
        provided = {normalise(p.name) for p in pins} | set(PROVIDED_BY_RUNTIME)
        provided.add(normalise(kernels.project_metadata(repo)[0]))
        extras = kernels.extra_requirements(wheels, provided, normalise)
        extra_wheels = fetch_requirements(extras, target, root / "extras", provided)
        files: dict[str, int] = {}
        sizes = []
        for wheel in [w.wheel for w in wheels] + extra_wheels:
            kept = 0
            with zipfile.ZipFile(wheel) as archive:
                for info, rel in wheel_paths(archive):
                    if trim_reason(rel) is not None:
                        continue
                    if f"python/{rel}" in files:
                        raise BuildError(f"two kernel packages install {rel}")
                    path = root / "python" / rel
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(archive.read(info))
                    files[f"python/{rel}"] = 0o644
                    kept += info.file_size
            name, version = wheel.name.split("-")[:2]
            sizes.append(PackageSize(name, version, wheel.name, sha256_file(wheel), kept, 0))
        specs = kernels.kernel_specs(root / "python")
        clash = sorted(set(kernels.project_metadata(repo)[2]) & {s.name for s in specs})
        if clash:
            raise BuildError(f"kernel packages register this project's kernel names: {clash}")
        listed = root / kernels.KERNELS_MANIFEST
        listed.write_bytes(kernels.manifest(specs))
        files[kernels.KERNELS_MANIFEST] = 0o644
        if python is not None:
            files = compile_tree(python, root, files, UNPACKED_AT["layer"])
        return _finish("kernels", out, root, files), sizes


PROVIDED_BY_RUNTIME = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six",
                       "urllib3")  # fmt: skip
"""Packages a kernel package may require without the kernels layer carrying them: the deps
layer pins boto3 and botocore, and the runtime has the rest."""


def fetch_requirements(
    requirements: Sequence[str], target: Target, dest: Path, provided: set[str]
) -> list[Path]:
    """Wheels of ``requirements`` and what they need, for ``target``, less what is provided."""
    if not requirements:
        return []
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--only-binary=:all:", "--implementation", "cp",
        "--python-version", target.python, "--abi", target.abi,
        *(arg for tag in target.platforms for arg in ("--platform", tag)),
        "--dest", str(dest), *requirements,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BuildError(
            f"pip could not download what the kernel packages need ({', '.join(requirements)}) "
            f"for {target.name}:\n" + result.stderr.strip()[-4000:]
        )
    return [
        w for w in sorted(dest.glob("*.whl")) if normalise(w.name.split("-")[0]) not in provided
    ]


def check(result: BuildResult, provided: set[str], complete: bool = True) -> None:
    """Refuse a build that could not run on Lambda: an import no layer provides, or code and
    layers over the size budget (the worker attaches every layer, so all of them count)."""
    problems: list[str] = []
    if complete:
        missing = sorted(set(result.closure.third_party) - provided)
        if missing:
            problems.append(
                f"the handlers import {', '.join(missing)}, which no layer provides "
                f"(add {'it' if len(missing) == 1 else 'them'} to {REQUIREMENTS_NAME})"
            )
    total = sum(a.unzipped_bytes for a in result.artifacts().values())
    if total > TOTAL_BUDGET:
        largest = sorted(
            (p for sizes in result.packages.values() for p in sizes),
            key=lambda p: p.kept_bytes,
            reverse=True,
        )[:5]
        named = ", ".join(f"{p.name} {p.kept_bytes / MIB:.1f} MiB" for p in largest)
        problems.append(
            f"code and layers come to {total / MIB:.1f} MiB unzipped, over the "
            f"{TOTAL_BUDGET / MIB:.0f} MiB budget (Lambda's limit is "
            f"{LAMBDA_UNZIPPED_LIMIT / MIB:.0f} MiB); the largest packages: {named}"
        )
    if problems:
        print(report(result), file=sys.stderr)
        raise BuildError("; ".join(problems))


def report(result: BuildResult) -> str:
    """The sizes, as the build prints them."""

    def mib(n: int) -> str:
        return f"{n / MIB:8.2f}"

    lines = [f"Lambda artifacts for {result.target.runtime} {result.target.arch} in {result.out}"]
    code = result.code
    modules = len(result.closure.modules)
    lines.append(
        f"  code          {modules:3d} modules  unzipped {mib(code.unzipped_bytes)} MiB"
        f"  zipped {mib(code.zipped_bytes)} MiB  {code.key}"
    )
    lazy = sorted(name for name, only_lazy in result.closure.third_party.items() if only_lazy)
    eager = sorted(name for name, only_lazy in result.closure.third_party.items() if not only_lazy)
    lines.append(f"                imports {', '.join(eager)}; lazily {', '.join(lazy) or '-'}")
    total = code.unzipped_bytes
    for name, layer in sorted(result.layers.items()):
        total += layer.unzipped_bytes
        lines.append(
            f"  layer {name:8s}               unzipped {mib(layer.unzipped_bytes)} MiB"
            f"  zipped {mib(layer.zipped_bytes)} MiB  {layer.key}"
        )
        for package in result.packages[name]:
            lines.append(
                f"      {package.name:26s} {package.version:10s} kept {mib(package.kept_bytes)}"
                f" MiB  trimmed {mib(package.trimmed_bytes)} MiB"
            )
        for reason, size in sorted(result.trimmed[name].items(), key=lambda kv: -kv[1]):
            lines.append(f"      trimmed: {reason:62s} {mib(size)} MiB")
    lines.append(
        f"  code + layers unzipped {total / MIB:.2f} MiB: budget {TOTAL_BUDGET / MIB:.0f} MiB, "
        f"Lambda's limit {LAMBDA_UNZIPPED_LIMIT / MIB:.0f} MiB"
    )
    return "\n".join(lines)
