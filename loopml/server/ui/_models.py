"""UI pages for the registry: models, a model's versions, and moving an alias.

Moving an alias takes two POSTs to ``/models/{name}/aliases``: the first shows what will
change and asks to confirm, the second (``confirm=yes``) moves it. Both need the editor
role in the model's project and a same-origin request (see :func:`same_origin`).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from loopml import registry
from loopml.errors import Forbidden, InvalidInput
from loopml.registry._registry import get_model
from loopml.registry._uri import check_alias
from loopml.server._access import Access
from loopml.server._auth import principal, same_origin
from loopml.server.ui._render import page, render
from loopml.store import Workspace


class ModelPages:
    """The registry pages over one workspace."""

    def __init__(self, ws: Workspace, access: Access) -> None:
        self.ws = ws
        self.access = access

    async def models(self, request: Request) -> Response:
        found = await run_in_threadpool(registry.list_models, self.ws)
        visible = await self.access.visible(request, "model", [m.name for m in found])
        return render(request, "models.html", models=[m for m in found if m.name in visible])

    async def _can_edit(self, request: Request, name: str) -> bool:
        project = await run_in_threadpool(self.access.project_of, "model", name)
        return principal(request).can(project, "editor")

    async def model(self, request: Request) -> Response:
        name = request.path_params["name"]
        await self.access.named(request, "model", name, "viewer")
        model = await run_in_threadpool(get_model, self.ws, name)
        versions = await run_in_threadpool(registry.list_versions, self.ws, name)
        return render(
            request,
            "model.html",
            model=model,
            versions=list(reversed(versions)),
            can_edit=await self._can_edit(request, name),
        )

    async def move_alias(self, request: Request) -> Response:
        """Ask to confirm an alias move, or (with ``confirm=yes``) make it."""
        name = request.path_params["name"]
        if not same_origin(request.scope):
            raise Forbidden("a change from the web UI must come from this server's pages")
        await self.access.named(request, "model", name, "editor")
        form = await request.form()
        alias = str(form.get("alias", "")).strip()
        try:
            version = int(str(form.get("version", "")))
        except ValueError:
            raise InvalidInput("version must be a version number") from None
        check_alias(alias)
        model = await run_in_threadpool(get_model, self.ws, name)
        if form.get("confirm") != "yes":
            target = await run_in_threadpool(registry.get_model_version, self.ws, name, version)
            return render(
                request,
                "alias_confirm.html",
                model=model,
                alias=alias,
                version=target,
                current=model.aliases.get(alias),
            )
        await run_in_threadpool(registry.set_alias, self.ws, name, alias, version)
        return RedirectResponse(f"/models/{name}", 303)


def model_routes(ws: Workspace, access: Access) -> list[BaseRoute]:
    """The registry pages."""
    pages = ModelPages(ws, access)
    return [
        Route("/models", page(pages.models), methods=["GET"]),
        Route("/models/{name}", page(pages.model), methods=["GET"]),
        Route("/models/{name}/aliases", page(pages.move_alias), methods=["POST"]),
    ]


__all__ = ["ModelPages", "model_routes"]
