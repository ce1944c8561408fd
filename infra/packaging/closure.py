"""The code zip's modules: the first-party modules reachable by import from the Lambda entry
module and the built-in kernels (which the registry loads by name, so no import reaches them),
and the third-party names they import. The CLI, client, reports, tests and the Pulumi program
are never reachable from there, and the build fails if they are."""

from __future__ import annotations

import ast
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from attrs import field, frozen

from infra.packaging.errors import BuildError

ENTRY_MODULE = "runtime.lambda_entry"
HANDLERS = {
    "parent": "runtime.lambda_entry.parent",
    "worker": "runtime.lambda_entry.worker",
    "failure_recorder": "runtime.lambda_entry.failure_recorder",
}
FIRST_PARTY = ("runtime", "sweep_core", "sweep_kernels", "sweep_sdk")
NEVER_IN_CODE = frozenset({"sweep_sdk", "infra", "tests", "scripts"})
"""First-party modules that must not be reachable from the handlers."""
NEVER_IMPORTED = frozenset(
    {"pulumi", "pulumi_aws", "matplotlib", "duckdb", "sqlglot", "tqdm", "pytest", "moto"}
)
"""Third-party packages the handlers must not import (CLI, reports, Pulumi, tests)."""
DATA_SUFFIXES = (".sql",)
"""Files beside the modules that the code reads at run time (the shipped queries)."""


@frozen
class ImportFound:
    module: str
    lazy: bool
    """Inside a function body: runs only when the function does."""


@frozen
class CodeClosure:
    modules: dict[str, Path]
    """First-party module name → source file."""
    third_party: dict[str, bool]
    """Top-level third-party name → imported only lazily (inside functions)."""
    parents: dict[str, str] = field(factory=dict)
    """How each module was reached: module → the module that imported it."""

    def chain(self, module: str) -> str:
        names = [module]
        while names[-1] in self.parents:
            names.append(self.parents[names[-1]])
        return " ← ".join(names)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def find_imports(source: str, module: str, is_package: bool) -> list[ImportFound]:
    """Every module name ``source`` may import at run time (``if TYPE_CHECKING`` excluded).

    ``from a import b`` yields both ``a`` and ``a.b``: the caller keeps ``a.b`` only if it is a
    module. Relative imports are resolved against ``module``.
    """
    found: list[ImportFound] = []
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST, lazy: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.orelse:
                visit(statement, lazy)
            return
        if isinstance(node, ast.Import):
            found.extend(ImportFound(alias.name, lazy) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: -(node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found.append(ImportFound(base, lazy))
            found.extend(ImportFound(f"{base}.{alias.name}", lazy) for alias in node.names)
        inner = lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(source), False)
    return found


def _module_file(root: Path, name: str) -> Path | None:
    base = root.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def code_roots(root: Path) -> tuple[str, ...]:
    """The modules the code zip starts from: the entry module, and the modules of the kernels
    the project registers as ``sweep.kernels`` entry points (the registry imports them; no
    import reaches them)."""
    from infra.packaging.kernels import kernel_modules

    return (ENTRY_MODULE, *kernel_modules(root))


def code_closure(root: Path, entries: Sequence[str] | None = None) -> CodeClosure:
    """The first-party modules reachable by import from ``entries`` (``code_roots()``), and
    what else they import."""
    modules: dict[str, Path] = {}
    parents: dict[str, str] = {}
    third_party: dict[str, bool] = {}
    queue = list(code_roots(root) if entries is None else entries)
    while queue:
        name = queue.pop()
        if name in modules:
            continue
        path = _module_file(root, name)
        if path is None:
            raise BuildError(f"module {name} not found under {root}")
        modules[name] = path
        # importing a.b.c runs a/__init__ and a/b/__init__ first
        wanted = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        for found in find_imports(path.read_text(), name, path.name == "__init__.py"):
            top = found.module.split(".")[0]
            if top in FIRST_PARTY:
                if _module_file(root, found.module) is not None:
                    wanted.append(found.module)
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                third_party[top] = third_party.get(top, True) and found.lazy
        for other in wanted:
            if other not in modules:
                parents.setdefault(other, name)
                queue.append(other)
    closure = CodeClosure(modules, third_party, parents)
    problems = [
        f"{module} is imported by the handlers ({closure.chain(module)})"
        for module in sorted(modules)
        if any(module == bad or module.startswith(bad + ".") for bad in NEVER_IN_CODE)
    ] + [f"the handlers import {name}" for name in sorted(NEVER_IMPORTED & set(third_party))]
    if problems:
        listed = "\n  ".join(problems)
        raise BuildError(f"the code zip would hold what never belongs in Lambda:\n  {listed}")
    _check_handlers(modules)
    return closure


def _check_handlers(modules: Mapping[str, Path]) -> None:
    for handler in HANDLERS.values():
        module, _, function = handler.rpartition(".")
        tree = ast.parse(modules[module].read_text())
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        if function not in names:
            raise BuildError(f"handler {handler} is not a function of {module}")


def code_files(closure: CodeClosure, root: Path) -> list[Path]:
    """The files of the code zip: the closure's modules and the data files beside them."""
    files = set(closure.modules.values())
    for folder in {path.parent for path in closure.modules.values()}:
        files |= {p for p in folder.iterdir() if p.suffix in DATA_SUFFIXES and p.is_file()}
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())
