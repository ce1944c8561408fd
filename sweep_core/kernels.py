"""The kernel API (``Kernel``, ``KernelSpec``, ``ParamSpec``, ``MetricSpec``, ``KernelError``,
``PointStreams``), the registry every side finds kernels in, and the batch driver every worker
evaluates points with.

A kernel is a declaration (``KernelSpec``, plain data) plus a vectorised numpy function
``compute(params, index, seed) -> metrics`` over one batch of points. ``params`` maps every
declared parameter to an array aligned with ``index`` (float64, int64 or str). Each point draws
its randomness from ``PointStreams(seed).at(index[j])`` and from nothing else, which is what
makes results independent of batching.

A kernel module imports this module only (``sweep_sdk.kernels`` re-exports it for notebooks and
scripts; a kernel that is deployed to Lambda must import it from here, where the SDK is absent).

Kernels are registered one way, as plugins: an installed distribution names them in the entry
point group ``sweep.kernels`` (this project's own ``pyproject.toml`` registers the built-ins),
and ``SWEEP_KERNELS="pkg.module:KERNEL,other:KERNELS"`` adds modules that are only on
``sys.path`` or in the working directory. Each names a ``Kernel`` or a list or tuple of them.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from attrs import frozen
from numpy.typing import NDArray

from sweep_core.kernel_spec import KernelSpec, KernelSpecError, MetricSpec, ParamSpec
from sweep_core.rng import PointStreams
from sweep_core.tables import points_table

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "ENTRY_POINT_GROUP",
    "KERNELS",
    "KERNELS_ENV",
    "Arrays",
    "Kernel",
    "KernelContractViolation",
    "KernelError",
    "KernelProblem",
    "KernelRegistry",
    "KernelSource",
    "KernelSpec",
    "KernelSpecError",
    "MetricSpec",
    "ParamSpec",
    "PointStreams",
    "UnavailableKernel",
    "catalog",
    "evaluate",
    "points_schema",
]

ENTRY_POINT_GROUP = "sweep.kernels"
KERNELS_ENV = "SWEEP_KERNELS"

Arrays = Mapping[str, NDArray[Any]]
Compute = Callable[[Arrays, NDArray[np.int64], int], dict[str, NDArray[Any]]]


class KernelError(Exception):
    """A point the kernel cannot compute: a stable ``code`` and a message naming the point.

    Raise it from ``compute`` for a point the model refuses (a parameter combination it does
    not define); any other exception ends the shard as ``KERNEL_ERROR``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class KernelContractViolation(KernelError):
    """What ``compute`` returned is not what its spec declares (names, shapes, dtypes)."""

    def __init__(self, kernel: str, problems: Sequence[str]) -> None:
        super().__init__(
            "KERNEL_CONTRACT_VIOLATION", f"kernel {kernel!r} returned " + "; ".join(problems)
        )
        self.problems = tuple(problems)


@frozen
class Kernel:
    spec: KernelSpec
    compute: Compute


# --- evaluating a batch -----------------------------------------------------------------------

_DTYPE_KINDS: dict[str, tuple[str, ...]] = {
    "float64": ("f",),
    "int64": ("i",),
    "bool": ("b",),
    "string": ("U", "O"),
}
"""The numpy dtype kinds a metric of each kind may come back as (``O``: Python strings)."""


def evaluate(
    kernel: Kernel, params: Arrays, index: NDArray[np.int64], seed: int
) -> dict[str, NDArray[Any]]:
    """Run ``kernel`` on one batch and check what it returns.

    Raises
    ------
    KernelError
        From the kernel itself; ``KERNEL_ERROR`` for any other exception it raises (type and
        message on one line); ``KernelContractViolation`` when a metric is missing, undeclared,
        or of the wrong shape or dtype; ``NON_FINITE_RESULT`` when a float metric holds NaN or
        infinity (a kernel never hands back a silent NaN).
    """
    try:
        metrics = kernel.compute(params, index, seed)
    except KernelError:
        raise
    except Exception as exc:
        raise KernelError("KERNEL_ERROR", one_line(exc)) from exc
    spec = kernel.spec
    if not isinstance(metrics, Mapping):
        raise KernelContractViolation(spec.name, [f"a {type(metrics).__name__}, not a dict"])
    problems = [
        f"undeclared metric {name!r}"
        for name in metrics
        if name not in {m.name for m in spec.metrics}
    ]
    for metric in spec.metrics:
        problems.extend(_metric_problems(metric, metrics.get(metric.name), index))
    if problems:
        raise KernelContractViolation(spec.name, problems)
    checked = {m.name: _as_declared(m, metrics[m.name]) for m in spec.metrics}
    for metric in spec.metrics:
        if metric.kind == "float64":
            bad = ~np.isfinite(checked[metric.name])
            if bad.any():
                first = int(index[np.argmax(bad)])
                raise KernelError(
                    "NON_FINITE_RESULT",
                    f"{metric.name} is not finite at point {first} ({int(bad.sum())} points)",
                )
    return checked


