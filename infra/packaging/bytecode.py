"""Byte-compiling a staged tree for the target runtime, so a cold start loads ``.pyc`` instead of
compiling numpy's and pyarrow's sources. The ``.pyc`` are unchecked-hash (Python never stats the
source to validate them; rebuilds stay byte-identical), compiled by an interpreter of the
target's version (bytecode is specific to it) with a fixed hash seed (set constants are written
in hash order), and name the path Lambda unpacks to (``/opt`` or ``/var/task``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from infra.packaging.errors import BuildError
from infra.packaging.target import Target

PYTHON_ENV = "SWEEP_BUILD_PYTHON"
"""Names the interpreter to byte-compile with, when none of the target's version is found."""


def find_python(target: Target, env: Mapping[str, str] | None = None) -> Path:
    """An interpreter of ``target``'s Python version: ``$SWEEP_BUILD_PYTHON``, this one, a
    ``python3.X`` on ``PATH``, or a pyenv install.

    Raises
    ------
    BuildError
        None found, or the one named is of another version.
    """
    env = os.environ if env is None else env
    named = env.get(PYTHON_ENV)
    candidates: list[Path] = []
    if named:
        candidates.append(Path(named))
    elif f"{sys.version_info.major}.{sys.version_info.minor}" == target.python:
        return Path(sys.executable)
    else:
        found = shutil.which(f"python{target.python}", path=env.get("PATH"))
        if found:
            candidates.append(Path(found))
        pyenv = Path(env.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
        candidates += sorted(pyenv.glob(f"{target.python}.*/bin/python"), reverse=True)
    for candidate in candidates:
        if _version(candidate) == target.python:
            return candidate
    where = f"{PYTHON_ENV}={named}" if named else f"python{target.python} on PATH or in pyenv"
    raise BuildError(
        f"byte-compiling for {target.runtime} needs a Python {target.python} interpreter: "
        f"none found ({where}); install Python {target.python}, or set {PYTHON_ENV} to one"
    )


def _version(python: Path) -> str | None:
    try:
        result = subprocess.run(
            [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def compile_tree(
    python: Path, root: Path, files: Mapping[str, int], unpacked_at: str
) -> dict[str, int]:
    """Byte-compile every ``.py`` of ``files`` (relative to ``root``) and return ``files`` with
    the ``.pyc`` added beside them in ``__pycache__``.

    ``unpacked_at`` is where Lambda puts ``root`` (``/opt`` for a layer, ``/var/task`` for the
    code): tracebacks then name the files where they are.
    """
    sources = sorted(name for name in files if name.endswith(".py"))
    if not sources:
        return dict(files)
    listing = root / ".compile-list"
    listing.write_text("\n".join(str(root / name) for name in sources) + "\n")
    command = [
        str(python), "-s", "-m", "compileall", "-q", "-j", "0",
        "--invalidation-mode", "unchecked-hash", "-s", str(root), "-p", unpacked_at,
        "-i", str(listing),
    ]  # fmt: skip
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "0"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    listing.unlink()
    if result.returncode != 0:
        raise BuildError(
            f"byte-compiling {root} failed:\n{(result.stdout + result.stderr).strip()[-4000:]}"
        )
    tag = f"cpython-{''.join(_version_parts(python))}"
    compiled = dict(files)
    for name in sources:
        folder, _, module = name.rpartition("/")
        pyc = f"{folder}/__pycache__/{module[:-3]}.{tag}.pyc".lstrip("/")
        if not (root / pyc).is_file():
            raise BuildError(f"compileall wrote no {pyc}")
        compiled[pyc] = 0o644
    return compiled


def _version_parts(python: Path) -> list[str]:
    version = _version(python)
    if version is None:
        raise BuildError(f"{python} does not run")
    return version.split(".")
