"""Lineage: one generic edge table, ``(src_kind, src_id) -> (dst_kind, dst_id, role)``.

Services record edges as they create things (a dataset version feeds a run, a run
produces a model version); "which data trained production?" is a walk upstream.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loopml.store.db import MetadataDB, now_ms
from loopml.store.schema import lineage as lineage_table


@dataclass(frozen=True)
class Node:
    """Something lineage can point at: ``Node("run", "ab12...")``."""

    kind: str
    id: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True)
class Edge:
    """``src`` was used as ``role`` to make ``dst``."""

    src: Node
    dst: Node
    role: str

    def __str__(self) -> str:
        return f"{self.src} --{self.role}--> {self.dst}"


def add_edge(db: MetadataDB, conn: Connection, src: Node, dst: Node, role: str) -> None:
    """Record that ``src`` was used as ``role`` to make ``dst`` (idempotent)."""
    row = {
        "src_kind": src.kind,
        "src_id": src.id,
        "dst_kind": dst.kind,
        "dst_id": dst.id,
        "role": role,
        "created_at": now_ms(),
    }
    db.upsert(conn, lineage_table, [row], keys=["src_kind", "src_id", "dst_kind", "dst_id", "role"])


def upstream(db: MetadataDB, node: Node, *, max_depth: int = 50) -> list[Edge]:
    """Every edge reachable by walking upstream from ``node``, nearest first."""
    t = lineage_table
    edges: list[Edge] = []
    seen = {node}
    frontier = [node]
    with db.read() as conn:
        for _ in range(max_depth):
            if not frontier:
                break
            cond = sa.or_(*(sa.and_(t.c.dst_kind == n.kind, t.c.dst_id == n.id) for n in frontier))
            rows = conn.execute(
                sa.select(t.c.src_kind, t.c.src_id, t.c.dst_kind, t.c.dst_id, t.c.role)
                .where(cond)
                .order_by(t.c.id)
            ).all()
            frontier = []
            for r in rows:
                src = Node(r.src_kind, r.src_id)
                edges.append(Edge(src, Node(r.dst_kind, r.dst_id), r.role))
                if src not in seen:
                    seen.add(src)
                    frontier.append(src)
    return edges
