"""The wire contract: every envelope that crosses a process or network boundary.

Types only. (Un)structuring lives in ``sweep_core.convert``; the JSON Schema that API Gateway,
the local gateway and the SDK validate against is generated from these classes by
``sweep_core.schema``. Field metadata under ``"schema"`` carries the JSON Schema keywords that
types alone cannot say (bounds, lengths, patterns); a class whose ``__one_of__`` is true must
carry exactly one of its (optional) fields.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from attrs import field, frozen

SCHEMA_VERSION = "1.0"

NAME_PATTERN = "^[a-z][a-z0-9_]{0,63}$"
MAX_AXIS_VALUES = 100_000
MAX_GRID_AXIS_POINTS = 10_000_000
MAX_SEED = 2**63 - 1

Scalar = float | int | str


def _schema(**keywords: Any) -> dict[str, Any]:
    return {"schema": keywords}


def _version() -> Any:
    return field(
        default=SCHEMA_VERSION,
        metadata=_schema(pattern=r"^\d+\.\d+$", maxLength=16, required=True),
    )


# --- axes -------------------------------------------------------------------------------


@frozen
class Linspace:
    """``num`` evenly spaced values from ``start`` to ``stop`` inclusive (numpy.linspace)."""

    start: float
    stop: float
    num: int = field(metadata=_schema(minimum=1, maximum=MAX_GRID_AXIS_POINTS))


@frozen
class IntRange:
    """Integers ``start, start + step, ...`` below ``stop`` (Python's range)."""

    start: int
    stop: int
    step: int = field(default=1)


@frozen
class Interval:
    """A closed interval sampled by ``random`` or ``sobol`` sampling."""

    low: float
    high: float


@frozen
class Axis:
    """How one parameter is swept: exactly one of the forms below.

    Grid sampling takes ``values``, ``linspace``, ``geomspace`` (log-spaced, like
    numpy.geomspace) or ``range``; random and Sobol sampling take ``uniform``, ``loguniform``
    (intervals) or ``values`` (choices drawn with equal probability).
    """

    __one_of__: ClassVar[bool] = True
    GRID_FORMS: ClassVar[tuple[str, ...]] = ("values", "linspace", "geomspace", "range")
    SAMPLED_FORMS: ClassVar[tuple[str, ...]] = ("values", "uniform", "loguniform")

    values: tuple[Scalar, ...] | None = field(
        default=None, metadata=_schema(minItems=1, maxItems=MAX_AXIS_VALUES)
    )
    linspace: Linspace | None = None
    geomspace: Linspace | None = None
    range: IntRange | None = None
    uniform: Interval | None = None
    loguniform: Interval | None = None

    @property
    def form(self) -> str:
        for name in ("values", "linspace", "geomspace", "range", "uniform", "loguniform"):
            if getattr(self, name) is not None:
                return name
        raise ValueError("axis has no form")


@frozen
class Sampling:
    """``grid`` (every combination of the axes) or ``n`` points by ``random`` or ``sobol``."""

    method: Literal["grid", "random", "sobol"]
    n: int | None = field(default=None, metadata=_schema(minimum=1))


@frozen
class Sharding:
    """Exactly one of: how many shards, or how many points per shard."""

    __one_of__: ClassVar[bool] = True

    shard_count: int | None = field(default=None, metadata=_schema(minimum=1))
    shard_size: int | None = field(default=None, metadata=_schema(minimum=1))


# --- envelopes ----------------------------------------------------------------------------


@frozen
class SweepRequest:
    """A sweep: a kernel, its fixed parameters, the swept axes and how to cut the work."""

    kernel: str = field(metadata=_schema(pattern=NAME_PATTERN))
    params: dict[str, Scalar] = field(
        metadata=_schema(maxProperties=64, propertyNames=NAME_PATTERN)
    )
    axes: dict[str, Axis] = field(
        metadata=_schema(minProperties=1, maxProperties=32, propertyNames=NAME_PATTERN)
    )
    sampling: Sampling
    sharding: Sharding
    seed: int = field(metadata=_schema(minimum=0, maximum=MAX_SEED))
    label: str | None = field(default=None, metadata=_schema(maxLength=256))
    client_token: str | None = field(
        default=None,
        metadata=_schema(minLength=1, maxLength=128, pattern="^[A-Za-z0-9._:~-]+$"),
    )
    schema_version: str = _version()


@frozen
class ShardTask:
    """Parent to worker: evaluate points ``[start, end)`` of one run."""

    run_id: str
    run_date: str
    shard: int
    start: int
    end: int
    spec: SweepRequest
    schema_version: str = _version()


@frozen
class DispatchSlice:
    """Parent to itself: dispatch these shards of a run (how large runs fan out as a tree)."""

    run_id: str
    shards: tuple[int, ...]
    schema_version: str = _version()


ShardStatus = Literal["success", "failure"]


@frozen
class ShardOutcome:
    """What one attempt at one shard ended with; one Parquet object per record."""

    run_id: str
    shard: int
    attempt: int
    status: ShardStatus
    start: int
    end: int
    point_count: int
    started_at: str
    finished_at: str
    duration_ms: float
    worker_version: str
    error_code: str | None = None
    error_message: str | None = None
    schema_version: str = _version()
    points_object: str | None = None
    """A success's commit: the points object it publishes (a name in the run's points
    partition), with its row count, size and SHA-256. Readers read committed objects only."""
    points_rows: int | None = None
    points_bytes: int | None = None
    points_sha256: str | None = None
    kernel_version: str | None = None
    """The ``KernelSpec.version`` that ran the attempt; None when no kernel was loaded."""


@frozen
class RunManifest:
    """Everything needed to reproduce, watch and redrive a run; written once at submit."""

    run_id: str
    run_date: str
    created_at: str
    point_count: int
    shard_count: int
    spec: SweepRequest
    worker_version: str
    schema_version: str = _version()
    kernel_version: str = "0"
    """The ``KernelSpec.version`` the run was accepted for (a redrive refuses another)."""


@frozen
class AcceptedRun:
    """The answer to a valid submit (HTTP 202): where the run is and how big it is."""

    run_id: str
    run_date: str
    kernel: str
    point_count: int
    shard_count: int
    manifest_key: str
    existing: bool = False
    schema_version: str = _version()


@frozen
class RedrivenShard:
    shard: int
    failed_attempts: int
    """Failure records the shard had when it was dispatched again."""


@frozen
class RedriveRecord:
    """Shards dispatched again; each is in flight until it has a newer record than listed here."""

    run_id: str
    number: int
    created_at: str
    shards: tuple[RedrivenShard, ...]
    schema_version: str = _version()


@frozen
class CancelRecord:
    """A run stopped by its user: no shard of the dispatch generation it names starts after it
    (each redrive starts a new generation, so ``redrive --force`` runs the shards again)."""

    run_id: str
    generation: int
    created_at: str
    schema_version: str = _version()


@frozen
class RunSummary:
    """A settled run's row of ``sweep runs``, recorded once for its dispatch generation so
    listing many runs opens no outcome object."""

    run_id: str
    generation: int
    label: str | None
    kernel: str
    point_count: int
    shard_count: int
    created_at: str
    finished_at: str | None
    succeeded: int
    failed: int
    cancelled: int
    schema_version: str = _version()


@frozen
class ClientTokenRecord:
    """Which run a client token started, and a digest of the request it came with."""

    run_id: str
    request_digest: str
    schema_version: str = _version()


@frozen
class Problem:
    """One thing wrong with an input: a JSONPath-like location and what is wrong there."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@frozen
class ErrorBody:
    code: str
    message: str
    problems: tuple[Problem, ...] = ()


@frozen
class ErrorResponse:
    """The answer to a rejected request (HTTP 4xx/5xx)."""

    error: ErrorBody
    schema_version: str = _version()
