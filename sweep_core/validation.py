"""Turn untrusted input into a ``SweepRequest``, or one error that lists every problem.

Three passes, each reporting all it finds: the schema version, the generated JSON Schema (the
same one API Gateway applies), then what a schema cannot say: the kernel and its parameters,
bounds, NaN/Inf, and the size of the run against the configured limits.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import fastjsonschema
from attrs import frozen

from sweep_core import settings
from sweep_core.contract import Axis, Interval, Linspace, Problem, SweepRequest
from sweep_core.convert import ContractError, converter, loads, version_problem
from sweep_core.kernel_spec import KernelCatalog, KernelSpec, ParamSpec
from sweep_core.planning import shard_count_for
from sweep_core.schema import MAX_SAFE_INTEGER, request_json_schema
from sweep_core.space import point_count

if TYPE_CHECKING:
    import jsonschema

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


MAX_REQUEST_BYTES = 4 * 1024 * 1024
"""The largest request text, checked before it is parsed: room for an axis of the 100,000
values the schema allows, and well under API Gateway's 10 MB."""
MAX_DEPTH = 16
"""Nesting of a request: the schema's deepest path is six levels."""
MAX_VALUES = 1_000_000
"""Values (every object, array, string and number) of a request, checked before any work per
value: ten axes of the 100,000 values each the schema allows."""
_EXPLAINED = 50
"""Schema errors explained at most: the rest are the same mistake, repeated."""


@frozen
class Limits:
    """Cost guards: the largest run this deployment accepts."""

    max_points: int = settings.default("max_points")
    max_shards: int = settings.default("max_shards")


@frozen
class SizedRequest:
    """A valid request with the size its validation worked out, so no later step counts again."""

    request: SweepRequest
    point_count: int
    shard_count: int


def parse_request(
    raw: Any, *, catalog: KernelCatalog | None = None, limits: Limits | None = None
) -> SweepRequest:
    """Validate a sweep request (dict or JSON text) and return it typed.

    Parameters
    ----------
    raw
        The request as parsed JSON or as JSON text.
    catalog
        Kernel declarations by name; defaults to the kernels this build ships.
    limits
        Largest point and shard counts accepted; defaults to ``Limits()``.

    Raises
    ------
    ContractError
        Listing every problem found, each as ``{path, message}``.
    """
    return validate_request(raw, catalog=catalog, limits=limits).request


def validate_request(
    raw: Any, *, catalog: KernelCatalog | None = None, limits: Limits | None = None
) -> SizedRequest:
    """``parse_request``, also answering the run's point and shard counts (same errors)."""
    if isinstance(raw, str | bytes):
        if len(raw) > MAX_REQUEST_BYTES:
            limit = f"a request is at most {MAX_REQUEST_BYTES:,}"
            too_big = Problem("$", f"is {len(raw):,} bytes; {limit}")
            raise ContractError([too_big], code="REQUEST_TOO_LARGE")
        raw = loads(raw)
    # Shape first, before any work per value: what follows walks the request recursively.
    shape = shape_problem(raw)
    if shape is not None:
        raise ContractError([shape], code="REQUEST_TOO_LARGE")
    problem = version_problem(raw)
    if problem is not None:
        code = "INVALID_REQUEST" if problem.path == "$" else "UNSUPPORTED_SCHEMA_VERSION"
        raise ContractError([problem], code=code)
    kernels = _default_catalog() if catalog is None else catalog
    problems = [*schema_problems(raw), *_non_finite(raw, [])]
    if problems:
        if len(problems) < _EXPLAINED:
            beside = _parameter_problems_beside(raw, kernels, problems)
            problems += itertools.islice(beside, _EXPLAINED + 1 - len(problems))
        raise ContractError(_bounded(problems))
    request = converter.structure(raw, SweepRequest)
    if catalog is None:
        from sweep_core.kernels import KERNELS

        problems = semantic_problems(request, kernels, KERNELS.describe_unknown)
    else:
        problems = semantic_problems(request, catalog)
    if problems:
        raise ContractError(_bounded(problems))
    points = point_count(request)
    sized = SizedRequest(request, points, shard_count_for(points, request.sharding))
    problems = size_problems(sized, limits or Limits())
    if problems:
        raise ContractError(_bounded(problems))
    return sized


_MORE = Problem("$", f"more problems after the first {_EXPLAINED}")


