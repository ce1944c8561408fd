"""Request validation: every problem at once, each with its path, and nothing unsafe let through."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from sweep_core.convert import ContractError
from sweep_core.schema import request_json_schema
from sweep_core.validation import Limits, parse_request


def problems_of(raw: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(ContractError) as caught:
        parse_request(raw, **kwargs)
    return [str(p) for p in caught.value.problems]


def test_the_documented_example_is_valid(gbm_request: dict[str, Any]) -> None:
    request = parse_request(gbm_request)
    assert request.kernel == "gbm_european_option"
    assert list(request.axes) == ["sigma", "strike"]


def test_json_text_is_accepted(gbm_request: dict[str, Any]) -> None:
    assert parse_request(json.dumps(gbm_request)) == parse_request(gbm_request)


def test_schema_problems_are_all_reported_with_paths(gbm_request: dict[str, Any]) -> None:
    gbm_request["axes"]["sigma"]["linspace"]["num"] = 0
    gbm_request["axes"]["strike"]["linspace"] = {"start": 1, "stop": 2, "num": 3}
    gbm_request["colour"] = "blue"
    gbm_request["seed"] = -1
    gbm_request["sharding"] = {"shard_size": 10, "shard_count": 3}
    del gbm_request["sampling"]
    assert sorted(problems_of(gbm_request)) == sorted(
        [
            "$.axes.sigma.linspace.num: must be >= 1",
            "$.axes.strike: give exactly one of values, linspace, geomspace, range, uniform, "
            "loguniform",
            "$.colour: unknown field; expected one of axes, client_token, kernel, label, "
            "params, sampling, schema_version, seed, sharding",
            "$.seed: must be >= 0",
            "$.sharding: give exactly one of shard_count, shard_size",
            "$.sampling: is required",
        ]
    )


README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_the_readme_example_reports_its_schema_and_its_bounds_problem() -> None:
    """README's example: a schema problem and a parameter out of bounds, in one answer."""
    spec = json.loads((EXAMPLES / "gbm_grid.json").read_text())
    spec["axes"]["sigma"]["linspace"]["num"] = 0
    spec["params"]["rate"] = 7
    with pytest.raises(ContractError) as caught:
        parse_request(spec)
    shown = "invalid sweep request:\n" + "\n".join(f"  {p}" for p in caught.value.problems)
    assert shown == (
        "invalid sweep request:\n"
        "  $.axes.sigma.linspace.num: must be >= 1\n"
        "  $.params.rate: 7 is out of bounds: rate must be in [-0.5, 1]"
    )
    assert shown in README.read_text()


def test_bounds_are_not_checked_where_the_schema_already_found_a_problem(
    gbm_request: dict[str, Any],
) -> None:
    gbm_request["axes"]["sigma"] = {"linspace": {"start": -9, "stop": 0.5, "num": 0}}
    gbm_request["axes"]["strike"] = {"values": [-5, 90]}
    gbm_request["params"]["rate"] = float("nan")
    gbm_request["params"]["s0"] = -1.0
    gbm_request["colour"] = "blue"
    assert sorted(problems_of(gbm_request)) == sorted(
        [
            "$.axes.sigma.linspace.num: must be >= 1",
            "$.axes.strike.values[0]: -5 is out of bounds: strike must be in [1e-06, 1000000000]",
            "$.colour: unknown field; expected one of axes, client_token, kernel, label, "
            "params, sampling, schema_version, seed, sharding",
            "$.params.rate: must be a finite number (NaN and Infinity are not allowed)",
            "$.params.s0: -1.0 is out of bounds: s0 must be in [1e-06, 1000000000]",
        ]
    )


def test_kernel_level_problems_are_all_reported(gbm_request: dict[str, Any]) -> None:
    gbm_request["params"]["rate"] = 7
    gbm_request["params"]["volatility"] = 0.2
    gbm_request["params"]["option"] = "straddle"
    del gbm_request["params"]["s0"]
    gbm_request["axes"]["maturity"] = {"values": [1, 2]}
    gbm_request["axes"]["paths"] = {"linspace": {"start": 100, "stop": 200, "num": 2}}
    problems = problems_of(gbm_request)
    assert "$.params.rate: 7 is out of bounds: rate must be in [-0.5, 1]" in problems
    assert any(
        p.startswith("$.params.volatility: gbm_european_option has no parameter") for p in problems
    )
    assert "$.params.option: must be one of 'call', 'put'" in problems
    assert any(p.startswith("$.params.s0: is required") for p in problems)
    assert "$.axes.maturity: is also fixed in params; give it once" in problems
    assert "$.axes.paths: paths is an integer: sweep it with values or range" in problems


