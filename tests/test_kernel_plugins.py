"""Kernels as plugins: entry points and SWEEP_KERNELS in one registry, what a broken plugin
does to the others, what a misbehaving kernel leaves in its shard's record, the version every
record carries, and the conformance check."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
from attrs import evolve
from numpy.typing import NDArray

from runtime.adapters.local_store import LocalContext, LocalStore
from runtime.handlers.parent import KernelChanged, ParentDeps, redrive_run, submit_run
from runtime.handlers.worker import WorkerDeps, run_shard
from sweep_core.contract import AcceptedRun, DispatchSlice, ShardTask
from sweep_core.kernel_spec import KernelSpecError
from sweep_core.kernels import (
    KERNELS,
    Kernel,
    KernelContractViolation,
    KernelError,
    KernelRegistry,
    KernelSource,
    KernelSpec,
    MetricSpec,
    ParamSpec,
    UnavailableKernel,
    discover_sources,
    evaluate,
)
from sweep_core.layout import Layout
from sweep_core.records import read_outcome
from sweep_core.runs import read_manifest
from sweep_core.tables import points_table
from sweep_sdk.kernel_check import check_kernel

LAYOUT = Layout("results")


def kernel_module(name: str, version: str = "0", body: str = "return {'y': x * 2.0}") -> str:
    """The source of a module defining ``KERNEL``, a kernel called ``name``."""
    return textwrap.dedent(f"""
        import numpy as np
        from sweep_core.kernels import Kernel, KernelSpec, MetricSpec, ParamSpec

        SPEC = KernelSpec(
            name={name!r}, doc="doubles x", version={version!r},
            params=(ParamSpec("x", "float", "a number", 0.0, 1.0),),
            metrics=(MetricSpec("y", "float64", "twice x"),),
        )

        def compute(params, index, seed):
            x = params["x"]
            {body}

        KERNEL = Kernel(SPEC, compute)
    """)


@pytest.fixture
def modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str, str], None]]:
    """Write modules into a folder on sys.path; they are forgotten after the test."""
    folder = tmp_path / "mods"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    written: list[str] = []

    def write(module: str, source: str) -> None:
        (folder / f"{module}.py").write_text(source)
        written.append(module)

    yield write
    for module in written:
        sys.modules.pop(module, None)


def distribution(root: Path, name: str, entry_points: dict[str, str]) -> None:
    """An installed distribution (a .dist-info on sys.path) declaring ``entry_points``."""
    info = root / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[sweep.kernels]\n{lines}")


def env_registry(items: str) -> KernelRegistry:
    return KernelRegistry(lambda: discover_sources({"SWEEP_KERNELS": items}))


# --- registration ----------------------------------------------------------------------------


def test_entry_points_and_sweep_kernels_fill_one_registry(
    modules: Callable[[str, str], None], tmp_path: Path
) -> None:
    modules("plug_ep", kernel_module("from_entry_point"))
    modules("plug_env", kernel_module("from_env"))
    distribution(tmp_path / "mods", "plug-dist", {"from_entry_point": "plug_ep:KERNEL"})

    registry = env_registry("plug_env:KERNEL")

    assert set(registry) == {
        "gbm_european_option", "sir_epidemic", "from_entry_point", "from_env"
    }  # fmt: skip
    assert registry.problems == []
    assert str(registry.registered("from_entry_point").source) == (
        "entry point 'from_entry_point' (plug_ep:KERNEL) of plug-dist"
    )
    assert str(registry.registered("from_env").source) == "SWEEP_KERNELS item 'plug_env:KERNEL'"
    assert str(registry.registered("gbm_european_option").source).startswith(
        "entry point 'gbm_european_option' (sweep_kernels.gbm:KERNEL)"
    )


def test_a_list_of_kernels_registers_each(modules: Callable[[str, str], None]) -> None:
    source = kernel_module("first") + kernel_module("second").replace("KERNEL =", "OTHER =")
    modules("plug_list", source + "\nKERNELS = [KERNEL, OTHER]\n")
    registry = env_registry("plug_list:KERNELS")
    assert {"first", "second"} <= set(registry)


def test_a_lookup_imports_only_the_kernel_named(
    modules: Callable[[str, str], None], tmp_path: Path
) -> None:
    modules("lazy_one", kernel_module("lazy_one"))
    modules("lazy_two", kernel_module("lazy_two"))
    distribution(
        tmp_path / "mods",
        "lazy-dist",
        {"lazy_one": "lazy_one:KERNEL", "lazy_two": "lazy_two:KERNEL"},
    )
    registry = env_registry("")

    assert registry["lazy_one"].spec.name == "lazy_one"
    assert "lazy_one" in sys.modules
    assert "lazy_two" not in sys.modules


# --- broken plugins ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "source", "message"),
    [
        ("broken_import:KERNEL", "import no_such_package_anywhere\n",
         "SWEEP_KERNELS item 'broken_import:KERNEL': cannot import broken_import: "
         "ModuleNotFoundError: No module named 'no_such_package_anywhere'"),
        ("broken_raise:KERNEL", "raise RuntimeError('model files missing')\n",
         "cannot import broken_raise: RuntimeError: model files missing"),
        ("broken_type:KERNEL", "KERNEL = 42\n",
         "SWEEP_KERNELS item 'broken_type:KERNEL': KERNEL is not a Kernel or a list of Kernels "
         "(it holds int)"),
        ("broken_attr:KERNEL", "OTHER = 1\n",
         "module broken_attr has no attribute KERNEL"),
        ("broken_colon", "",
         "SWEEP_KERNELS item 'broken_colon': must be module:attribute"),
    ],
)  # fmt: skip
def test_a_broken_source_is_named_and_hides_no_other_kernel(
    modules: Callable[[str, str], None], item: str, source: str, message: str
) -> None:
    module = item.partition(":")[0]
    modules(module, source)
    modules("still_fine", kernel_module("still_fine"))

    registry = env_registry(f"{item},still_fine:KERNEL")

    [problem] = registry.problems
    assert message in str(problem)
    assert {"still_fine", "gbm_european_option", "sir_epidemic"} <= set(registry)
    assert registry["still_fine"].spec.name == "still_fine"


def test_a_spec_that_does_not_validate_lists_every_problem_and_names_the_source(
    modules: Callable[[str, str], None],
) -> None:
    modules(
        "bad_spec",
        textwrap.dedent("""
            from sweep_core.kernels import Kernel, KernelSpec, MetricSpec, ParamSpec
            SPEC = KernelSpec(
                name="bad_spec", doc="", version="",
                params=(
                    ParamSpec("x", "float", "", low=2.0, high=1.0),
                    ParamSpec("point_index", "int", ""),
                    ParamSpec("c", "choice", "", choices=("a",), default="b"),
                ),
                metrics=(MetricSpec("y", "complex128", ""),),
            )
            KERNEL = Kernel(SPEC, lambda p, i, s: {})
        """),
    )
    registry = env_registry("bad_spec:KERNEL")

    [problem] = registry.problems
    text = str(problem)
    assert text.startswith("SWEEP_KERNELS item 'bad_spec:KERNEL': its spec does not validate")
    for part in (
        "version must be a string of 1 to 64 characters",
        "parameter 'x': low 2.0 is above high 1.0",
        "parameter 'point_index': 'point_index' is a column of every points table",
        "parameter 'c': default 'b' is not one of the choices",
        "metric 'y': kind 'complex128' is not one of",
    ):
        assert part in text
    with pytest.raises(UnavailableKernel, match="bad_spec"):
        registry["bad_spec"]


def test_the_spec_is_checked_where_it_is_written() -> None:
    with pytest.raises(KernelSpecError) as caught:
        KernelSpec("Bad Name", "", (), ())
    assert caught.value.problems == [
        "the kernel: name 'Bad Name' does not match ^[a-z][a-z0-9_]{0,63}$"
    ]
    with pytest.raises(KernelSpecError, match="a name is declared twice: x"):
        KernelSpec("k", "", (ParamSpec("x", "float", ""),), (MetricSpec("x", "float64", ""),))


def test_two_kernels_with_one_name_are_both_refused_naming_both_sources(
    modules: Callable[[str, str], None], tmp_path: Path
) -> None:
    modules("twin_a", kernel_module("twin"))
    modules("twin_b", kernel_module("twin"))
    distribution(tmp_path / "mods", "twin-dist", {"twin": "twin_a:KERNEL"})

    registry = env_registry("twin_b:KERNEL")

    [problem] = registry.problems
    assert str(problem) == (
        "entry point 'twin' (twin_a:KERNEL) of twin-dist and SWEEP_KERNELS item "
        "'twin_b:KERNEL': both register a kernel named 'twin'; neither is used"
    )
    assert "twin" not in registry
    with pytest.raises(UnavailableKernel, match="both register a kernel named 'twin'"):
        registry["twin"]  # the cheap path (an entry point carries the name) sees it too
    assert "gbm_european_option" in registry


def test_an_entry_point_naming_one_kernel_carries_its_name(
    modules: Callable[[str, str], None], tmp_path: Path
) -> None:
    modules("misnamed", kernel_module("real_name"))
    distribution(tmp_path / "mods", "mis-dist", {"other_name": "misnamed:KERNEL"})
    registry = env_registry("")
    assert "names a kernel called 'real_name'" in str(registry.problems[0])
    assert "real_name" not in registry


def test_the_same_distribution_seen_twice_is_one_source() -> None:
    ep = KernelSource("entry point", "m:K", "k", "d")
    assert len(dict.fromkeys([ep, KernelSource("entry point", "m:K", "k", "d")])) == 1


# --- evaluating: contract violations and kernel errors -----------------------------------------


def _kernel(compute: Callable[..., Any], *metrics: MetricSpec) -> Kernel:
    spec = KernelSpec(
        "probe", "", (ParamSpec("x", "float", "", 0.0, 1.0),),
        metrics or (MetricSpec("y", "float64", ""),),
    )  # fmt: skip
    return Kernel(spec, compute)


X = {"x": np.array([0.1, 0.2, 0.3])}
INDEX = np.arange(3, dtype=np.int64)


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ({"y": np.zeros(2)}, "metric 'y' of shape (2,) for (3,) points"),
        ({"y": np.zeros(3, dtype=np.float32)}, "metric 'y' of dtype float32, declared float64"),
        ({}, "no metric 'y'"),
        ({"y": np.zeros(3), "z": np.zeros(3)}, "undeclared metric 'z'"),
        ({"y": [0.0, 0.0, 0.0]}, "metric 'y' as a list, not a numpy array"),
        ((1, 2), "a tuple, not a dict"),
    ],
)
def test_what_breaks_the_declared_contract_is_a_contract_violation(
    returned: Any, message: str
) -> None:
    with pytest.raises(KernelContractViolation) as caught:
        evaluate(_kernel(lambda p, i, s: returned), X, INDEX, 1)
    assert caught.value.code == "KERNEL_CONTRACT_VIOLATION"
    assert message in caught.value.message


def test_any_other_exception_is_a_kernel_error_on_one_line() -> None:
    def compute(params: Any, index: Any, seed: int) -> Any:
        raise ValueError("matrix is singular\n  at row 3")

    with pytest.raises(KernelError) as caught:
        evaluate(_kernel(compute), X, INDEX, 1)
    assert (caught.value.code, caught.value.message) == (
        "KERNEL_ERROR",
        "ValueError: matrix is singular at row 3",
    )


def test_bool_and_string_metrics_are_checked_and_string_objects_become_str() -> None:
    kernel = _kernel(
        lambda p, i, s: {"ok": p["x"] > 0.15, "label": np.array(["a", "b", "c"], dtype=object)},
        MetricSpec("ok", "bool", ""),
        MetricSpec("label", "string", ""),
    )
    out = evaluate(kernel, X, INDEX, 1)
    assert out["ok"].tolist() == [False, True, True]
    assert out["label"].dtype.kind == "U"
    bad = _kernel(lambda p, i, s: {"ok": p["x"]}, MetricSpec("ok", "bool", ""))
    with pytest.raises(KernelContractViolation, match="dtype float64, declared bool"):
        evaluate(bad, X, INDEX, 1)


# --- the worker --------------------------------------------------------------------------------


def _task(kernel: str, shard: int = 0, run_id: str = "20260102T030405Z-0a1b2c3d") -> ShardTask:
    from sweep_core.validation import parse_request

    catalog = {"probe": _kernel(lambda p, i, s: {}).spec}
    request = parse_request(
        {"schema_version": "1.0", "kernel": "probe", "params": {},
         "axes": {"x": {"linspace": {"start": 0.0, "stop": 1.0, "num": 4}}},
         "sampling": {"method": "grid"}, "sharding": {"shard_count": 1}, "seed": 3},
        catalog=catalog,
    )  # fmt: skip
    return ShardTask(run_id, "2026-01-02", shard, 0, 4, evolve(request, kernel=kernel))


def _deps(store: LocalStore, kernels: dict[str, Kernel]) -> WorkerDeps:
    return WorkerDeps(store, LAYOUT, lambda: datetime(2026, 1, 2, tzinfo=UTC), kernels=kernels)


def test_a_raising_kernel_fails_its_shard_with_kernel_error_and_the_worker_runs_the_next(
    tmp_path: Path,
) -> None:
    def compute(params: Any, index: NDArray[np.int64], seed: int) -> Any:
        if index[0] == 0:
            raise ZeroDivisionError("division by zero")
        return {"y": params["x"] * 2.0}

    store = LocalStore(tmp_path)
    deps = _deps(store, {"probe": _kernel(compute)})
    context = LocalContext.with_timeout(60)

    failed = run_shard(_task("probe"), context, deps)
    assert (failed.status, failed.error_code, failed.error_message) == (
        "failure", "KERNEL_ERROR", "ZeroDivisionError: division by zero"
    )  # fmt: skip
    assert failed.kernel_version == "0"
    later = ShardTask(failed.run_id, "2026-01-02", 1, 1, 4, _task("probe").spec)
    assert run_shard(later, context, deps).status == "success"


def test_a_contract_violation_fails_the_shard_with_its_code(tmp_path: Path) -> None:
    deps = _deps(LocalStore(tmp_path), {"probe": _kernel(lambda p, i, s: {"y": np.zeros(1)})})
    outcome = run_shard(_task("probe"), LocalContext.with_timeout(60), deps)
    assert outcome.error_code == "KERNEL_CONTRACT_VIOLATION"
    assert outcome.error_message is not None
    assert "metric 'y' of shape (1,) for (4,) points" in outcome.error_message


def test_a_kernel_this_worker_lacks_is_a_failure_record_not_a_crash(tmp_path: Path) -> None:
    deps = WorkerDeps(LocalStore(tmp_path), LAYOUT, _deps(LocalStore(tmp_path), {}).clock)
    outcome = run_shard(_task("nowhere"), LocalContext.with_timeout(60), deps)
    assert outcome.error_code == "UNKNOWN_KERNEL"
    assert outcome.kernel_version is None


# --- versions: the manifest, every record, the redrive refusal ---------------------------------


class Recorder:
    def __init__(self) -> None:
        self.tasks: list[ShardTask] = []

    def invoke_async(self, tasks: Sequence[ShardTask]) -> None:
        self.tasks.extend(tasks)

    def dispatch_async(self, slices: Sequence[DispatchSlice]) -> None:
        raise AssertionError("no dispatch tree here")


def _versioned(version: str, fail_above: float = 2.0) -> Kernel:
    def compute(params: Any, index: Any, seed: int) -> Any:
        if (params["x"] > fail_above).any():
            raise KernelError("TOO_BIG", "x too big")
        return {"y": params["x"] * 2.0}

    spec = KernelSpec(
        "probe", "", (ParamSpec("x", "float", "", 0.0, 1.0),), (MetricSpec("y", "float64", ""),),
        version=version,
    )  # fmt: skip
    return Kernel(spec, compute)


def test_redrive_refuses_a_changed_kernel_version_unless_allowed_and_records_show_both(
    tmp_path: Path,
) -> None:
    from runtime.adapters.local_store import random_token
    from sweep_core.ports import utc_now

    store, invoker = LocalStore(tmp_path), Recorder()
    v1 = _versioned("1.0", fail_above=0.5)

    def parent(kernel: Kernel) -> ParentDeps:
        return ParentDeps(store, LAYOUT, invoker, utc_now, random_token,
                          catalog={"probe": kernel.spec})  # fmt: skip

    answer = submit_run(
        {"schema_version": "1.0", "kernel": "probe", "params": {},
         "axes": {"x": {"linspace": {"start": 0.0, "stop": 1.0, "num": 4}}},
         "sampling": {"method": "grid"}, "sharding": {"shard_size": 2}, "seed": 3},
        parent(v1),
    )  # fmt: skip
    assert isinstance(answer.body, AcceptedRun)
    run_id = answer.body.run_id
    manifest = read_manifest(store, LAYOUT, run_id)
    assert manifest is not None
    assert manifest.kernel_version == "1.0"
    context = LocalContext.with_timeout(60)
    first = [run_shard(t, context, _deps(store, {"probe": v1})) for t in invoker.tasks]
    assert [(o.status, o.kernel_version) for o in first] == [
        ("success", "1.0"), ("failure", "1.0")
    ]  # fmt: skip

    v2 = _versioned("2.0")
    invoker.tasks.clear()
    with pytest.raises(KernelChanged) as refused:
        redrive_run(run_id, parent(v2))
    assert refused.value.code == "KERNEL_CHANGED"
    assert "version '1.0'" in refused.value.message
    assert "version '2.0' is registered now" in refused.value.message
    assert invoker.tasks == []
    assert list(store.list(LAYOUT.redrive_prefix(run_id))) == []

    # The same through the HTTP API (API Gateway's proxy event, as the Lambda parent gets it)
    from runtime.handlers.api import handle_request

    event: dict[str, Any] = {
        "httpMethod": "POST",
        "resource": "/runs/{run_id}/redrive",
        "pathParameters": {"run_id": run_id},
    }
    reply = handle_request(event, lambda: parent(v2))
    assert reply["statusCode"] == 409
    assert json.loads(reply["body"])["error"]["code"] == "KERNEL_CHANGED"
    assert invoker.tasks == []
    allowed = {**event, "body": json.dumps({"allow_kernel_change": True})}
    reply = handle_request(allowed, lambda: parent(v2))
    assert (reply["statusCode"], json.loads(reply["body"])["shards"]) == (202, [1])
    [again] = [run_shard(t, context, _deps(store, {"probe": v2})) for t in invoker.tasks]
    assert (again.status, again.kernel_version) == ("success", "2.0")
    versions = sorted(
        str(read_outcome(store.get(key), run_id, "success").kernel_version)
        for key in store.list(LAYOUT.status_prefix(run_id, "success"))
    )
    assert versions == ["1.0", "2.0"]


def test_redrive_of_a_run_whose_kernel_is_gone_is_refused(tmp_path: Path) -> None:
    from runtime.adapters.local_store import random_token
    from sweep_core.ports import utc_now

    store, invoker = LocalStore(tmp_path), Recorder()
    v1 = _versioned("1", fail_above=-1.0)
    deps = ParentDeps(store, LAYOUT, invoker, utc_now, random_token, catalog={"probe": v1.spec})
    answer = submit_run(
        {"schema_version": "1.0", "kernel": "probe", "params": {},
         "axes": {"x": {"values": [0.5]}}, "sampling": {"method": "grid"},
         "sharding": {"shard_count": 1}, "seed": 3},
        deps,
    )  # fmt: skip
    assert isinstance(answer.body, AcceptedRun)
    run_shard(invoker.tasks[0], LocalContext.with_timeout(60), _deps(store, {"probe": v1}))
    gone = ParentDeps(store, LAYOUT, invoker, utc_now, random_token, catalog={})
    with pytest.raises(KernelChanged, match="which is not registered here") as refused:
        redrive_run(answer.body.run_id, gone)
    assert refused.value.code == "KERNEL_UNAVAILABLE"


# --- bool and string metrics through Parquet to DuckDB and Glue --------------------------------


def test_bool_and_string_metrics_reach_parquet_duckdb_and_glue_typed(tmp_path: Path) -> None:
    kernel = _kernel(
        lambda p, i, s: {"ok": p["x"] > 0.5, "label": np.where(p["x"] > 0.5, "high", "low")},
        MetricSpec("ok", "bool", "x above a half"),
        MetricSpec("label", "string", "high or low"),
    )
    store = LocalStore(tmp_path)
    run_shard(_task("probe"), LocalContext.with_timeout(60), _deps(store, {"probe": kernel}))
    [key] = list(store.list(LAYOUT.points_prefix("probe", "20260102T030405Z-0a1b2c3d")))
    rows = duckdb.execute(
        f"SELECT point_index, ok, label, typeof(ok), typeof(label) "
        f"FROM read_parquet('{tmp_path / key}') ORDER BY point_index"
    ).fetchall()
    assert rows == [
        (0, False, "low", "BOOLEAN", "VARCHAR"),
        (1, False, "low", "BOOLEAN", "VARCHAR"),
        (2, True, "high", "BOOLEAN", "VARCHAR"),
        (3, True, "high", "BOOLEAN", "VARCHAR"),
    ]
    glue = {c.name: c.athena_type for c in points_table(kernel.spec).columns}
    assert (glue["ok"], glue["label"]) == ("boolean", "string")


# --- the conformance check ---------------------------------------------------------------------


def _random_kernel(draw: Callable[[NDArray[np.int64], int], NDArray[np.float64]]) -> Kernel:
    return _kernel(lambda p, i, s: {"y": p["x"] + draw(i, s)})


def test_check_passes_the_built_in_kernels() -> None:
    for name in ("gbm_european_option", "sir_epidemic"):
        report = check_kernel(KERNELS[name], points=16)
        assert report.passed, report.failure
        assert report.points_per_second is not None
        assert report.peak_memory_bytes is not None


def test_check_catches_a_kernel_drawing_from_numpy_s_global_generator() -> None:
    report = check_kernel(_random_kernel(lambda i, s: np.random.standard_normal(len(i))))
    assert not report.passed
    assert report.failure is not None
    assert "the results depend on the batching" in report.failure
    assert report.failure.startswith("point 1000: y is ")


def test_check_catches_a_generator_seeded_once_per_batch() -> None:
    report = check_kernel(
        _random_kernel(lambda i, s: np.random.default_rng(s).standard_normal(len(i)))
    )
    assert not report.passed
    assert "depend on the batching" in (report.failure or "")


def test_check_catches_a_kernel_that_uses_positions_instead_of_indices() -> None:
    report = check_kernel(_random_kernel(lambda i, s: np.arange(len(i), dtype=np.float64)))
    assert not report.passed


def test_check_fails_on_non_finite_results_and_wrong_dtypes() -> None:
    nan = check_kernel(_kernel(lambda p, i, s: {"y": np.full(len(i), np.inf)}))
    assert "NON_FINITE_RESULT" in (nan.failure or "")
    wrong = check_kernel(_kernel(lambda p, i, s: {"y": p["x"].astype(np.float32)}))
    assert "KERNEL_CONTRACT_VIOLATION" in (wrong.failure or "")


@pytest.mark.parametrize("new_records", [0, 1])
def test_outcome_records_written_before_kernel_versions_read_as_null(
    tmp_path: Path, new_records: int
) -> None:
    import io

    import pyarrow.parquet as pq

    from runtime.adapters.outcome_index import OutcomeIndex
    from sweep_core.records import outcome_parquet

    store = LocalStore(tmp_path)
    run_id = "20260102T030405Z-0a1b2c3d"
    kernel = _kernel(lambda p, i, s: {"y": p["x"] * 2.0})
    new = run_shard(_task("probe"), LocalContext.with_timeout(60), _deps(store, {"probe": kernel}))
    for shard in (1, 2):
        body = outcome_parquet(evolve(new, shard=shard))
        table = pq.read_table(io.BytesIO(body)).drop_columns(["kernel_version"])
        sink = io.BytesIO()
        pq.write_table(table, sink)
        store.put_if_absent(LAYOUT.success_key(run_id, shard), sink.getvalue())
    if not new_records:
        (tmp_path / LAYOUT.success_key(run_id, 0)).unlink()

    rows = OutcomeIndex(tmp_path, LAYOUT).read().sort_by("shard").to_pylist()
    expected = [(0, "0")] * new_records + [(1, None), (2, None)]
    assert [(r["shard"], r["kernel_version"]) for r in rows] == expected
