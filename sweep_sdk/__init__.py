"""sweep: fan a numeric parameter sweep out over worker processes or AWS Lambda.

``from sweep_sdk import submit`` submits a run. The contract (request and envelope types, JSON
Schema, validation) and the pure planning core live in this package; ``runtime`` runs shards.
Exports load on first use, so a worker that imports only the contract pays for nothing else.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sweep_sdk._version import __version__

if TYPE_CHECKING:
    from sweep_sdk.client import Run, SubmitError, open_run, submit
    from sweep_sdk.contract import SCHEMA_VERSION, Problem, SweepRequest
    from sweep_sdk.convert import ContractError
    from sweep_sdk.planning import ShardPlan, plan_shards
    from sweep_sdk.schema import request_json_schema
    from sweep_sdk.space import PointSpace, point_count
    from sweep_sdk.status import RunStatus
    from sweep_sdk.validation import Limits, parse_request

_EXPORTS = {
    "submit": "client",
    "open_run": "client",
    "Run": "client",
    "RunStatus": "status",
    "SubmitError": "client",
    "SCHEMA_VERSION": "contract",
    "Problem": "contract",
    "SweepRequest": "contract",
    "ContractError": "convert",
    "ShardPlan": "planning",
    "plan_shards": "planning",
    "request_json_schema": "schema",
    "PointSpace": "space",
    "point_count": "space",
    "Limits": "validation",
    "parse_request": "validation",
}

__all__ = [
    "SCHEMA_VERSION",
    "ContractError",
    "Limits",
    "PointSpace",
    "Problem",
    "Run",
    "RunStatus",
    "ShardPlan",
    "SubmitError",
    "SweepRequest",
    "__version__",
    "open_run",
    "parse_request",
    "plan_shards",
    "point_count",
    "request_json_schema",
    "submit",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sweep_sdk' has no attribute {name!r}")
    return getattr(importlib.import_module(f"sweep_sdk.{module}"), name)
