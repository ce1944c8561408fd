"""Shared fixtures: a typical valid request, as a user would write it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

GBM_REQUEST: dict[str, Any] = {
    "schema_version": "1.0",
    "kernel": "gbm_european_option",
    "params": {"s0": 100.0, "rate": 0.02, "maturity": 1.0, "paths": 2000, "option": "call"},
    "axes": {
        "sigma": {"linspace": {"start": 0.05, "stop": 0.8, "num": 16}},
        "strike": {"values": [80, 90, 100, 110, 120]},
    },
    "sampling": {"method": "grid"},
    "sharding": {"shard_size": 64},
    "seed": 42,
    "label": "vol-smile",
    "client_token": "optional-idempotency-key",
}


@pytest.fixture
def gbm_request() -> dict[str, Any]:
    """A fresh, valid request dict that a test may mutate."""
    return copy.deepcopy(GBM_REQUEST)
