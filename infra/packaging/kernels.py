"""Kernels in the artifacts: this project's own (its ``sweep.kernels`` entry points, which the
code zip carries in a generated ``.dist-info`` so the registry finds them inside Lambda), and
the kernel packages a stack deploys (``sweep:kernelPackages``), each built into a wheel and
unpacked with its ``.dist-info`` into the ``kernels`` layer, with whatever it needs that the
other layers lack.

At the kernels layer's root, outside ``python/`` (so nothing imports it), ``sweep-kernels.json``
lists the declarations of the kernels it carries: the stack makes their Glue tables from it.
"""

from __future__ import annotations

import email.parser
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from attrs import frozen
from packaging.requirements import InvalidRequirement, Requirement

from infra.packaging.errors import BuildError
from sweep_core.kernel_spec import KernelSpec, spec_from_dict, spec_to_dict
from sweep_core.kernels import ENTRY_POINT_GROUP, KernelRegistry, KernelSource

KERNELS_MANIFEST = "sweep-kernels.json"
"""The kernels layer's list of kernel declarations (at its root, not importable)."""


class KernelPackageError(BuildError):
    """A kernel package that cannot be deployed; the message names it and says why."""


def project_metadata(root: Path) -> tuple[str, str, dict[str, str]]:
    """The project's name, version and ``sweep.kernels`` entry points, from its
    ``pyproject.toml`` (the source the code zip is built from, not whatever is installed)."""
    import tomllib

    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    kernels = project.get("entry-points", {}).get(ENTRY_POINT_GROUP, {})
    return project["name"], project["version"], dict(kernels)


def kernel_modules(root: Path) -> list[str]:
    """The modules of the project's own kernels (the registry imports them; no import does)."""
    return sorted({ref.partition(":")[0].strip() for ref in project_metadata(root)[2].values()})


def project_dist_info(root: Path) -> dict[str, bytes]:
    """The project's ``.dist-info`` for the code zip: metadata and ``entry_points.txt``, so the
    kernel registry finds the built-in kernels inside Lambda exactly as when installed."""
    name, version, kernels = project_metadata(root)
    folder = f"{re.sub(r'[-_.]+', '_', name)}-{version}.dist-info"
    entries = "".join(f"{key} = {value}\n" for key, value in sorted(kernels.items()))
    return {
        f"{folder}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{folder}/entry_points.txt": f"[{ENTRY_POINT_GROUP}]\n{entries}".encode(),
    }


def project_kernels(root: Path) -> list[KernelSpec]:
    """The declarations of the project's own kernels, loaded through its entry points."""
    sources = [
        KernelSource("entry point", ref, name, project_metadata(root)[0])
        for name, ref in sorted(project_metadata(root)[2].items())
    ]
    registry = KernelRegistry(lambda: sources)
    if registry.problems:
        raise BuildError("; ".join(str(p) for p in registry.problems))
    return [registry[name].spec for name in registry]


def layer_kernels(layer_zip: Path) -> list[KernelSpec]:
    """The declarations a kernels layer lists (its ``sweep-kernels.json``)."""
    try:
        with zipfile.ZipFile(layer_zip) as archive:
            listed = json.loads(archive.read(KERNELS_MANIFEST))
        return [spec_from_dict(k) for k in listed["kernels"]]
    except (KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise BuildError(
            f"the kernels layer {layer_zip} lists no kernels readably ({KERNELS_MANIFEST}: "
            f"{exc}); build it again"
        ) from None


def package_files(packages: Sequence[str], repo: Path) -> list[Path]:
    """Every file of the kernel packages (folders' files, or the wheels), for the build's cache
    key: a change to a package is a new kernels layer."""
    files: list[Path] = []
    for package in packages:
        path = Path(package) if Path(package).is_absolute() else repo / package
        if path.is_file():
            files.append(path)
            continue
        skip = {"build", "dist", "__pycache__"}
        files += sorted(
            p for p in path.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(path).parts)
            and not any(part.endswith(".egg-info") or part.startswith(".")
                        for part in p.relative_to(path).parts)
        )  # fmt: skip
    return files


