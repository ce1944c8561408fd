"""The kernel API: ``Kernel``, ``KernelError``, the registry, and the batch driver every worker
uses to evaluate points.

A kernel is a declaration (``KernelSpec``, plain data) plus a vectorised numpy function
``compute(params, index, seed) -> metrics`` over one batch of points. ``params`` maps every
declared parameter to an array aligned with ``index`` (float64, int64 or str). Each point draws
its randomness from ``sweep_core.rng.point_stream(seed, index[j])`` and from nothing else, which
is what makes results independent of batching.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

import numpy as np
from attrs import frozen
from numpy.typing import NDArray

from sweep_core.kernel_spec import KernelSpec
from sweep_core.tables import points_table

if TYPE_CHECKING:
    import pyarrow as pa

Arrays = Mapping[str, NDArray[np.generic]]
Compute = Callable[[Arrays, NDArray[np.int64], int], dict[str, NDArray[np.generic]]]


class KernelError(Exception):
    """A point the kernel cannot compute: a stable ``code`` and a message naming the point."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@frozen
class Kernel:
    spec: KernelSpec
    compute: Compute


def evaluate(
    kernel: Kernel, params: Arrays, index: NDArray[np.int64], seed: int
) -> dict[str, NDArray[np.generic]]:
    """Run ``kernel`` on one batch and check what it returns.

    Raises
    ------
    KernelError
        From the kernel itself, or ``NON_FINITE_RESULT`` when a metric holds NaN or infinity:
        a kernel never hands back a silent NaN.
    """
    metrics = kernel.compute(params, index, seed)
    for spec in kernel.spec.metrics:
        values = metrics[spec.name]
        if values.shape != index.shape:
            raise RuntimeError(
                f"kernel {kernel.spec.name!r} returned {values.shape} values of "
                f"{spec.name!r} for {index.shape} points"
            )
        if spec.kind == "float64":
            bad = ~np.isfinite(values.astype(np.float64))
            if bad.any():
                first = int(index[np.argmax(bad)])
                raise KernelError(
                    "NON_FINITE_RESULT",
                    f"{spec.name} is not finite at point {first} ({int(bad.sum())} points)",
                )
    return metrics


BUILTIN_KERNELS = {
    "gbm_european_option": "sweep_kernels.gbm:KERNEL",
    "sir_epidemic": "sweep_kernels.sir:KERNEL",
}
"""The built-in kernels, by name and ``module:attribute``: the registry loads them by name, so
the core never imports the plugins above it."""


class KernelRegistry(Mapping[str, Kernel]):
    """Every registered kernel by name, loaded on first use (a kernel module imports numpy and
    whatever its model needs: a process that never runs or validates one never pays for it)."""

    def __init__(self, sources: Mapping[str, str]) -> None:
        self._sources = dict(sources)
        self._loaded: dict[str, Kernel] | None = None

    def _kernels(self) -> dict[str, Kernel]:
        if self._loaded is None:
            self._loaded = {name: _load(ref) for name, ref in self._sources.items()}
        return self._loaded

    def __getitem__(self, name: str) -> Kernel:
        return self._kernels()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._kernels())

    def __len__(self) -> int:
        return len(self._kernels())


def _load(ref: str) -> Kernel:
    module, _, attribute = ref.partition(":")
    kernel = getattr(importlib.import_module(module), attribute)
    if not isinstance(kernel, Kernel):
        raise TypeError(f"{ref} is not a Kernel")
    return kernel


KERNELS: Mapping[str, Kernel] = KernelRegistry(BUILTIN_KERNELS)


def catalog() -> dict[str, KernelSpec]:
    """The declarations of every registered kernel, keyed by name."""
    return {name: k.spec for name, k in KERNELS.items()}


def points_schema(kernel: str) -> pa.Schema:
    """The Arrow schema of a registered kernel's points objects."""
    return points_table(KERNELS[kernel].spec).arrow_schema
