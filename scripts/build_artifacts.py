"""Build the Lambda artifacts, reproducibly: the code zip and the dependency layers.

    python scripts/build_artifacts.py [--stack sandbox] [--arch x86_64|arm64] [--python 3.12]

- Code zip: the first-party modules the handlers import, found by following imports from
  ``runtime.lambda_entry`` (``if TYPE_CHECKING`` blocks excluded). The CLI, client, reports,
  tests and the Pulumi program are never reachable from there, and the build fails if they are.
- Layers (``requirements-lambda.txt``, one ``# layer: NAME`` group each): the registry's
  manylinux wheels for the target runtime and architecture (``pip download --platform
  --python-version --only-binary``), cached under ``build/wheels``, unpacked, then trimmed of
  tests, headers, Cython sources, type stubs and the Arrow components the runtime never loads.
- Sizes are printed; the build fails when the ``deps`` layer is over its budget or code and layers
  together exceed Lambda's unzipped limit.
- Zips are byte-identical from build to build (fixed timestamps, sorted entries, normalised
  permissions), so their SHA-256 names them: ``lambda/<kind>/<sha256>.zip`` is the S3 key the
  Pulumi program uploads to, and ``build/lambda/<arch>-py<version>/<sha256>.zip`` the local file.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from _elf import strip_elf
from attrs import field, frozen

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "requirements-lambda.txt"
BUILD = REPO / "build"

MIB = 1024 * 1024
DEPS_BUDGET = 120 * MIB
"""The ``deps`` layer's unzipped budget (Lambda counts its limits in MiB too)."""
LAMBDA_UNZIPPED_LIMIT = 250 * MIB
"""Lambda's limit for a function's code and all its layers, unzipped."""

ENTRY_MODULE = "runtime.lambda_entry"
HANDLERS = {
    "parent": "runtime.lambda_entry.parent",
    "worker": "runtime.lambda_entry.worker",
    "failure_recorder": "runtime.lambda_entry.failure_recorder",
}
FIRST_PARTY = ("runtime", "sweep_core", "sweep_kernels", "sweep_sdk")
NEVER_IN_CODE = frozenset({"sweep_sdk", "infra", "tests", "scripts"})
"""First-party modules that must not be reachable from the handlers."""
NEVER_IMPORTED = frozenset(
    {"pulumi", "pulumi_aws", "matplotlib", "duckdb", "sqlglot", "tqdm", "pytest", "moto"}
)
"""Third-party packages the handlers must not import (CLI, reports, Pulumi, tests)."""
PROVIDED_BY_RUNTIME = frozenset({"boto3", "botocore"})
"""Importable in every Lambda Python runtime without a layer."""

# The newest glibc of the Amazon Linux a Lambda Python runtime runs on: python3.12 and later run
# on Amazon Linux 2023 (glibc 2.34), python3.11 on Amazon Linux 2 (glibc 2.26).
RUNTIME_GLIBC = {"3.11": 26, "3.12": 34, "3.13": 34, "3.14": 34}
MACHINES = {"x86_64": "x86_64", "arm64": "aarch64"}

EPOCH = (1980, 1, 1, 0, 0, 0)
"""The timestamp of every zip entry: the earliest a zip can hold."""

