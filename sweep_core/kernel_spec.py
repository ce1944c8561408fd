"""Kernel declarations: the parameters and metrics a kernel takes and produces, as plain data.

A declaration drives request validation, the points Parquet schema and the Glue table, so it
holds no behaviour; the numpy implementation lives beside it in ``sweep_core.kernels``. A
declaration checks itself when made (``KernelSpecError`` lists every problem), so a wrong one
fails where its author wrote it, not in the middle of a sweep.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal, get_args

from attrs import field, frozen

ParamKind = Literal["float", "int", "choice"]
MetricKind = Literal["float64", "int64", "bool", "string"]
ParamValue = float | int | str

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
"""Kernel, parameter and metric names: the request's, and what Athena takes as a column name."""
RESERVED_COLUMNS = frozenset({"point_index", "run_date", "run_id"})
"""Columns of every points table: a parameter or metric cannot take their names."""


class KernelSpecError(ValueError):
    """A declaration that cannot be a kernel's, listing every problem found."""

    def __init__(self, name: str, problems: list[str]) -> None:
        super().__init__(f"kernel {name!r} is declared wrongly: " + "; ".join(problems))
        self.kernel = name
        self.problems = problems


@frozen
class ParamSpec:
    """One kernel parameter: its type, closed bounds (numbers) or allowed choices (strings)."""

    name: str
    kind: ParamKind
    doc: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    default: ParamValue | None = None

    def problems(self) -> list[str]:
        """What is wrong with this declaration (empty when nothing is)."""
        where = f"parameter {self.name!r}"
        found = _name_problems(where, self.name)
        if self.kind not in get_args(ParamKind):
            return [*found, f"{where}: kind {self.kind!r} is not one of {get_args(ParamKind)}"]
        if self.kind == "choice":
            if not self.choices:
                found.append(f"{where}: a choice parameter declares no choices")
            if not all(isinstance(c, str) for c in self.choices):
                found.append(f"{where}: choices must be strings")
            if self.low is not None or self.high is not None:
                found.append(f"{where}: a choice parameter takes no bounds")
            if self.default is not None and self.default not in self.choices:
                found.append(f"{where}: default {self.default!r} is not one of the choices")
            return found
        if self.choices:
            found.append(f"{where}: a {self.kind} parameter cannot declare choices")
        for side, bound in (("low", self.low), ("high", self.high)):
            if bound is not None and (
                isinstance(bound, bool) or not isinstance(bound, int | float) or math.isnan(bound)
            ):
                found.append(f"{where}: {side} must be a number, not {bound!r}")
                return found
        if self.low is not None and self.high is not None and self.low > self.high:
            found.append(f"{where}: low {self.low} is above high {self.high}")
        if self.default is not None:
            if isinstance(self.default, bool | str) or (
                self.kind == "int" and not float(self.default).is_integer()
            ):
                found.append(f"{where}: default {self.default!r} is not a {self.kind}")
            elif not (
                (self.low is None or self.default >= self.low)
                and (self.high is None or self.default <= self.high)
            ):
                found.append(f"{where}: default {self.default!r} is not {self.bounds_text()}")
        return found

    def bounds_text(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        low = "-inf" if self.low is None else _num(self.low)
        high = "inf" if self.high is None else _num(self.high)
        return f"in [{low}, {high}]"


@frozen
class MetricSpec:
    """One output column of a kernel."""

    name: str
    kind: MetricKind
    doc: str

    def problems(self) -> list[str]:
        where = f"metric {self.name!r}"
        found = _name_problems(where, self.name)
        if self.kind not in get_args(MetricKind):
            found.append(f"{where}: kind {self.kind!r} is not one of {get_args(MetricKind)}")
        return found


@frozen
class KernelSpec:
    """What a kernel is called, what it takes and what it returns, and which version of the
    model it is (recorded in every run's manifest and outcome record: change it whenever the
    numbers a point gets could change)."""

    name: str
    doc: str
    params: tuple[ParamSpec, ...]
    metrics: tuple[MetricSpec, ...]
    version: str = "0"
    _by_name: Mapping[str, ParamSpec] = field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        """Raises ``KernelSpecError`` listing every problem of the declaration."""
        problems = self.problems()
        if problems:
            raise KernelSpecError(str(self.name), problems)
        object.__setattr__(self, "_by_name", {p.name: p for p in self.params})

    def problems(self) -> list[str]:
        found = _name_problems("the kernel", self.name)
        if not isinstance(self.version, str) or not 0 < len(self.version) <= 64:
            found.append(f"version must be a string of 1 to 64 characters, not {self.version!r}")
        for what, items, kind in (
            ("params", self.params, ParamSpec),
            ("metrics", self.metrics, MetricSpec),
        ):
            if not isinstance(items, tuple):
                found.append(f"{what} must be a tuple, not {type(items).__name__}")
                continue
            bad = [repr(item) for item in items if not isinstance(item, kind)]
            if bad:
                found.append(f"{what} holds what is not a {kind.__name__}: {', '.join(bad)}")
                continue
            found.extend(p for item in items for p in item.problems())
        if not found and not self.metrics:
            found.append("it declares no metrics")
        if not found:
            names = [p.name for p in self.params] + [m.name for m in self.metrics]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                found.append(f"a name is declared twice: {', '.join(twice)}")
        return found

    def param(self, name: str) -> ParamSpec | None:
        return self._by_name.get(name)


KernelCatalog = Mapping[str, KernelSpec]


def spec_to_dict(spec: KernelSpec) -> dict[str, object]:
    """A declaration as plain JSON data (what a kernels layer lists for the stack)."""
    return {
        "name": spec.name,
        "version": spec.version,
        "doc": spec.doc,
        "params": [
            {
                "name": p.name,
                "kind": p.kind,
                "doc": p.doc,
                "low": p.low,
                "high": p.high,
                "choices": list(p.choices),
                "default": p.default,
            }
            for p in spec.params
        ],
        "metrics": [{"name": m.name, "kind": m.kind, "doc": m.doc} for m in spec.metrics],
    }


def spec_from_dict(data: Mapping[str, Any]) -> KernelSpec:
    """The declaration ``spec_to_dict`` wrote (``KernelSpecError`` if it does not validate)."""
    return KernelSpec(
        name=data["name"],
        doc=data["doc"],
        version=data["version"],
        params=tuple(
            ParamSpec(
                p["name"],
                p["kind"],
                p["doc"],
                p["low"],
                p["high"],
                tuple(p["choices"]),
                p["default"],
            )
            for p in data["params"]
        ),
        metrics=tuple(MetricSpec(m["name"], m["kind"], m["doc"]) for m in data["metrics"]),
    )


def _name_problems(where: str, name: object) -> list[str]:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        return [f"{where}: name {name!r} does not match {NAME_PATTERN.pattern}"]
    if where != "the kernel" and name in RESERVED_COLUMNS:
        return [f"{where}: {name!r} is a column of every points table; choose another name"]
    return []


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))