def _bounded(problems: list[Problem]) -> list[Problem]:
    """The first ``_EXPLAINED`` problems, and one line saying there are more when there are
    (the schema pass may have said so already: said once, and never in place of a problem)."""
    explained = [p for p in problems if p != _MORE]
    if len(explained) == len(problems) <= _EXPLAINED:
        return problems
    return [*explained[:_EXPLAINED], _MORE]


def _default_catalog() -> KernelCatalog:
    from sweep_core.kernels import catalog

    return catalog()


# --- pass 2: the JSON Schema -------------------------------------------------------------

# Two validators of the one generated schema: the compiled one answers "valid?" in tens of
# microseconds; the reference one, used only on invalid input, lists every error with its path.
_FAST = fastjsonschema.compile(request_json_schema())


@functools.cache
def _reference_validator() -> jsonschema.Draft4Validator:
    import jsonschema  # a twentieth of a second to import, paid by invalid input only

    return jsonschema.Draft4Validator(request_json_schema())


def schema_problems(raw: Any) -> list[Problem]:
    """What the generated JSON Schema rejects, in the messages the API answers with."""
    try:
        _FAST(raw)
        return []
    except fastjsonschema.JsonSchemaException:
        pass
    problems: list[Problem] = []
    for count, error in enumerate(_reference_validator().iter_errors(raw)):
        if count == _EXPLAINED:
            problems.append(_MORE)
            break
        problems.extend(_explain(error))
    return sorted(set(problems), key=lambda p: (p.path, p.message))


def shape_problem(raw: Any) -> Problem | None:
    """Whether the request is nested deeper than ``MAX_DEPTH`` or holds more than
    ``MAX_VALUES`` values; a walk without recursion that stops at the first excess."""
    stack: list[tuple[Any, int]] = [(raw, 0)]
    seen = 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            return Problem("$", f"holds more than {MAX_VALUES:,} values")
        if depth > MAX_DEPTH:
            return Problem("$", f"is nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, Mapping):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list | tuple):
            stack.extend((item, depth + 1) for item in value)
    return None


def path_of(parts: Sequence[str | int]) -> str:
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.match(part):
            out += f".{part}"
        else:
            out += f"[{part!r}]"
    return out


def _explain(error: jsonschema.ValidationError) -> Iterator[Problem]:
    parts = list(error.absolute_path)
    here = path_of(parts)
    kind, expected, schema, value = (
        error.validator,
        error.validator_value,
        error.schema,
        error.instance,
    )
    if kind == "required":
        for name in expected:
            if isinstance(value, dict) and name not in value:
                yield Problem(path_of([*parts, name]), "is required")
    elif kind == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        for key in value:
            if key in allowed or any(re.search(p, key) for p in patterns):
                continue
            if patterns:
                yield Problem(
                    path_of([*parts, key]),
                    "is not a valid name (lowercase letters, digits and _; at most 64)",
                )
            else:
                yield Problem(
                    path_of([*parts, key]),
                    "unknown field; expected one of " + ", ".join(allowed),
                )
    elif kind in ("minProperties", "maxProperties") and schema.get("maxProperties") == 1:
        yield Problem(here, "give exactly one of " + ", ".join(schema["properties"]))
    else:
        yield Problem(here, _MESSAGES.get(kind, lambda e: e.message)(error))


_TYPE_NAMES: dict[str, str] = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "object": "an object",
    "array": "an array",
    "boolean": "true or false",
}

_MESSAGES: dict[str, Any] = {
    "minimum": lambda e: f"must be >= {e.validator_value}",
    "maximum": lambda e: f"must be <= {e.validator_value}",
    "type": lambda e: (
        "must be " + " or ".join(_TYPE_NAMES.get(t, t) for t in _as_list(e.validator_value))
    ),
    "enum": lambda e: "must be one of " + ", ".join(repr(v) for v in e.validator_value),
    "pattern": lambda e: f"must match {e.validator_value}",
    "minLength": lambda e: f"must be at least {e.validator_value} characters",
    "maxLength": lambda e: f"must be at most {e.validator_value} characters",
    "minItems": lambda e: f"must have at least {e.validator_value} items",
    "maxItems": lambda e: f"must have at most {e.validator_value} items",
    "minProperties": lambda e: f"must have at least {e.validator_value} entries",
    "maxProperties": lambda e: f"must have at most {e.validator_value} entries",
}


def _as_list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else [x]


