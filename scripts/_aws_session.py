"""Preflight for anything that changes the cloud: a valid, temporary AWS session, a region, and a
logged-in Pulumi CLI, checked before anything is built. Every problem comes with its fix."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from attrs import frozen
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound


@frozen
class Problem:
    what: str
    fix: str


class PreflightFailed(Exception):
    """One or more checks failed; ``problems`` says what and how to fix each."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.what for p in problems))
        self.problems = problems

    def report(self, action: str) -> str:
        lines = [f"{action} refused: preflight failed, nothing was built or changed."]
        for problem in self.problems:
            lines.append(f"  - {problem.what}")
            fix = problem.fix.replace("\n", "\n         ")
            lines.append(f"    fix: {fix}")
        return "\n".join(lines)


@frozen
class Session:
    """What the preflight established: who we are, where, until when, and which Pulumi."""

    account: str
    arn: str
    region: str
    profile: str | None
    temporary: bool
    expires: datetime | None
    pulumi: str

    def describe(self) -> str:
        if not self.temporary:
            lifetime = "long-lived access keys (allowed by --allow-long-lived-keys)"
        elif self.expires is None:
            lifetime = "temporary credentials (expiry not reported)"
        else:
            lifetime = f"temporary credentials until {self.expires:%Y-%m-%d %H:%M} UTC"
        profile = f", profile {self.profile}" if self.profile else ""
        return (
            f"AWS: {self.arn} (account {self.account}), region {self.region}{profile}; {lifetime}"
        )


def login_fix(profile: str | None) -> str:
    """How to get a fresh temporary session."""
    flag = f" --profile {profile}" if profile else " --profile NAME"
    rerun = "then run this again" + ("" if profile else " with --profile NAME")
    return (
        f"aws sso login{flag}    (IAM Identity Center)\n"
        f"or: aws login{flag}    (console sign-in credentials)\n"
        f"{rerun}"
    )


def credential_expiry(credentials: Any, env: Mapping[str, str]) -> datetime | None:
    """When the credentials expire, if anything says so, without refreshing them.

    botocore keeps the expiry of refreshable credentials (SSO, assumed roles, console login,
    and environment variables with ``AWS_CREDENTIAL_EXPIRATION``); the variable itself is read
    too, for tools that export it beside plain variables.
    """
    expiry = getattr(credentials, "_expiry_time", None)
    if isinstance(expiry, datetime):
        return expiry if expiry.tzinfo else expiry.replace(tzinfo=UTC)
    raw = env.get("AWS_CREDENTIAL_EXPIRATION")
    if raw:
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def preflight(
    *,
    profile: str | None = None,
    region: str | None = None,
    allow_long_lived: bool = False,
    min_validity: timedelta = timedelta(minutes=15),
    env: Mapping[str, str],
    now: datetime | None = None,
    sts: Any | None = None,
    which: Callable[[str], str | None] = shutil.which,
) -> Session:
    """Check everything a deploy needs before it starts.

    Parameters
    ----------
    region
        The stack's region, used when the session names none.
    allow_long_lived
        Accept access keys without a session token (refused by default).
    min_validity
        Temporary credentials must stay valid at least this long.
    sts
        An STS client (tests); by default one is made from the session.

    Raises
    ------
    PreflightFailed
        With every problem found and its fix.
    """
    now = now or datetime.now(UTC)
    problems: list[Problem] = []
    pulumi = which("pulumi")
    if pulumi is None:
        problems.append(
            Problem(
                "the Pulumi CLI is not on PATH",
                "install it: curl -fsSL https://get.pulumi.com | sh  (or brew install pulumi), "
                "then open a new shell",
            )
        )
    else:
        logged_in = subprocess.run(
            [pulumi, "whoami"], capture_output=True, text=True, timeout=120, check=False
        )
        if logged_in.returncode != 0:
            problems.append(
                Problem(
                    f"Pulumi is not logged in to a state backend ({logged_in.stderr.strip()})",
                    "pulumi login   (Pulumi Cloud; or pulumi login s3://BUCKET for a "
                    "self-managed backend)",
                )
            )
    try:
        session = boto3.Session(profile_name=profile)
    except ProfileNotFound:
        problems.append(
            Problem(
                f"there is no AWS profile {profile!r}",
                f"aws configure sso --profile {profile}   (once), then: {login_fix(profile)}",
            )
        )
        raise PreflightFailed(problems) from None
    region = session.region_name or region
    if not region:
        problems.append(
            Problem(
                "no AWS region is set",
                "export AWS_REGION=eu-west-1   (or aws configure set region eu-west-1"
                + (f" --profile {profile})" if profile else ")"),
            )
        )
    identity = _credentials(session, profile, allow_long_lived, min_validity, env, now, problems)
    if identity is not None and region:
        temporary, expires = identity
        try:
            client = sts or session.client("sts", region_name=region)
            caller = client.get_caller_identity()
        except (ClientError, BotoCoreError) as exc:
            problems.append(Problem(f"AWS refused the session: {exc}", login_fix(profile)))
        else:
            if not problems and pulumi is not None:
                return Session(
                    caller["Account"], caller["Arn"], region, profile, temporary, expires, pulumi
                )
    raise PreflightFailed(problems)


