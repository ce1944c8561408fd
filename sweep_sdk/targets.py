"""Which target a call names, decided before anything heavy is imported (``sweep run`` starts
the embedded runner first). Standard library only."""

from __future__ import annotations

import os
from collections.abc import Mapping

API_URL_ENV = "SWEEP_API_URL"
"""Set, it names the deployed stack that calls without a target or data folder go to."""


def embedded_chosen(target: object, data_dir: object, env: Mapping[str, str] = os.environ) -> bool:
    """Whether ``target`` (as ``submit`` takes it) names the embedded target: ``"embedded"``,
    or nothing while a data folder is given or ``SWEEP_API_URL`` is unset."""
    if target == "embedded":
        return True
    return target is None and (data_dir is not None or not env.get(API_URL_ENV))
