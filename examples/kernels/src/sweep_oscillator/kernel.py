"""Damped harmonic oscillator ``x'' + 2 zeta omega x' + omega^2 x = 0``, integrated with RK4.

Each point integrates one oscillator from ``(x0, v0)`` over ``[0, t_end]`` in ``steps`` equal
steps and reports where it ends, how far that is from the closed-form solution, how much energy
is left, how often it crossed zero, its damping regime and whether it has settled. An optional
measurement noise draws one normal per point from the point's own stream.

A kernel package imports the kernel API from ``sweep_core.kernels``, which the Lambda functions
carry (``sweep_sdk.kernels`` re-exports the same names for notebooks and scripts).
"""

from __future__ import annotations

import math
from typing import Any

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

RK4_STABLE = 2.5
"""RK4 is stable for real negative eigenvalues while |lambda| dt < 2.785; keep a margin."""
SETTLED = 1e-3
"""A point has settled once its amplitude is below this fraction of where it started."""

SPEC = KernelSpec(
    name="damped_oscillator",
    version="1.0.0",
    doc=(
        "Damped harmonic oscillator x'' + 2 zeta omega x' + omega^2 x = 0 integrated with "
        "classical RK4: final state, error against the closed form, energy left, zero "
        "crossings, damping regime."
    ),
    params=(
        ParamSpec("omega", "float", "natural angular frequency (rad per unit time)", 0.01, 100.0),
        ParamSpec(
            "zeta", "float", "damping ratio: <1 under-, 1 critically, >1 overdamped", 0.0, 5.0
        ),
        ParamSpec("x0", "float", "initial position", -100.0, 100.0, default=1.0),
        ParamSpec("v0", "float", "initial velocity", -100.0, 100.0, default=0.0),
        ParamSpec("t_end", "float", "integration horizon", 0.01, 1000.0, default=10.0),
        ParamSpec("steps", "int", "RK4 steps over the horizon", 10, 20_000, default=2000),
        ParamSpec(
            "noise",
            "float",
            "standard deviation of the measurement noise added to x_measured",
            0.0,
            10.0,
            default=0.0,
        ),
    ),
    metrics=(
        MetricSpec("x_end", "float64", "position at t_end (RK4)"),
        MetricSpec("v_end", "float64", "velocity at t_end (RK4)"),
        MetricSpec("abs_error", "float64", "|x_end - exact x(t_end)|, the RK4 error"),
        MetricSpec(
            "energy_ratio",
            "float64",
            "energy (v^2 + omega^2 x^2) / 2 at t_end over its value at 0 (1 from rest)",
        ),
        MetricSpec("zero_crossings", "int64", "times x changed sign between two steps"),
        MetricSpec("regime", "string", "'underdamped', 'critical' or 'overdamped'"),
        MetricSpec("settled", "bool", f"amplitude at t_end below {SETTLED:g} of the initial one"),
        MetricSpec("x_measured", "float64", "x_end plus noise * N(0, 1) from the point's stream"),
    ),
)


def exact_position(
    omega: NDArray[np.float64],
    zeta: NDArray[np.float64],
    x0: NDArray[np.float64],
    v0: NDArray[np.float64],
    t: NDArray[np.float64],
) -> NDArray[np.float64]:
    """The closed-form ``x(t)`` of each oscillator (the three damping regimes)."""
    out = np.empty_like(t)
    under, critical, over = zeta < 1.0, zeta == 1.0, zeta > 1.0
    if under.any():
        w, z, a, b, s = omega[under], zeta[under], x0[under], v0[under], t[under]
        wd = w * np.sqrt(1.0 - z * z)
        out[under] = np.exp(-z * w * s) * (
            a * np.cos(wd * s) + (b + z * w * a) / wd * np.sin(wd * s)
        )
    if critical.any():
        w, a, b, s = omega[critical], x0[critical], v0[critical], t[critical]
        out[critical] = np.exp(-w * s) * (a + (b + w * a) * s)
    if over.any():
        w, z, a, b, s = omega[over], zeta[over], x0[over], v0[over], t[over]
        root = np.sqrt(z * z - 1.0)
        slow, fast = -w / (z + root), -w * (z + root)  # no cancellation in the slow root
        c_slow = (b - fast * a) / (slow - fast)
        out[over] = c_slow * np.exp(slow * s) + (a - c_slow) * np.exp(fast * s)
    return out


