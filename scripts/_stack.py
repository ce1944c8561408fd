"""The Pulumi CLI as deploy and rollback use it, and the saved ``pulumi stack export`` files.

Exports go to ``.stack-exports/<stack>/`` (git-ignored; the writer refuses a folder git would
track): each is the full state of the stack at one moment, the record a rollback reads.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from attrs import frozen

REPO = Path(__file__).resolve().parents[1]
EXPORTS = REPO / ".stack-exports"


class StackError(RuntimeError):
    """A Pulumi command failed, or an export cannot be used; the message says which."""


@frozen
class Pulumi:
    """One stack, driven through the CLI at ``executable`` from the project folder."""

    executable: str
    stack: str
    cwd: Path = REPO
    env: Mapping[str, str] | None = None

    def _run(self, args: Sequence[str], capture: bool) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.executable, *args],
            cwd=self.cwd,
            env=None if self.env is None else dict(self.env),
            capture_output=capture,
            text=True,
            check=False,
        )

    def export(self, version: str | None = None) -> str:
        """``pulumi stack export`` (of an earlier ``version`` if given), checked to be JSON."""
        args = ["stack", "export", "--stack", self.stack]
        if version is not None:
            args += ["--version", version]
        result = self._run(args, capture=True)
        if result.returncode != 0:
            raise StackError(
                f"pulumi stack export failed ({result.returncode}): {result.stderr.strip()}\n"
                f"does the stack exist? pulumi stack ls; pulumi stack init {self.stack}"
            )
        parse_export(result.stdout, f"pulumi stack export --stack {self.stack}")
        return result.stdout

    def up(self, config: Mapping[str, str], yes: bool) -> int:
        """``pulumi up`` with ``config`` set (and saved to the stack file); its exit code.

        Output streams to the terminal; without ``yes`` Pulumi shows the preview and asks.
        """
        return self._run(up_args(self.stack, config, yes), capture=False).returncode


def up_args(stack: str, config: Mapping[str, str], yes: bool) -> list[str]:
    args = ["up", "--stack", stack]
    for key, value in sorted(config.items()):
        args += ["--config", f"{key}={value}"]
    return [*args, "--yes"] if yes else args


def parse_export(text: str, source: str) -> dict[str, Any]:
    """The export as JSON, or a ``StackError`` naming ``source``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StackError(f"{source} is not a stack export: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("deployment"), dict):
        raise StackError(f"{source} is not a stack export (no 'deployment' object)")
    return data


def save_export(
    text: str, stack: str, label: str, exports: Path = EXPORTS, now: datetime | None = None
) -> Path:
    """Write an export under ``exports/<stack>/<UTC time>-<label>.json``, owner-readable only.

    Raises
    ------
    StackError
        When git would track the file: an export lists every resource and would leak into
        the repository.
    """
    when = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    folder = exports / stack
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{when}-{label}.json"
    if _tracked_by_git(path):
        raise StackError(f"{path} is not git-ignored; add {exports.name}/ to .gitignore first")
    temp = path.with_name(f".{path.name}.tmp")
    with open(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(text)
    os.replace(temp, path)
    return path


def _tracked_by_git(path: Path) -> bool:
    """True when ``path`` lies in a git work tree and is not ignored there."""
    try:
        result = subprocess.run(
            ["git", "check-ignore", "--quiet", "--no-index", str(path.name)],
            cwd=path.parent,
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:  # no git: nothing to leak into
        return False
    return result.returncode == 1  # 0 ignored, 1 not ignored, 128 not a repository


def saved_exports(stack: str, exports: Path = EXPORTS) -> list[Path]:
    """The saved exports of ``stack``, oldest first."""
    return sorted((exports / stack).glob("*.json"))


def child_env(env: Mapping[str, str], profile: str | None, region: str) -> dict[str, str]:
    """The environment Pulumi runs in: the same credentials the preflight checked."""
    child = dict(env)
    if profile:
        child["AWS_PROFILE"] = profile
    child.setdefault("AWS_REGION", region)
    return child
