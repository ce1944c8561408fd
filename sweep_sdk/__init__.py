"""sweep: fan a numeric parameter sweep out over worker processes or AWS Lambda.

``from sweep_sdk import submit`` submits a run. The names below come from the client and from
``sweep_core`` (the contract, validation and planning); they load on first use, so importing
this package costs nothing until one is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sweep_core._version import __version__

if TYPE_CHECKING:
    from sweep_core.contract import SCHEMA_VERSION, Problem, SweepRequest
    from sweep_core.convert import ContractError
    from sweep_core.planning import ShardPlan, plan_shards
    from sweep_core.runs import CommitError, CommitProblem, RunStatus
    from sweep_core.schema import request_json_schema
    from sweep_core.space import PointSpace, point_count
    from sweep_core.validation import Limits, parse_request
    from sweep_sdk.client import Run, RunList, open_run, runs, submit
    from sweep_sdk.errors import RepairError, RunnerGone, SubmitError

_EXPORTS = {
    "submit": "sweep_sdk.client",
    "open_run": "sweep_sdk.client",
    "runs": "sweep_sdk.client",
    "RunList": "sweep_sdk.client",
    "Run": "sweep_sdk.client",
    "RunStatus": "sweep_core.runs",
    "CommitError": "sweep_core.runs",
    "CommitProblem": "sweep_core.runs",
    "SubmitError": "sweep_sdk.errors",
    "RunnerGone": "sweep_sdk.errors",
    "RepairError": "sweep_sdk.errors",
    "SCHEMA_VERSION": "sweep_core.contract",
    "Problem": "sweep_core.contract",
    "SweepRequest": "sweep_core.contract",
    "ContractError": "sweep_core.convert",
    "ShardPlan": "sweep_core.planning",
    "plan_shards": "sweep_core.planning",
    "request_json_schema": "sweep_core.schema",
    "PointSpace": "sweep_core.space",
    "point_count": "sweep_core.space",
    "Limits": "sweep_core.validation",
    "parse_request": "sweep_core.validation",
}

__all__ = [
    "SCHEMA_VERSION",
    "CommitError",
    "CommitProblem",
    "ContractError",
    "Limits",
    "PointSpace",
    "Problem",
    "RepairError",
    "Run",
    "RunList",
    "RunStatus",
    "RunnerGone",
    "ShardPlan",
    "SubmitError",
    "SweepRequest",
    "__version__",
    "open_run",
    "parse_request",
    "plan_shards",
    "point_count",
    "request_json_schema",
    "runs",
    "submit",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sweep_sdk' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
