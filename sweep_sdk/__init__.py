"""sweep: fan a numeric parameter sweep out over worker processes or AWS Lambda.

The contract (request and envelope types, JSON Schema, validation) and the pure planning core
live here; ``runtime`` holds what runs the shards.
"""

from sweep_sdk.contract import SCHEMA_VERSION, Problem, SweepRequest
from sweep_sdk.convert import ContractError
from sweep_sdk.planning import ShardPlan, plan_shards
from sweep_sdk.schema import request_json_schema
from sweep_sdk.space import PointSpace, point_count
from sweep_sdk.validation import Limits, parse_request

__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION",
    "ContractError",
    "Limits",
    "PointSpace",
    "Problem",
    "ShardPlan",
    "SweepRequest",
    "__version__",
    "parse_request",
    "plan_shards",
    "point_count",
    "request_json_schema",
]
