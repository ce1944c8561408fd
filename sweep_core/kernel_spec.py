"""Kernel declarations: the parameters and metrics a kernel takes and produces, as plain data.

A declaration drives request validation, the points Parquet schema and the Glue table, so it
holds no behaviour; the numpy implementation lives beside it in ``sweep_core.kernels``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from attrs import field, frozen

ParamKind = Literal["float", "int", "choice"]
MetricKind = Literal["float64", "int64"]
ParamValue = float | int | str


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

    def __attrs_post_init__(self) -> None:
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"choice parameter {self.name!r} declares no choices")
        if self.kind != "choice" and self.choices:
            raise ValueError(f"{self.kind} parameter {self.name!r} cannot declare choices")

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


@frozen
class KernelSpec:
    """What a kernel is called, what it takes and what it returns."""

    name: str
    doc: str
    params: tuple[ParamSpec, ...]
    metrics: tuple[MetricSpec, ...]
    _by_name: Mapping[str, ParamSpec] = field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        names = [p.name for p in self.params] + [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"kernel {self.name!r} declares a name twice: {names}")
        object.__setattr__(self, "_by_name", {p.name: p for p in self.params})

    def param(self, name: str) -> ParamSpec | None:
        return self._by_name.get(name)


KernelCatalog = Mapping[str, KernelSpec]


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))
