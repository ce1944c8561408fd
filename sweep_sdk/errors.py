"""Errors the client raises besides ``ContractError`` (an invalid request) and ``QueryError``."""

from __future__ import annotations

from sweep_core.contract import ErrorResponse


class SubmitError(RuntimeError):
    """The target refused a well-formed request (for example a reused client token)."""

    def __init__(self, status_code: int, error: ErrorResponse) -> None:
        super().__init__(f"{error.error.code}: {error.error.message}")
        self.status_code = status_code
        self.error = error


class RunnerGone(RuntimeError):
    """A run has shards missing and nothing runs them any more: its runner is gone."""

    def __init__(self, run_id: str, lost: int, total: int) -> None:
        self.run_id, self.lost, self.total = run_id, lost, total
        super().__init__(
            f"run {run_id}: the runner is gone with {lost} of {total} shards not run "
            f"(killed, or the machine restarted); `sweep redrive {run_id}` finishes the run"
        )


class RepairError(RuntimeError):
    """``redrive --repair`` cannot repair what ``verify`` found."""
