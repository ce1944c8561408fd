"""The kernel API, for writing a kernel: ``Kernel``, ``KernelSpec``, ``ParamSpec``,
``MetricSpec``, ``KernelError`` and ``PointStreams``.

The same objects as ``sweep_core.kernels``. A kernel package that is deployed to Lambda imports
them from ``sweep_core.kernels``: the functions carry the core, not the SDK.
"""

from __future__ import annotations

from sweep_core.kernels import (
    Arrays,
    Kernel,
    KernelError,
    KernelSpec,
    MetricSpec,
    ParamSpec,
    PointStreams,
)

__all__ = [
    "Arrays",
    "Kernel",
    "KernelError",
    "KernelSpec",
    "MetricSpec",
    "ParamSpec",
    "PointStreams",
]
