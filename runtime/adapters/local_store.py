"""Local adapters: a folder laid out exactly like the results bucket, a wall clock, a deadline."""

from __future__ import annotations

import contextlib
import os
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from attrs import frozen

from sweep_core.ports import NotFound


class LocalStore:
    """Objects as files under ``root``; the key is the relative path.

    ``put_if_absent`` writes a hidden temporary file, then publishes it with ``os.link``, which
    fails if the target exists: of two concurrent writers exactly one wins, the loser's bytes
    are discarded, and no reader ever sees a partial object.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._root = os.fspath(root)

    def path(self, key: str) -> Path:
        return Path(self._file(key))

    def _file(self, key: str) -> str:
        # Strings and os.path, not pathlib: a worker resolves several keys per shard, and
        # pathlib's parsing would cost a tenth of a small shard.
        parts = key.split("/")
        if key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"invalid object key {key!r}")
        return os.path.join(self._root, *parts)

    def put_if_absent(self, key: str, body: bytes) -> bool:
        target = self._file(key)
        if os.path.exists(target):
            return False
        folder, name = os.path.split(target)
        os.makedirs(folder, exist_ok=True)
        temp = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(temp, "xb") as handle:
                handle.write(body)
            os.link(temp, target)
            return True
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def get(self, key: str) -> bytes:
        try:
            with open(self._file(key), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise NotFound(key) from None

    def delete(self, key: str) -> None:
        """Remove the object at ``key`` (absent is fine). Only compaction deletes, and only
        here: the object-store protocol has no delete, and no cloud role may delete results."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._file(key))

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._file(key))

    def list(self, prefix: str) -> Iterator[str]:
        directory = prefix.rpartition("/")[0]
        base = self.root / directory if directory else self.root
        if not base.is_dir():
            return
        keys = []
        for dirpath, _, filenames in os.walk(base):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith("."):
                    continue  # unpublished temporary files
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        # In key order, as S3 lists: a walk yields a folder's files before its subfolders.
        yield from sorted(keys)


def random_token() -> str:
    """Eight hex characters for a run id."""
    return secrets.token_hex(4)


@frozen
class LocalContext:
    """A stand-in for Lambda's context: a request id and a monotonic deadline."""

    aws_request_id: str
    deadline: float

    @classmethod
    def with_timeout(cls, seconds: float, request_id: str | None = None) -> LocalContext:
        return cls(request_id or uuid.uuid4().hex, time.monotonic() + seconds)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))
