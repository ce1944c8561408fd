"""Monte Carlo price of a European call or put under geometric Brownian motion.

Exact terminal sampling (one normal per path), so the only error is Monte Carlo noise.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sweep_core.kernels import (
    Arrays,
    Kernel,
    KernelError,
    KernelSpec,
    MetricSpec,
    ParamSpec,
    PointStreams,
)

SPEC = KernelSpec(
    name="gbm_european_option",
    doc=(
        "Monte Carlo price of a European call or put on an asset following geometric Brownian "
        "motion, with the standard error of the estimate."
    ),
    params=(
        ParamSpec("s0", "float", "spot price of the underlying today", low=1e-6, high=1e9),
        ParamSpec("strike", "float", "strike price", low=1e-6, high=1e9),
        ParamSpec(
            "rate",
            "float",
            "continuously compounded risk-free rate per year (the drift under the pricing measure)",
            low=-0.5,
            high=1.0,
        ),
        ParamSpec("sigma", "float", "volatility per square-root year", low=1e-6, high=5.0),
        ParamSpec("maturity", "float", "time to expiry in years", low=1e-6, high=100.0),
        ParamSpec(
            "paths",
            "int",
            "number of simulated paths; the standard error shrinks as 1/sqrt(paths)",
            low=2,
            high=1_000_000,
            default=20_000,
        ),
        ParamSpec(
            "option",
            "choice",
            "payoff: 'call' pays max(S_T - strike, 0), 'put' pays max(strike - S_T, 0)",
            choices=("call", "put"),
            default="call",
        ),
    ),
    metrics=(
        MetricSpec("price", "float64", "discounted mean payoff over the simulated paths"),
        MetricSpec("stderr", "float64", "standard error of the price estimate"),
    ),
)


def compute(params: Arrays, index: NDArray[np.int64], seed: int) -> dict[str, NDArray[np.generic]]:
    """Price every point of the batch; point ``j`` uses only ``point_stream(seed, index[j])``."""
    s0 = params["s0"].astype(np.float64)
    strike = params["strike"].astype(np.float64)
    rate = params["rate"].astype(np.float64)
    sigma = params["sigma"].astype(np.float64)
    maturity = params["maturity"].astype(np.float64)
    paths = params["paths"].astype(np.int64)
    is_call = params["option"] == "call"
    unknown = ~(is_call | (params["option"] == "put"))
    if unknown.any():
        j = int(np.argmax(unknown))
        raise KernelError(
            "INVALID_PARAMETERS",
            f"option must be 'call' or 'put', got {str(params['option'][j])!r} at point {index[j]}",
        )

    # Work in units of s0 and pull the discount factor out of the loop: the payoff is
    # s0 * max(exp(drift + vol * z) - strike / s0, 0), so the per-path work is one affine map,
    # one exp and one clamp, and the scalar factor is applied to the two summary numbers only.
    drift = (rate - 0.5 * sigma * sigma) * maturity
    vol = sigma * np.sqrt(maturity)
    moneyness = strike / s0
    scale = s0 * np.exp(-rate * maturity)
    points = index.tolist()

    price = np.empty(len(points), dtype=np.float64)
    stderr = np.empty(len(points), dtype=np.float64)
    streams = PointStreams(seed)
    # Points are priced a block at a time: each row of the block is filled from its own point's
    # stream (the only per-point Python work left), then the arithmetic runs once over the whole
    # block. Every step is elementwise or a reduction along a row, so each point gets exactly
    # the numbers it would get alone (calls and puts, and different path counts, never share a
    # block). One scratch buffer serves every block, sized to stay in cache.
    groups: dict[tuple[int, bool], list[int]] = {}
    for j, key in enumerate(zip(paths.tolist(), is_call.tolist(), strict=True)):
        groups.setdefault(key, []).append(j)
    largest = max(paths.tolist(), default=0)
    buf = np.empty(max(largest, min(_BLOCK_VALUES, largest * len(points))), dtype=np.float64)
    for (n, call), members in groups.items():
        rows = max(1, _BLOCK_VALUES // n)
        for lo in range(0, len(members), rows):
            block = np.array(members[lo : lo + rows], dtype=np.intp)
            x = buf[: len(block) * n].reshape(len(block), n)
            for r, j in enumerate(block.tolist()):
                streams.at(points[j]).standard_normal(out=x[r])
            _payoffs(x, vol[block], drift[block], moneyness[block], call)
            # Pairwise summation along each row, as for a lone vector (not np.dot: BLAS would
            # start its own threads on long vectors and fight the other workers for the cores).
            mean = np.add.reduce(x, axis=1) / n
            # Centre before squaring: sum(x^2) - n*mean^2 cancels catastrophically when the
            # payoff barely varies (deep in the money, tiny sigma), which would corrupt the
            # stderr that callers use to judge the price.
            np.subtract(x, mean[:, None], out=x)
            np.square(x, out=x)
            sum_sq = np.add.reduce(x, axis=1)
            price[block] = scale[block] * mean
            stderr[block] = scale[block] * np.sqrt(sum_sq / (n - 1) / n)
    return {"price": price, "stderr": stderr}


_BLOCK_VALUES = 1 << 15
"""Normals per block (256 KiB): large enough that numpy's per-call cost vanishes, small
enough that the seven passes over the block run in the core's own cache."""


def _payoffs(
    x: NDArray[np.float64],
    vol: NDArray[np.float64],
    drift: NDArray[np.float64],
    moneyness: NDArray[np.float64],
    call: bool,
) -> None:
    """Turn each row's normals into undiscounted payoffs in units of s0, in place."""
    np.multiply(x, vol[:, None], out=x)
    np.add(x, drift[:, None], out=x)
    np.exp(x, out=x)
    if call:
        np.subtract(x, moneyness[:, None], out=x)
    else:
        np.subtract(moneyness[:, None], x, out=x)
    np.maximum(x, 0.0, out=x)


KERNEL = Kernel(spec=SPEC, compute=compute)
