"""What a target answers by reading its results layout through its store: the same for the
embedded target's data folder and a deployed stack's bucket."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sweep_core.run_index import find_run_id
from sweep_core.runs import (
    CommitProblem,
    PointsCommit,
    find_manifest,
    points_table_of,
    read_committed,
    verify_points,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from sweep_core.contract import RunManifest
    from sweep_core.layout import Layout
    from sweep_core.ports import ObjectStore


class LayoutReader:
    """Manifest, run names, committed results and their verification; a target supplies
    ``store``, ``layout``, ``location`` and how it finds a run's ``committed`` objects."""

    if TYPE_CHECKING:
        layout: Layout

        @property
        def store(self) -> ObjectStore: ...

        @property
        def location(self) -> str: ...

        def committed(self, manifest: RunManifest) -> list[PointsCommit]: ...

    def manifest(self, run_id: str) -> RunManifest:
        return find_manifest(self.store, self.layout, run_id, self.location)

    def resolve(self, ref: str) -> str:
        """The run id ``ref`` names: an id, ``latest``, or a unique prefix of an id."""
        return find_run_id(self.store, self.layout, ref)

    def results(self, manifest: RunManifest) -> pa.Table:
        """The committed points, each object checked against its commit (``CommitError``)."""
        from sweep_core.kernels import points_schema  # numpy: results need the kernel's schema

        commits = self.committed(manifest)
        bodies = read_committed(self.store, manifest.run_id, commits)
        schema = points_schema(manifest.spec.kernel)
        return points_table_of(bodies, schema, manifest.run_id, commits)

    def verify(self, manifest: RunManifest) -> list[CommitProblem]:
        """Every committed object that does not match its commit."""
        from sweep_core.kernels import points_schema

        schema = points_schema(manifest.spec.kernel)
        return verify_points(self.store, schema, manifest.run_id, self.committed(manifest))
