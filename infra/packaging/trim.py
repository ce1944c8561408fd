"""What a layer keeps of its wheels: trim rules (tests, headers, sources, unused Arrow parts,
service models the handlers never call), files moved between layers, and the staging of one
layer's tree with its shared libraries stripped."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from attrs import frozen

from infra.packaging.elf import strip_elf
from infra.packaging.errors import BuildError
from infra.packaging.pins import Pin, normalise
from infra.packaging.wheels import wheel_paths
from infra.packaging.zips import sha256_file

AWS_SERVICES = ("s3", "lambda", "glue", "sts", "athena")
"""The AWS services whose models the layer's botocore keeps: what the handlers call (S3, Lambda,
Glue, Athena) and STS, which credential resolution may call."""
_SERVICES = "|".join(AWS_SERVICES)

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
        # botocore loads a service's model only when a client for it is made; the top-level
        # files (endpoints, partitions, retry and default configuration) are always loaded.
        (
            "AWS service models the handlers never use",
            rf"^(botocore|boto3)/data/(?!({_SERVICES})/)[^/]+/",
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


STRIPPED = "symbol tables, debug info and dead gaps of shared libraries"


def is_shared_library(path: str) -> bool:
    return re.search(r"\.so(\.\d+)*$", path) is not None


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
            for info, rel in wheel_paths(wheel):
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