TRIM_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (reason, re.compile(pattern))
    for reason, pattern in (
        ("test suites", r"(^|/)tests/|(^|/)conftest\.py$"),
        ("C/C++ headers", r"(^|/)include/|\.(h|hh|hpp|hxx)$"),
        ("Cython and C++ sources", r"\.(pyx|pxd|pxi|c|cc|cpp)$|^pyarrow/src/"),
        ("type stubs", r"\.pyi$"),
        ("static libraries and build metadata", r"\.(a|cmake)$|(^|/)pkgconfig/|^numpy/_core/lib/"),
        ("numpy PyInstaller hooks", r"^numpy/_pyinstaller/"),
        (
            "numpy extension modules only its test suite loads",
            r"^numpy/_core/_(simd|multiarray_tests|umath_tests|rational_tests|struct_ufunc_tests"
            r"|operand_flag_tests)\.",
        ),
        (
            "Arrow Flight (RPC)",
            r"^pyarrow/(libarrow_flight\.|libarrow_python_flight\.|_flight\.|flight\.py$)",
        ),
        (
            "Arrow remote filesystems (S3, GCS, HDFS, Azure)",
            r"^pyarrow/(libarrow_s3\.|_(s3fs|gcsfs|hdfs|azurefs)\.)",
        ),
        ("Arrow ORC", r"^pyarrow/(_orc\.|_dataset_orc\.|orc\.py$)"),
        (
            "Parquet encryption",
            r"^pyarrow/(libarrow_python_parquet_encryption\.|_parquet_encryption\.|"
            r"_dataset_parquet_encryption\.|parquet/encryption\.py$)",
        ),
        ("Substrait bindings", r"^pyarrow/(_substrait\.|substrait\.py$)"),
        ("Arrow C++ test hooks", r"^pyarrow/_pyarrow_cpp_tests\."),
        # The runtime writes and reads single small Parquet objects: no datasets, no query
        # engine, no other formats. Without pyarrow._dataset, pq.read_table falls back to
        # ParquetFile (a path pyarrow documents); the Python shims stay, so an import of
        # pyarrow.dataset fails with pyarrow's own clear message.
        (
            "Arrow dataset, Acero, CSV, JSON and Feather bindings",
            r"^pyarrow/_(dataset|dataset_parquet|acero|csv|json|feather)\.",
        ),
        ("examples and benchmarks", r"^numpy/random/_examples/|^jsonschema/benchmarks/"),
        # A wheel cannot hold symlinks, so it ships libarrow_python three times; the loader only
        # ever asks for the SONAME (libarrow_python.so.2600).
        ("duplicate library copies", r"^pyarrow/libarrow_python\.so(\.\d+\.\d+\.\d+)?$"),
        # Subpackages `from scipy.stats import qmc` never loads (the Sobol test proves it).
        (
            "scipy subpackages Sobol sampling never loads",
            r"^scipy/(io|signal|cluster|fftpack|odr|datasets|misc|differentiate)/",
        ),
        ("install records (stale once trimmed)", r"\.dist-info/(RECORD|INSTALLER|REQUESTED)$"),
        ("bytecode caches", r"(^|/)__pycache__/"),
    )
)


@frozen
class Moved:
    """Files of one package that ship in another layer than the package's own."""

    package: str
    pattern: re.Pattern[str]
    layer: str
    reason: str


MOVED = (
    # numpy's Fortran wrapper generator is a build tool nothing in the deps layer imports, but
    # scipy's array-API shim runs `from numpy import *`, which imports every numpy submodule:
    # it travels with scipy, so the deps layer stays in budget and Sobol runs still work.
    Moved("numpy", re.compile(r"^numpy/f2py/"), "scipy", "numpy.f2py, which only scipy imports"),
)


class BuildError(RuntimeError):
    """The artifacts cannot be built as specified; the message says why."""


# --- target and requirements -----------------------------------------------------------------


@frozen
class Target:
    """A Lambda runtime and instruction set: ``Target("x86_64", "3.12")``."""

    arch: str
    python: str

    def __attrs_post_init__(self) -> None:
        if self.arch not in MACHINES:
            raise BuildError(f"architecture must be one of {sorted(MACHINES)}, not {self.arch!r}")
        if self.python not in RUNTIME_GLIBC:
            raise BuildError(
                f"Python version must be one of {sorted(RUNTIME_GLIBC)}, not {self.python!r}"
            )

    @classmethod
    def from_runtime(cls, arch: str, runtime: str) -> Target:
        """``Target.from_runtime("arm64", "python3.12")``."""
        return cls(arch, runtime.removeprefix("python"))

    @property
    def runtime(self) -> str:
        return f"python{self.python}"

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    @property
    def platforms(self) -> tuple[str, ...]:
        """Every manylinux tag the runtime's glibc runs, newest first (pip expands none)."""
        machine = MACHINES[self.arch]
        newest = RUNTIME_GLIBC[self.python]
        tags = [f"manylinux_2_{minor}_{machine}" for minor in range(newest, 16, -1)]
        return (*tags, f"manylinux2014_{machine}")

    @property
    def name(self) -> str:
        return f"{self.arch}-py{self.python}"


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


def read_pins(path: Path = REQUIREMENTS) -> list[Pin]:
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


