"""The point space: decoding any indices equals the materialised sweep, in any batch."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import qmc

from sweep_core.contract import Axis
from sweep_core.convert import converter
from sweep_core.kernel_spec import ParamSpec
from sweep_core.kernels import catalog
from sweep_core.space import PointSpace, sampled_values
from sweep_core.validation import parse_request

SIR_FIXED = {"population": 10_000, "r0": 2.0, "gamma": 0.2, "initial_infected": 5, "days": 200}


def sir_space(axes: dict[str, Any], sampling: dict[str, Any], seed: int = 7) -> PointSpace:
    params = {k: v for k, v in SIR_FIXED.items() if k not in axes}
    spec = parse_request(
        {
            "schema_version": "1.0",
            "kernel": "sir_epidemic",
            "params": params,
            "axes": axes,
            "sampling": sampling,
            "sharding": {"shard_count": 1},
            "seed": seed,
        }
    )
    return PointSpace(spec, catalog()["sir_epidemic"])


GRID_AXES = {
    "r0": {"linspace": {"start": 0.5, "stop": 3.0, "num": 4}},
    "gamma": {"geomspace": {"start": 0.05, "stop": 0.8, "num": 3}},
    "population": {"range": {"start": 1000, "stop": 6000, "step": 2500}},
    "days": {"values": [30, 60]},
}


def materialised_grid() -> list[tuple[float, float, int, int]]:
    """The grid as a user defines it: itertools.product of the axes, last axis fastest."""
    return list(
        itertools.product(
            np.linspace(0.5, 3.0, 4).tolist(),
            np.geomspace(0.05, 0.8, 3).tolist(),
            range(1000, 6000, 2500),
            [30, 60],
        )
    )


@given(data=st.data())
def test_grid_decode_of_any_range_equals_the_materialised_slice(data: st.DataObject) -> None:
    space = sir_space(GRID_AXES, {"method": "grid"})
    grid = materialised_grid()
    assert space.size == len(grid) == 4 * 3 * 2 * 2
    start = data.draw(st.integers(0, space.size - 1))
    stop = data.draw(st.integers(start + 1, space.size))
    cols = space.decode(np.arange(start, stop))
    decoded = list(
        zip(
            cols["r0"].tolist(),
            cols["gamma"].tolist(),
            cols["population"].tolist(),
            cols["days"].tolist(),
            strict=True,
        )
    )
    assert decoded == grid[start:stop]
    assert (cols["initial_infected"] == 5).all()
    assert cols["population"].dtype == np.int64
    assert cols["r0"].dtype == np.float64


def test_grid_decode_does_not_materialise_large_grids() -> None:
    axes = {
        "r0": {"linspace": {"start": 0.5, "stop": 3.0, "num": 10_000}},
        "gamma": {"linspace": {"start": 0.05, "stop": 0.8, "num": 10_000}},
    }
    space = sir_space(axes, {"method": "grid"})
    assert space.size == 10**8
    last = space.decode(np.array([space.size - 1]))
    assert last["r0"][0] == 3.0
    assert last["gamma"][0] == 0.8


SAMPLED_AXES = {
    "r0": {"uniform": {"low": 0.5, "high": 3.0}},
    "gamma": {"loguniform": {"low": 0.05, "high": 0.8}},
    "population": {"uniform": {"low": 1000, "high": 1005}},
    "days": {"values": [30, 60, 90]},
}


@settings(max_examples=40)
@given(method=st.sampled_from(["random", "sobol"]), data=st.data())
def test_sampled_points_do_not_depend_on_who_asks(method: str, data: st.DataObject) -> None:
    space = sir_space(SAMPLED_AXES, {"method": method, "n": 300})
    everything = space.decode(np.arange(300))
    index = np.array(data.draw(st.lists(st.integers(0, 299), min_size=1, max_size=40)))
    part = space.decode(index)
    for name, column in part.items():
        assert np.array_equal(column, everything[name][index]), name


@settings(max_examples=20)
@given(method=st.sampled_from(["random", "sobol"]))
def test_sampled_values_respect_their_axes(method: str) -> None:
    cols = sir_space(SAMPLED_AXES, {"method": method, "n": 512}).decode(np.arange(512))
    assert ((cols["r0"] >= 0.5) & (cols["r0"] <= 3.0)).all()
    assert ((cols["gamma"] >= 0.05) & (cols["gamma"] <= 0.8)).all()
    assert set(cols["population"].tolist()) == set(range(1000, 1006))
    assert set(cols["days"].tolist()) == {30, 60, 90}


def test_sobol_points_equal_scipys_sequence() -> None:
    axes = {
        "r0": {"uniform": {"low": 1.0, "high": 3.0}},
        "gamma": {"uniform": {"low": 0.1, "high": 0.5}},
    }
    space = sir_space(axes, {"method": "sobol", "n": 1024}, seed=11)
    expected = qmc.Sobol(2, scramble=True, rng=11).random(1024)
    cols = space.decode(np.arange(1024))
    np.testing.assert_array_equal(cols["r0"], 1.0 + expected[:, 0] * 2.0)
    np.testing.assert_array_equal(cols["gamma"], 0.1 + expected[:, 1] * 0.4)
    shard = space.decode(np.arange(300, 700))
    np.testing.assert_array_equal(shard["r0"], cols["r0"][300:700])


def test_random_points_are_the_philox_sampling_stream_of_the_seed() -> None:
    # The documented stream, derived here with numpy alone: Philox4x64 keyed (seed, 2**64 - 1),
    # point i reading counter i (two axes fit one counter's four words), the top 53 bits of
    # each word scaled to [0, 1).
    axes = {
        "r0": {"uniform": {"low": 1.0, "high": 3.0}},
        "gamma": {"uniform": {"low": 0.1, "high": 0.5}},
    }
    space = sir_space(axes, {"method": "random", "n": 64}, seed=11)
    words = np.random.Philox(key=np.array([11, 2**64 - 1], dtype=np.uint64)).random_raw(64 * 4)
    u = (words.reshape(64, 4)[:, :2] >> np.uint64(11)).astype(np.float64) * 2.0**-53
    cols = space.decode(np.arange(64))
    np.testing.assert_array_equal(cols["r0"], 1.0 + u[:, 0] * 2.0)
    np.testing.assert_array_equal(cols["gamma"], 0.1 + u[:, 1] * 0.4)


def test_random_sampling_is_uniform_enough() -> None:
    axes = {"r0": {"uniform": {"low": 1.0, "high": 2.0}}}
    cols = sir_space(axes, {"method": "random", "n": 20_000}).decode(np.arange(20_000))
    counts, _ = np.histogram(cols["r0"], bins=10, range=(1.0, 2.0))
    chi2 = float((((counts - 2000) ** 2) / 2000).sum())
    assert chi2 < 27.9, "chi-square with 9 degrees of freedom, p = 0.001"


def test_seed_changes_random_points_but_not_grid_points() -> None:
    a = sir_space(SAMPLED_AXES, {"method": "random", "n": 10}, seed=1).decode(np.arange(10))
    b = sir_space(SAMPLED_AXES, {"method": "random", "n": 10}, seed=2).decode(np.arange(10))
    assert not np.array_equal(a["r0"], b["r0"])
    g1 = sir_space(GRID_AXES, {"method": "grid"}, seed=1).decode(np.arange(10))
    g2 = sir_space(GRID_AXES, {"method": "grid"}, seed=2).decode(np.arange(10))
    assert np.array_equal(g1["r0"], g2["r0"])
    assert math.isclose(float(g1["gamma"][0]), 0.05)


# --- uniforms onto sampled axes, values worked out by hand -----------------------------------

_INT = ParamSpec("n", "int", "an integer")
_FLOAT = ParamSpec("x", "float", "a number")


def _sampled(axis: dict[str, Any], param: ParamSpec, u: list[float]) -> list[Any]:
    values = sampled_values(converter.structure(axis, Axis), param, np.asarray(u))
    return [v.item() for v in values]


def test_an_integer_uniform_axis_gives_each_integer_an_equal_share() -> None:
    # [1.5, 5.5] holds 2..5: four equal quarters of [0, 1)
    u = [0.0, 0.2, 0.2499, 0.25, 0.5, 0.75, 0.9999]
    assert _sampled({"uniform": {"low": 1.5, "high": 5.5}}, _INT, u) == [2, 2, 2, 3, 4, 5, 5]


def test_an_integer_loguniform_axis_rounds_a_log_spaced_draw() -> None:
    # exp(ln 2 + u (ln 200 - ln 2)): 2, 20 at the middle, 200 at the top
    u = [0.0, 0.5, 0.25, 0.9999999]
    assert _sampled({"loguniform": {"low": 2, "high": 200}}, _INT, u) == [2, 20, 6, 200]


def test_float_axes_scale_the_uniforms() -> None:
    assert _sampled({"uniform": {"low": 1, "high": 3}}, _FLOAT, [0.0, 0.25, 0.5]) == [
        1.0,
        1.5,
        2.0,
    ]
    drawn = _sampled({"loguniform": {"low": 1, "high": 100}}, _FLOAT, [0.0, 0.5])
    assert drawn == pytest.approx([1.0, 10.0], rel=1e-12)


def test_choices_are_picked_in_equal_shares_with_the_parameters_type() -> None:
    values = sampled_values(
        converter.structure({"values": [1, 2, 4]}, Axis), _FLOAT, np.asarray([0.0, 0.34, 0.99])
    )
    assert values.dtype == np.float64
    assert values.tolist() == [1.0, 2.0, 4.0]


def test_a_grid_axis_is_not_sampled() -> None:
    axis = converter.structure({"linspace": {"start": 0, "stop": 1, "num": 3}}, Axis)
    with pytest.raises(ValueError, match=r"^linspace is not a sampled axis$"):
        sampled_values(axis, _FLOAT, np.asarray([0.5]))


def test_an_integer_axis_samples_int64_columns() -> None:
    """Integer parameters reach the kernel and the points table as int64, never as floats."""
    for form in ({"uniform": {"low": 1.5, "high": 5.5}}, {"loguniform": {"low": 2, "high": 200}}):
        drawn = sampled_values(converter.structure(form, Axis), _INT, np.asarray([0.0, 0.5]))
        assert drawn.dtype == np.int64


def test_an_integer_loguniform_axis_keeps_large_bounds_exactly() -> None:
    # Near 2**53, exp(log(x)) is x give or take a few units: the ends must still be the bounds.
    low, high = 3_613_096_032_662_316, 7_226_192_065_324_632
    top = float(np.nextafter(1.0, 0.0))
    assert math.exp(math.log(low)) < low  # why it matters: the draw leaves the bounds
    assert math.exp(math.log(high)) > high
    drawn = _sampled({"loguniform": {"low": low, "high": high}}, _INT, [0.0, top])
    assert drawn == [low, high]


@pytest.mark.parametrize("method", ["random", "sobol"])
def test_far_apart_indices_draw_only_the_rows_around_them(
    method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard late in a huge run does not draw the sequence before it: each cluster of
    nearby indices is one block of exactly its span."""
    space = sir_space(SAMPLED_AXES, {"method": method, "n": 10**8})
    blocks: list[tuple[int, int, int]] = []
    real_block = PointSpace._block

    def recording(self: PointSpace, start: int, stop: int, dims: int) -> Any:
        assert stop - start < 1000, f"a block of {stop - start:,} rows drawn"  # fail fast
        rows = real_block(self, start, stop, dims)
        blocks.append((start, stop, len(rows)))
        assert len(rows) == stop - start
        return rows

    monkeypatch.setattr(PointSpace, "_block", recording)
    far = 99_999_000
    index = np.array([far + 2, 7, 5, far, 6, 5])
    cols = space.decode(index)
    assert blocks == [(5, 8, 3), (far, far + 3, 3)]
    alone = {i: space.decode(np.array([i])) for i in set(index.tolist())}
    for name, column in cols.items():
        assert column.tolist() == [alone[i][name][0] for i in index.tolist()], name


