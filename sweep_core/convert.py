"""The one cattrs converter of the contract, and the schema-version gate every envelope passes.

Unknown keys are errors (``forbid_extra_keys``); optional fields left at ``None`` are omitted
on the way out, so an ``Axis`` serialises as the single form it holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_unstructure_fn, override
from cattrs.strategies import configure_union_passthrough

from sweep_core.contract import SCHEMA_VERSION, Problem

T = TypeVar("T")
SUPPORTED_MAJOR = SCHEMA_VERSION.split(".")[0]


class ContractError(ValueError):
    """An envelope that does not satisfy the contract; ``problems`` lists every reason."""

    def __init__(self, problems: Iterable[Problem], code: str = "INVALID_REQUEST") -> None:
        self.problems = tuple(problems)
        self.code = code
        super().__init__("\n".join(str(p) for p in self.problems))


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    configure_union_passthrough(float | int | str | bool | None, conv)

    def omit_none_defaults(cls: type) -> Any:
        overrides = {
            a.name: override(omit_if_default=True) for a in attrs.fields(cls) if a.default is None
        }
        return make_dict_unstructure_fn(cls, conv, **overrides)  # type: ignore[arg-type]

    conv.register_unstructure_hook_factory(attrs.has, omit_none_defaults)
    return conv


converter = _make_converter()


def version_problem(raw: object) -> Problem | None:
    """Why ``raw`` cannot be read by this build because of its schema version, if it cannot."""
    if not isinstance(raw, Mapping):
        return Problem("$", "must be a JSON object")
    version = raw.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, str):
        return Problem("$.schema_version", 'must be a string such as "1.0"')
    major = version.split(".", 1)[0]
    if major != SUPPORTED_MAJOR:
        return Problem(
            "$.schema_version",
            f"unsupported schema version {version!r}: this build reads {SUPPORTED_MAJOR}.x",
        )
    return None


def structure(raw: Any, cls: type[T]) -> T:
    """Build a ``cls`` from its JSON form (a dict, or JSON text).

    Raises
    ------
    ContractError
        With code ``UNSUPPORTED_SCHEMA_VERSION`` when the major version is not ours, else
        ``INVALID_REQUEST`` carrying every problem cattrs found, each with its path.
    """
    if isinstance(raw, str | bytes):
        raw = loads(raw)
    problem = version_problem(raw)
    if problem is not None:
        code = "INVALID_REQUEST" if problem.path == "$" else "UNSUPPORTED_SCHEMA_VERSION"
        raise ContractError([problem], code=code)
    try:
        return converter.structure(raw, cls)
    except cattrs.BaseValidationError as exc:
        raise ContractError(_problems(exc)) from exc


def unstructure(obj: Any) -> Any:
    return converter.unstructure(obj)


def dumps(obj: Any) -> str:
    """Compact JSON of a contract object, keys in their order.

    Never sorted: the order of ``axes`` is meaningful (the grid iterates it like
    ``itertools.product``, Sobol dimensions follow it), and attrs fields already come in a
    fixed order, so the same object always gives the same bytes.
    """
    return json.dumps(unstructure(obj), separators=(",", ":"), allow_nan=False)


def loads(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:  # UnicodeDecodeError too
        raise ContractError([Problem("$", f"is not valid JSON ({exc})")]) from None
    except RecursionError:
        raise ContractError([Problem("$", "is not valid JSON (nested too deeply)")]) from None


def _problems(exc: cattrs.BaseValidationError) -> list[Problem]:
    problems = []
    for line in cattrs.transform_error(exc):
        message, _, path = line.rpartition(" @ ")
        problems.append(Problem(path or "$", message or line))
    return problems
