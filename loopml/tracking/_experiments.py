"""Experiments: named groups of runs, created on first use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from loopml.errors import InvalidInput, NotFound
from loopml.store import Workspace, now_ms
from loopml.store.schema import experiments, runs


@dataclass(frozen=True)
class Experiment:
    """A named group of runs."""

    id: int
    name: str
    created_at: datetime
    project: str = "default"


def check_name(value: object, what: str, *, max_len: int = 256) -> str:
    """``value`` if it is a usable name, else InvalidInput saying why."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > max_len:
        raise InvalidInput(f"{what} is {len(value)} characters long; the limit is {max_len}")
    return value


def to_datetime(ms: int | None) -> datetime | None:
    """Integer epoch milliseconds as an aware UTC datetime."""
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _row_to_experiment(row: sa.Row[Any]) -> Experiment:
    created = to_datetime(row.created_at) or datetime.now(UTC)
    return Experiment(row.id, row.name, created, row.project)


def _from_json(body: dict[str, Any]) -> Experiment:
    return Experiment(
        body["id"], body["name"], to_datetime(body["created_at"]) or datetime.now(UTC)
    )


def get_experiment(ws: Workspace, name: str) -> Experiment:
    """The experiment called ``name``; NotFound lists the ones that exist."""
    check_name(name, "experiment name")
    if ws.remote is not None:
        return _from_json(ws.remote.get(f"/api/v1/experiments/{quote(name, safe='')}"))
    with ws.db.read() as conn:
        row = conn.execute(sa.select(experiments).where(experiments.c.name == name)).first()
        if row is None:
            known = conn.execute(sa.select(experiments.c.name).order_by(experiments.c.name))
            names = ", ".join(known.scalars()) or "none yet"
            raise NotFound(f"no experiment named {name!r} (experiments: {names})")
    return _row_to_experiment(row)


def get_or_create_experiment(ws: Workspace, name: str, project: str | None = None) -> Experiment:
    """The experiment called ``name``, created if it does not exist yet (in ``project``,
    default the workspace's ``project`` setting)."""
    check_name(name, "experiment name")
    project = check_name(project or ws.settings.project, "project")
    if ws.remote is not None:
        body = {"name": name, "project": project, "exist_ok": True}
        return _from_json(ws.remote.post("/api/v1/experiments", body))
    with ws.db.read() as conn:
        row = conn.execute(sa.select(experiments).where(experiments.c.name == name)).first()
    if row is not None:
        return _row_to_experiment(row)
    try:
        with ws.db.write() as conn:
            conn.execute(
                experiments.insert().values(name=name, project=project, created_at=now_ms())
            )
    except IntegrityError:
        pass  # created by someone else meanwhile
    return get_experiment(ws, name)


class ExperimentCache:
    """Experiments by name, remembered per workspace (experiments are never renamed)."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws
        self._known: dict[str, Experiment] = {}

    def get(self, name: str) -> Experiment:
        """Like :func:`get_experiment`, without a query after the first time."""
        found = self._known.get(name)
        if found is None:
            found = self._known[name] = get_experiment(self._ws, name)
        return found

    def get_or_create(self, name: str) -> Experiment:
        """Like :func:`get_or_create_experiment`, without a query after the first time."""
        found = self._known.get(name)
        if found is None:
            found = self._known[name] = get_or_create_experiment(self._ws, name)
        return found

    def close(self) -> None:
        """Nothing to release."""


def list_experiments(ws: Workspace) -> list[tuple[Experiment, int]]:
    """Every experiment with its number of runs, by name."""
    if ws.remote is not None:
        found = ws.remote.pages("/api/v1/experiments", "experiments")
        return [(_from_json(e), int(e["n_runs"])) for e in found]
    query = (
        sa.select(experiments, sa.func.count(runs.c.id).label("n_runs"))
        .select_from(experiments.outerjoin(runs, runs.c.experiment_id == experiments.c.id))
        .group_by(experiments.c.id)
        .order_by(experiments.c.name)
    )
    with ws.db.read() as conn:
        return [(_row_to_experiment(r), r.n_runs) for r in conn.execute(query)]
