"""Every object key of a run, in one place: S3 and the local data folder share this layout."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from attrs import frozen

from sweep_core.settings import DEFAULT_PREFIX

RUN_ID_PATTERN = re.compile(r"^(\d{8})T(\d{6})Z-([0-9a-f]{8})$")
_OUTCOME_FILE = re.compile(r"^shard=(\d+)(?:-attempt=(\d+))?\.parquet$")
_RUN_RECORD = re.compile(r"/runs/run_date=[0-9-]+/run_id=([^/]+)/([^/]+)$")
_COMPACTED_FILE = re.compile(r"^compacted-(\d+)\.parquet$")
_OUTCOME_KEY = re.compile(r"/status=(success|failure)/shard=(\d+)(?:-attempt=(\d+))?\.parquet$")
COMPACTED_STEM = "compacted-"
SHARD_DIGITS = 5


def new_run_id(now: datetime, token: str) -> str:
    """A run id that sorts by creation time and names its own date: ``20261123T152100Z-1a2b3c4d``.

    ``token`` is 8 hex characters of entropy supplied by the caller (ids are injected, never
    drawn here), so the function stays pure.
    """
    return f"{now:%Y%m%dT%H%M%S}Z-{token}"


def run_date_of(run_id: str) -> str:
    """The ``run_date`` partition of a run, read from its id."""
    match = RUN_ID_PATTERN.match(run_id)
    if match is None:
        raise ValueError(f"{run_id!r} is not a run id (like 20261123T152100Z-1a2b3c4d)")
    day = match.group(1)
    return f"{day[:4]}-{day[4:6]}-{day[6:]}"


@frozen
class OutcomeKey:
    status: str
    shard: int
    attempt: int | None


@frozen
class Layout:
    """Keys under one results prefix:

    ```
    <prefix>/runs/run_date=YYYY-MM-DD/run_id=<id>/manifest.json
    <prefix>/runs/run_date=YYYY-MM-DD/run_id=<id>/redrive-0001.json
    <prefix>/tokens/<sha256 of client_token>.json
    <prefix>/outcomes/run_date=YYYY-MM-DD/run_id=<id>/status=success/shard=00042.parquet
    <prefix>/outcomes/run_date=YYYY-MM-DD/run_id=<id>/status=failure/shard=00042-attempt=0001.parquet
    <prefix>/points/<kernel>/run_date=YYYY-MM-DD/run_id=<id>/shard=00042.parquet
    <prefix>/points/<kernel>/run_date=YYYY-MM-DD/run_id=<id>/shard=00042-attempt=0002.parquet
    ```
    (the second form only when an earlier attempt left other bytes at the first and died before
    its success record: the success record names the object it commits.)
    A compacted run (``sweep compact``) has, in the same partitions, ``compacted-0001.parquet``
    files holding the rows of many shard objects, and a record of each compaction:
    ```
    <prefix>/outcomes/run_date=YYYY-MM-DD/run_id=<id>/status=success/compacted-0001.parquet
    <prefix>/points/<kernel>/run_date=YYYY-MM-DD/run_id=<id>/compacted-0001.parquet
    <prefix>/runs/run_date=YYYY-MM-DD/run_id=<id>/compaction-0001.json
    ```
    Directories named ``column=value`` are the hive partitions (Athena and DuckDB read them as
    columns); everything below the last partition is a plain file name, so success and failure
    objects sit at the same depth and one table spans both.
    """

    prefix: str = DEFAULT_PREFIX

    def _run(self, table: str, run_id: str) -> str:
        return f"{self.prefix}/{table}/run_date={run_date_of(run_id)}/run_id={run_id}"

    def manifest_key(self, run_id: str) -> str:
        return f"{self._run('runs', run_id)}/manifest.json"

    def runs_root(self) -> str:
        """Where every run's folder (manifest, redrives, cancel and summary records) lies."""
        return f"{self.prefix}/runs/"

    def run_folder(self, run_id: str) -> str:
        return f"{self._run('runs', run_id)}/"

    def cancel_key(self, run_id: str, generation: int) -> str:
        """The cancel record of a dispatch generation (0: the submit; n: after redrive n)."""
        return f"{self._run('runs', run_id)}/cancel-{generation:04d}.json"

    def summary_key(self, run_id: str, generation: int) -> str:
        return f"{self._run('runs', run_id)}/summary-{generation:04d}.json"

    @staticmethod
    def run_record(key: str) -> tuple[str, str] | None:
        """``(run_id, record name)`` of a key in a run's folder (``manifest.json``,
        ``redrive-0001.json``, ...), or None for any other key."""
        match = _RUN_RECORD.search(key)
        return None if match is None else (match.group(1), match.group(2))

    def redrive_prefix(self, run_id: str) -> str:
        return f"{self._run('runs', run_id)}/redrive-"

    def redrive_key(self, run_id: str, number: int) -> str:
        return f"{self.redrive_prefix(run_id)}{number:04d}.json"

    def token_key(self, client_token: str) -> str:
        digest = hashlib.sha256(client_token.encode()).hexdigest()
        return f"{self.prefix}/tokens/{digest}.json"

    def outcomes_prefix(self, run_id: str) -> str:
        return f"{self._run('outcomes', run_id)}/"

    def success_key(self, run_id: str, shard: int) -> str:
        return (
            f"{self.outcomes_prefix(run_id)}status=success/shard={shard:0{SHARD_DIGITS}d}.parquet"
        )

    def failure_prefix(self, run_id: str, shard: int) -> str:
        return f"{self.outcomes_prefix(run_id)}status=failure/shard={shard:0{SHARD_DIGITS}d}-"

    def failure_key(self, run_id: str, shard: int, attempt: int) -> str:
        return f"{self.failure_prefix(run_id, shard)}attempt={attempt:04d}.parquet"

    def points_prefix(self, kernel: str, run_id: str) -> str:
        return f"{self._run(f'points/{kernel}', run_id)}/"

    def points_key(self, kernel: str, run_id: str, shard: int) -> str:
        return f"{self.points_prefix(kernel, run_id)}shard={shard:0{SHARD_DIGITS}d}.parquet"

    def points_attempt_key(self, kernel: str, run_id: str, shard: int, attempt: int) -> str:
        """Where an attempt publishes its points when the shard's usual key holds other bytes
        (left by an attempt that died before its success record): objects are written once."""
        return (
            f"{self.points_prefix(kernel, run_id)}shard={shard:0{SHARD_DIGITS}d}"
            f"-attempt={attempt:04d}.parquet"
        )

    def status_prefix(self, run_id: str, status: str) -> str:
        """The partition of one status of a run's outcomes (``success`` or ``failure``)."""
        return f"{self.outcomes_prefix(run_id)}status={status}/"

    @staticmethod
    def compacted_key(partition: str, number: int) -> str:
        """File ``number`` of the compacted rows of a partition (a prefix ending in ``/``)."""
        return f"{partition}{COMPACTED_STEM}{number:04d}.parquet"

    @staticmethod
    def is_compacted(key: str) -> bool:
        """Whether ``key`` is a compacted file (many shards' rows) rather than a shard object."""
        return _COMPACTED_FILE.match(key.rpartition("/")[2]) is not None

    def compaction_prefix(self, run_id: str) -> str:
        return f"{self._run('runs', run_id)}/compaction-"

    def compaction_key(self, run_id: str, number: int) -> str:
        return f"{self.compaction_prefix(run_id)}{number:04d}.json"

    def table_root(self, table: str) -> str:
        """Where a table's partitions start: ``outcomes``, ``runs`` or ``points/<kernel>``."""
        return f"{self.prefix}/{table}/"

    @staticmethod
    def outcome_status(key: str) -> str:
        """``success`` or ``failure``: the status partition an outcome object lies in."""
        status = key.rpartition("/")[0].rpartition("/status=")[2]
        if status not in ("success", "failure"):
            raise ValueError(f"{key!r} is not in an outcome status partition")
        return status

    @staticmethod
    def outcome_fields(key: str) -> tuple[str, int, int | None] | None:
        """``(status, shard, attempt)`` of a shard outcome object, or None for any other key:
        one regular expression, for listings of a run's 10,000 outcome keys at every poll."""
        match = _OUTCOME_KEY.search(key)
        if match is None:
            return None
        status, shard, attempt = match.groups()
        return status, int(shard), None if attempt is None else int(attempt)

    @staticmethod
    def parse_outcome_key(key: str) -> OutcomeKey:
        """Status, shard and attempt of an outcome object, from its key alone."""
        status_dir, _, name = key.rpartition("/")
        status = status_dir.rpartition("/status=")[2]
        match = _OUTCOME_FILE.match(name)
        if match is None or status not in ("success", "failure"):
            raise ValueError(f"{key!r} is not an outcome key")
        attempt = match.group(2)
        return OutcomeKey(status, int(match.group(1)), None if attempt is None else int(attempt))