def stack_setting(name: str, stack: str, repo: Path = REPO) -> str | None:
    """A plain ``sweep:`` value of ``Pulumi.<stack>.yaml`` (flat scalars only), if set."""
    path = repo / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        return None
    pattern = re.compile(rf"^\s+{re.escape(name)}:\s*['\"]?([^'\"#\s]+)['\"]?\s*(#.*)?$")
    for line in path.read_text().splitlines():
        match = pattern.match(line)
        if match:
            return match.group(1)
    return None


# --- wheels ----------------------------------------------------------------------------------


def wheel_cache(target: Target, build: Path = BUILD) -> Path:
    return build / "wheels" / f"{target.abi}-{MACHINES[target.arch]}"


def _wheel_of(pin: Pin, cache: Path) -> Path | None:
    for wheel in sorted(cache.glob("*.whl")):
        name, version = wheel.name.split("-")[:2]
        if normalise(name) == pin.key and version == pin.version:
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
                f"pip could not download wheels for {target.runtime} {target.arch}:\n"
                + result.stderr.strip()[-4000:]
            )
    wheels: dict[str, Path] = {}
    for pin in pins:
        wheel = _wheel_of(pin, cache)
        if wheel is None:
            raise BuildError(f"no wheel of {pin.name}=={pin.version} for {target.name} in {cache}")
        wheels[pin.key] = wheel
    return wheels


def _wheel_paths(wheel: zipfile.ZipFile) -> Iterator[tuple[zipfile.ZipInfo, str]]:
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


STRIPPED = "symbol tables, debug info and dead gaps of shared libraries"


def is_shared_library(path: str) -> bool:
    return re.search(r"\.so(\.\d+)*$", path) is not None


# --- trimming and staging --------------------------------------------------------------------


def trim_reason(path: str) -> str | None:
    """Why ``path`` (relative to a layer's ``python/``) is left out, or None to keep it."""
    for reason, pattern in TRIM_RULES:
        if pattern.search(path):
            return reason
    return None


@frozen
class PackageSize:
    name: str
    version: str
    wheel: str
    wheel_sha256: str
    kept_bytes: int
    trimmed_bytes: int


@frozen
class Staged:
    """A layer tree on disk: files relative to the layer root, mode of each, sizes by package."""

    root: Path
    files: dict[str, int]
    packages: list[PackageSize]
    trimmed: dict[str, int]


def stage_layer(
    layer: str,
    pins: Sequence[Pin],
    wheels: Mapping[str, Path],
    root: Path,
    strip: bool = True,
    moved: Sequence[Moved] = MOVED,
) -> Staged:
    """Unpack the wheels of ``layer``'s pins into ``root/python``, trimmed and stripped.

    Files a ``Moved`` rule sends elsewhere are left out, and those it sends here are taken from
    the other package's wheel (which ``wheels`` must hold).
    """
    files: dict[str, int] = {}
    owner: dict[str, str] = {}
    packages: list[PackageSize] = []
    trimmed: dict[str, int] = {}
    sources = [(pin, None) for pin in pins if pin.layer == layer] + [
        (pin, rule)
        for rule in moved
        if rule.layer == layer
        for pin in pins
        if pin.key == normalise(rule.package) and pin.layer != layer
    ]
    for pin, only in sources:
        wheel_path = wheels[pin.key]
        kept = dropped = 0
        away = [r for r in moved if normalise(r.package) == pin.key and r.layer != layer]
        away = [] if only else away
        with zipfile.ZipFile(wheel_path) as wheel:
            for info, rel in _wheel_paths(wheel):
                if only is not None and not only.pattern.search(rel):
                    continue
                reason = next(
                    (f"{r.reason}: in layer {r.layer}" for r in away if r.pattern.search(rel)),
                    None,
                ) or trim_reason(rel)
                if reason is not None:
                    dropped += info.file_size
                    trimmed[reason] = trimmed.get(reason, 0) + info.file_size
                    continue
                if rel in owner:
                    raise BuildError(f"{pin.name} and {owner[rel]} both install {rel}")
                owner[rel] = pin.name
                target = root / "python" / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                body = wheel.read(info)
                if strip and is_shared_library(rel):
                    stripped = strip_elf(body)
                    trimmed[STRIPPED] = trimmed.get(STRIPPED, 0) + len(body) - len(stripped)
                    dropped += len(body) - len(stripped)
                    body = stripped
                target.write_bytes(body)
                executable = bool((info.external_attr >> 16) & 0o111)
                files[f"python/{rel}"] = 0o755 if executable else 0o644
                kept += len(body)
        label = pin.name if only is None else f"{pin.name} (only {only.pattern.pattern})"
        packages.append(
            PackageSize(label, pin.version, wheel_path.name, sha256_file(wheel_path), kept, dropped)
        )
    return Staged(root, files, packages, trimmed)