def _non_finite(value: Any, parts: list[str | int]) -> Iterator[Problem]:
    if isinstance(value, float) and not math.isfinite(value):
        yield Problem(path_of(parts), "must be a finite number (NaN and Infinity are not allowed)")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _non_finite(item, [*parts, str(key)])
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _non_finite(item, [*parts, i])


# --- pass 3: what the schema cannot say --------------------------------------------------


def semantic_problems(
    request: SweepRequest,
    catalog: KernelCatalog,
    explain_unknown: Callable[[str], str] | None = None,
) -> list[Problem]:
    """Problems with the kernel, its parameters and the sampling method (the first
    ``_EXPLAINED`` and one more at most: a long axis can be wrong in every value).
    ``explain_unknown`` says why a kernel the catalog lacks is missing (the registry knows a
    broken plugin)."""
    kernel = catalog.get(request.kernel)
    if kernel is None:
        known = ", ".join(sorted(catalog)) or "none"
        message = f"unknown kernel {request.kernel!r}; known kernels: {known}"
        if explain_unknown is not None:
            message = explain_unknown(request.kernel)
        return [Problem("$.kernel", message)]
    found = itertools.chain(_sampling_problems(request), _parameter_problems(request, kernel))
    return list(itertools.islice(found, _EXPLAINED + 1))


def _parameter_problems_beside(
    raw: Any, catalog: KernelCatalog, found: Sequence[Problem]
) -> Iterator[Problem]:
    """Bounds problems in the parameters and axes the schema accepted, when it rejected other
    parts: one answer then lists both kinds, as users fix them in one go. Paths the schema (or
    the finiteness check) flagged, and everything above or below them, are left alone."""
    kernel = catalog.get(raw.get("kernel")) if isinstance(raw.get("kernel"), str) else None
    if kernel is None:
        return
    flagged = [p.path for p in found]

    def untouched(path: str) -> bool:
        return not any(_overlaps(path, other) for other in flagged)

    params = raw.get("params")
    if isinstance(params, Mapping):
        for name, value in params.items():
            param = kernel.param(name)
            if param is not None and untouched(path_of(["params", name])):
                yield from _value_problems(param, value, ["params", name])
    axes = raw.get("axes")
    if isinstance(axes, Mapping):
        for name, value in axes.items():
            param = kernel.param(name)
            if param is not None and untouched(path_of(["axes", name])):
                yield from _axis_problems(param, converter.structure(value, Axis))


def _overlaps(path: str, other: str) -> bool:
    """Whether one path is the other or lies inside it."""
    inner, outer = (path, other) if len(path) >= len(other) else (other, path)
    return inner == outer or inner.startswith((outer + ".", outer + "["))


def _sampling_problems(request: SweepRequest) -> Iterator[Problem]:
    method, n = request.sampling.method, request.sampling.n
    if method == "grid" and n is not None:
        yield Problem("$.sampling.n", "grid sampling takes every combination; remove n")
    if method != "grid" and n is None:
        yield Problem("$.sampling.n", f"{method} sampling needs n, the number of points")
    allowed = Axis.GRID_FORMS if method == "grid" else Axis.SAMPLED_FORMS
    for name, axis in request.axes.items():
        if axis.form not in allowed:
            yield Problem(
                path_of(["axes", name]),
                f"{axis.form} does not fit {method} sampling; use one of " + ", ".join(allowed),
            )


def _parameter_problems(request: SweepRequest, kernel: KernelSpec) -> Iterator[Problem]:
    declared = ", ".join(p.name for p in kernel.params)
    for where, names in (("params", request.params), ("axes", request.axes)):
        for name in names:
            if kernel.param(name) is None:
                yield Problem(
                    path_of([where, name]),
                    f"{kernel.name} has no parameter {name!r}; its parameters: {declared}",
                )
    for name in request.params.keys() & request.axes.keys():
        yield Problem(path_of(["axes", name]), "is also fixed in params; give it once")
    for param in kernel.params:
        if param.name in request.params:
            yield from _value_problems(param, request.params[param.name], ["params", param.name])
        if param.name in request.axes:
            yield from _axis_problems(param, request.axes[param.name])
        if param.name not in request.params.keys() | request.axes.keys() and param.default is None:
            yield Problem(
                path_of(["params", param.name]),
                f"is required: fix it in params or sweep it in axes ({param.doc})",
            )


