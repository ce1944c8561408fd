"""The stack's settings, read once from Pulumi config into one typed, frozen object."""

from __future__ import annotations

import pulumi
from attrs import frozen


@frozen
class StackConfig:
    name_prefix: str
    results_prefix: str
    max_points: int
    max_shards: int

    @classmethod
    def from_pulumi(cls, config: pulumi.Config) -> StackConfig:
        return cls(
            name_prefix=config.require("namePrefix"),
            results_prefix=config.get("resultsPrefix") or "sweep",
            max_points=config.get_int("maxPoints") or 10**8,
            max_shards=config.get_int("maxShards") or 10_000,
        )