def top_level_names(files: Iterable[str], prefix: str = "python/") -> set[str]:
    """The importable top-level names a layer provides (packages and modules)."""
    names: set[str] = set()
    for path in files:
        first = path.removeprefix(prefix).split("/")[0]
        if first.endswith((".dist-info", ".libs")) or first.startswith("."):
            continue
        names.add(first.split(".")[0])
    return names


# --- the code zip ----------------------------------------------------------------------------


@frozen
class ImportFound:
    module: str
    lazy: bool
    """Inside a function body: runs only when the function does."""


@frozen
class CodeClosure:
    modules: dict[str, Path]
    """First-party module name → source file."""
    third_party: dict[str, bool]
    """Top-level third-party name → imported only lazily (inside functions)."""
    parents: dict[str, str] = field(factory=dict)
    """How each module was reached: module → the module that imported it."""

    def chain(self, module: str) -> str:
        names = [module]
        while names[-1] in self.parents:
            names.append(self.parents[names[-1]])
        return " ← ".join(names)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def find_imports(source: str, module: str, is_package: bool) -> list[ImportFound]:
    """Every module name ``source`` may import at run time (``if TYPE_CHECKING`` excluded).

    ``from a import b`` yields both ``a`` and ``a.b``: the caller keeps ``a.b`` only if it is a
    module. Relative imports are resolved against ``module``.
    """
    found: list[ImportFound] = []
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST, lazy: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.orelse:
                visit(statement, lazy)
            return
        if isinstance(node, ast.Import):
            found.extend(ImportFound(alias.name, lazy) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: -(node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found.append(ImportFound(base, lazy))
            found.extend(ImportFound(f"{base}.{alias.name}", lazy) for alias in node.names)
        inner = lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(source), False)
    return found


def _module_file(root: Path, name: str) -> Path | None:
    base = root.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def code_roots() -> tuple[str, ...]:
    """The modules the code zip starts from: the entry points, and the built-in kernels, which
    the registry loads by name (no import reaches them)."""
    from sweep_core.kernels import BUILTIN_KERNELS

    kernels = sorted({ref.partition(":")[0] for ref in BUILTIN_KERNELS.values()})
    return (ENTRY_MODULE, *kernels)


def code_closure(root: Path = REPO, entries: Sequence[str] | None = None) -> CodeClosure:
    """The first-party modules reachable by import from ``entries`` (``code_roots()``), and
    what else they import."""
    modules: dict[str, Path] = {}
    parents: dict[str, str] = {}
    third_party: dict[str, bool] = {}
    queue = list(code_roots() if entries is None else entries)
    while queue:
        name = queue.pop()
        if name in modules:
            continue
        path = _module_file(root, name)
        if path is None:
            raise BuildError(f"module {name} not found under {root}")
        modules[name] = path
        # importing a.b.c runs a/__init__ and a/b/__init__ first
        wanted = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        for found in find_imports(path.read_text(), name, path.name == "__init__.py"):
            top = found.module.split(".")[0]
            if top in FIRST_PARTY:
                if _module_file(root, found.module) is not None:
                    wanted.append(found.module)
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                third_party[top] = third_party.get(top, True) and found.lazy
        for other in wanted:
            if other not in modules:
                parents.setdefault(other, name)
                queue.append(other)
    closure = CodeClosure(modules, third_party, parents)
    problems = [
        f"{module} is imported by the handlers ({closure.chain(module)})"
        for module in sorted(modules)
        if any(module == bad or module.startswith(bad + ".") for bad in NEVER_IN_CODE)
    ] + [f"the handlers import {name}" for name in sorted(NEVER_IMPORTED & set(third_party))]
    if problems:
        listed = "\n  ".join(problems)
        raise BuildError(f"the code zip would hold what never belongs in Lambda:\n  {listed}")
    _check_handlers(modules)
    return closure


def _check_handlers(modules: Mapping[str, Path]) -> None:
    for handler in HANDLERS.values():
        module, _, function = handler.rpartition(".")
        tree = ast.parse(modules[module].read_text())
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        if function not in names:
            raise BuildError(f"handler {handler} is not a function of {module}")


# --- deterministic zips ----------------------------------------------------------------------


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
    temp = out.with_name(f".{out.name}.tmp")
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


# --- the build -------------------------------------------------------------------------------


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
}
"""Every artifact by name: the code, then each layer of ``requirements-lambda.txt``."""
USE_EXISTING = "sweep:useExistingArtifacts"
"""``true``: upload nothing and use the ``existing_key`` objects; ``false``: upload the zips."""
KEY_PATTERN = re.compile(r"^lambda/(?P<kind>[a-z][a-z-]*)/(?P<sha256>[0-9a-f]{64})\.zip$")


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