def test_unknown_kernel_names_the_known_ones(gbm_request: dict[str, Any]) -> None:
    gbm_request["kernel"] = "heston"
    [problem] = problems_of(gbm_request)
    assert problem.startswith("$.kernel: unknown kernel 'heston'; known kernels: ")
    assert "gbm_european_option" in problem
    assert "sir_epidemic" in problem
    from sweep_core.kernels import catalog

    shipped = catalog()["gbm_european_option"]
    given = {"b_model": shipped, "a_model": shipped}
    assert problems_of(gbm_request, catalog=given) == [
        "$.kernel: unknown kernel 'heston'; known kernels: a_model, b_model"
    ]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_rejected(gbm_request: dict[str, Any], literal: str) -> None:
    text = json.dumps(gbm_request).replace('"rate": 0.02', f'"rate": {literal}')
    assert problems_of(text) == [
        "$.params.rate: must be a finite number (NaN and Infinity are not allowed)"
    ]


def test_booleans_are_not_numbers(gbm_request: dict[str, Any]) -> None:
    gbm_request["seed"] = True
    assert problems_of(gbm_request) == ["$.seed: must be an integer"]


def test_axis_values_are_checked_one_by_one(gbm_request: dict[str, Any]) -> None:
    gbm_request["axes"]["strike"] = {"values": [80, -5, 100, "atm"]}
    assert problems_of(gbm_request) == [
        "$.axes.strike.values[1]: -5 is out of bounds: strike must be in [1e-06, 1000000000]",
        "$.axes.strike.values[3]: must be a number in [1e-06, 1000000000]",
    ]


def test_axis_form_must_fit_the_sampling_method(gbm_request: dict[str, Any]) -> None:
    gbm_request["sampling"] = {"method": "sobol"}
    assert sorted(problems_of(gbm_request)) == [
        "$.axes.sigma: linspace does not fit sobol sampling; use one of values, uniform, "
        "loguniform",
        "$.sampling.n: sobol sampling needs n, the number of points",
    ]


def test_grid_sampling_takes_no_n(gbm_request: dict[str, Any]) -> None:
    gbm_request["sampling"] = {"method": "grid", "n": 10}
    assert problems_of(gbm_request) == [
        "$.sampling.n: grid sampling takes every combination; remove n"
    ]


def test_interval_and_geomspace_rules(gbm_request: dict[str, Any]) -> None:
    gbm_request["sampling"] = {"method": "random", "n": 100}
    gbm_request["axes"] = {
        "sigma": {"loguniform": {"low": 0.0, "high": 0.5}},
        "strike": {"uniform": {"low": 120, "high": 80}},
    }
    assert sorted(problems_of(gbm_request)) == [
        "$.axes.sigma.loguniform.low: 0.0 is out of bounds: sigma must be in [1e-06, 5]",
        "$.axes.sigma.loguniform.low: loguniform needs low > 0",
        "$.axes.strike.uniform: low (120.0) must be <= high (80.0)",
    ]


def test_empty_range_is_rejected() -> None:
    raw = _sir_grid({"population": {"range": {"start": 1000, "stop": 10, "step": 10}}})
    assert problems_of(raw) == ["$.axes.population.range: range(1000, 10, 10) is empty"]


def test_point_limit_is_injectable(gbm_request: dict[str, Any]) -> None:
    assert problems_of(gbm_request, limits=Limits(max_points=79)) == [
        "$.axes: the sweep has 80 points; this deployment accepts at most 79"
    ]


def test_default_point_limit_is_a_hundred_million(gbm_request: dict[str, Any]) -> None:
    gbm_request["axes"]["sigma"]["linspace"]["num"] = 10_000_000
    gbm_request["axes"]["strike"] = {"values": list(range(80, 91))}
    assert problems_of(gbm_request) == [
        "$.axes: the sweep has 110,000,000 points; this deployment accepts at most 100,000,000"
    ]


