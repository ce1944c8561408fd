"""The kernel registry and the batch driver every worker uses to evaluate points.

A kernel is a declaration (``KernelSpec``, plain data) plus a vectorised numpy function
``compute(params, index, seed) -> metrics`` over one batch of points. ``params`` maps every
declared parameter to an array aligned with ``index`` (float64, int64 or str). Each point draws
its randomness from ``sweep_sdk.rng.point_stream(seed, index[j])`` and from nothing else, which
is what makes results independent of batching.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from attrs import frozen
from numpy.typing import NDArray

from sweep_sdk.kernel_spec import KernelSpec

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


def _registry() -> dict[str, Kernel]:
    from runtime.kernels import gbm, sir

    return {k.spec.name: k for k in (gbm.KERNEL, sir.KERNEL)}


KERNELS: Mapping[str, Kernel] = _registry()


def catalog() -> dict[str, KernelSpec]:
    """The declarations of every registered kernel, keyed by name."""
    return {name: k.spec for name, k in KERNELS.items()}