@frozen
class BuildResult:
    target: Target
    out: Path
    code: Artifact
    layers: dict[str, Artifact]
    packages: dict[str, list[PackageSize]]
    trimmed: dict[str, dict[str, int]]
    closure: CodeClosure

    def config(self, repo: Path = REPO) -> dict[str, str]:
        """The Pulumi config that deploys these artifacts (paths relative to the project)."""
        values = {USE_EXISTING: "false"}
        for artifact in (self.code, *(self.layers[name] for name in sorted(self.layers))):
            try:
                path = artifact.file.relative_to(repo).as_posix()
            except ValueError:
                path = artifact.file.as_posix()
            values[SLOTS[artifact.name].zip_key] = path
        return values

    def manifest(self) -> dict[str, Any]:
        def artifact(a: Artifact) -> dict[str, Any]:
            return {
                "file": a.file.name,
                "sha256": a.sha256,
                "key": a.key,
                "zipped_bytes": a.zipped_bytes,
                "unzipped_bytes": a.unzipped_bytes,
            }

        return {
            "runtime": self.target.runtime,
            "architecture": self.target.arch,
            "platforms": list(self.target.platforms),
            "handlers": HANDLERS,
            "code": artifact(self.code) | {"modules": sorted(self.closure.modules)},
            "layers": {
                name: artifact(layer)
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


def output_dir(target: Target, build: Path = BUILD) -> Path:
    return build / "lambda" / target.name


def build_code(closure: CodeClosure, root: Path, out: Path) -> Artifact:
    files = {path.relative_to(root).as_posix(): 0o644 for path in sorted(closure.modules.values())}
    return _finish("code", out, root, files)


def _finish(name: str, out: Path, root: Path, files: Mapping[str, int]) -> Artifact:
    temp = out / f".{name}.zip"
    write_zip(temp, root, files)
    digest = sha256_file(temp)
    final = out / f"{digest}.zip"
    os.replace(temp, final)
    return Artifact(name, final, digest, final.stat().st_size, unzipped_size(final))


def build(
    target: Target,
    *,
    repo: Path = REPO,
    requirements: Path = REQUIREMENTS,
    build_dir: Path = BUILD,
    out: Path | None = None,
    deps_budget: int = DEPS_BUDGET,
    layers: Sequence[str] | None = None,
) -> BuildResult:
    """Build the code zip and the layers of ``requirements`` for ``target``.

    Parameters
    ----------
    layers
        Only these layers (all by default); a deploy always builds all of them.

    Raises
    ------
    BuildError
        A download failed, the handlers reach code that never belongs in Lambda, a module they
        import is in no layer, or a size limit is exceeded. Nothing is left half-written in
        ``out``.
    """
    out = out or output_dir(target, build_dir)
    out.mkdir(parents=True, exist_ok=True)
    pins = read_pins(requirements)
    wanted = sorted({p.layer for p in pins}) if layers is None else sorted(layers)
    unknown = set(wanted) - {p.layer for p in pins}
    if unknown:
        raise BuildError(f"no layer named {', '.join(sorted(unknown))} in {requirements.name}")
    closure = code_closure(repo)
    code = build_code(closure, repo, out)
    needed = {p.key for p in pins if p.layer in wanted}
    needed |= {normalise(rule.package) for rule in MOVED if rule.layer in wanted}
    wheels = fetch_wheels(
        [p for p in pins if p.key in needed], target, wheel_cache(target, build_dir)
    )
    built: dict[str, Artifact] = {}
    packages: dict[str, list[PackageSize]] = {}
    trimmed: dict[str, dict[str, int]] = {}
    provided: set[str] = set(PROVIDED_BY_RUNTIME)
    build_dir.mkdir(parents=True, exist_ok=True)
    for name in wanted:
        if name not in SLOTS:
            raise BuildError(
                f"layer {name!r} has no config keys (scripts/build_artifacts.py SLOTS)"
            )
        with tempfile.TemporaryDirectory(prefix=f"layer-{name}-", dir=build_dir) as staging:
            staged = stage_layer(name, [p for p in pins if p.key in needed], wheels, Path(staging))
            built[name] = _finish(name, out, staged.root, staged.files)
            provided |= top_level_names(staged.files)
        packages[name] = staged.packages
        trimmed[name] = staged.trimmed
    result = BuildResult(target, out, code, built, packages, trimmed, closure)
    _check(result, provided, deps_budget, complete=layers is None)
    keep = {code.file.name, *(a.file.name for a in built.values())}
    if layers is None:
        for stale in out.glob("*.zip"):
            if stale.name not in keep:
                stale.unlink()
    (out / "manifest.json").write_text(json.dumps(result.manifest(), indent=2) + "\n")
    return result


def _check(result: BuildResult, provided: set[str], deps_budget: int, complete: bool) -> None:
    problems: list[str] = []
    if complete:
        missing = sorted(set(result.closure.third_party) - provided)
        if missing:
            problems.append(
                f"the handlers import {', '.join(missing)}, which no layer provides "
                f"(add {'it' if len(missing) == 1 else 'them'} to {REQUIREMENTS.name})"
            )
    deps = result.layers.get("deps")
    if deps is not None and deps.unzipped_bytes > deps_budget:
        problems.append(
            f"the deps layer is {deps.unzipped_bytes / MIB:.1f} MiB unzipped, over its "
            f"{deps_budget / MIB:.0f} MiB budget"
        )
    total = result.code.unzipped_bytes + sum(a.unzipped_bytes for a in result.layers.values())
    if total > LAMBDA_UNZIPPED_LIMIT:
        problems.append(
            f"code and layers come to {total / MIB:.1f} MiB unzipped, over Lambda's "
            f"{LAMBDA_UNZIPPED_LIMIT / MIB:.0f} MiB limit"
        )
    if problems:
        print(report(result, deps_budget), file=sys.stderr)
        raise BuildError("; ".join(problems))


def report(result: BuildResult, deps_budget: int = DEPS_BUDGET) -> str:
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
        budget = f" (budget {deps_budget / MIB:.0f} MiB)" if name == "deps" else ""
        lines.append(
            f"  layer {name:8s}               unzipped {mib(layer.unzipped_bytes)} MiB{budget}"
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
        f"  code + layers unzipped {total / MIB:.2f} MiB of Lambda's "
        f"{LAMBDA_UNZIPPED_LIMIT / MIB:.0f} MiB"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--stack",
        default="sandbox",
        help="read sweep:lambdaRuntime and sweep:architecture from Pulumi.<stack>.yaml",
    )
    parser.add_argument("--arch", choices=sorted(MACHINES), help="overrides the stack's")
    parser.add_argument(
        "--python", help="runtime Python version, e.g. 3.12 (overrides the stack's)"
    )
    parser.add_argument("--out", type=Path, help="output folder (default build/lambda/<target>)")
    args = parser.parse_args(argv)
    try:
        target = resolve_target(args.stack, args.arch, args.python)
        t0 = time.perf_counter()
        result = build(target, out=args.out)
    except BuildError as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    print(report(result))
    print(f"built in {time.perf_counter() - t0:.1f} s; manifest {result.out / 'manifest.json'}")
    return 0


def resolve_target(stack: str, arch: str | None = None, python: str | None = None) -> Target:
    """The target named on the command line, else in the stack's settings, else the program's
    defaults (arm64, python3.12)."""
    runtime = stack_setting("sweep:lambdaRuntime", stack) or "python3.12"
    return Target(
        arch or stack_setting("sweep:architecture", stack) or "arm64",
        python or runtime.removeprefix("python"),
    )


if __name__ == "__main__":
    sys.exit(main())
