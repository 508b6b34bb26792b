"""Who may do what: the project of each experiment and run, checked against the caller's
roles (see :class:`~loopml.server._users.Principal`).

Experiments never change project and runs never change experiment, so both lookups are
remembered for the life of the server. With auth off every caller is an admin and no
lookup is made.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any, Literal

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from loopml.errors import NotFound
from loopml.server._auth import principal
from loopml.server._openapi import ApiRoute
from loopml.server._users import Principal, Role
from loopml.store import Workspace
from loopml.store.schema import (
    DEFAULT_PROJECT,
    datasets,
    deployments,
    experiments,
    models,
    monitors,
    runs,
)

Kind = Literal["model", "dataset", "deployment", "monitor"]
Endpoint = Callable[[Request], Awaitable[Response]]


class Access:
    """Project lookups and role checks for one workspace (one per workspace, shared by
    every route module: ``ws.component(Access)``)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.experiment_project = lru_cache(maxsize=10_000)(self._experiment_project)
        self.experiment_id_project = lru_cache(maxsize=10_000)(self._experiment_id_project)
        self.run_project = lru_cache(maxsize=100_000)(self._run_project)
        self.model_project = lru_cache(maxsize=10_000)(self._model_project)
        self.dataset_project = lru_cache(maxsize=10_000)(self._dataset_project)

    def close(self) -> None:
        """Nothing to release."""

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

    def _model_project(self, name: str) -> str:
        q = sa.select(models.c.project).where(models.c.name == name)
        return self._one(q, f"no registered model named {name!r}")

    def _dataset_project(self, name: str) -> str:
        q = sa.select(datasets.c.project).where(datasets.c.name == name)
        return self._one(q, f"no dataset named {name!r}")

    def deployment_project(self, name: str) -> str:
        """The project of the model a deployment serves (not cached: deployments change)."""
        q = sa.select(deployments.c.model).where(deployments.c.name == name)
        return self.model_project(self._one(q, f"no deployment named {name!r}"))

    def monitor_project(self, name: str) -> str:
        """The project of the model a monitor's deployment serves."""
        q = sa.select(monitors.c.deployment).where(monitors.c.name == name)
        return self.deployment_project(self._one(q, f"no monitor named {name!r}"))

    def project_of(self, kind: Kind, name: str) -> str:
        """The project of a model, dataset, deployment or monitor; a model or dataset
        that does not exist yet would be made in the default project."""
        lookups: dict[str, Callable[[str], str]] = {
            "model": self.model_project,
            "dataset": self.dataset_project,
            "deployment": self.deployment_project,
            "monitor": self.monitor_project,
        }
        try:
            return lookups[kind](name)
        except NotFound:
            if kind in ("model", "dataset"):
                return DEFAULT_PROJECT
            raise

    async def named(self, request: Request, kind: Kind, name: str, role: Role) -> None:
        """Forbidden unless the caller has ``role`` in the project of ``kind`` ``name``."""
        who = principal(request)
        if not who.is_admin:
            who.require(await run_in_threadpool(self.project_of, kind, name), role)

    async def visible(self, request: Request, kind: Kind, names: Iterable[str]) -> set[str]:
        """Those of ``names`` (of ``kind``) the caller may see."""
        names = list(names)
        projects = principal(request).visible_projects()
        if projects is None:
            return set(names)

        def pick() -> set[str]:
            found = set()
            for name in names:
                with contextlib.suppress(NotFound):
                    if self.project_of(kind, name) in projects:
                        found.add(name)
            return found

        return await run_in_threadpool(pick)

    def route(self, kind: Kind) -> Callable[..., ApiRoute]:
        """An :class:`ApiRoute` maker whose routes with ``{name}`` in the path check the
        caller's role in that resource's project first: viewer to read, editor to write."""

        def make(path: str, endpoint: Endpoint, *, methods: Sequence[str], **kw: Any) -> ApiRoute:
            if "{name}" not in path:
                return ApiRoute(path, endpoint, methods=methods, **kw)
            role: Role = "viewer" if set(methods) <= {"GET", "HEAD"} else "editor"

            @functools.wraps(endpoint)
            async def checked(request: Request) -> Response:
                await self.named(request, kind, request.path_params["name"], role)
                return await endpoint(request)

            return ApiRoute(path, checked, methods=methods, **kw)

        return make

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
