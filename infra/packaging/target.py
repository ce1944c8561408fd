"""What the artifacts are built for: a Lambda Python runtime on one instruction set."""

from __future__ import annotations

from attrs import frozen

from infra.packaging.errors import BuildError

# The newest glibc of the Amazon Linux a Lambda Python runtime runs on: python3.12 and later run
# on Amazon Linux 2023 (glibc 2.34), python3.11 on Amazon Linux 2 (glibc 2.26).
RUNTIME_GLIBC = {"3.11": 26, "3.12": 34, "3.13": 34, "3.14": 34}
MACHINES = {"x86_64": "x86_64", "arm64": "aarch64"}


@frozen
class Target:
    """A Lambda runtime and instruction set: ``Target("x86_64", "3.12")``."""

    arch: str
    python: str

    def __attrs_post_init__(self) -> None:
        if self.arch not in MACHINES:
            raise BuildError(f"architecture must be one of {sorted(MACHINES)}, not {self.arch!r}")
        if self.python not in RUNTIME_GLIBC:
            raise BuildError(
                f"Python version must be one of {sorted(RUNTIME_GLIBC)}, not {self.python!r}"
            )

    @classmethod
    def from_runtime(cls, arch: str, runtime: str) -> Target:
        """``Target.from_runtime("arm64", "python3.12")``."""
        return cls(arch, runtime.removeprefix("python"))

    @property
    def runtime(self) -> str:
        return f"python{self.python}"

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    @property
    def machine(self) -> str:
        return MACHINES[self.arch]

    @property
    def platforms(self) -> tuple[str, ...]:
        """Every manylinux tag the runtime's glibc runs, newest first (pip expands none)."""
        newest = RUNTIME_GLIBC[self.python]
        tags = [f"manylinux_2_{minor}_{self.machine}" for minor in range(newest, 16, -1)]
        return (*tags, f"manylinux2014_{self.machine}")

    @property
    def name(self) -> str:
        return f"{self.arch}-py{self.python}"
