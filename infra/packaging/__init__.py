"""Builds the Lambda artifacts (the code zip and the dependency layers), one module per job:
``target`` (runtime and architecture), ``pins`` (requirements-lambda.txt), ``wheels`` (download
and cache), ``trim`` (what a layer keeps), ``elf`` (stripping), ``bytecode`` (``.pyc``),
``closure`` (the code zip's modules), ``zips`` (reproducible zips) and ``builder`` (the build,
its checks and its cache). The Pulumi program and ``scripts/build_artifacts.py`` both use it."""

from infra.packaging.builder import (
    KEY_PATTERN,
    MIB,
    SLOTS,
    TOTAL_BUDGET,
    USE_EXISTING,
    Artifact,
    BuildResult,
    build,
    ensure_built,
    report,
)
from infra.packaging.errors import BuildError
from infra.packaging.target import Target

__all__ = [
    "KEY_PATTERN",
    "MIB",
    "SLOTS",
    "TOTAL_BUDGET",
    "USE_EXISTING",
    "Artifact",
    "BuildError",
    "BuildResult",
    "Target",
    "build",
    "ensure_built",
    "report",
]
