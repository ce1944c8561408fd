"""sweep: fan a numeric parameter sweep out over worker processes or AWS Lambda.

The contract (request and envelope types, JSON Schema, validation) and the pure planning core
live here; ``runtime`` holds what runs the shards.
"""

from typing import TYPE_CHECKING, Any

from sweep_sdk._version import __version__
from sweep_sdk.contract import SCHEMA_VERSION, Problem, SweepRequest
from sweep_sdk.convert import ContractError
from sweep_sdk.planning import ShardPlan, plan_shards
from sweep_sdk.schema import request_json_schema
from sweep_sdk.space import PointSpace, point_count
from sweep_sdk.validation import Limits, parse_request

if TYPE_CHECKING:
    from sweep_sdk.client import Run, RunStatus, SubmitError, open_run, submit

_CLIENT = {"Run", "RunStatus", "SubmitError", "open_run", "submit"}


def __getattr__(name: str) -> Any:
    # The client pulls in the runtime (worker pool, stores), which itself imports the contract
    # from this package: load it on first use so `import sweep_sdk.contract` stays light.
    if name in _CLIENT:
        from sweep_sdk import client

        return getattr(client, name)
    raise AttributeError(f"module 'sweep_sdk' has no attribute {name!r}")


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
