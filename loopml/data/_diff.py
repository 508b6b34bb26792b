"""Comparing two dataset versions: schema changes, row counts, per-column statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from loopml.data._datasets import DatasetVersion, resolve
from loopml.store import Workspace, default_workspace

STATS = ("null_fraction", "distinct", "min", "max", "mean", "std")


@dataclass(frozen=True)
class DatasetDiff:
    """What changed from version ``a`` to version ``b``."""

    a: str
    b: str
    rows: tuple[int, int]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    retyped: tuple[tuple[str, str, str], ...]  # (column, type in a, type in b)
    stats: pd.DataFrame  # column, stat, a, b, change

    @property
    def schema_changed(self) -> bool:
        """Whether columns were added, removed or changed type."""
        return bool(self.added or self.removed or self.retyped)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "a": self.a,
            "b": self.b,
            "rows": list(self.rows),
            "added": list(self.added),
            "removed": list(self.removed),
            "retyped": [list(r) for r in self.retyped],
            "stats": self.stats.to_dict(orient="records"),
        }


def diff(
    a: str | DatasetVersion, b: str | DatasetVersion, *, workspace: Workspace | None = None
) -> DatasetDiff:
    """Compare two versions using their stored schemas and profiles (no data is read)."""
    ws = workspace or default_workspace()
    va, vb = resolve(a, workspace=ws), resolve(b, workspace=ws)
    types_a = {c.name: c.arrow_type for c in va.columns}
    types_b = {c.name: c.arrow_type for c in vb.columns}
    records = []
    for column in (c for c in types_a if c in types_b):
        pa_, pb = va.profile["columns"][column], vb.profile["columns"][column]
        for stat in STATS:
            x, y = pa_.get(stat), pb.get(stat)
            if x is None and y is None:
                continue
            change = y - x if isinstance(x, int | float) and isinstance(y, int | float) else None
            if x != y:
                records.append({"column": column, "stat": stat, "a": x, "b": y, "change": change})
    return DatasetDiff(
        a=va.ref,
        b=vb.ref,
        rows=(va.num_rows, vb.num_rows),
        added=tuple(c for c in types_b if c not in types_a),
        removed=tuple(c for c in types_a if c not in types_b),
        retyped=tuple(
            (c, types_a[c], types_b[c])
            for c in types_a
            if c in types_b and types_a[c] != types_b[c]
        ),
        stats=pd.DataFrame(records, columns=["column", "stat", "a", "b", "change"]),
    )
