"""Ground-truth tests of the numpy kernels: closed forms and limit theorems, not self-agreement."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from numpy.typing import NDArray

from sweep_core.kernel_spec import KernelSpec, MetricSpec
from sweep_core.kernels import Arrays, Kernel, KernelError, evaluate
from sweep_kernels import gbm, sir

Params = dict[str, NDArray[np.generic]]
SEED = 20240611


def _index(n: int, start: int = 0) -> NDArray[np.int64]:
    return np.arange(start, start + n, dtype=np.int64)


def _take(params: Params, rows: NDArray[np.intp]) -> Params:
    return {name: values[rows] for name, values in params.items()}


# --- GBM ------------------------------------------------------------------------------------


def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def black_scholes(
    s0: float, strike: float, rate: float, sigma: float, maturity: float, option: str
) -> float:
    vol = sigma * math.sqrt(maturity)
    d1 = (math.log(s0 / strike) + (rate + 0.5 * sigma * sigma) * maturity) / vol
    d2 = d1 - vol
    discount = math.exp(-rate * maturity)
    if option == "call":
        return s0 * _norm_cdf(d1) - strike * discount * _norm_cdf(d2)
    return strike * discount * _norm_cdf(-d2) - s0 * _norm_cdf(-d1)


def _gbm_params(
    rows: list[tuple[float, float, float, float, float, str]], paths: int = 20_000
) -> Params:
    s0, strike, rate, sigma, maturity, option = zip(*rows, strict=True)
    return {
        "s0": np.array(s0, dtype=np.float64),
        "strike": np.array(strike, dtype=np.float64),
        "rate": np.array(rate, dtype=np.float64),
        "sigma": np.array(sigma, dtype=np.float64),
        "maturity": np.array(maturity, dtype=np.float64),
        "paths": np.full(len(rows), paths, dtype=np.int64),
        "option": np.array(option),
    }


def _gbm_grid() -> list[tuple[float, float, float, float, float, str]]:
    """240 points from nearly deterministic to very volatile, deep in to deep out of the money.

    Strikes sit k standard deviations of log S_T away from the forward, k in -2..2, so every
    point has thousands of paths on both sides of the strike: a grid in plain price units would
    include points where no path ends in the money, where the estimate is 0 with stderr 0.
    """
    s0 = 100.0
    rows = []
    for sigma, k, maturity, rate, option in itertools.product(
        (1e-4, 0.05, 0.15, 0.3, 0.6, 1.0),
        (-2.0, -1.0, 0.0, 1.0, 2.0),
        (0.25, 2.0),
        (-0.02, 0.05),
        ("call", "put"),
    ):
        forward = s0 * math.exp(rate * maturity)
        strike = forward * math.exp(k * sigma * math.sqrt(maturity))
        rows.append((s0, strike, rate, sigma, maturity, option))
    return rows


def test_gbm_matches_black_scholes_within_four_standard_errors() -> None:
    rows = _gbm_grid()
    out = evaluate(gbm.KERNEL, _gbm_params(rows), _index(len(rows)), SEED)
    price = out["price"].astype(np.float64)
    stderr = out["stderr"].astype(np.float64)
    exact = np.array([black_scholes(*row) for row in rows])
    assert (stderr > 0).all()
    # Four standard errors: with 240 independent points a correct kernel stays inside with
    # probability ~0.985, and the seed is fixed, so this is not a flaky test.
    z = np.abs(price - exact) / stderr
    worst = int(np.argmax(z))
    assert z[worst] <= 4.0, (rows[worst], price[worst], exact[worst], stderr[worst])
    # A wrong stderr would also make the bound meaningless: the normalised errors of a correct
    # estimator have root mean square close to 1.
    assert 0.75 < math.sqrt(float(np.mean(z * z))) < 1.3


def test_gbm_stderr_stays_accurate_when_the_payoff_barely_varies() -> None:
    # Deep in the money with the smallest sigma and maturity, S_T = s0 * (1 + sigma * sqrt(T) * z)
    # to first order, so the payoff's standard deviation is s0 * sigma * sqrt(T) = 1e-7 on a
    # price of 50. Computing the variance as sum(x^2)/n - mean^2 loses all of it to rounding.
    s0, sigma, maturity, paths = 100.0, 1e-6, 1e-6, 20_000
    rows = [(s0, 50.0, 0.0, sigma, maturity, "call")]
    out = evaluate(gbm.KERNEL, _gbm_params(rows, paths), _index(1), SEED)
    expected = s0 * sigma * math.sqrt(maturity) / math.sqrt(paths)
    assert float(out["stderr"][0]) == pytest.approx(expected, rel=0.05)
    assert float(out["price"][0]) == pytest.approx(50.0, abs=4 * expected)


def test_gbm_put_call_parity() -> None:
    # Calls and puts on disjoint indices are independent, so the parity residual has the
    # standard error sqrt(se_call^2 + se_put^2).
    base = [(100.0, k, 0.04, s, 1.5) for k in (60.0, 100.0, 140.0) for s in (0.1, 0.4)]
    calls = _gbm_params([(*b, "call") for b in base])
    puts = _gbm_params([(*b, "put") for b in base])
    c = evaluate(gbm.KERNEL, calls, _index(len(base)), SEED)
    p = evaluate(gbm.KERNEL, puts, _index(len(base), start=1000), SEED)
    for j, (s0, strike, rate, _, maturity) in enumerate(base):
        residual = (
            float(c["price"][j]) - float(p["price"][j]) - (s0 - strike * math.exp(-rate * maturity))
        )
        se = math.hypot(float(c["stderr"][j]), float(p["stderr"][j]))
        assert abs(residual) <= 4 * se, (base[j], residual, se)


def test_gbm_point_is_bit_identical_alone_and_in_any_batch() -> None:
    rows = _gbm_grid()[::7]
    params = _gbm_params(rows)
    # Vary the paths so the batch's scratch buffer is larger than some points need.
    params["paths"] = np.array([2_000 + 1_500 * j for j in range(len(rows))], dtype=np.int64)
    index = _index(len(rows), start=500)
    batch = evaluate(gbm.KERNEL, params, index, SEED)

    order = np.random.default_rng(1).permutation(len(rows))
    shuffled = evaluate(gbm.KERNEL, _take(params, order), index[order], SEED)
    for name in ("price", "stderr"):
        assert np.array_equal(shuffled[name], batch[name][order])

    for j in (0, len(rows) // 2, len(rows) - 1):
        rows_j = np.array([j])
        alone = evaluate(gbm.KERNEL, _take(params, rows_j), index[rows_j], SEED)
        assert alone["price"].tobytes() == batch["price"][rows_j].tobytes()
        assert alone["stderr"].tobytes() == batch["stderr"][rows_j].tobytes()


def test_gbm_seed_and_index_change_the_draws() -> None:
    rows = [(100.0, 100.0, 0.03, 0.2, 1.0, "call")] * 2
    params = _gbm_params(rows)
    a = evaluate(gbm.KERNEL, params, _index(2), SEED)["price"]
    b = evaluate(gbm.KERNEL, params, _index(2), SEED + 1)["price"]
    assert a[0] != a[1]  # same parameters, different points
    assert a[0] != b[0]
    assert a[1] != b[1]


# --- SIR ------------------------------------------------------------------------------------


def _sir_params(
    n: int, population: int, r0: float, gamma: float, initial: int, days: int
) -> Params:
    return {
        "population": np.full(n, population, dtype=np.int64),
        "r0": np.full(n, r0, dtype=np.float64),
        "gamma": np.full(n, gamma, dtype=np.float64),
        "initial_infected": np.full(n, initial, dtype=np.int64),
        "days": np.full(n, days, dtype=np.int64),
    }


def final_size(r0: float, susceptible_fraction: float) -> float:
    """Root z in (0, 1] of 1 - z = s0 * exp(-r0 * z), the deterministic SIR final size."""
    z = 1.0
    for _ in range(10_000):  # a contraction near the root for r0 > 1: plain iteration converges
        nxt = 1.0 - susceptible_fraction * math.exp(-r0 * z)
        if abs(nxt - z) < 1e-14:
            return nxt
        z = nxt
    raise AssertionError("final-size iteration did not converge")


@pytest.mark.parametrize("r0", [1.5, 2.0, 3.0])
def test_sir_mean_attack_rate_matches_final_size_relation(r0: float) -> None:
    population, initial, replicates = 200_000, 50, 100
    params = _sir_params(replicates, population, r0, 0.5, initial, 2_000)
    out = evaluate(sir.KERNEL, params, _index(replicates), SEED)
    attack = out["attack_rate"].astype(np.float64)
    expected = final_size(r0, 1.0 - initial / population)
    # The attack-rate spread between replicates is at most ~0.004 here (largest at R0 = 1.5),
    # so the mean of 100 has a standard error ≤ 0.0004, and the finite-N bias of the
    # chain binomial is O(1/N). 0.003 is several standard errors yet far below the gap to a
    # wrong R0 (the final size moves by ~0.04 per 0.1 of R0 at R0 = 1.5).
    assert abs(float(attack.mean()) - expected) < 0.003, (attack.mean(), expected)
    # With 50 initial cases early extinction has probability (1/R0)^50: every replicate takes off.
    assert float(attack.min()) > expected - 0.05


@pytest.mark.parametrize("r0", [1.5, 2.0, 3.0])
def test_sir_peak_matches_the_sir_ode(r0: float) -> None:
    # The deterministic SIR peak (s0 -> 1) is 1 - (1 + ln R0) / R0. Daily steps are close to
    # it when the recovery probability per day is small; replicate spread is ~0.001.
    replicates = 20
    params = _sir_params(replicates, 1_000_000, r0, 0.1, 50, 3_000)
    out = evaluate(sir.KERNEL, params, _index(replicates), SEED)
    peak = float(out["peak_infected_fraction"].astype(np.float64).mean())
    assert peak == pytest.approx(1.0 - (1.0 + math.log(r0)) / r0, abs=0.003)
    assert (out["peak_day"].astype(np.int64) > 0).all()


def test_sir_subcritical_outbreaks_stay_small() -> None:
    # Below threshold the outbreak is a subcritical branching process: the expected total
    # number ever infected is initial / (1 - R0) = 20 here. Its spread per replicate is
    # sqrt(initial * var_offspring / (1 - R0)^3) ≈ 7.2, so the mean of 200 is 20 ± 0.5.
    population, initial, r0, replicates = 100_000, 10, 0.5, 200
    params = _sir_params(replicates, population, r0, 0.5, initial, 3_650)
    out = evaluate(sir.KERNEL, params, _index(replicates), SEED)
    cases = out["attack_rate"].astype(np.float64) * population
    assert float(cases.mean()) == pytest.approx(initial / (1 - r0), abs=2.5)
    assert float(cases.max()) < 0.002 * population


def test_sir_short_horizon_raises_epidemic_not_over() -> None:
    params = _sir_params(3, 1_000_000, 2.0, 0.05, 10, 30)
    with pytest.raises(KernelError) as caught:
        evaluate(sir.KERNEL, params, _index(3, start=41), SEED)
    assert caught.value.code == "EPIDEMIC_NOT_OVER"
    assert "point 41" in caught.value.message
    assert "days" in caught.value.message


def test_sir_more_initial_infected_than_people_is_invalid() -> None:
    params = _sir_params(3, 100, 2.0, 0.5, 10, 365)
    params["initial_infected"] = np.array([10, 101, 10], dtype=np.int64)
    with pytest.raises(KernelError) as caught:
        evaluate(sir.KERNEL, params, _index(3, start=7), SEED)
    assert caught.value.code == "INVALID_PARAMETERS"
    assert "point 8" in caught.value.message


def test_sir_point_is_bit_identical_alone_and_in_any_batch() -> None:
    n = 12
    params = _sir_params(n, 5_000, 2.0, 0.5, 5, 3_650)
    params["r0"] = np.linspace(0.8, 4.0, n)
    params["population"] = np.array([1_000 * (j + 1) for j in range(n)], dtype=np.int64)
    index = _index(n, start=90)
    batch = evaluate(sir.KERNEL, params, index, SEED)

    order = np.random.default_rng(2).permutation(n)
    shuffled = evaluate(sir.KERNEL, _take(params, order), index[order], SEED)
    for name in ("attack_rate", "peak_infected_fraction", "peak_day"):
        assert np.array_equal(shuffled[name], batch[name][order])

    for j in (0, n - 1):
        rows_j = np.array([j])
        alone = evaluate(sir.KERNEL, _take(params, rows_j), index[rows_j], SEED)
        for name in ("attack_rate", "peak_infected_fraction", "peak_day"):
            assert alone[name].tobytes() == batch[name][rows_j].tobytes()


# --- evaluate() -----------------------------------------------------------------------------


def _half_nan(
    params: Arrays, index: NDArray[np.int64], seed: int
) -> dict[str, NDArray[np.generic]]:
    values = params["x"].astype(np.float64)
    return {"y": np.where(values > 0, np.nan, values)}


def test_evaluate_turns_a_nan_metric_into_non_finite_result() -> None:
    spec = KernelSpec(
        name="half_nan",
        doc="NaN wherever x > 0",
        params=(),
        metrics=(MetricSpec("y", "float64", "x, or NaN where x > 0"),),
    )
    kernel = Kernel(spec=spec, compute=_half_nan)
    index = _index(4, start=10)
    ok = evaluate(kernel, {"x": np.array([-1.0, -2.0, 0.0, -3.0])}, index, 0)
    assert np.array_equal(ok["y"], [-1.0, -2.0, 0.0, -3.0])
    with pytest.raises(KernelError) as caught:
        evaluate(kernel, {"x": np.array([-1.0, 0.0, 5.0, 6.0])}, index, 0)
    assert caught.value.code == "NON_FINITE_RESULT"
    assert "point 12" in caught.value.message
