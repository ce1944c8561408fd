"""Errors the client raises besides ``ContractError`` (an invalid request) and ``QueryError``."""

from __future__ import annotations

from sweep_core.contract import ErrorResponse


class SubmitError(RuntimeError):
    """The target refused a well-formed request (for example a reused client token)."""

    def __init__(self, status_code: int, error: ErrorResponse) -> None:
        super().__init__(f"{error.error.code}: {error.error.message}")
        self.status_code = status_code
        self.error = error