def _metric_problems(metric: MetricSpec, values: Any, index: NDArray[np.int64]) -> list[str]:
    where = f"metric {metric.name!r}"
    if values is None:
        return [f"no {where}"]
    if not isinstance(values, np.ndarray):
        return [f"{where} as a {type(values).__name__}, not a numpy array"]
    found = []
    if values.shape != index.shape:
        found.append(f"{where} of shape {values.shape} for {index.shape} points")
    if values.dtype.kind not in _DTYPE_KINDS[metric.kind] or (
        metric.kind in ("float64", "int64") and values.dtype != np.dtype(metric.kind)
    ):
        found.append(f"{where} of dtype {values.dtype}, declared {metric.kind}")
    elif values.dtype.kind == "O" and not all(isinstance(v, str) for v in values.tolist()):
        found.append(f"{where} holding what is not a str, declared string")
    return found


def _as_declared(metric: MetricSpec, values: NDArray[Any]) -> NDArray[Any]:
    if metric.kind == "string" and values.dtype.kind == "O":
        return values.astype(str)
    return values


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line, at most 1000 characters (failure records hold no traces)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:1000] if text else type(exc).__name__


# --- the registry -----------------------------------------------------------------------------


@frozen
class KernelSource:
    """Where kernels come from: an entry point of an installed distribution, or an item of
    ``SWEEP_KERNELS``."""

    kind: Literal["entry point", "SWEEP_KERNELS"]
    ref: str
    """``module:attribute``."""
    name: str = ""
    """The entry point's name (the kernel's name when it names a single kernel)."""
    distribution: str = ""

    def __str__(self) -> str:
        if self.kind == "entry point":
            dist = f" of {self.distribution}" if self.distribution else ""
            return f"entry point {self.name!r} ({self.ref}){dist}"
        return f"{KERNELS_ENV} item {self.ref!r}"

    @property
    def module(self) -> str:
        return self.ref.partition(":")[0].strip()


@frozen
class KernelProblem:
    """A source that gave no kernel, or a name two sources claim: the message says which."""

    source: str
    message: str
    kernel: str | None = None
    """The kernel name the problem is about, when there is one."""

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


class UnavailableKernel(KeyError):
    """A kernel name that is registered but cannot be used; the message says why."""

    def __str__(self) -> str:
        return str(self.args[0])


@frozen
class Registered:
    kernel: Kernel
    source: KernelSource


class KernelRegistry(Mapping[str, Kernel]):
    """Every registered kernel by name, loaded lazily.

    ``registry[name]`` imports only what that name needs when an entry point carries the name
    (a worker pays for its shard's kernel, not for every plugin installed); iterating, ``len``,
    ``catalog()`` and ``problems`` load every source. A source that fails (import error, an
    attribute that is not a ``Kernel``, a spec that does not validate) and a name claimed twice
    are reported in ``problems``, naming the source; the other kernels stay available.
    """

    def __init__(self, sources: Callable[[], Sequence[KernelSource]] | None = None) -> None:
        self._find_sources = sources or discover_sources
        self._sources: list[KernelSource] | None = None
        self._loaded: dict[KernelSource, list[Kernel] | KernelProblem] = {}
        self._all: tuple[dict[str, Registered], list[KernelProblem]] | None = None

    def sources(self) -> list[KernelSource]:
        if self._sources is None:
            self._sources = list(self._find_sources())
        return self._sources

    def _load(self, source: KernelSource) -> list[Kernel] | KernelProblem:
        if source not in self._loaded:
            self._loaded[source] = load_source(source)
        return self._loaded[source]

    def _everything(self) -> tuple[dict[str, Registered], list[KernelProblem]]:
        if self._all is None:
            self._all = self._resolve(self.sources())
        return self._all

    def _resolve(
        self, sources: Sequence[KernelSource]
    ) -> tuple[dict[str, Registered], list[KernelProblem]]:
        claims: dict[str, list[Registered]] = {}
        problems: list[KernelProblem] = []
        for source in sources:
            loaded = self._load(source)
            if isinstance(loaded, KernelProblem):
                problems.append(loaded)
                continue
            for kernel in loaded:
                claims.setdefault(kernel.spec.name, []).append(Registered(kernel, source))
        kernels: dict[str, Registered] = {}
        for name, registered in claims.items():
            if len(registered) == 1:
                kernels[name] = registered[0]
                continue
            where = " and ".join(str(r.source) for r in registered)
            message = f"both register a kernel named {name!r}; neither is used"
            problems.append(KernelProblem(where, message, name))
        return kernels, problems

    def registered(self, name: str) -> Registered:
        """The kernel called ``name`` and its source.

        Raises
        ------
        UnavailableKernel
            When a problem concerns that name (two sources claim it, or its entry point failed).
        KeyError
            When no source registers it.
        """
        if self._all is None:
            # The cheap path: the entry points named after the kernel and the SWEEP_KERNELS
            # items (which carry no names). When those settle it, nothing else is imported.
            sources = self.sources()
            named = [s for s in sources if s.kind == "entry point" and s.name == name]
            if named:
                few = named + [s for s in sources if s.kind == KERNELS_ENV]
                kernels, problems = self._resolve(few)
                if name in kernels and not problems:
                    return kernels[name]
        kernels, problems = self._everything()
        about = [p for p in problems if p.kernel == name or (p.kernel is None and _names(p, name))]
        if about:
            raise UnavailableKernel("; ".join(str(p) for p in about))
        if name in kernels:
            return kernels[name]
        raise KeyError(name)

    def __getitem__(self, name: str) -> Kernel:
        return self.registered(name).kernel

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._everything()[0]))

    def __len__(self) -> int:
        return len(self._everything()[0])

    @property
    def problems(self) -> list[KernelProblem]:
        """Every source that gave no kernel and every name claimed twice."""
        return list(self._everything()[1])

    def describe_unknown(self, name: str) -> str:
        """Why ``name`` cannot be used, for an error message: the problem with it, or the
        kernels that can be."""
        try:
            self.registered(name)
        except UnavailableKernel as exc:
            return str(exc)
        except KeyError:
            pass
        else:
            return f"{name!r} is registered"
        known = ", ".join(self) or "none"
        return f"unknown kernel {name!r}; known kernels: {known}"