def _value_problems(param: ParamSpec, value: Any, parts: list[str | int]) -> Iterator[Problem]:
    where = path_of(parts)
    if param.kind == "choice":
        if value not in param.choices:
            yield Problem(where, f"must be {param.bounds_text()}")
        return
    if isinstance(value, str):
        yield Problem(where, f"must be a number {param.bounds_text()}")
        return
    if param.kind == "int" and not float(value).is_integer():
        yield Problem(where, "must be an integer")
        return
    if abs(value) > MAX_SAFE_INTEGER:
        yield Problem(where, f"must be within ±{MAX_SAFE_INTEGER:,}")
        return
    if (param.low is not None and value < param.low) or (
        param.high is not None and value > param.high
    ):
        yield Problem(
            where, f"{value!r} is out of bounds: {param.name} must be {param.bounds_text()}"
        )


def _axis_problems(param: ParamSpec, axis: Axis) -> Iterator[Problem]:
    base: list[str | int] = ["axes", param.name, axis.form]
    if param.kind == "choice" and axis.values is None:
        yield Problem(path_of(base[:2]), f"{param.name} is a choice: sweep it with values")
        return
    if axis.values is not None:
        for i, v in enumerate(axis.values):
            yield from _value_problems(param, v, [*base, i])
    elif axis.linspace is not None or axis.geomspace is not None:
        yield from _spaced_problems(param, axis.linspace or axis.geomspace, axis, base)
    elif axis.range is not None:
        r = axis.range
        if r.step == 0:
            yield Problem(path_of([*base, "step"]), "must not be 0")
            return
        values = range(r.start, r.stop, r.step)
        if not values:
            yield Problem(path_of(base), f"range({r.start}, {r.stop}, {r.step}) is empty")
            return
        yield from _value_problems(param, values[0], [*base, "start"])
        yield from _value_problems(param, values[-1], [*base, "stop"])
    else:
        interval = axis.uniform or axis.loguniform
        assert interval is not None
        yield from _interval_problems(param, interval, axis, base)


def _spaced_problems(
    param: ParamSpec, space: Linspace | None, axis: Axis, base: list[str | int]
) -> Iterator[Problem]:
    assert space is not None
    if param.kind == "int":
        yield Problem(
            path_of(base[:2]), f"{param.name} is an integer: sweep it with values or range"
        )
        return
    if axis.geomspace is not None and (space.start == 0 or (space.start > 0) != (space.stop > 0)):
        yield Problem(path_of(base), "geomspace needs start and stop non-zero and of one sign")
    yield from _value_problems(param, space.start, [*base, "start"])
    yield from _value_problems(param, space.stop, [*base, "stop"])


def _interval_problems(
    param: ParamSpec, interval: Interval, axis: Axis, base: list[str | int]
) -> Iterator[Problem]:
    if interval.low > interval.high:
        yield Problem(path_of(base), f"low ({interval.low}) must be <= high ({interval.high})")
    if axis.loguniform is not None and interval.low <= 0:
        yield Problem(path_of([*base, "low"]), "loguniform needs low > 0")
    if param.kind == "int" and math.ceil(interval.low) > math.floor(interval.high):
        yield Problem(path_of(base), f"holds no integer, and {param.name} is an integer")
    yield from _value_problems(param, interval.low, [*base, "low"])
    yield from _value_problems(param, interval.high, [*base, "high"])


def size_problems(sized: SizedRequest, limits: Limits) -> list[Problem]:
    """Whether the run fits the deployment's limits."""
    request, points, shards = sized.request, sized.point_count, sized.shard_count
    problems = []
    if points > limits.max_points:
        problems.append(
            Problem(
                "$.axes" if request.sampling.method == "grid" else "$.sampling.n",
                f"the sweep has {points:,} points; this deployment accepts at most "
                f"{limits.max_points:,}",
            )
        )
        return problems
    if request.sharding.shard_count is not None and shards > points:
        problems.append(
            Problem(
                "$.sharding.shard_count",
                f"must be <= the number of points ({points:,}): no shard may be empty",
            )
        )
    elif shards > limits.max_shards:
        field = "shard_count" if request.sharding.shard_count is not None else "shard_size"
        problems.append(
            Problem(
                f"$.sharding.{field}",
                f"makes {shards:,} shards; this deployment accepts at most "
                f"{limits.max_shards:,} (use larger shards)",
            )
        )
    return problems
