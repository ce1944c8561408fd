"""Stochastic chain-binomial SIR epidemic in daily steps: final size, peak height and peak day.

One point is one simulated epidemic in a well-mixed population, run until nobody is infected.
"""

from __future__ import annotations

import math

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
    name="sir_epidemic",
    doc=(
        "Stochastic chain-binomial SIR epidemic with daily steps, run until no one is infected: "
        "attack rate, height and day of the infection peak."
    ),
    params=(
        ParamSpec("population", "int", "population size N", low=10, high=1e9),
        ParamSpec(
            "r0",
            "float",
            "basic reproduction number: expected infections caused by one infective in a "
            "fully susceptible population",
            low=0.01,
            high=20.0,
        ),
        ParamSpec(
            "gamma",
            "float",
            "recovery rate per day; an infective recovers each day with probability "
            "1 - exp(-gamma)",
            low=1e-3,
            high=5.0,
        ),
        ParamSpec(
            "initial_infected",
            "int",
            "infected on day 0 (the rest of the population is susceptible)",
            low=1,
            high=1e9,
        ),
        ParamSpec(
            "days",
            "int",
            "horizon in days; the point fails if the epidemic is still going at the end",
            low=1,
            high=3650,
            default=365,
        ),
    ),
    metrics=(
        MetricSpec(
            "attack_rate",
            "float64",
            "fraction of the population ever infected, day-0 cases included",
        ),
        MetricSpec("peak_infected_fraction", "float64", "largest fraction infected on any day"),
        MetricSpec(
            "peak_day", "int64", "first day the infected count reached its peak (0 = start)"
        ),
    ),
)


def compute(params: Arrays, index: NDArray[np.int64], seed: int) -> dict[str, NDArray[np.generic]]:
    """Simulate every point of the batch; point ``j`` uses only ``point_stream(seed, index[j])``.

    Raises
    ------
    KernelError
        ``INVALID_PARAMETERS`` when a point has more initial infected than people;
        ``EPIDEMIC_NOT_OVER`` when someone is still infected after ``days`` days, since the
        attack rate would then be a lower bound rather than the final size.
    """
    population = params["population"].astype(np.int64)
    initial = params["initial_infected"].astype(np.int64)
    too_many = initial > population
    if too_many.any():
        j = int(np.argmax(too_many))
        raise KernelError(
            "INVALID_PARAMETERS",
            f"point {int(index[j])}: initial_infected={int(initial[j])} exceeds "
            f"population={int(population[j])}",
        )

    # Daily recovery probability q = 1 - exp(-gamma): someone infected on day t infects others
    # from day t + 1 until the day they recover, a geometric number of days with mean 1/q.
    # Setting beta = r0 * q makes the expected number of infections one infective causes in a
    # fully susceptible population exactly r0, which is what makes the deterministic final-size
    # relation 1 - z = s0 * exp(-r0 * z) hold with this r0.
    recover = (-np.expm1(-params["gamma"].astype(np.float64))).tolist()
    beta = (params["r0"].astype(np.float64) * np.asarray(recover)).tolist()
    sizes = population.tolist()
    starts = initial.tolist()
    horizons = params["days"].astype(np.int64).tolist()
    points = index.tolist()

    attack = np.empty(len(points), dtype=np.float64)
    peak_frac = np.empty(len(points), dtype=np.float64)
    peak_day = np.empty(len(points), dtype=np.int64)
    streams = PointStreams(seed)  # point_stream(seed, i)'s numbers, without a Philox per point
    for j, point in enumerate(points):
        # Plain Python ints and floats: Generator.binomial on them costs about two thirds of
        # what it costs on numpy scalars, and this loop is nothing but those calls.
        binomial = streams.at(point).binomial
        n = sizes[j]
        q = recover[j]
        pressure = beta[j] / n
        infected = starts[j]
        susceptible = n - infected
        peak, peak_at = infected, 0
        day = 0
        horizon = horizons[j]
        while infected and day < horizon:
            day += 1
            new_inf = binomial(susceptible, -math.expm1(-pressure * infected))
            new_rec = binomial(infected, q)
            susceptible -= new_inf
            infected += new_inf - new_rec
            if infected > peak:
                peak, peak_at = infected, day
        if infected:
            raise KernelError(
                "EPIDEMIC_NOT_OVER",
                f"point {point}: {infected} still infected after days={horizon}; the attack "
                f"rate is not final yet, raise `days` (up to 3650) or the recovery rate gamma",
            )
        attack[j] = (n - susceptible) / n
        peak_frac[j] = peak / n
        peak_day[j] = peak_at
    return {"attack_rate": attack, "peak_infected_fraction": peak_frac, "peak_day": peak_day}


KERNEL = Kernel(spec=SPEC, compute=compute)