def test_shard_limit_is_checked(gbm_request: dict[str, Any]) -> None:
    gbm_request["sharding"] = {"shard_size": 1}
    assert problems_of(gbm_request, limits=Limits(max_shards=50)) == [
        "$.sharding.shard_size: makes 80 shards; this deployment accepts at most 50 "
        "(use larger shards)"
    ]


def test_more_shards_than_points_is_rejected(gbm_request: dict[str, Any]) -> None:
    gbm_request["sharding"] = {"shard_count": 81}
    assert problems_of(gbm_request) == [
        "$.sharding.shard_count: must be <= the number of points (80): no shard may be empty"
    ]


def test_strings_and_arrays_are_bounded(gbm_request: dict[str, Any]) -> None:
    gbm_request["label"] = "x" * 257
    gbm_request["client_token"] = "has spaces"
    gbm_request["axes"]["strike"] = {"values": [100.0] * 100_001}
    assert problems_of(gbm_request) == [
        "$.axes.strike.values: must have at most 100000 items",
        "$.client_token: must match ^[A-Za-z0-9._:~-]+$",
        "$.label: must be at most 256 characters",
    ]


def test_parameter_names_must_be_identifiers(gbm_request: dict[str, Any]) -> None:
    gbm_request["params"]["Bad Name"] = 1
    assert problems_of(gbm_request) == [
        "$.params['Bad Name']: is not a valid name (lowercase letters, digits and _; at most 64)"
    ]


def test_a_body_that_is_not_a_json_object_is_one_problem_at_the_root() -> None:
    assert problems_of("[1, 2]") == ["$: must be a JSON object"]
    assert problems_of("{not json") == [
        "$: is not valid JSON (Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1))"
    ]


# --- the generated schema ------------------------------------------------------------------

DRAFT_04_KEYWORDS = {
    "$schema", "title", "description", "type", "properties", "required",
    "additionalProperties", "patternProperties", "minProperties", "maxProperties", "items",
    "minItems", "maxItems", "minimum", "maximum", "minLength", "maxLength", "pattern", "enum",
    "anyOf",
}  # fmt: skip