@frozen
class KernelWheel:
    package: str
    """As configured: a project folder or a wheel."""
    wheel: Path


def parse_packages(value: str | None) -> list[str]:
    """``sweep:kernelPackages``: comma-separated project folders or wheels."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def build_wheels(packages: Sequence[str], repo: Path, out: Path) -> list[KernelWheel]:
    """A wheel of each package: the wheel itself, or one built from the project folder (no
    build isolation: its build backend must be installed here, as this project's is)."""
    wheels = []
    problems = []
    for package in packages:
        path = Path(package) if Path(package).is_absolute() else repo / package
        if path.suffix == ".whl" and path.is_file():
            wheels.append(KernelWheel(package, path))
            continue
        if not (path / "pyproject.toml").is_file():
            problems.append(f"{package}: neither a wheel nor a folder with a pyproject.toml")
            continue
        with tempfile.TemporaryDirectory(dir=out) as folder:
            # A copy: a build backend leaves build/ and *.egg-info in the folder it builds
            source = Path(folder) / "source"
            ignore = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".*")
            shutil.copytree(path, source, ignore=ignore)
            wheels_dir = Path(folder) / "wheels"
            done = subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
                 "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels_dir),
                 str(source)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            built = sorted(wheels_dir.glob("*.whl"))
            if done.returncode != 0 or len(built) != 1:
                problems.append(f"{package}: pip could not build it: {done.stderr.strip()[-2000:]}")
                continue
            kept = out / built[0].name
            built[0].replace(kept)
            wheels.append(KernelWheel(package, kept))
    if problems:
        raise KernelPackageError("kernel packages: " + "; ".join(problems))
    return wheels


def requirements(wheel: Path) -> list[Requirement]:
    """What the wheel's metadata requires (environment markers of Lambda's Linux applied;
    optional extras left out)."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(name).decode())
    out = []
    for line in metadata.get_all("Requires-Dist") or []:
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise KernelPackageError(f"{wheel.name}: bad Requires-Dist {line!r}: {exc}") from None
        env = {"sys_platform": "linux", "platform_system": "Linux", "extra": ""}
        if req.marker is None or req.marker.evaluate(env):
            out.append(req)
    return out


def extra_requirements(
    wheels: Iterable[KernelWheel], provided: set[str], normalise: Callable[[str], str]
) -> list[str]:
    """What the kernel packages need beyond ``provided`` (normalised names of this project and
    of every package the other layers and the runtime hold), as requirement strings."""
    needed: dict[str, str] = {}
    for kernel_wheel in wheels:
        for req in requirements(kernel_wheel.wheel):
            if normalise(req.name) not in provided:
                needed.setdefault(normalise(req.name), str(req))
    return [needed[name] for name in sorted(needed)]


def kernel_specs(python_dir: Path) -> list[KernelSpec]:
    """The declarations of the kernels the unpacked layer registers, found as Lambda finds them
    (entry points of the ``.dist-info`` folders there); a broken one fails the build."""
    from importlib.metadata import distributions

    sources = [
        KernelSource("entry point", ep.value, ep.name, dist.name)
        for dist in distributions(path=[str(python_dir)])
        for ep in dist.entry_points
        if ep.group == ENTRY_POINT_GROUP
    ]
    if not sources:
        raise KernelPackageError(f"the kernel packages declare no {ENTRY_POINT_GROUP} entry point")
    sys.path.insert(0, str(python_dir))
    try:
        registry = KernelRegistry(lambda: sources)
        specs = [registry[name].spec for name in registry]
        problems = registry.problems
    finally:
        sys.path.remove(str(python_dir))
    if problems:
        raise KernelPackageError("; ".join(str(p) for p in problems))
    return specs


def manifest(specs: Iterable[KernelSpec]) -> bytes:
    body = {"kernels": [spec_to_dict(s) for s in sorted(specs, key=lambda s: s.name)]}
    return (json.dumps(body, indent=1, sort_keys=True) + "\n").encode()
