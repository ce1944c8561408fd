"""The results bucket as an ``ObjectStore``: boto3 S3 calls with conditional writes, and S3's
errors mapped onto the ports' ``NotFound``, ``StoreAccessDenied`` and ``TransientStoreError``.

Whether a key exists is asked with ``ListObjectsV2`` (the key as prefix), which a role's
``s3:ListBucket`` under an ``s3:prefix`` condition covers as AWS documents; a ``HeadObject`` or
``GetObject`` of a missing key answers 404 only when S3 decides the caller may list the bucket,
and how it evaluates a prefix condition for that is not documented (a 403 instead would make
every check fail). A 403 is an access error, said as such, never "missing"."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    HTTPClientError,
    IncompleteReadError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from sweep_core.ports import NotFound, StoreAccessDenied, TransientStoreError

THROTTLING_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"}
)
SERVER_CODES = frozenset(
    {"InternalError", "ServiceUnavailable", "RequestTimeout", "500", "502", "503", "504"}
)
SERVER_STATUSES = frozenset({500, 502, 503, 504})
MISSING_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
"""What a missing key answers (HeadObject has no body, so its code is the bare status).
``NoSuchBucket`` is deliberately absent: a wrong bucket is a configuration error, not a miss."""
CONFLICT_CODES = frozenset({"ConditionalRequestConflict", "OperationAborted"})
DENIED_CODES = frozenset({"AccessDenied", "403", "Forbidden"})

# Errors raised below the HTTP layer, once botocore has spent its own retries on them.
NETWORK_ERRORS = (BotoConnectionError, HTTPClientError, IncompleteReadError)


def s3_client(region: str | None = None) -> Any:
    """A boto3 S3 client that retries throttling adaptively and gives up on a dead socket.

    Made from its own session because boto3's default session is not safe to share between
    threads while clients are being created.
    """
    config = Config(
        retries={"mode": "adaptive", "max_attempts": 10},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=32,
    )
    return boto3.session.Session().client("s3", region_name=region, config=config)


class S3Store:
    """Objects in ``bucket``; the key is the object key.

    ``put_if_absent`` is a ``PutObject`` with ``If-None-Match: *``, so of two concurrent writers
    exactly one wins and an object is never overwritten.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        conflict_retries: int = 4,
        conflict_backoff_s: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.conflict_retries = conflict_retries
        self.conflict_backoff_s = conflict_backoff_s
        self._sleep = sleep

    def put_if_absent(self, key: str, body: bytes) -> bool:
        # Set once botocore resent the request: an earlier send may have been the one that
        # wrote, its answer lost, and the 412 that follows is our own object.
        resent = False
        for attempt in range(self.conflict_retries + 1):
            try:
                with self._errors("PutObject", key):
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
                return True
            except ClientError as exc:
                resent = resent or _retry_attempts(exc) > 0
                if _code(exc) == "PreconditionFailed" or _status(exc) == 412:
                    return resent and self._holds(key, body)
                if _code(exc) not in CONFLICT_CODES:
                    raise
            # 409: another conditional write to this key is in flight; its outcome decides
            # whether ours is a 412 or goes through, so ask again shortly.
            if attempt < self.conflict_retries:
                delay = self.conflict_backoff_s * 2**attempt
                self._sleep(delay * random.uniform(0.5, 1.5))
        raise TransientStoreError(
            f"S3 PutObject s3://{self.bucket}/{key}: ConditionalRequestConflict persisted "
            f"through {self.conflict_retries + 1} attempts"
        )

    def get(self, key: str) -> bytes:
        try:
            with self._errors("GetObject", key):
                response = self.client.get_object(Bucket=self.bucket, Key=key)
                body = response["Body"]
                try:
                    data: bytes = body.read()
                finally:
                    body.close()
                return data
        except ClientError as exc:
            if _code(exc) in MISSING_CODES:
                raise NotFound(key) from None
            if not _denied(exc):
                raise
        # 403: S3 hides a miss behind it when it decides the caller may not list the key, so
        # ask the documented way before calling it either.
        if not self.exists(key):
            raise NotFound(key)
        raise StoreAccessDenied(
            f"S3 GetObject s3://{self.bucket}/{key}: access denied although the object exists "
            "(the role lacks s3:GetObject on this key)"
        )

    def exists(self, key: str) -> bool:
        try:
            with self._errors("ListObjectsV2", key):
                # The key itself sorts first among the keys it is a prefix of.
                page = self.client.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        except ClientError as exc:
            if not _denied(exc):
                raise
            raise StoreAccessDenied(
                f"S3 ListObjectsV2 s3://{self.bucket}/{key}: access denied (the role lacks "
                "s3:ListBucket for this prefix), so whether the key exists is unknown"
            ) from exc
        contents = page.get("Contents") or []
        return bool(contents) and contents[0]["Key"] == key

    def list(self, prefix: str) -> Iterator[str]:
        # S3 lists in UTF-8 byte order, which is the order LocalStore sorts str keys in.
        pages = iter(
            self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        )
        while True:
            # Only the page fetch is mapped: errors from the consumer's code pass through as is.
            with self._errors("ListObjectsV2", prefix):
                page = next(pages, None)
            if page is None:
                return
            for item in page.get("Contents", ()):
                yield item["Key"]

    def _holds(self, key: str, body: bytes) -> bool:
        """Whether the object at ``key`` is exactly ``body``."""
        try:
            return self.get(key) == body
        except NotFound:
            return False

    @contextmanager
    def _errors(self, operation: str, key: str) -> Iterator[None]:
        """Turn what botocore could not retry away into ``TransientStoreError``."""
        where = f"S3 {operation} s3://{self.bucket}/{key}"
        try:
            yield
        except ClientError as exc:
            if not _transient(exc):
                raise
            error = exc.response.get("Error", {})
            raise TransientStoreError(
                f"{where} failed after {_retry_attempts(exc)} retries: "
                f"{_code(exc)} (HTTP {_status(exc)}): {error.get('Message', '')}"
            ) from exc
        except NETWORK_ERRORS as exc:
            raise TransientStoreError(f"{where} failed: {type(exc).__name__}: {exc}") from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int | None:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status if isinstance(status, int) else None


def _retry_attempts(exc: ClientError) -> int:
    attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
    return attempts if isinstance(attempts, int) else 0


def _denied(exc: ClientError) -> bool:
    return _code(exc) in DENIED_CODES or _status(exc) == 403


def _transient(exc: ClientError) -> bool:
    code = _code(exc)
    return code in THROTTLING_CODES or code in SERVER_CODES or _status(exc) in SERVER_STATUSES
