"""The point space of a sweep: point index -> parameter values, without materialising the grid.

Grid sampling decodes an index in mixed radix over the axes in the order the request gives
them, the last axis varying fastest (like ``itertools.product``). Random sampling reads the
counter-based sampling stream; Sobol sampling reads scipy's scrambled Sobol sequence seeded by
the run seed. Either way point ``i`` is the same whichever shard or batch asks for it.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
from attrs import field, frozen
from numpy.typing import NDArray

from sweep_core.contract import Axis, SweepRequest
from sweep_core.kernel_spec import KernelSpec, ParamSpec, ParamValue
from sweep_core.rng import sampling_uniforms

Column = NDArray[Any]


def axis_length(axis: Axis) -> int:
    """Number of grid points along a grid axis."""
    if axis.values is not None:
        return len(axis.values)
    if axis.linspace is not None:
        return axis.linspace.num
    if axis.geomspace is not None:
        return axis.geomspace.num
    if axis.range is not None:
        r = axis.range
        return len(range(r.start, r.stop, r.step))
    raise ValueError(f"{axis.form} is not a grid axis")


def point_count(spec: SweepRequest) -> int:
    """How many points ``spec`` describes (exact, however large)."""
    if spec.sampling.method == "grid":
        return math.prod(axis_length(a) for a in spec.axes.values())
    if spec.sampling.n is None:
        raise ValueError(f"{spec.sampling.method} sampling needs n")
    return spec.sampling.n


def dtype_of(param: ParamSpec) -> np.dtype[np.generic]:
    if param.kind == "choice":
        # sized to the longest choice: a bare np.str_ would truncate every value to one letter
        return np.dtype(f"U{max(len(c) for c in param.choices)}")
    return np.dtype(np.float64 if param.kind == "float" else np.int64)


def grid_values(axis: Axis, param: ParamSpec) -> Column:
    """Every value of a grid axis, in order, with the parameter's dtype."""
    dtype = dtype_of(param)
    if axis.values is not None:
        return np.asarray(axis.values, dtype=dtype)
    if axis.linspace is not None:
        s = axis.linspace
        return np.linspace(s.start, s.stop, s.num).astype(dtype)
    if axis.geomspace is not None:
        s = axis.geomspace
        return np.geomspace(s.start, s.stop, s.num).astype(dtype)
    if axis.range is not None:
        r = axis.range
        return np.arange(r.start, r.stop, r.step, dtype=np.int64).astype(dtype)
    raise ValueError(f"{axis.form} is not a grid axis")


def sampled_values(axis: Axis, param: ParamSpec, u: NDArray[np.float64]) -> Column:
    """Map uniforms in [0, 1) onto a random/Sobol axis."""
    if axis.values is not None:
        choices = np.asarray(axis.values, dtype=dtype_of(param))
        pick = np.minimum((u * len(choices)).astype(np.int64), len(choices) - 1)
        return choices[pick]
    interval = axis.uniform or axis.loguniform
    if interval is None:
        raise ValueError(f"{axis.form} is not a sampled axis")
    if param.kind == "int":
        low, high = math.ceil(interval.low), math.floor(interval.high)
        if axis.uniform is not None:
            drawn = low + np.floor(u * (high - low + 1))
        else:
            drawn = np.rint(np.exp(np.log(low) + u * (np.log(high) - np.log(low))))
        ints: Column = np.clip(drawn, low, high).astype(np.int64)
        return ints
    if axis.uniform is not None:
        drawn = interval.low + u * (interval.high - interval.low)
    else:
        log_low, log_high = np.log(interval.low), np.log(interval.high)
        drawn = np.exp(log_low + u * (log_high - log_low))
    return drawn.astype(np.float64)


@frozen
class PointSpace:
    """The points of one sweep, decodable from any array of indices."""

    spec: SweepRequest
    kernel: KernelSpec
    size: int = field(init=False)
    _grid: tuple[Column, ...] = field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "size", point_count(self.spec))
        grid: tuple[Column, ...] = ()
        if self.spec.sampling.method == "grid":
            grid = tuple(grid_values(a, self._param(n)) for n, a in self.spec.axes.items())
        object.__setattr__(self, "_grid", grid)

    def _param(self, name: str) -> ParamSpec:
        param = self.kernel.param(name)
        if param is None:
            raise KeyError(f"{name!r} is not a parameter of {self.kernel.name}")
        return param

    def decode(self, index: NDArray[np.int64]) -> dict[str, Column]:
        """Every kernel parameter's value at each index, in declaration order."""
        index = np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= self.size):
            raise IndexError(f"point indices must lie in [0, {self.size})")
        swept = self._decode_axes(index)
        columns: dict[str, Column] = {}
        for param in self.kernel.params:
            if param.name in swept:
                columns[param.name] = swept[param.name]
            else:
                columns[param.name] = np.full(
                    index.shape, self._fixed_value(param), dtype=dtype_of(param)
                )
        return columns

    def _fixed_value(self, param: ParamSpec) -> ParamValue:
        value = self.spec.params.get(param.name, param.default)
        if value is None:
            raise KeyError(f"parameter {param.name!r} has no value and no default")
        return value

    def _decode_axes(self, index: NDArray[np.int64]) -> dict[str, Column]:
        names = list(self.spec.axes)
        method = self.spec.sampling.method
        if method == "grid":
            out: dict[str, Column] = {}
            rest = index
            for name, values in zip(reversed(names), reversed(self._grid), strict=True):
                rest, digit = np.divmod(rest, len(values))
                out[name] = values[digit]
            return out
        u = self._uniforms(index, len(names))
        return {
            name: sampled_values(self.spec.axes[name], self._param(name), u[:, d])
            for d, name in enumerate(names)
        }

    def _uniforms(self, index: NDArray[np.int64], dims: int) -> NDArray[np.float64]:
        u = np.empty((index.size, dims), dtype=np.float64)
        order = np.argsort(index, kind="stable")
        sorted_index = index[order]
        for lo, hi in _runs(sorted_index):
            first, last = int(sorted_index[lo]), int(sorted_index[hi - 1])
            block = self._block(first, last + 1, dims)
            u[order[lo:hi]] = block[sorted_index[lo:hi] - first]
        return u

    def _block(self, start: int, stop: int, dims: int) -> NDArray[np.float64]:
        if self.spec.sampling.method == "random":
            return sampling_uniforms(self.spec.seed, start, stop, dims)
        from scipy.stats import qmc  # imported here: grid and random runs never need scipy

        engine = qmc.Sobol(dims, scramble=True, rng=self.spec.seed)
        if start:
            engine.fast_forward(start)
        with warnings.catch_warnings():
            # scipy warns when n is not a power of 2; a shard is a slice of one sequence
            warnings.simplefilter("ignore", UserWarning)
            block: NDArray[np.float64] = engine.random(stop - start)
        return block


def _runs(sorted_index: NDArray[np.int64]) -> Iterator[tuple[int, int]]:
    """Positions ``[lo, hi)`` of runs of nearly contiguous indices (gaps of at most 64)."""
    if sorted_index.size == 0:
        return
    breaks = np.flatnonzero(np.diff(sorted_index) > 64) + 1
    bounds = [0, *breaks.tolist(), sorted_index.size]
    yield from itertools.pairwise(bounds)
