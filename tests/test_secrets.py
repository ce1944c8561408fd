"""Secrets hygiene: no credential in any file git tracks (or would track), and git ignores the
places credentials and state live.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / ".secrets.baseline"


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)


def candidate_files() -> list[str]:
    """Every file git tracks or would track (untracked but not ignored), the baseline aside."""
    listed = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout: {listed.stderr.strip()}")
    return sorted(
        name
        for name in set(listed.stdout.split("\0"))
        if name and name != BASELINE.name and (REPO / name).is_file()
    )


def _hook() -> str:
    beside = Path(sys.executable).with_name("detect-secrets-hook")
    found = str(beside) if beside.exists() else shutil.which("detect-secrets-hook")
    assert found, "detect-secrets is not installed (it is pinned in requirements.txt)"
    return found


def test_no_file_holds_a_secret_the_baseline_does_not_know(tmp_path: Path) -> None:
    """The scan is detect-secrets against the committed ``.secrets.baseline``, which lists the known
    fakes (documentation-style keys in API Gateway events, the fake hashes of the stack export
    fixtures). A new finding fails the test: remove the secret, mark a fake one with
    ``# pragma: allowlist secret`` on its line, or, for fake data in a file that cannot carry a
    comment (JSON), refresh the baseline and review the diff before committing it:

        .venv/bin/detect-secrets scan --baseline .secrets.baseline \
            $(git ls-files --cached --others --exclude-standard)
    """
    files = candidate_files()
    assert "scripts/deploy.py" in files
    # a copy: the hook rewrites a baseline whose line numbers have moved
    baseline = tmp_path / "baseline.json"
    shutil.copy(BASELINE, baseline)

    result = subprocess.run(
        [_hook(), "--baseline", str(baseline), *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )

    # 0: nothing new; 3: nothing new, only the known findings' line numbers moved
    assert result.returncode in (0, 3), (
        "detect-secrets found something new (see this module's docstring for what to do):\n"
        + result.stdout[-6000:]
        + result.stderr[-2000:]
    )


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        ".env.production",
        "config/.env.local",
        ".envrc",
        "deploy.pem",
        "tls/server.key",
        "credentials",
        ".aws/credentials",
        "keystore.p12",
        "id_ed25519",
        ".pulumi/stacks/sweep/sandbox.json",
        ".stack-exports/sandbox/20261123T120000Z-before-deploy.json",
    ],
)
def test_git_ignores_where_credentials_and_state_live(path: str) -> None:
    assert _git("check-ignore", "--quiet", "--no-index", path).returncode == 0, path


def test_the_baseline_and_the_fixtures_are_committed_not_ignored() -> None:
    for path in (".secrets.baseline", "tests/fixtures/stack_export_v12.json"):
        assert _git("check-ignore", "--quiet", "--no-index", path).returncode == 1, path
