"""The Lambda artifacts: what the code zip holds, that zips are reproducible and cached by their
inputs, that code and layers fit Lambda's limit, and, in a clean Python 3.12 (``-I -S``) with
nothing but the artifacts unpacked where Lambda unpacks them (``/var/task``, ``/opt/python``),
that the three handlers run real shards the way Lambda would call them, with the AWS SDK the
layer ships.

The tests marked ``slow`` build the real layers from the registry's manylinux wheels (cached under
``build/wheels``: about 150 MB downloaded once; the build itself is then cached by its inputs).
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from infra.packaging.builder import (
    LAMBDA_UNZIPPED_LIMIT,
    MIB,
    REPO,
    TOTAL_BUDGET,
    Artifact,
    BuildResult,
    build,
    build_code,
    cached,
    check,
    ensure_built,
    input_digest,
    output_dir,
    report,
)
from infra.packaging.bytecode import PYTHON_ENV, find_python
from infra.packaging.closure import (
    ENTRY_MODULE,
    HANDLERS,
    NEVER_IMPORTED,
    CodeClosure,
    code_closure,
    code_files,
    find_imports,
)
from infra.packaging.elf import strip_elf
from infra.packaging.errors import BuildError
from infra.packaging.pins import Pin, normalise, read_pins
from infra.packaging.target import Target
from infra.packaging.trim import AWS_SERVICES, PackageSize, trim_reason
from infra.packaging.unpack import unpack_like_lambda
from infra.packaging.wheels import _wheel_of
from infra.packaging.zips import EPOCH, sha256_file
from sweep_core.layout import Layout

sys.path.insert(0, str(REPO / "scripts"))

from build_artifacts import KEY_PATTERN, stack_setting

TARGET = Target("x86_64", "3.12")
"""This machine's instruction set, so the artifacts can be run here."""


def python_312() -> Path:
    """The clean Python 3.12 the artifact tests run in: the machine image's (pyenv), or one on
    PATH. Under CI a missing one fails the test rather than skipping it."""
    try:
        return find_python(TARGET, {k: v for k, v in os.environ.items() if k != PYTHON_ENV})
    except BuildError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


# --- the code zip ----------------------------------------------------------------------------


def test_code_zip_holds_what_the_handlers_import_and_nothing_of_the_client_side() -> None:
    closure = code_closure(REPO)

    for needed in (
        "runtime.lambda_entry", "runtime.handlers.worker", "runtime.handlers.parent",
        "sweep_core.records", "sweep_kernels.gbm", "sweep_kernels.sir", "runtime.adapters.s3",
        "runtime.adapters.lambda_invoker", "runtime.adapters.local_store",
        "sweep_core.validation", "sweep_core.space", "sweep_core.layout", "sweep_core.tables",
    ):  # fmt: skip
        assert needed in closure.modules
    for never in (
        "sweep_sdk.cli", "sweep_sdk.client", "sweep_sdk.gateway", "sweep_sdk.remote",
        "sweep_sdk.report", "sweep_sdk.query.local", "sweep_sdk.__main__", "runtime.local.pool",
    ):  # fmt: skip
        assert never not in closure.modules
    assert all(path.suffix == ".py" for path in closure.modules.values())
    assert {"numpy", "pyarrow", "attrs", "cattrs", "jsonschema", "fastjsonschema"} <= set(
        closure.third_party
    )
    assert closure.third_party["scipy"] is True, "scipy is imported lazily, for Sobol only"
    assert closure.third_party["numpy"] is False
    assert not NEVER_IMPORTED & set(closure.third_party)


def test_type_checking_imports_do_not_pull_modules_into_the_zip() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from sweep_sdk.client import Run\n"
        "else:\n    import json\n"
        "def later():\n    from scipy.stats import qmc\n"
        "from . import sibling\n"
    )
    found = {(f.module, f.lazy) for f in find_imports(source, "pkg.mod", is_package=False)}

    assert not any(module.startswith("sweep_sdk") for module, _ in found)
    assert ("json", False) in found
    assert ("scipy.stats", True) in found
    assert ("pkg.sibling", False) in found


