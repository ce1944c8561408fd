"""Every setting of a deployment, declared once: its Lambda environment variable, the ``sweep:``
Pulumi key that sets it (if users set it) and its default. The entry points parse their
environment from this table, the stack builds that environment from it, and the limits and
fan-out defaults of the handler cores are read from it. Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

DEFAULT_PREFIX = "results"
"""The results prefix of the layout, in a bucket or a data folder."""

MAX_ASYNC_PAYLOAD = 256 * 1024
"""The largest event an asynchronous Lambda invoke takes (bytes); a shard task must fit."""


@dataclass(frozen=True)
class Setting:
    """One setting of the functions' environment."""

    name: str
    """The field of ``FunctionSettings`` it fills."""
    env: str
    kind: Literal["text", "count"]
    default: str | int | None = None
    """``None``: required (the stack always sets it)."""
    pulumi_key: str | None = None
    """The ``sweep:`` key users set it with; ``None`` when the stack derives it."""
    optional: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("bucket", "SWEEP_BUCKET", "text"),
    Setting("prefix", "SWEEP_PREFIX", "text", DEFAULT_PREFIX, "resultsPrefix"),
    Setting("worker_function", "SWEEP_WORKER_FUNCTION", "text"),
    Setting("dispatcher_function", "SWEEP_DISPATCHER_FUNCTION", "text"),
    Setting("max_points", "SWEEP_MAX_POINTS", "count", 10**8, "maxPoints"),
    Setting("max_shards", "SWEEP_MAX_SHARDS", "count", 10_000, "maxShards"),
    Setting("fanout_leaf", "SWEEP_FANOUT_LEAF", "count", 250, "fanoutLeaf"),
    Setting("invoke_threads", "SWEEP_INVOKE_THREADS", "count", 32, "invokeThreads"),
    Setting("glue_database", "SWEEP_GLUE_DATABASE", "text", optional=True),
    Setting("log_level", "SWEEP_LOG_LEVEL", "text", "INFO"),
)
BY_NAME: Mapping[str, Setting] = {s.name: s for s in SETTINGS}


def default(name: str) -> int:
    """The default of a numeric setting (limits, fan-out), for the cores' own defaults."""
    value = BY_NAME[name].default
    assert isinstance(value, int)
    return value


class ConfigError(RuntimeError):
    """The function's environment is incomplete or invalid; the message lists every problem."""


def parse_environment(env: Mapping[str, str]) -> dict[str, str | int | None]:
    """Every setting's value from a function's environment, defaults filled in.

    Raises
    ------
    ConfigError
        Listing every variable that is missing or not a positive integer.
    """
    problems: list[str] = []
    values: dict[str, str | int | None] = {}
    for setting in SETTINGS:
        raw = env.get(setting.env)
        if not raw:
            if setting.default is None and not setting.optional:
                problems.append(f"{setting.env} is not set")
            values[setting.name] = setting.default
        elif setting.kind == "count":
            if not raw.isdigit() or int(raw) < 1:
                problems.append(f"{setting.env} must be a positive integer, not {raw!r}")
            values[setting.name] = int(raw) if raw.isdigit() else setting.default
        else:
            values[setting.name] = raw
    if problems:
        raise ConfigError("invalid function environment: " + "; ".join(problems))
    return values


def environment(values: Mapping[str, str | int | None]) -> dict[str, str]:
    """A function's environment from setting values (by name); ``None`` values are left out.

    Raises
    ------
    KeyError
        For a name that is no setting, or a required setting left out.
    """
    unknown = set(values) - set(BY_NAME)
    if unknown:
        raise KeyError(f"no such settings: {sorted(unknown)}")
    env: dict[str, str] = {}
    for setting in SETTINGS:
        value = values.get(setting.name, setting.default)
        if value is None:
            if not setting.optional:
                raise KeyError(f"{setting.name} ({setting.env}) is required")
            continue
        env[setting.env] = str(value)
    return env
