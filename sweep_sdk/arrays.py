"""A run's results as an xarray Dataset (the ``xarray`` extra; never in the Lambda artifacts)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np

from sweep_core.contract import RunManifest
from sweep_core.kernels import KERNELS
from sweep_core.space import grid_values

if TYPE_CHECKING:
    import pyarrow as pa
    import xarray as xr

COMPUTED = "computed"
"""The mask variable: True where the point was computed, False where its shard failed."""


def _xarray() -> Any:
    try:
        import xarray
    except ImportError:
        raise ImportError(
            "Run.to_xarray needs xarray: pip install 'sweep[xarray]' (or pip install xarray)"
        ) from None
    return xarray


def results_dataset(manifest: RunManifest, table: pa.Table) -> xr.Dataset:
    """See ``Run.to_xarray``: ``table`` is ``Run.results()`` (point_index, params, metrics)."""
    xarray = _xarray()
    spec = manifest.spec
    kernel = KERNELS[spec.kernel].spec
    params = {p.name: p for p in kernel.params}
    n = manifest.point_count
    index = table.column("point_index").to_numpy()
    computed = np.zeros(n, dtype=bool)
    computed[index] = True
    if spec.sampling.method == "grid":
        dims = tuple(spec.axes)
        coords: dict[str, Any] = {
            name: grid_values(axis, params[name]) for name, axis in spec.axes.items()
        }
        shape = tuple(len(coords[d]) for d in dims)
    else:
        dims = ("point",)
        coords = {"point": np.arange(n, dtype=np.int64)}
        shape = (n,)
        for name in spec.axes:  # the sampled values, along the points
            values = _full(table.column(name).to_numpy(zero_copy_only=False), index, n)
            coords[name] = ("point", values)
    data_vars: dict[str, Any] = {COMPUTED: (dims, computed.reshape(shape))}
    for metric in kernel.metrics:
        values = _full(table.column(metric.name).to_numpy(zero_copy_only=False), index, n)
        data_vars[metric.name] = (dims, values.reshape(shape), {"doc": metric.doc})
    attrs = {
        "run_id": manifest.run_id,
        "kernel": spec.kernel,
        "seed": spec.seed,
        "sampling": spec.sampling.method,
        "label": spec.label or "",
        **{f"param_{name}": value for name, value in spec.params.items()},
    }
    return cast("xr.Dataset", xarray.Dataset(data_vars, coords=coords, attrs=attrs))


def _full(values: np.ndarray[Any, Any], index: np.ndarray[Any, Any], n: int) -> Any:
    """``values`` placed at ``index`` in an array of ``n``: NaN (numbers) or None elsewhere;
    a complete run keeps each metric's own dtype."""
    if len(index) == n:
        return values[np.argsort(index, kind="stable")]
    if values.dtype.kind in "iuf":
        out = np.full(n, np.nan, dtype=np.float64)
    else:
        out = np.full(n, None, dtype=object)
    out[index] = values
    return out