def compute(params: Arrays, index: NDArray[np.int64], seed: int) -> dict[str, NDArray[Any]]:
    """Integrate every point; point ``j`` draws only from ``PointStreams(seed).at(index[j])``.

    Raises
    ------
    KernelError
        ``UNSTABLE_STEP`` when a point's step is too long for RK4 to be stable on its fastest
        decay rate (more ``steps`` or a shorter ``t_end`` fixes it).
    """
    omega = params["omega"].astype(np.float64)
    zeta = params["zeta"].astype(np.float64)
    x0 = params["x0"].astype(np.float64)
    v0 = params["v0"].astype(np.float64)
    t_end = params["t_end"].astype(np.float64)
    steps = params["steps"].astype(np.int64)
    dt = t_end / steps
    fastest = omega * (zeta + np.sqrt(np.maximum(zeta * zeta - 1.0, 0.0)))
    unstable = np.maximum(fastest, omega) * dt > RK4_STABLE
    if unstable.any():
        j = int(np.argmax(unstable))
        needed = math.ceil(t_end[j] * max(fastest[j], omega[j]) / RK4_STABLE)
        raise KernelError(
            "UNSTABLE_STEP",
            f"point {int(index[j])}: a step of {dt[j]:.3g} is too long for RK4 at omega="
            f"{omega[j]:g}, zeta={zeta[j]:g}; raise steps above {needed}",
        )

    x_end = np.empty_like(omega)
    v_end = np.empty_like(omega)
    crossings = np.zeros(omega.shape, dtype=np.int64)
    # Points with the same step count integrate together; every operation is elementwise, so
    # each point gets exactly the numbers it would get alone, in any batch.
    for n in np.unique(steps).tolist():
        rows = np.flatnonzero(steps == n)
        x, v = x0[rows].copy(), v0[rows].copy()
        h, w2, c = dt[rows], omega[rows] ** 2, 2.0 * zeta[rows] * omega[rows]
        count = np.zeros(len(rows), dtype=np.int64)
        for _ in range(n):
            k1x, k1v = v, -c * v - w2 * x
            x2, v2 = x + 0.5 * h * k1x, v + 0.5 * h * k1v
            k2x, k2v = v2, -c * v2 - w2 * x2
            x3, v3 = x + 0.5 * h * k2x, v + 0.5 * h * k2v
            k3x, k3v = v3, -c * v3 - w2 * x3
            x4, v4 = x + h * k3x, v + h * k3v
            k4x, k4v = v4, -c * v4 - w2 * x4
            x_next = x + h / 6.0 * (k1x + 2.0 * k2x + 2.0 * k3x + k4x)
            v = v + h / 6.0 * (k1v + 2.0 * k2v + 2.0 * k3v + k4v)
            count += (x * x_next) < 0.0
            x = x_next
        x_end[rows], v_end[rows], crossings[rows] = x, v, count

    energy_0 = 0.5 * (v0 * v0 + omega * omega * x0 * x0)
    energy_end = 0.5 * (v_end * v_end + omega * omega * x_end * x_end)
    ratio = np.divide(energy_end, energy_0, out=np.ones_like(energy_0), where=energy_0 > 0)
    amplitude_0 = np.maximum(np.abs(x0), np.abs(v0) / omega)
    amplitude_end = np.maximum(np.abs(x_end), np.abs(v_end) / omega)
    regime = np.where(zeta < 1.0, "underdamped", np.where(zeta == 1.0, "critical", "overdamped"))

    noise = params["noise"].astype(np.float64)
    normals = np.zeros_like(omega)
    streams = PointStreams(seed)
    for j in np.flatnonzero(noise > 0).tolist():
        normals[j] = streams.at(int(index[j])).standard_normal()

    return {
        "x_end": x_end,
        "v_end": v_end,
        "abs_error": np.abs(x_end - exact_position(omega, zeta, x0, v0, t_end)),
        "energy_ratio": ratio,
        "zero_crossings": crossings,
        "regime": regime,
        "settled": amplitude_end <= SETTLED * amplitude_0,
        "x_measured": x_end + noise * normals,
    }


KERNEL = Kernel(spec=SPEC, compute=compute)