def _credentials(
    session: boto3.Session,
    profile: str | None,
    allow_long_lived: bool,
    min_validity: timedelta,
    env: Mapping[str, str],
    now: datetime,
    problems: list[Problem],
) -> tuple[bool, datetime | None] | None:
    """(temporary, expiry) of usable credentials, or None after recording why not."""
    try:
        credentials = session.get_credentials()
    except (BotoCoreError, ClientError) as exc:  # an expired SSO sign-in fails right here
        problems.append(Problem(f"the AWS sign-in cannot be used: {exc}", login_fix(profile)))
        return None
    if credentials is None:
        problems.append(Problem("no AWS credentials were found", login_fix(profile)))
        return None
    expires = credential_expiry(credentials, env)
    if expires is not None and expires <= now:
        problems.append(
            Problem(
                f"the AWS credentials expired at {expires:%Y-%m-%d %H:%M} UTC", login_fix(profile)
            )
        )
        return None
    if expires is not None and expires - now < min_validity:
        minutes = int((expires - now).total_seconds() // 60)
        problems.append(
            Problem(
                f"the AWS credentials expire in {minutes} min, too soon for a deploy "
                f"(at least {int(min_validity.total_seconds() // 60)} min wanted)",
                login_fix(profile),
            )
        )
        return None
    try:
        frozen_credentials = credentials.get_frozen_credentials()
    except (BotoCoreError, ClientError, RuntimeError) as exc:
        problems.append(
            Problem(f"the AWS credentials cannot be refreshed: {exc}", login_fix(profile))
        )
        return None
    if not frozen_credentials.token:
        if not allow_long_lived:
            problems.append(
                Problem(
                    "these are long-lived access keys (no session token); deploys use temporary "
                    "credentials only",
                    login_fix(profile)
                    + "\nor, deliberately: run again with --allow-long-lived-keys",
                )
            )
            return None
        return False, None
    return True, expires


UNRESERVED_MINIMUM = 100
"""Lambda refuses a reservation that leaves fewer unreserved concurrent executions."""


def concurrency_problem(lambda_client: Any, reserved: int, worker: str) -> Problem | None:
    """Why the account cannot give the worker ``reserved`` concurrent executions, or None.

    Lambda keeps 100 executions unreserved; what the worker already reserves (a redeploy) is
    counted as free, since the deploy only moves it.
    """
    if reserved <= 0:
        return None
    try:
        limits = lambda_client.get_account_settings()["AccountLimit"]
    except (ClientError, BotoCoreError) as exc:
        return Problem(
            f"the account's Lambda limits cannot be read (GetAccountSettings): {exc}",
            "allow lambda:GetAccountSettings to the deploying role",
        )
    total = int(limits["ConcurrentExecutions"])
    unreserved = int(limits.get("UnreservedConcurrentExecutions", total))
    try:
        current = lambda_client.get_function_concurrency(FunctionName=worker)
        already = int(current.get("ReservedConcurrentExecutions") or 0)
    except ClientError:
        already = 0  # no such function yet
    available = unreserved + already - UNRESERVED_MINIMUM
    if reserved <= available:
        return None
    return Problem(
        f"the account allows {total} concurrent Lambda executions ({unreserved} unreserved); "
        f"the worker's reserved concurrency of {reserved} plus the {UNRESERVED_MINIMUM} Lambda "
        f"keeps unreserved needs {reserved + UNRESERVED_MINIMUM - already} unreserved",
        f"lower sweep:workerReservedConcurrency to {max(available, 0)} or less "
        f"(pulumi config set sweep:workerReservedConcurrency N), or ask AWS for more: "
        f"Service Quotas, 'Lambda / Concurrent executions'",
    )
