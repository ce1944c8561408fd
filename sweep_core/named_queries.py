"""The shipped queries: Athena SQL over the tables a run leaves behind, named and kept as data
(``queries/*.sql``) so that the stack registers them in Athena and every engine runs the same text.
"""

from __future__ import annotations

from importlib import resources

QUERY_NAMES = ("run_summary", "failure_rate_by_run", "failure_rate_by_day", "slowest_shards")


class QueryError(ValueError):
    """SQL that cannot be parsed or run; the message says why."""


def named_query(name: str) -> str:
    """The Athena SQL text of a shipped query."""
    if name not in QUERY_NAMES:
        raise QueryError(f"no query named {name!r}; shipped queries: {', '.join(QUERY_NAMES)}")
    return resources.files("sweep_core.queries").joinpath(f"{name}.sql").read_text()
