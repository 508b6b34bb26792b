"""A model's lineage graph at ``/models/{name}/lineage``: sources → datasets → runs →
versions → deployments, laid out server-side in one column per kind (HTML and CSS, with
each node linked to its page and to the nodes it came from)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loopml import api, registry, serving, tracking
from loopml.errors import NotFound
from loopml.server._access import Access
from loopml.server.ui._render import page, render
from loopml.store import Node, Workspace

KINDS = ("source", "dataset_version", "run", "model_version", "deployment")
TITLES = {
    "source": "Sources",
    "dataset_version": "Datasets",
    "run": "Runs",
    "model_version": "Versions",
    "deployment": "Deployments",
}
MAX_VERSIONS = 50  # the newest versions drawn


@dataclass
class GraphNode:
    """One box of the graph: what it is, its label and link, and what it came from."""

    kind: str
    id: str
    label: str
    href: str | None
    inputs: list[tuple[str, str]] = field(default_factory=list)  # (node key, role)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"


def _label_href(node: Node) -> tuple[str, str | None]:
    if node.kind == "run":
        return node.id[:8], f"/runs/{node.id}"
    if node.kind == "dataset_version" and "@" in node.id:
        name, version = node.id.rsplit("@", 1)
        return node.id, f"/datasets/{name}/{version}"
    if node.kind == "model_version" and "/" in node.id:
        name, version = node.id.rsplit("/", 1)
        return f"{name} v{version}", f"/models/{name}#v{version}"
    if node.kind == "deployment":
        return node.id, f"/deployments/{node.id}"
    return node.id, None


def _version_ref(model: str, ref: str) -> str:
    return f"models:/{model}{ref}" if ref.startswith("@") else f"models:/{model}/{ref}"


def lineage_graph(ws: Workspace, model: str) -> list[tuple[str, list[GraphNode]]]:
    """The graph of ``model``'s newest versions, as (column title, nodes) per kind."""
    nodes: dict[str, GraphNode] = {}

    def add(node: Node) -> GraphNode:
        key = str(node)
        if key not in nodes:
            nodes[key] = GraphNode(node.kind, node.id, *_label_href(node))
        return nodes[key]

    for mv in registry.list_versions(ws, model)[-MAX_VERSIONS:]:
        add(Node("model_version", f"{model}/{mv.version}"))
        for edge in api.lineage(f"models:/{model}/{mv.version}", workspace=ws):
            dst = add(edge.dst)
            add(edge.src)
            if (str(edge.src), edge.role) not in dst.inputs:
                dst.inputs.append((str(edge.src), edge.role))
    for deployment in serving.list_deployments(ws):
        if deployment.model != model:
            continue
        box = add(Node("deployment", deployment.name))
        refs = [("primary", deployment.primary), ("candidate", deployment.candidate)]
        for role, ref in refs:
            if ref is None:
                continue
            try:
                mv = registry.get_model_version(ws, _version_ref(model, ref))
            except NotFound:  # an alias moved away or a version gone: nothing to draw
                continue
            box.inputs.append((add(Node("model_version", f"{model}/{mv.version}")).key, role))
    for box in nodes.values():
        if box.kind == "run":
            with contextlib.suppress(NotFound):  # a run id with no run left: its id is shown
                box.label = tracking.get_run(ws, box.id).name or box.label
    order = {kind: i for i, kind in enumerate(KINDS)}
    kinds = sorted({n.kind for n in nodes.values()}, key=lambda k: order.get(k, len(KINDS)))
    columns = [sorted((n for n in nodes.values() if n.kind == kind), key=_sort) for kind in kinds]
    for i in range(len(kinds) - 1, 0, -1):  # upstream of the versions: beside what they feed
        if order.get(kinds[i], 0) <= order["model_version"]:
            rank: dict[str, int] = {}
            for j, fed in enumerate(columns[i]):
                for src, _ in fed.inputs:
                    rank.setdefault(src, j)  # the highest node it feeds
            columns[i - 1].sort(key=lambda n: rank.get(n.key, len(rank)))
    return [(TITLES.get(kind, kind), column) for kind, column in zip(kinds, columns, strict=True)]


def _sort(node: GraphNode) -> tuple[int, str]:
    tail = node.id.rsplit("/", 1)[-1].rsplit("@", 1)[-1]
    return (-int(tail), node.id) if tail.isdigit() else (0, node.id)


async def _lineage(request: Request, ws: Workspace, access: Access) -> Response:
    name = request.path_params["name"]
    await access.named(request, "model", name, "viewer")
    columns = await run_in_threadpool(lineage_graph, ws, name)
    labels = {n.key: n.label for _, col in columns for n in col}
    return render(request, "lineage.html", model=name, columns=columns, labels=labels)


def lineage_routes(ws: Workspace, access: Access) -> list[BaseRoute]:
    """The lineage page."""

    async def endpoint(request: Request) -> Response:
        return await _lineage(request, ws, access)

    return [Route("/models/{name}/lineage", page(endpoint), methods=["GET"])]


__all__ = ["GraphNode", "lineage_graph", "lineage_routes"]
