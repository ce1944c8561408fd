"""The Lambda artifacts: what the code zip holds, that zips are reproducible, that the layers fit
their budget, and, in a clean Python 3.12 with nothing but the unpacked artifacts, that the three
handlers run real shards the way Lambda would call them.

The tests marked ``slow`` build the real layers from the registry's manylinux wheels (cached under
``build/wheels``: about 110 MB downloaded once, then about a minute per run).
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

import pytest

from sweep_core.layout import Layout

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import build_artifacts as ba  # noqa: E402
from _elf import strip_elf  # noqa: E402

PYTHON_312 = sorted(Path("/root/.pyenv/versions").glob("3.12.*/bin/python")) or [
    Path(p) for p in filter(None, [shutil.which("python3.12")])
]


# --- the code zip ----------------------------------------------------------------------------


def test_code_zip_holds_what_the_handlers_import_and_nothing_of_the_client_side() -> None:
    closure = ba.code_closure()

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
    assert not ba.NEVER_IMPORTED & set(closure.third_party)


def test_type_checking_imports_do_not_pull_modules_into_the_zip() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from sweep_sdk.client import Run\n"
        "else:\n    import json\n"
        "def later():\n    from scipy.stats import qmc\n"
        "from . import sibling\n"
    )
    found = {(f.module, f.lazy) for f in ba.find_imports(source, "pkg.mod", is_package=False)}

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
    handlers = "\n".join(f"def {name}(event, context): ..." for name in ba.HANDLERS)
    (tmp_path / "runtime" / "lambda_entry.py").write_text(
        f"from runtime.helpers import *\n{handlers}\n"
    )

    with pytest.raises(ba.BuildError) as error:
        ba.code_closure(tmp_path, [ba.ENTRY_MODULE])

    message = str(error.value)
    assert "sweep_sdk.cli ← runtime.helpers ← runtime.lambda_entry" in message
    assert "the handlers import tqdm" in message


def test_the_code_zip_depends_on_content_only(tmp_path: Path) -> None:
    """Two checkouts with different mtimes, modes and file creation order give the same bytes."""
    closure = ba.code_closure()
    roots = []
    for n in (0, 1):
        root = tmp_path / f"checkout{n}"
        for path in sorted(closure.modules.values(), reverse=bool(n)):
            copy = root / path.relative_to(ba.REPO)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(path.read_bytes())
            copy.chmod(0o600 if n else 0o775)
            os.utime(copy, (1_000_000_000 * (n + 1),) * 2)
        roots.append(root)
    moved = {name: roots[0] / path.relative_to(ba.REPO) for name, path in closure.modules.items()}
    other = {name: roots[1] / path.relative_to(ba.REPO) for name, path in closure.modules.items()}

    first = ba.build_code(ba.CodeClosure(moved, closure.third_party), roots[0], tmp_path / "a")
    second = ba.build_code(ba.CodeClosure(other, closure.third_party), roots[1], tmp_path / "b")

    assert first.sha256 == second.sha256
    assert first.file.read_bytes() == second.file.read_bytes()
    assert first.file.name == f"{first.sha256}.zip"
    assert first.key == f"lambda/code/{first.sha256}.zip"
    assert ba.KEY_PATTERN.match(first.key)
    with zipfile.ZipFile(first.file) as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names)
    assert "runtime/lambda_entry.py" in names
    assert "sweep_core/" in names
    assert "sweep_kernels/gbm.py" in names
    assert all(info.date_time == ba.EPOCH for info in infos)
    modes = {info.filename: info.external_attr >> 16 for info in infos}
    assert {mode for name, mode in modes.items() if name.endswith("/")} == {0o40755}
    assert {mode for name, mode in modes.items() if not name.endswith("/")} == {0o100644}


# --- requirements, target, trimming ----------------------------------------------------------


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9._-]+)(?:\[[^]]*\])?==(\S+)", line.split("#")[0].strip())
        if match:
            pins[ba.normalise(match.group(1))] = match.group(2)
    return pins


def test_lambda_pins_match_the_development_environment() -> None:
    lambda_pins = {pin.key: pin for pin in ba.read_pins()}
    dev_pins = _pins(REPO / "requirements.txt")

    for name in ("numpy", "pyarrow", "attrs", "cattrs", "scipy", "jsonschema", "fastjsonschema"):
        assert lambda_pins[name].version == dev_pins[name], name
    for key, pin in lambda_pins.items():  # transitive pins: what the tests ran against
        assert importlib.metadata.version(key) == pin.version, key
    assert lambda_pins["scipy"].layer == "scipy"
    assert {pin.layer for pin in lambda_pins.values()} == {"deps", "scipy"}
    assert "boto3" not in lambda_pins
    assert "botocore" not in lambda_pins


def test_malformed_requirements_are_refused(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements-lambda.txt"
    requirements.write_text("numpy==2.4.6\n")
    with pytest.raises(ba.BuildError, match="before any '# layer:' line"):
        ba.read_pins(requirements)
    requirements.write_text("# layer: deps\nnumpy>=2\n")
    with pytest.raises(ba.BuildError, match="expected name==version"):
        ba.read_pins(requirements)


def test_targets_ask_pip_for_the_runtimes_glibc() -> None:
    x86 = ba.Target("x86_64", "3.12")
    arm = ba.Target.from_runtime("arm64", "python3.12")

    assert x86.runtime == "python3.12"
    assert x86.abi == "cp312"
    assert "manylinux_2_28_x86_64" in x86.platforms
    assert "manylinux2014_x86_64" in x86.platforms
    assert "manylinux_2_34_aarch64" in arm.platforms
    assert "manylinux2014_aarch64" in arm.platforms
    assert "manylinux_2_28_x86_64" not in ba.Target("x86_64", "3.11").platforms  # Amazon Linux 2
    with pytest.raises(ba.BuildError, match="architecture"):
        ba.Target("sparc", "3.12")


def test_stack_settings_choose_the_target(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.demo.yaml").write_text(
        "config:\n  sweep:region: eu-west-1\n  sweep:architecture: x86_64  # not Graviton\n"
        '  sweep:lambdaRuntime: "python3.13"\n'
    )
    assert ba.stack_setting("sweep:architecture", "demo", tmp_path) == "x86_64"
    assert ba.stack_setting("sweep:lambdaRuntime", "demo", tmp_path) == "python3.13"
    assert ba.stack_setting("sweep:nothing", "demo", tmp_path) is None
    assert ba.stack_setting("sweep:lambdaRuntime", "absent", tmp_path) is None


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
    assert (ba.trim_reason(path) is None) is kept


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


# --- budget ----------------------------------------------------------------------------------


def test_an_oversized_deps_layer_fails_the_build(tmp_path: Path) -> None:
    def artifact(name: str, size: int) -> ba.Artifact:
        return ba.Artifact(name, tmp_path / f"{name}.zip", "0" * 64, size // 3, size)

    result = ba.BuildResult(
        ba.Target("x86_64", "3.12"),
        tmp_path,
        artifact("code", 10**5),
        {"deps": artifact("deps", 121 * ba.MIB), "scipy": artifact("scipy", 10**6)},
        {"deps": [], "scipy": []},
        {"deps": {}, "scipy": {}},
        ba.CodeClosure({}, {}),
    )

    with pytest.raises(ba.BuildError, match=r"deps layer is 121.0 MiB unzipped, over its 120"):
        ba._check(result, set(), ba.DEPS_BUDGET, complete=True)
    ba._check(result, set(), 125 * ba.MIB, complete=True)
    result.layers["scipy"] = artifact("scipy", 130 * ba.MIB)
    with pytest.raises(ba.BuildError, match="over Lambda's 250 MiB limit"):
        ba._check(result, set(), 125 * ba.MIB, complete=True)


# --- the real build (downloads wheels once) ---------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> ba.BuildResult:
    t0 = time.perf_counter()
    result = ba.build(ba.Target("x86_64", "3.12"), out=tmp_path_factory.mktemp("artifacts"))
    print(ba.report(result))
    print(f"first build: {time.perf_counter() - t0:.1f} s")
    return result


@pytest.mark.slow
def test_layers_fit_their_budget_and_keys_name_their_content(built: ba.BuildResult) -> None:
    deps = built.layers["deps"]
    assert deps.unzipped_bytes <= ba.DEPS_BUDGET
    total = built.code.unzipped_bytes + sum(a.unzipped_bytes for a in built.layers.values())
    assert total <= ba.LAMBDA_UNZIPPED_LIMIT
    for artifact in (built.code, *built.layers.values()):
        assert artifact.sha256 == ba.sha256_file(artifact.file)
        assert artifact.key.endswith(f"/{artifact.sha256}.zip")
    manifest = json.loads((built.out / "manifest.json").read_text())
    assert deps.key == f"lambda/layer/{deps.sha256}.zip"
    assert manifest["layers"]["deps"]["key"] == deps.key
    config = built.config(built.out)
    assert config == {
        "sweep:useExistingArtifacts": "false",
        "sweep:codeZip": built.code.file.name,
        "sweep:layerZip": deps.file.name,
        "sweep:scipyLayerZip": built.layers["scipy"].file.name,
    }
    with zipfile.ZipFile(deps.file) as archive:
        names = set(archive.namelist())
    assert "python/pyarrow/libarrow.so.2600" in names
    assert "python/numpy/__init__.py" in names
    assert not any("/tests/" in name or name.endswith((".pyx", ".h")) for name in names)


@pytest.mark.slow
def test_building_twice_gives_byte_identical_zips(
    built: ba.BuildResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t0 = time.perf_counter()
    again = ba.build(built.target, out=tmp_path)

    assert again.code.sha256 == built.code.sha256
    for name, layer in built.layers.items():
        assert again.layers[name].sha256 == layer.sha256, name
        assert again.layers[name].file.read_bytes() == layer.file.read_bytes()
    with capsys.disabled():
        print(f"\nsecond build (cached wheels): {time.perf_counter() - t0:.1f} s")


PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
root, data_dir, events = sys.argv[1:4]
# As in Lambda: the function's code, then the layers, then what the runtime itself provides.
sys.path[:0] = [root + "/task", root + "/opt/python", root + "/aws-runtime"]

import runtime.lambda_entry as entry
import runtime.adapters.lambda_invoker  # boto3 as the Lambda runtime provides it
import runtime.adapters.s3
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
report = {"import_s": round(imported, 2), "runs": {}}
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

PROVIDED_BY_LAMBDA = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")


def _unpack_like_lambda(built: ba.BuildResult, root: Path) -> None:
    """Code in ``task/``, every layer into one ``opt/`` (later layers add to earlier ones)."""
    with zipfile.ZipFile(built.code.file) as archive:
        archive.extractall(root / "task")
    for name in ("deps", "scipy"):
        with zipfile.ZipFile(built.layers[name].file) as archive:
            archive.extractall(root / "opt")
    runtime = root / "aws-runtime"
    runtime.mkdir()
    for name in PROVIDED_BY_LAMBDA:
        spec = importlib.util.find_spec(name)
        assert spec is not None
        assert spec.origin is not None
        source = Path(spec.origin)
        source = source.parent if source.name == "__init__.py" else source
        (runtime / source.name).symlink_to(source, target_is_directory=source.is_dir())


@pytest.mark.slow
@pytest.mark.skipif(not PYTHON_312, reason="needs a Python 3.12 interpreter (pyenv)")
def test_the_artifacts_run_every_handler_in_a_clean_python_312(
    built: ba.BuildResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "lambda"
    _unpack_like_lambda(built, root)
    t0 = time.perf_counter()

    result = subprocess.run(
        [str(PYTHON_312[-1]), "-S", "-I", "-c", PROBE, str(root), str(tmp_path / "data"),
         str(REPO / "tests" / "events")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for name in ("grid", "sobol"):
        run = report["runs"][name]
        assert run["workers"] == ["success", "success"]
        assert run["duplicate"] == "success"
        assert run["status"]["succeeded"] == 2, run["status"]
        assert run["status"]["failed"] == 0
        for shard in (0, 1):
            assert (
                tmp_path / "data" / Layout("results").success_key(run["run_id"], shard)
            ).is_file()
    assert report["recorder"]["status"] == "failure"
    assert report["recorder"]["code"] == "WORKER_DIED"
    assert report["outside"] == [], "imported something that is not in the artifacts"
    assert report["site"] is False
    with capsys.disabled():
        print(
            f"\nclean python3.12: imports {report['import_s']} s, three runs and a crash record "
            f"{report['seconds']} s, process {time.perf_counter() - t0:.1f} s"
        )