def test_the_build_refuses_handlers_that_reach_the_cli(tmp_path: Path) -> None:
    for package in ("runtime", "sweep_sdk"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "sweep_sdk" / "cli.py").write_text("import tqdm\n")
    (tmp_path / "runtime" / "helpers.py").write_text("from sweep_sdk import cli\n")
    handlers = "\n".join(f"def {name}(event, context): ..." for name in HANDLERS)
    (tmp_path / "runtime" / "lambda_entry.py").write_text(
        f"from runtime.helpers import *\n{handlers}\n"
    )

    with pytest.raises(BuildError) as error:
        code_closure(tmp_path, [ENTRY_MODULE])

    message = str(error.value)
    assert "sweep_sdk.cli ← runtime.helpers ← runtime.lambda_entry" in message
    assert "the handlers import tqdm" in message


def test_the_code_zip_depends_on_content_only(tmp_path: Path) -> None:
    """Two checkouts with different mtimes, modes and file creation order give the same bytes."""
    closure = code_closure(REPO)
    roots = []
    for n in (0, 1):
        root = tmp_path / f"checkout{n}"
        for path in sorted(closure.modules.values(), reverse=bool(n)):
            copy = root / path.relative_to(REPO)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(path.read_bytes())
            copy.chmod(0o600 if n else 0o775)
            os.utime(copy, (1_000_000_000 * (n + 1),) * 2)
        (root / "pyproject.toml").write_bytes((REPO / "pyproject.toml").read_bytes())
        roots.append(root)
    moved = {name: roots[0] / path.relative_to(REPO) for name, path in closure.modules.items()}
    other = {name: roots[1] / path.relative_to(REPO) for name, path in closure.modules.items()}

    python = python_312()
    first = build_code(CodeClosure(moved, closure.third_party), roots[0], tmp_path / "a", python)
    second = build_code(CodeClosure(other, closure.third_party), roots[1], tmp_path / "b", python)

    assert first.sha256 == second.sha256
    assert first.file.read_bytes() == second.file.read_bytes()
    assert first.file.name == f"{first.sha256}.zip"
    assert first.key == f"lambda/code/{first.sha256}.zip"
    assert KEY_PATTERN.match(first.key)
    with zipfile.ZipFile(first.file) as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names)
    assert "runtime/lambda_entry.py" in names
    assert "sweep_core/" in names
    assert "sweep_kernels/gbm.py" in names
    with zipfile.ZipFile(first.file) as archive:
        entry_points = archive.read("sweep-0.1.0.dist-info/entry_points.txt").decode()
    # how the registry finds the built-in kernels inside Lambda
    assert entry_points.splitlines() == [
        "[sweep.kernels]",
        "gbm_european_option = sweep_kernels.gbm:KERNEL",
        "sir_epidemic = sweep_kernels.sir:KERNEL",
    ]
    assert all(info.date_time == EPOCH for info in infos)
    modes = {info.filename: info.external_attr >> 16 for info in infos}
    assert {mode for name, mode in modes.items() if name.endswith("/")} == {0o40755}
    assert {mode for name, mode in modes.items() if not name.endswith("/")} == {0o100644}
    assert "runtime/__pycache__/lambda_entry.cpython-312.pyc" in names


# --- requirements, target, trimming ----------------------------------------------------------


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9._-]+)(?:\[[^]]*\])?==(\S+)", line.split("#")[0].strip())
        if match:
            pins[normalise(match.group(1))] = match.group(2)
    return pins


def test_lambda_pins_match_the_development_environment() -> None:
    lambda_pins = {pin.key: pin for pin in read_pins(REPO / "requirements-lambda.txt")}
    dev_pins = _pins(REPO / "requirements.txt")

    for name in ("numpy", "pyarrow", "attrs", "cattrs", "scipy", "jsonschema", "fastjsonschema"):
        assert lambda_pins[name].version == dev_pins[name], name
    for key, pin in lambda_pins.items():  # transitive pins: what the tests ran against
        assert importlib.metadata.version(key) == pin.version, key
    assert lambda_pins["scipy"].layer == "scipy"
    assert {pin.layer for pin in lambda_pins.values()} == {"deps", "scipy"}
    assert lambda_pins["botocore"].layer == lambda_pins["boto3"].layer == "deps"