def _names(problem: KernelProblem, name: str) -> bool:
    """Whether a failed source is the entry point named ``name`` (its kernel is that one)."""
    return problem.source.startswith(f"entry point {name!r} ")


def discover_sources(environ: Mapping[str, str] | None = None) -> list[KernelSource]:
    """The entry points of group ``sweep.kernels``, then the ``SWEEP_KERNELS`` items."""
    from importlib.metadata import entry_points

    sources = [
        KernelSource(
            "entry point",
            ep.value,
            ep.name,
            ep.dist.name if ep.dist is not None else "",
        )
        for ep in entry_points(group=ENTRY_POINT_GROUP)
    ]
    # A distribution seen twice on sys.path (an editable install and a build folder) lists its
    # entry points twice: the same entry point is one source, not two claims.
    sources = list(dict.fromkeys(sources))
    env = os.environ if environ is None else environ
    items = [item.strip() for item in env.get(KERNELS_ENV, "").split(",")]
    sources += [KernelSource("SWEEP_KERNELS", item) for item in dict.fromkeys(items) if item]
    return sources


def load_source(source: KernelSource) -> list[Kernel] | KernelProblem:
    """The kernels a source names, or the problem that stopped it, naming the source."""
    module_name, colon, attribute = (part.strip() for part in source.ref.partition(":"))
    if not colon or not module_name or not attribute:
        return KernelProblem(str(source), "must be module:attribute, e.g. my_model:KERNEL")
    if source.kind == "SWEEP_KERNELS":
        _search_working_directory()
    try:
        module = importlib.import_module(module_name)
    except KernelSpecError as exc:
        return KernelProblem(str(source), f"its spec does not validate: {exc}", exc.kernel)
    except Exception as exc:
        return KernelProblem(str(source), f"cannot import {module_name}: {one_line(exc)}")
    found: Any = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            return KernelProblem(str(source), f"module {module_name} has no attribute {attribute}")
        found = getattr(found, part)
    items = list(found) if isinstance(found, list | tuple) else [found]
    bad = [f"{type(item).__name__}" for item in items if not isinstance(item, Kernel)]
    if bad or not items:
        what = ", ".join(bad) or "an empty list"
        return KernelProblem(
            str(source), f"{attribute} is not a Kernel or a list of Kernels (it holds {what})"
        )
    problems = [p for k in items for p in _kernel_problems(k)]
    if problems:
        return KernelProblem(str(source), "; ".join(problems))
    single = source.kind == "entry point" and isinstance(found, Kernel)
    if single and found.spec.name != source.name:
        return KernelProblem(
            str(source),
            f"names a kernel called {items[0].spec.name!r}: an entry point that names one "
            "kernel must carry the kernel's name",
        )
    return items


def _search_working_directory() -> None:
    """Let ``SWEEP_KERNELS`` name modules of the folder a command runs in, as ``python -m``
    does (the ``sweep`` script and the workers would otherwise disagree): appended, so a
    module there never shadows an installed one."""
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.append(here)


def _kernel_problems(kernel: Kernel) -> list[str]:
    if not isinstance(kernel.spec, KernelSpec):
        return [f"spec is a {type(kernel.spec).__name__}, not a KernelSpec"]
    if not callable(kernel.compute):
        return [f"kernel {kernel.spec.name!r}: compute is not callable"]
    return []


KERNELS = KernelRegistry()
"""The kernels of this process: the installed entry points and ``SWEEP_KERNELS``."""


def catalog() -> dict[str, KernelSpec]:
    """The declarations of every registered kernel that can be used, keyed by name."""
    return {name: k.spec for name, k in KERNELS.items()}


def points_schema(kernel: str) -> pa.Schema:
    """The Arrow schema of a registered kernel's points objects."""
    return points_table(KERNELS[kernel].spec).arrow_schema
