"""Monte Carlo price of a European call or put under geometric Brownian motion.

Exact terminal sampling (one normal per path), so the only error is Monte Carlo noise.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from runtime.kernels import Arrays, Kernel, KernelError
from sweep_sdk.kernel_spec import KernelSpec, MetricSpec, ParamSpec
from sweep_sdk.rng import point_stream

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
    drift = ((rate - 0.5 * sigma * sigma) * maturity).tolist()
    vol = (sigma * np.sqrt(maturity)).tolist()
    moneyness = (strike / s0).tolist()
    scale = (s0 * np.exp(-rate * maturity)).tolist()
    calls = is_call.tolist()
    counts = paths.tolist()
    points = index.tolist()

    price = np.empty(len(points), dtype=np.float64)
    stderr = np.empty(len(points), dtype=np.float64)
    # One scratch buffer for the whole batch: filling a slice of it draws exactly the numbers a
    # fresh array would, so reuse saves the allocation without touching reproducibility.
    buf = np.empty(max(counts, default=0), dtype=np.float64)
    for j, point in enumerate(points):
        n = counts[j]
        x = buf[:n]
        point_stream(seed, point).standard_normal(out=x)
        np.multiply(x, vol[j], out=x)
        np.add(x, drift[j], out=x)
        np.exp(x, out=x)
        if calls[j]:
            np.subtract(x, moneyness[j], out=x)
        else:
            np.subtract(moneyness[j], x, out=x)
        np.maximum(x, 0.0, out=x)
        mean = float(np.add.reduce(x)) / n
        # Centre before squaring: sum(x^2) - n*mean^2 cancels catastrophically when the payoff
        # barely varies (deep in the money, tiny sigma), which would corrupt the stderr that
        # callers use to judge the price.
        np.subtract(x, mean, out=x)
        # square and reduce in numpy (pairwise summation), not np.dot: BLAS would start its
        # own threads on long vectors and fight the other worker processes for the cores
        np.square(x, out=x)
        sum_sq = float(np.add.reduce(x))
        price[j] = scale[j] * mean
        stderr[j] = scale[j] * math.sqrt(sum_sq / (n - 1) / n)
    return {"price": price, "stderr": stderr}


KERNEL = Kernel(spec=SPEC, compute=compute)