def test_malformed_requirements_are_refused(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements-lambda.txt"
    requirements.write_text("numpy==2.4.6\n")
    with pytest.raises(BuildError, match="before any '# layer:' line"):
        read_pins(requirements)
    requirements.write_text("# layer: deps\nnumpy>=2\n")
    with pytest.raises(BuildError, match="expected name==version"):
        read_pins(requirements)


def test_targets_ask_pip_for_the_runtimes_glibc() -> None:
    x86 = Target("x86_64", "3.12")
    arm = Target.from_runtime("arm64", "python3.12")

    assert x86.runtime == "python3.12"
    assert x86.abi == "cp312"
    assert "manylinux_2_28_x86_64" in x86.platforms
    assert "manylinux2014_x86_64" in x86.platforms
    assert "manylinux_2_34_aarch64" in arm.platforms
    assert "manylinux2014_aarch64" in arm.platforms
    assert "manylinux_2_28_x86_64" not in Target("x86_64", "3.11").platforms  # Amazon Linux 2
    with pytest.raises(BuildError, match="architecture"):
        Target("sparc", "3.12")


def test_stack_settings_choose_the_target(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.demo.yaml").write_text(
        "config:\n  sweep:region: eu-west-1\n  sweep:architecture: x86_64  # not Graviton\n"
        '  sweep:lambdaRuntime: "python3.13"\n'
    )
    assert stack_setting("sweep:architecture", "demo", tmp_path) == "x86_64"
    assert stack_setting("sweep:lambdaRuntime", "demo", tmp_path) == "python3.13"
    assert stack_setting("sweep:nothing", "demo", tmp_path) is None
    assert stack_setting("sweep:lambdaRuntime", "absent", tmp_path) is None


@pytest.mark.parametrize(
    ("path", "kept"),
    [
        ("pyarrow/libarrow.so.2600", True),
        ("pyarrow/libparquet.so.2600", True),
        ("pyarrow/libarrow_python.so.2600", True),
        ("pyarrow/lib.cpython-312-x86_64-linux-gnu.so", True),
        ("pyarrow/_parquet.cpython-312-x86_64-linux-gnu.so", True),
        ("pyarrow/_fs.cpython-312-aarch64-linux-gnu.so", True),
        ("pyarrow/parquet/core.py", True),
        ("pyarrow/dataset.py", True),
        ("numpy/testing/__init__.py", True),
        ("numpy/_core/_multiarray_umath.cpython-312-x86_64-linux-gnu.so", True),
        ("numpy.libs/libscipy_openblas64_-32a4b2a6.so", True),
        ("scipy/stats/_qmc.py", True),
        ("numpy-2.4.6.dist-info/licenses/LICENSE.txt", True),
        ("pyarrow/libarrow_python.so", False),
        ("pyarrow/libarrow_python.so.2600.1.0", False),
        ("pyarrow/libarrow_flight.so.2600", False),
        ("pyarrow/_flight.cpython-312-x86_64-linux-gnu.so", False),
        ("pyarrow/libarrow_s3.so.2600", False),
        ("pyarrow/_s3fs.cpython-312-x86_64-linux-gnu.so", False),
        ("pyarrow/_dataset.cpython-312-x86_64-linux-gnu.so", False),
        ("pyarrow/include/arrow/api.h", False),
        ("pyarrow/_parquet.pyx", False),
        ("pyarrow/lib.pxd", False),
        ("pyarrow/tests/test_array.py", False),
        ("numpy/_core/tests/test_api.py", False),
        ("numpy/_core/include/numpy/ndarrayobject.h", False),
        ("numpy/_core/_simd.cpython-312-x86_64-linux-gnu.so", False),
        ("numpy/__init__.pyi", False),
        ("scipy/io/matlab/_mio.py", False),
        ("numpy-2.4.6.dist-info/RECORD", False),
    ],
)
def test_trim_rules(path: str, kept: bool) -> None:
    assert (trim_reason(path) is None) is kept


# --- stripping shared libraries --------------------------------------------------------------


def _headers_end(data: bytes) -> int:
    phoff, phnum = struct.unpack_from("<Q", data, 32)[0], struct.unpack_from("<H", data, 56)[0]
    return int(phoff) + 56 * int(phnum)


def _program_headers(data: bytes) -> list[tuple[int, ...]]:
    phoff, phnum = struct.unpack_from("<Q", data, 32)[0], struct.unpack_from("<H", data, 56)[0]
    return [struct.unpack_from("<IIQQQQQQ", data, phoff + i * 56) for i in range(phnum)]


def _loaded(data: bytes) -> dict[int, bytes]:
    """Each loadable segment's bytes by address; the ELF and program headers masked out, since
    section-table fields and segment file offsets are exactly what stripping may change."""
    masked = b"\0" * _headers_end(data) + data[_headers_end(data) :]
    segments = {}
    for kind, _, offset, vaddr, _, filesz, _, align in _program_headers(data):
        if kind == 1:  # PT_LOAD
            assert offset % align == vaddr % align
            segments[vaddr] = masked[offset : offset + filesz]
    return segments


def _library_with_symbols() -> Path:
    pyarrow = importlib.util.find_spec("pyarrow")
    assert pyarrow is not None
    assert pyarrow.origin is not None
    found = sorted(Path(pyarrow.origin).parent.glob("libarrow.so.*"))
    if not found:
        pytest.skip("no pyarrow shared library with symbols in this environment")
    return found[0]


def test_stripping_keeps_every_loaded_byte_and_the_library_loads(tmp_path: Path) -> None:
    library = _library_with_symbols()
    data = library.read_bytes()

    stripped = strip_elf(data)

    assert len(stripped) < 0.9 * len(data)
    assert _loaded(stripped) == _loaded(data)
    without_offsets = [h[:2] + h[3:] for h in _program_headers(data)]
    assert [h[:2] + h[3:] for h in _program_headers(stripped)] == without_offsets
    assert stripped[:40] == data[:40]  # e_ident .. e_phoff
    copy = tmp_path / library.name
    copy.write_bytes(stripped)
    ctypes.CDLL(str(copy))  # the dynamic loader accepts it
    if shutil.which("readelf"):
        check = subprocess.run(
            ["readelf", "--wide", "--headers", str(copy)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stderr
        assert not check.stderr
        assert ".symtab" not in check.stdout
        assert ".dynsym" in check.stdout
    assert strip_elf(stripped) == stripped


def test_stripping_leaves_anything_else_alone() -> None:
    assert strip_elf(b"not an ELF file") == b"not an ELF file"
    header = _library_with_symbols().read_bytes()[:4096]
    assert strip_elf(header) == header  # truncated: section headers out of range


# --- size ------------------------------------------------------------------------------------


def test_code_and_layers_over_the_budget_fail_the_build(tmp_path: Path) -> None:
    def artifact(name: str, size: int) -> Artifact:
        return Artifact(name, tmp_path / f"{name}.zip", "0" * 64, size // 3, size)

    result = BuildResult(
        Target("x86_64", "3.12"),
        tmp_path,
        artifact("code", 10**5),
        {"deps": artifact("deps", 140 * MIB), "scipy": artifact("scipy", 96 * MIB)},
        {"deps": [], "scipy": []},
        {"deps": {}, "scipy": {}},
        CodeClosure({}, {"numpy": False}),
    )

    check(result, {"numpy"})  # 236.1 MiB: within the budget
    result.layers["scipy"] = artifact("scipy", 97 * MIB)
    with pytest.raises(BuildError, match=r"237.1 MiB unzipped, over the 237 MiB budget"):
        check(result, {"numpy"})
    # the message names the largest packages, a kernel package's dependency among them
    result.layers["kernels"] = artifact("kernels", 30 * MIB)
    result.packages["deps"] = [PackageSize("pyarrow", "1", "w", "s", 90 * MIB, 0)]
    result.packages["kernels"] = [PackageSize("torch", "2", "w", "s", 30 * MIB, 0)]
    result.trimmed["kernels"] = {}
    with pytest.raises(BuildError, match=r"the largest packages: pyarrow 90.0 MiB, torch 30.0 MiB"):
        check(result, {"numpy"})
    with pytest.raises(BuildError, match="the handlers import numpy, which no layer provides"):
        check(result, set())
    assert TOTAL_BUDGET < LAMBDA_UNZIPPED_LIMIT == 250 * MIB


def test_no_interpreter_for_the_target_fails_the_build_with_the_fix(tmp_path: Path) -> None:
    target = Target("arm64", "3.14")
    env = {"PATH": str(tmp_path), "PYENV_ROOT": str(tmp_path)}
    with pytest.raises(BuildError, match=r"needs a Python 3.14 interpreter.*SWEEP_BUILD_PYTHON"):
        find_python(target, env)
    with pytest.raises(BuildError, match="SWEEP_BUILD_PYTHON="):
        find_python(target, {**env, PYTHON_ENV: sys.executable})  # this one is not 3.14


# --- the cache -------------------------------------------------------------------------------


def _checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    for path in code_files(code_closure(REPO), REPO):
        copy = root / path.relative_to(REPO)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(path.read_bytes())
    shutil.copy(REPO / "requirements-lambda.txt", root)
    shutil.copy(REPO / "pyproject.toml", root)  # the entry points the code zip carries
    return root


def test_the_build_is_known_by_every_input(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    requirements = root / "requirements-lambda.txt"
    first = input_digest(TARGET, root, requirements)

    assert input_digest(TARGET, root, requirements) == first
    assert input_digest(Target("arm64", "3.12"), root, requirements) != first
    assert input_digest(Target("x86_64", "3.13"), root, requirements) != first
    handler = root / "runtime" / "handlers" / "worker.py"
    handler.write_text(handler.read_text() + "\n# changed\n")
    changed_source = input_digest(TARGET, root, requirements)
    assert changed_source != first
    requirements.write_text(requirements.read_text().replace("six==1.17.0", "six==1.16.0"))
    assert input_digest(TARGET, root, requirements) not in (first, changed_source)
    (root / "runtime" / "unrelated_notes.txt").write_text("not code")
    assert input_digest(TARGET, root, requirements) not in (first, changed_source)
    # a kernel registered or renamed changes the code zip's entry points
    before = input_digest(TARGET, root, requirements)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("sir_epidemic =", "sir_model ="))
    assert input_digest(TARGET, root, requirements) != before
    # the kernel packages are inputs too, down to each file
    package = root / "my_kernels"
    (package / "src").mkdir(parents=True)
    (package / "pyproject.toml").write_text("[project]\nname = 'my-kernels'\n")
    (package / "src" / "model.py").write_text("KERNEL = None\n")
    with_package = input_digest(TARGET, root, requirements, ("my_kernels",))
    assert with_package != input_digest(TARGET, root, requirements)
    (package / "src" / "model.py").write_text("KERNEL = None  # v2\n")
    assert input_digest(TARGET, root, requirements, ("my_kernels",)) != with_package


# --- the real build (downloads wheels once) ---------------------------------------------------


KERNEL_PACKAGES = ("examples/kernels",)
"""The example kernel package, deployed as a stack deploys it (``sweep:kernelPackages``)."""


@pytest.fixture(scope="module")
def built() -> BuildResult:
    """The real build for this machine's instruction set, in the checkout's build folder (so
    its wheels and zips are reused from run to run), rebuilt from scratch each session."""
    t0 = time.perf_counter()
    result = build(TARGET, python=python_312(), kernel_packages=KERNEL_PACKAGES)
    print(report(result))
    print(f"build: {time.perf_counter() - t0:.1f} s")
    return result


@pytest.mark.slow
def test_code_and_layers_fit_lambda_and_keys_name_their_content(built: BuildResult) -> None:
    total = sum(a.unzipped_bytes for a in built.artifacts().values())
    assert total <= TOTAL_BUDGET
    for artifact in built.artifacts().values():
        assert artifact.sha256 == sha256_file(artifact.file)
        assert artifact.key.endswith(f"/{artifact.sha256}.zip")
        assert KEY_PATTERN.match(artifact.key)
    deps = built.layers["deps"]
    manifest = json.loads((built.out / "manifest.json").read_text())
    assert deps.key == f"lambda/layer/{deps.sha256}.zip"
    assert manifest["layers"]["deps"]["key"] == deps.key
    with zipfile.ZipFile(deps.file) as archive:
        names = set(archive.namelist())
    assert "python/pyarrow/libarrow.so.2600" in names
    assert "python/numpy/__init__.py" in names
    assert "python/numpy/__pycache__/__init__.cpython-312.pyc" in names
    assert not any("/tests/" in name or name.endswith((".pyx", ".h")) for name in names)
    models = {
        n.split("/")[3] for n in names if n.startswith("python/botocore/data/") and n.count("/") > 3
    }
    assert models == set(AWS_SERVICES)


@pytest.mark.slow
def test_every_source_ships_with_unchecked_hash_bytecode(built: BuildResult) -> None:
    for artifact in built.artifacts().values():
        with zipfile.ZipFile(artifact.file) as archive:
            names = set(archive.namelist())
            sources = [n for n in names if n.endswith(".py")]
            assert sources, artifact.name
            for source in sources:
                folder, _, module = source.rpartition("/")
                pyc = f"{folder}/__pycache__/{module[:-3]}.cpython-312.pyc".lstrip("/")
                assert pyc in names, pyc
            header = archive.read(pyc)[:16]
        flags = int.from_bytes(header[4:8], "little")
        assert flags == 0b01, "hash-based (bit 0), not checked against the source (bit 1)"


@pytest.mark.slow
def test_an_unchanged_checkout_reuses_its_build_and_a_damaged_one_is_rebuilt(
    built: BuildResult, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines: list[str] = []
    t0 = time.perf_counter()
    again = ensure_built(TARGET, log=lines.append, kernel_packages=KERNEL_PACKAGES)
    reuse_s = time.perf_counter() - t0

    assert {n: a.sha256 for n, a in again.items()} == {
        n: a.sha256 for n, a in built.artifacts().items()
    }
    assert lines == [f"Lambda artifacts for {TARGET.name} are up to date ({built.inputs[:12]})"]
    with capsys.disabled():
        print(f"\nreusing the cached build: {reuse_s:.2f} s")

    damaged = built.layers["scipy"].file
    original = damaged.read_bytes()
    try:
        damaged.write_bytes(original[:1000])
        assert cached(TARGET, output_dir(TARGET, REPO / "build"), built.inputs) is None
    finally:
        damaged.write_bytes(original)
    assert cached(TARGET, output_dir(TARGET, REPO / "build"), built.inputs) is not None


@pytest.mark.slow
def test_building_twice_gives_byte_identical_zips(
    built: BuildResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t0 = time.perf_counter()
    again = build(built.target, out=tmp_path, python=python_312(), kernel_packages=KERNEL_PACKAGES)

    assert again.code.sha256 == built.code.sha256
    for name, layer in built.layers.items():
        assert again.layers[name].sha256 == layer.sha256, name
        assert again.layers[name].file.read_bytes() == layer.file.read_bytes()
    with capsys.disabled():
        print(f"\nsecond build (cached wheels): {time.perf_counter() - t0:.1f} s")


PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
sys.dont_write_bytecode = True  # /var/task and /opt are read-only on Lambda
root, data_dir, events = sys.argv[1:4]
# As in Lambda: the function's code, then the layers; nothing else of ours.
sys.path[:0] = [root + "/var/task", root + "/opt/python"]

import runtime.lambda_entry as entry
import runtime.adapters.lambda_invoker
import runtime.adapters.s3
import botocore, botocore.session
from runtime.lambda_entry import CloudAdapters, CloudConfig
from runtime.adapters.local_store import LocalContext, LocalStore, random_token
from runtime.handlers.parent import ParentDeps
from runtime.handlers.worker import WorkerDeps
from sweep_core.convert import dumps
from sweep_core.layout import Layout
from sweep_core.ports import utc_now
imported = time.perf_counter() - t0


class Recorder:  # stands in for LambdaInvoker: each task becomes the event Lambda would deliver
    def __init__(self):
        self.events = []

    def invoke_async(self, tasks):
        self.events.extend(json.loads(dumps(task)) for task in tasks)

    def dispatch_async(self, slices):
        raise AssertionError("a small run needs no dispatcher tree")


store, layout, invoker = LocalStore(data_dir), Layout("results"), Recorder()
config = CloudConfig.from_env(
    {"SWEEP_BUCKET": "b", "SWEEP_WORKER_FUNCTION": "w", "SWEEP_DISPATCHER_FUNCTION": "d"}
)
parent = ParentDeps(store, layout, invoker, utc_now, random_token)
entry.use_adapters(CloudAdapters(config, parent, WorkerDeps(store, layout, utc_now)))
context = LocalContext.with_timeout(60)
post = json.load(open(events + "/apigw_post_runs.json"))
params = {"s0": 100.0, "rate": 0.02, "maturity": 1.0, "paths": 500, "option": "call"}
requests = {
    "grid": {"axes": {"sigma": {"linspace": {"start": 0.1, "stop": 0.5, "num": 8}},
                      "strike": {"values": [90, 110]}},
             "sampling": {"method": "grid"}},
    "sobol": {"axes": {"sigma": {"uniform": {"low": 0.1, "high": 0.5}},
                       "strike": {"uniform": {"low": 80, "high": 120}}},
              "sampling": {"method": "sobol", "n": 32}},
}
s3_model = botocore.session.get_session().get_service_model("s3")
report = {
    "import_s": round(imported, 2), "runs": {},
    "botocore": {"version": botocore.__version__, "file": botocore.__file__,
                 "put_if_none_match": "IfNoneMatch" in s3_model.operation_model("PutObject")
                 .input_shape.members,
                 "services": sorted(botocore.session.get_session().get_available_services())},
    "compiled": sorted(
        name for name, m in sys.modules.items()
        if getattr(getattr(m, "__spec__", None), "cached", None)
        and not __import__("os").path.exists(m.__spec__.cached)
    ),
}
for name, parts in requests.items():
    body = {"schema_version": "1.0", "kernel": "gbm_european_option", "params": params,
            "sharding": {"shard_count": 2}, "seed": 7, **parts}
    response = entry.parent(dict(post, body=json.dumps(body)), context)
    assert response["statusCode"] == 202, response
    run_id = json.loads(response["body"])["run_id"]
    tasks = [event for event in invoker.events if event["run_id"] == run_id]
    worked = [entry.worker(task, context)["status"] for task in tasks]
    duplicate = entry.worker(tasks[0], context)["status"]  # reads the success record back
    status = entry.parent({"httpMethod": "GET", "resource": "/runs/{run_id}",
                           "pathParameters": {"run_id": run_id}}, context)
    report["runs"][name] = {"run_id": run_id, "workers": worked, "duplicate": duplicate,
                            "status": json.loads(status["body"])}

# The kernel package of the kernels layer, found through its entry point, as any kernel.
oscillator = {"schema_version": "1.0", "kernel": "damped_oscillator",
              "params": {"omega": 2.0, "noise": 0.1, "steps": 200},
              "axes": {"zeta": {"linspace": {"start": 0.0, "stop": 2.0, "num": 6}}},
              "sampling": {"method": "grid"}, "sharding": {"shard_count": 2}, "seed": 5}
response = entry.parent(dict(post, body=json.dumps(oscillator)), context)
assert response["statusCode"] == 202, response
run_id = json.loads(response["body"])["run_id"]
tasks = [event for event in invoker.events if event["run_id"] == run_id]
report["kernel_package"] = {"run_id": run_id,
                            "workers": [entry.worker(t, context)["status"] for t in tasks]}
unknown = entry.parent(dict(post, body=json.dumps({**oscillator, "kernel": "no_such_model"})),
                       context)
report["unknown"] = {"status": unknown["statusCode"],
                     "problems": json.loads(unknown["body"])["error"]["problems"]}

# A worker killed mid-shard: Lambda's on-failure record goes to the failure recorder.
crash = json.load(open(events + "/lambda_on_failure_killed.json"))
fresh = entry.parent(dict(post, body=json.dumps(
    {"schema_version": "1.0", "kernel": "gbm_european_option", "params": params,
     "sharding": {"shard_count": 2}, "seed": 8, **requests["grid"]})), context)
fresh_id = json.loads(fresh["body"])["run_id"]
crash["requestPayload"] = [e for e in invoker.events if e["run_id"] == fresh_id][1]
report["recorder"] = entry.failure_recorder(crash, context)

allowed = (root, sys.base_prefix)
report["outside"] = sorted(
    f for f in (getattr(m, "__file__", None) for m in list(sys.modules.values()))
    if f and not f.startswith(allowed)
)
report["site"] = "site" in sys.modules
report["seconds"] = round(time.perf_counter() - t0, 2)
print(json.dumps(report))
"""


def _probe(built: BuildResult, tmp_path: Path, script: str, *args: str) -> dict[str, Any]:
    """Run ``script`` in a clean Python 3.12 (``-I -S``: no site-packages, no path of ours)
    over the artifacts unpacked as Lambda unpacks them under ``tmp_path/lambda``."""
    root = tmp_path / "lambda"
    unpack_like_lambda({n: a.file for n, a in built.artifacts().items()}, root)
    result = subprocess.run(
        [str(python_312()), "-I", "-S", "-c", script, str(root), *args],
        capture_output=True, text=True, cwd=tmp_path, timeout=300, env={},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    found: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


@pytest.fixture(scope="module")
def probed(built: BuildResult, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """PROBE's report from the artifacts in a clean Python 3.12, and its data folder."""
    tmp_path = tmp_path_factory.mktemp("probe")
    t0 = time.perf_counter()
    report = _probe(built, tmp_path, PROBE, str(tmp_path / "data"), str(REPO / "tests" / "events"))
    report["process_s"] = round(time.perf_counter() - t0, 1)
    return report, tmp_path / "data"


@pytest.mark.slow
def test_the_artifacts_run_every_handler_in_a_clean_python_312(
    probed: tuple[Any, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    report, data = probed

    for name in ("grid", "sobol"):
        run = report["runs"][name]
        assert run["workers"] == ["success", "success"]
        assert run["duplicate"] == "success"
        assert run["status"]["succeeded"] == 2, run["status"]
        assert run["status"]["failed"] == 0
        for shard in (0, 1):
            assert (data / Layout("results").success_key(run["run_id"], shard)).is_file()
    assert report["kernel_package"]["workers"] == ["success", "success"]
    table = pq.read_table(data / "results" / "points" / "damped_oscillator")
    assert table.num_rows == 6
    assert table.schema.field("regime").type == pa.string()
    assert table.schema.field("settled").type == pa.bool_()
    assert report["unknown"] == {
        "status": 400,
        "problems": [{
            "path": "$.kernel",
            "message": "unknown kernel 'no_such_model'; known kernels: damped_oscillator, "
            "gbm_european_option, sir_epidemic",
        }],
    }  # fmt: skip
    assert report["recorder"]["status"] == "failure"
    assert report["recorder"]["code"] == "WORKER_DIED"
    assert report["outside"] == [], "imported something that is not in the artifacts"
    assert report["site"] is False
    assert report["compiled"] == [], "modules loaded without their shipped .pyc"
    with capsys.disabled():
        print(
            f"\nclean python3.12: imports {report['import_s']} s, three runs and a crash record "
            f"{report['seconds']} s, process {report['process_s']} s"
        )


@pytest.mark.slow
def test_the_layer_ships_the_pinned_aws_sdk_with_conditional_writes(
    probed: tuple[Any, Path],
) -> None:
    report, _ = probed

    pins = {pin.key: pin.version for pin in read_pins(REPO / "requirements-lambda.txt")}
    assert report["botocore"]["version"] == pins["botocore"]
    assert "/opt/python/botocore/" in report["botocore"]["file"]
    assert report["botocore"]["put_if_none_match"] is True
    assert report["botocore"]["services"] == sorted(AWS_SERVICES)


HANDLER_PROBE = r"""
import importlib, json, sys
root = sys.argv[1]
sys.path[:0] = [root + "/var/task", root + "/opt/python"]
where = {}
for handler in sys.argv[2:]:
    module, _, name = handler.rpartition(".")
    loaded = importlib.import_module(module)
    assert callable(getattr(loaded, name)), handler
    where[handler] = loaded.__file__
print(json.dumps(where))
"""


@pytest.mark.slow
def test_each_configured_handler_imports_from_the_unpacked_code(
    built: BuildResult, tmp_path: Path
) -> None:
    from infra.compute import HANDLERS as CONFIGURED

    found = _probe(built, tmp_path, HANDLER_PROBE, *CONFIGURED.values())

    assert set(found) == set(CONFIGURED.values())
    assert all("/lambda/var/task/runtime/" in path for path in found.values())


def test_a_wheel_cut_short_in_the_cache_is_fetched_again(tmp_path: Path) -> None:
    pin = Pin("six", "1.17.0", "deps")
    good = tmp_path / "six-1.17.0-py2.py3-none-any.whl"
    with zipfile.ZipFile(good, "w") as wheel:
        wheel.writestr("six.py", "")
    assert _wheel_of(pin, tmp_path) == good

    good.write_bytes(good.read_bytes()[:20])

    assert _wheel_of(pin, tmp_path) is None
    assert not good.exists()