def _keywords(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        for key, value in schema.items():
            found.add(key)
            if key in ("properties", "patternProperties"):
                for sub in value.values():
                    found |= _keywords(sub)
            elif isinstance(value, dict | list):
                found |= _keywords(value)
    elif isinstance(schema, list):
        for item in schema:
            found |= _keywords(item)
    return found


def test_schema_is_valid_draft_04_and_uses_only_its_keywords() -> None:
    schema = request_json_schema()
    jsonschema.Draft4Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert _keywords(schema) <= DRAFT_04_KEYWORDS


def test_schema_requires_what_the_contract_requires() -> None:
    schema = request_json_schema()
    assert set(schema["required"]) == {
        "kernel", "params", "axes", "sampling", "sharding", "seed", "schema_version",
    }  # fmt: skip
    assert schema["properties"]["sharding"]["maxProperties"] == 1


def test_cli_prints_the_generated_schema() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sweep_sdk", "schema"], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == request_json_schema()


def _sir_grid(axes: dict[str, Any]) -> dict[str, Any]:
    params = {"population": 10_000, "r0": 2.0, "gamma": 0.2, "initial_infected": 5, "days": 200}
    for name in axes:
        params.pop(name)
    return {
        "schema_version": "1.0",
        "kernel": "sir_epidemic",
        "params": params,
        "axes": axes,
        "sampling": {"method": "grid"},
        "sharding": {"shard_count": 1},
        "seed": 1,
    }


def test_axis_shapes_the_schema_rejects_are_explained(gbm_request: dict[str, Any]) -> None:
    gbm_request["axes"]["strike"] = {"values": [None, True]}
    assert problems_of(gbm_request) == [
        "$.axes.strike.values[0]: must be a number or a string",
        "$.axes.strike.values[1]: must be a number or a string",
    ]
    gbm_request["axes"]["strike"] = 5
    assert problems_of(gbm_request) == ["$.axes.strike: must be an object"]
    gbm_request["axes"]["strike"] = {}
    assert problems_of(gbm_request) == [
        "$.axes.strike: give exactly one of values, linspace, geomspace, range, uniform, loguniform"
    ]


def test_interval_edges(gbm_request: dict[str, Any]) -> None:
    gbm_request["sampling"] = {"method": "random", "n": 10}
    del gbm_request["params"]["paths"]
    gbm_request["axes"] = {
        "sigma": {"uniform": {"low": 0.2, "high": 0.2}},  # one value: allowed
        "strike": {"uniform": {"low": 1, "high": 2e9}},
        "paths": {"uniform": {"low": 1.2, "high": 1.8}},
    }
    assert problems_of(gbm_request) == [
        "$.axes.strike.uniform.high: 2000000000.0 is out of bounds: strike must be in "
        "[1e-06, 1000000000]",
        "$.axes.paths.uniform: holds no integer, and paths is an integer",
        "$.axes.paths.uniform.low: must be an integer",
        "$.axes.paths.uniform.high: must be an integer",
    ]
    gbm_request["axes"]["strike"] = {"uniform": {"low": 1, "high": 2}}
    gbm_request["axes"]["paths"] = {"uniform": {"low": 2000, "high": 2000}}  # one integer
    assert parse_request(gbm_request).axes["paths"].uniform is not None


@pytest.mark.parametrize("bad", [50, 51, 80])
def test_at_most_fifty_problems_are_explained_and_the_rest_counted(
    gbm_request: dict[str, Any], bad: int
) -> None:
    gbm_request["axes"]["strike"] = {"values": [-float(v) for v in range(1, bad + 1)]}
    found = problems_of(gbm_request)
    explained = [p for p in found if p.startswith("$.axes.strike.values[")]
    assert len(explained) == min(bad, 50)
    assert explained[0] == (
        "$.axes.strike.values[0]: -1.0 is out of bounds: strike must be in [1e-06, 1000000000]"
    )
    more = ["$: more problems after the first 50"] if bad > 50 else []
    assert found == explained + more


def test_a_kernel_that_is_not_a_string_is_one_problem_not_a_crash(
    gbm_request: dict[str, Any],
) -> None:
    gbm_request["kernel"] = [gbm_request["kernel"]]  # a list: no catalog lookup can take it
    gbm_request["params"]["s0"] = -1.0
    assert problems_of(gbm_request) == ["$.kernel: must be a string"]


def test_a_request_is_checked_against_the_catalog_it_is_given(
    gbm_request: dict[str, Any],
) -> None:
    from sweep_core.kernels import catalog

    shipped = catalog()
    name = gbm_request["kernel"]
    renamed = {"house_model": shipped[name]}
    assert parse_request({**gbm_request, "kernel": "house_model"}, catalog=renamed).kernel == (
        "house_model"
    )
    assert problems_of(gbm_request, catalog=renamed) == [
        f"$.kernel: unknown kernel {name!r}; known kernels: house_model"
    ]


@pytest.mark.parametrize(
    ("axes", "expected"),
    [
        (  # days may end at 3650: range(0, 3700, 1000) runs 0, 1000, 2000, 3000
            {"days": {"range": {"start": 0, "stop": 3700, "step": 1000}}},
            ["$.axes.days.range.start: 0 is out of bounds: days must be in [1, 3650]"],
        ),
        (  # the last value taken is 3601 + 100 = 3701, past 3650; the stop itself is not taken
            {"days": {"range": {"start": 3601, "stop": 3702, "step": 100}}},
            ["$.axes.days.range.stop: 3701 is out of bounds: days must be in [1, 3650]"],
        ),
        (  # counting down: the values are 20, 10 and 0
            {"days": {"range": {"start": 20, "stop": -5, "step": -10}}},
            ["$.axes.days.range.stop: 0 is out of bounds: days must be in [1, 3650]"],
        ),
        (
            {"days": {"range": {"start": 10, "stop": 20, "step": 0}}},
            ["$.axes.days.range.step: must not be 0"],
        ),
        (
            {"days": {"linspace": {"start": 10, "stop": 20, "num": 3}}},
            ["$.axes.days: days is an integer: sweep it with values or range"],
        ),
        (
            {"r0": {"geomspace": {"start": -0.5, "stop": 2.0, "num": 3}}},
            [
                "$.axes.r0.geomspace: geomspace needs start and stop non-zero and of one sign",
                "$.axes.r0.geomspace.start: -0.5 is out of bounds: r0 must be in [0.01, 20]",
            ],
        ),
        (
            {"r0": {"geomspace": {"start": 2.0, "stop": 0, "num": 3}}},
            [
                "$.axes.r0.geomspace: geomspace needs start and stop non-zero and of one sign",
                "$.axes.r0.geomspace.stop: 0.0 is out of bounds: r0 must be in [0.01, 20]",
            ],
        ),
        (  # one is a start like any other
            {"r0": {"geomspace": {"start": 1, "stop": 30.0, "num": 3}}},
            ["$.axes.r0.geomspace.stop: 30.0 is out of bounds: r0 must be in [0.01, 20]"],
        ),
        (
            {"gamma": {"linspace": {"start": 0.0005, "stop": 6, "num": 3}}},
            [
                "$.axes.gamma.linspace.start: 0.0005 is out of bounds: gamma must be in [0.001, 5]",
                "$.axes.gamma.linspace.stop: 6.0 is out of bounds: gamma must be in [0.001, 5]",
            ],
        ),
    ],
)
def test_grid_axes_are_checked_at_the_values_they_take(
    axes: dict[str, Any], expected: list[str]
) -> None:
    assert problems_of(_sir_grid(axes)) == expected


def test_a_choice_is_swept_with_values_only(gbm_request: dict[str, Any]) -> None:
    gbm_request["params"].pop("option", None)
    gbm_request["axes"]["option"] = {"linspace": {"start": 0, "stop": 1, "num": 2}}
    assert problems_of(gbm_request) == ["$.axes.option: option is a choice: sweep it with values"]
    gbm_request["axes"]["option"] = {"values": ["put", "call"]}
    assert parse_request(gbm_request).axes["option"].values == ("put", "call")


def _refusal(raw: Any) -> tuple[str | None, list[tuple[str, str]]]:
    with pytest.raises(ContractError) as caught:
        parse_request(raw)
    return caught.value.code, [(p.path, p.message) for p in caught.value.problems]


def test_request_text_is_refused_by_its_size_from_one_byte_past_the_limit(
    gbm_request: dict[str, Any],
) -> None:
    from sweep_core.validation import MAX_REQUEST_BYTES

    text = json.dumps(gbm_request)
    at_limit = text + " " * (MAX_REQUEST_BYTES - len(text))  # trailing blanks are valid JSON
    assert parse_request(at_limit).kernel == gbm_request["kernel"]
    assert parse_request(at_limit.encode()).kernel == gbm_request["kernel"]
    assert _refusal(at_limit + " ") == (
        "REQUEST_TOO_LARGE",
        [("$", "is 4,194,305 bytes; a request is at most 4,194,304")],
    )


def test_shape_and_version_refusals_carry_their_own_codes(gbm_request: dict[str, Any]) -> None:
    nested: Any = 1
    for _ in range(20):
        nested = [nested]
    code, problems = _refusal({**gbm_request, "label": nested})
    assert code == "REQUEST_TOO_LARGE"
    assert [path for path, _ in problems] == ["$"]
    assert "nested" in problems[0][1]
    assert _refusal([gbm_request]) == ("INVALID_REQUEST", [("$", "must be a JSON object")])
    code, problems = _refusal({**gbm_request, "schema_version": "9.0"})
    assert code == "UNSUPPORTED_SCHEMA_VERSION"
    assert [path for path, _ in problems] == ["$.schema_version"]
    code, _ = _refusal({**gbm_request, "seed": -1})
    assert code == "INVALID_REQUEST"


def _sir(**changes: Any) -> dict[str, Any]:
    raw = _sir_grid({"r0": {"values": [1.0, 2.0]}})
    for name, value in changes.items():
        if name == "params":
            raw["params"].update(value)
        else:
            raw[name] = value
    return raw


def test_bounds_are_inclusive_and_integers_stop_at_two_to_the_53() -> None:
    assert parse_request(_sir(params={"population": 10, "days": 3650})).params["days"] == 3650
    assert problems_of(_sir(params={"population": 9})) == [
        "$.params.population: 9 is out of bounds: population must be in [10, 1000000000]"
    ]
    raw = _sir(axes={"r0": {"values": [1.0]}, "days": {"values": [0, 1, 3650, 3651]}})
    raw["params"].pop("days")
    assert problems_of(raw) == [
        "$.axes.days.values[0]: 0 is out of bounds: days must be in [1, 3650]",
        "$.axes.days.values[3]: 3651 is out of bounds: days must be in [1, 3650]",
    ]
    raw = _sir(axes={"r0": {"values": [1.0]}, "population": {"values": [2**53 - 1, 2**53]}})
    raw["params"].pop("population")
    assert problems_of(raw) == [
        "$.axes.population.values[0]: 9007199254740991 is out of bounds: population must be in "
        "[10, 1000000000]",
        "$.axes.population.values[1]: must be within ±9,007,199,254,740,991",
    ]


def test_shape_limits_hold_exactly_at_their_values() -> None:
    from sweep_core.validation import MAX_DEPTH, MAX_VALUES, shape_problem

    # the object, the array and its numbers: every one is a value
    assert shape_problem({"a": [0] * (MAX_VALUES - 2)}) is None
    too_many = shape_problem({"a": [0] * (MAX_VALUES - 1)})
    assert too_many is not None
    assert (too_many.path, too_many.message) == ("$", "holds more than 1,000,000 values")
    for wrap in (lambda v: [v], lambda v: {"a": v}):
        deepest: Any = 0
        for _ in range(MAX_DEPTH):
            deepest = wrap(deepest)
        assert shape_problem(deepest) is None
        too_deep = shape_problem(wrap(deepest))
        assert too_deep is not None
        assert (too_deep.path, too_deep.message) == ("$", "is nested more than 16 levels deep")


@pytest.mark.parametrize("wrong", [50, 51, 60])
def test_at_most_fifty_schema_problems_are_explained(wrong: int) -> None:
    found = problems_of(_sir(axes={"r0": {"values": [None] * wrong}}))
    explained = [p for p in found if p.startswith("$.axes.r0.values[")]
    assert len(explained) == min(wrong, 50)
    assert all(p.endswith(": must be a number or a string") for p in explained)
    more = ["$: more problems after the first 50"] if wrong > 50 else []
    assert [p for p in found if not p.startswith("$.axes.r0.values[")] == more


def test_bounds_problems_beside_schema_problems_stop_at_fifty_in_all() -> None:
    raw = _sir(axes={"r0": {"values": [None] * 45}, "days": {"values": [0] * 10}})
    raw["params"].pop("days")
    found = problems_of(raw)
    assert len(found) == 51
    assert found[-1] == "$: more problems after the first 50"
    assert sum(p.startswith("$.axes.days.values[") for p in found) == 5


def test_size_and_naming_problems_say_which_field_to_change() -> None:
    sampled = _sir(
        sampling={"method": "random", "n": 200_000_000},
        axes={"r0": {"uniform": {"low": 1, "high": 2}}},
    )
    assert problems_of(sampled) == [
        "$.sampling.n: the sweep has 200,000,000 points; this deployment accepts at most "
        "100,000,000"
    ]
    points = {"r0": {"linspace": {"start": 1, "stop": 2, "num": 20_000}}}
    assert problems_of(_sir(sharding={"shard_count": 20_000}, axes=points)) == [
        "$.sharding.shard_count: makes 20,000 shards; this deployment accepts at most 10,000 "
        "(use larger shards)"
    ]
    small = _sir(sharding={"shard_size": 1}, axes=points)
    assert problems_of(small) == [
        "$.sharding.shard_size: makes 20,000 shards; this deployment accepts at most 10,000 "
        "(use larger shards)"
    ]
    unknown = _sir(axes={"r0": {"values": [1.0]}, "colour": {"values": [1]}})
    assert problems_of(unknown) == [
        "$.axes.colour: sir_epidemic has no parameter 'colour'; its parameters: population, r0, "
        "gamma, initial_infected, days"
    ]
    assert problems_of(_sir(), catalog={}) == [
        "$.kernel: unknown kernel 'sir_epidemic'; known kernels: none"
    ]


def test_non_finite_numbers_inside_an_axis_list_are_named_one_by_one(
    gbm_request: dict[str, Any],
) -> None:
    # a dict an SDK user built: no JSON parser stood in the way of NaN
    gbm_request["axes"]["strike"] = {"values": [90.0, float("nan"), 110.0, float("-inf")]}
    assert problems_of(gbm_request) == [
        "$.axes.strike.values[1]: must be a finite number (NaN and Infinity are not allowed)",
        "$.axes.strike.values[3]: must be a finite number (NaN and Infinity are not allowed)",
    ]