def test_fixed_parameters_fill_columns_of_their_declared_type_or_their_default(
    gbm_request: dict[str, Any],
) -> None:
    # integers given for float parameters; paths and option left to their declared defaults
    gbm_request["params"] = {"s0": 100, "rate": 0, "maturity": 1}
    space = PointSpace(parse_request(gbm_request), catalog()["gbm_european_option"])
    assert space.size == 80
    cols = space.decode(np.array([0, 79]))
    for name in ("s0", "rate", "maturity"):
        assert cols[name].dtype == np.float64, name
    assert cols["s0"].tolist() == [100.0, 100.0]
    assert cols["paths"].dtype == np.int64
    assert cols["paths"].tolist() == [20_000, 20_000]
    assert cols["option"].tolist() == ["call", "call"]
    assert list(cols) == [p.name for p in catalog()["gbm_european_option"].params]


@pytest.mark.parametrize("index", [80, -1])
def test_indices_outside_the_space_are_refused_naming_its_range(
    gbm_request: dict[str, Any], index: int
) -> None:
    space = PointSpace(parse_request(gbm_request), catalog()["gbm_european_option"])
    with pytest.raises(IndexError, match=r"^point indices must lie in \[0, 80\)$"):
        space.decode(np.array([0, index]))
    assert space.decode(np.array([79]))["strike"].tolist() == [120.0]
