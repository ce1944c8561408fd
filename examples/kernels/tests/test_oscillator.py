"""Ground truth for the damped oscillator: an independent high-accuracy ODE solver, the undamped
energy invariant, the zero crossings of a cosine, and the noise's distribution."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.integrate import solve_ivp
from sweep_oscillator.kernel import KERNEL, exact_position

from sweep_core.kernels import KernelError, evaluate

SEED = 11


def _params(n: int, **values: float | NDArray[np.float64]) -> dict[str, NDArray[np.generic]]:
    defaults: dict[str, float] = {
        "omega": 2.0, "zeta": 0.1, "x0": 1.0, "v0": 0.0, "t_end": 10.0, "steps": 2000, "noise": 0.0
    }  # fmt: skip
    out: dict[str, NDArray[np.generic]] = {}
    for name, default in {**defaults, **values}.items():
        column = np.broadcast_to(np.asarray(default, dtype=np.float64), (n,)).copy()
        out[name] = column.astype(np.int64) if name == "steps" else column
    return out


def _run(params: dict[str, NDArray[np.generic]], start: int = 0) -> dict[str, NDArray[Any]]:
    n = len(params["omega"])
    return evaluate(KERNEL, params, np.arange(start, start + n, dtype=np.int64), SEED)


@pytest.mark.parametrize("zeta", [0.0, 0.05, 0.5, 1.0, 1.5, 4.0])
def test_rk4_and_the_closed_form_match_an_independent_solver(zeta: float) -> None:
    omega, x0, v0, t_end = 1.7, 0.8, -0.6, 6.0
    reference = solve_ivp(
        lambda t, y: [y[1], -2 * zeta * omega * y[1] - omega**2 * y[0]],
        (0.0, t_end), [x0, v0], method="DOP853", rtol=1e-12, atol=1e-14,
    ).y[0, -1]  # fmt: skip
    out = _run(_params(1, omega=omega, zeta=zeta, x0=x0, v0=v0, t_end=t_end, steps=4000))
    exact = exact_position(*(np.array([v]) for v in (omega, zeta, x0, v0, t_end)))[0]
    assert exact == pytest.approx(reference, abs=1e-10)
    assert out["x_end"][0] == pytest.approx(reference, abs=1e-9)
    assert out["abs_error"][0] < 1e-9


def test_rk4_error_falls_as_the_fourth_power_of_the_step() -> None:
    errors = [_run(_params(1, zeta=0.2, steps=s))["abs_error"][0] for s in (200, 400)]
    assert errors[0] / errors[1] == pytest.approx(16, rel=0.1)


def test_an_undamped_oscillator_keeps_its_energy_and_never_settles() -> None:
    out = _run(_params(3, zeta=0.0, x0=np.array([1.0, 0.0, -2.0]), v0=np.array([0.0, 3.0, 1.0])))
    np.testing.assert_allclose(out["energy_ratio"], 1.0, atol=1e-8)
    assert out["regime"].tolist() == ["underdamped"] * 3
    assert out["settled"].tolist() == [False] * 3


@pytest.mark.parametrize("t_end", [1.0, 4.0, 9.5, 20.0])
def test_a_released_undamped_oscillator_crosses_zero_as_a_cosine_does(t_end: float) -> None:
    # x = cos(omega t) crosses zero at (k + 1/2) pi / omega
    omega = 3.0
    out = _run(_params(1, zeta=0.0, omega=omega, t_end=t_end, steps=20_000))
    assert out["zero_crossings"][0] == math.floor(t_end * omega / math.pi + 0.5)


def test_critical_and_overdamped_oscillators_released_at_rest_never_cross_zero() -> None:
    out = _run(_params(2, zeta=np.array([1.0, 3.0]), t_end=40.0, steps=8000))
    assert out["zero_crossings"].tolist() == [0, 0]
    assert out["regime"].tolist() == ["critical", "overdamped"]
    assert out["settled"].tolist() == [True, True]


def test_a_start_at_rest_has_energy_ratio_one() -> None:
    out = _run(_params(1, x0=0.0, v0=0.0))
    assert out["energy_ratio"][0] == 1.0
    assert out["x_end"][0] == 0.0


def test_measurement_noise_is_normal_and_each_point_draws_it_alone() -> None:
    n = 4000
    params = _params(n, noise=0.5, steps=10)
    out = _run(params, start=100)
    residual = out["x_measured"] - out["x_end"]
    assert abs(residual.mean()) < 4 * 0.5 / math.sqrt(n)
    assert residual.std() == pytest.approx(0.5, rel=0.05)
    alone = _run({k: v[7:8] for k, v in params.items()}, start=107)
    assert alone["x_measured"][0] == out["x_measured"][7]


def test_a_step_too_long_for_rk4_is_refused_naming_the_point() -> None:
    with pytest.raises(KernelError, match=r"UNSTABLE_STEP: point 0: .* raise steps above \d+"):
        _run(_params(1, omega=50.0, zeta=2.0, steps=10))
