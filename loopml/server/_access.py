"""Who may do what: the project of each experiment and run, checked against the caller's
roles (see :class:`~loopml.server._auth.Principal`).

Experiments never change project and runs never change experiment, so both lookups are
remembered for the life of the server. With auth off every caller is an admin and no
lookup is made.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from loopml.errors import NotFound
from loopml.server._auth import Principal, Role, principal
from loopml.store import Workspace
from loopml.store.schema import experiments, runs


class Access:
    """Project lookups and role checks for one workspace."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.experiment_project = lru_cache(maxsize=10_000)(self._experiment_project)
        self.experiment_id_project = lru_cache(maxsize=10_000)(self._experiment_id_project)
        self.run_project = lru_cache(maxsize=100_000)(self._run_project)

    def _one(self, query: sa.Select[Any], missing: str) -> str:
        with self.ws.db.read() as conn:
            found = conn.execute(query).scalar()
        if found is None:
            raise NotFound(missing)
        return str(found)

    def _experiment_project(self, name: str) -> str:
        q = sa.select(experiments.c.project).where(experiments.c.name == name)
        return self._one(q, f"no experiment named {name!r}")

    def _experiment_id_project(self, experiment_id: int) -> str:
        q = sa.select(experiments.c.project).where(experiments.c.id == experiment_id)
        return self._one(q, f"no experiment with id {experiment_id}")

    def _run_project(self, run_id: str) -> str:
        q = (
            sa.select(experiments.c.project)
            .join(runs, runs.c.experiment_id == experiments.c.id)
            .where(runs.c.id == run_id)
        )
        return self._one(q, f"no run with id {run_id!r}")

    @staticmethod
    def who(request: Request) -> Principal:
        """The caller."""
        return principal(request)

    async def run(self, request: Request, run_id: str, role: Role) -> None:
        """Forbidden unless the caller has ``role`` in the run's project."""
        who = principal(request)
        if not who.is_admin:
            who.require(await run_in_threadpool(self.run_project, run_id), role)

    async def experiment(self, request: Request, name: str, role: Role) -> None:
        """Forbidden unless the caller has ``role`` in the experiment's project."""
        who = principal(request)
        if not who.is_admin:
            who.require(await run_in_threadpool(self.experiment_project, name), role)

    def segment(self, who: Principal, run_id: str, experiment_id: int | None) -> None:
        """Forbidden unless ``who`` may write run ``run_id`` (or create it in the
        experiment ``experiment_id``); runs in a worker thread."""
        if who.is_admin:
            return
        try:
            project = self.run_project(run_id)
        except NotFound:
            if experiment_id is None:
                raise
            project = self.experiment_id_project(experiment_id)
        who.require(project, "editor")

    async def visible_experiments(self, request: Request) -> list[str] | None:
        """Names of the experiments the caller may see; None when they may see all."""
        projects = principal(request).visible_projects()
        if projects is None:
            return None

        def names() -> list[str]:
            with self.ws.db.read() as conn:
                query = sa.select(experiments.c.name).where(
                    experiments.c.project.in_(sorted(projects))
                )
                return list(conn.execute(query).scalars())

        return await run_in_threadpool(names)


__all__ = ["Access"]
