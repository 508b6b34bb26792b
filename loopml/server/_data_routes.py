"""``/api/v1`` routes for versioned datasets: list, show, profile, download as Parquet,
create a version from an uploaded Parquet blob, and set an alias.

In a path, ``{version}`` is a version number, ``latest`` or an alias. A new version's
Parquet is uploaded through ``/api/v1/blobs`` first; the server reads it back to compute
the schema, row count, content hash and profile, and checks the client's figures.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute

from loopml import data
from loopml.data import DatasetVersion
from loopml.data._datasets import get_version, store_parquet
from loopml.data._records import version_json
from loopml.data._refs import check_dataset_name, parse_dataset_ref
from loopml.errors import InvalidInput, NotFound
from loopml.server._access import Access
from loopml.server._errors import ApiError
from loopml.server._http import decode_page_token, json_response, page, query_int, read_json
from loopml.server._registry_routes import MAX_VERSION, Text
from loopml.store import Node, Workspace

_DIGEST = r"^[0-9a-f]{64}$"
PARQUET = "application/vnd.apache.parquet"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewDatasetVersion(_Body):
    digest: str = Field(pattern=_DIGEST)
    source: dict[str, Any] = {}
    origins: list[Annotated[Text, Field(min_length=1, max_length=512)]] = []
    derived_from: list[str] = []
    description: Text = ""
    content_hash: str | None = Field(default=None, pattern=_DIGEST)
    num_rows: int | None = Field(default=None, ge=0, strict=True)


class DatasetAlias(_Body):
    version: int = Field(ge=1, le=MAX_VERSION, strict=True)


def _checked(field: str, check: Any, value: str) -> Any:
    try:
        return check(value)
    except InvalidInput as exc:
        raise ApiError(422, "invalid_input", str(exc), field) from None


def dataset_name(request: Request) -> str:
    """The ``{name}`` of the path, checked; 422 naming ``name``."""
    name: str = _checked("name", check_dataset_name, request.path_params["name"])
    return name


def _summary(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "latest_version": int(row.latest_version),
        "num_rows": int(row.num_rows),
        "size_bytes": int(row.size_bytes),
        "created_at": round(row.created_at.timestamp() * 1000),
    }


def data_routes(ws: Workspace) -> list[BaseRoute]:
    """The dataset half of ``/api/v1``."""
    access = ws.component(Access)
    route = access.route("dataset")

    def version_of(request: Request) -> DatasetVersion:
        name = dataset_name(request)
        ref = f"{name}@{request.path_params['version']}"
        _, number, alias = _checked("version", parse_dataset_ref, ref)
        if number is not None and number > MAX_VERSION:
            message = f"version {number}: versions are from 1 to {MAX_VERSION}"
            raise ApiError(422, "invalid_input", message, "version")
        return get_version(ws, name, number, alias)

    async def list_datasets(request: Request) -> Response:
        """List datasets with their latest version, by name"""
        size = query_int(request, "max_results", 100, 1, 1000)
        offset = decode_page_token(request.query_params.get("page_token"))
        frame = await run_in_threadpool(lambda: data.list_datasets(workspace=ws))
        visible = await access.visible(request, "dataset", frame["name"])
        frame = frame[frame["name"].isin(visible)]
        rows = frame.iloc[offset : offset + size + 1].itertuples(index=False)
        return json_response(page("datasets", [_summary(r) for r in rows], offset, size))

    async def list_versions(request: Request) -> Response:
        """List a dataset's versions, oldest first"""
        name = dataset_name(request)
        size = query_int(request, "max_results", 100, 1, 1000)
        offset = decode_page_token(request.query_params.get("page_token"))
        found = await run_in_threadpool(lambda: data.list_versions(name, workspace=ws))
        items = [version_json(v) for v in found[offset : offset + size + 1]]
        return json_response(page("versions", items, offset, size))

    async def create_version(request: Request) -> Response:
        """Record an uploaded Parquet blob as the next version (or the identical one)"""
        name, body = dataset_name(request), await read_json(request, NewDatasetVersion)

        def create() -> DatasetVersion:
            parents = [data.resolve(ref, workspace=ws) for ref in body.derived_from]
            return store_parquet(
                ws,
                name,
                body.digest,
                body.source,
                [Node("source", o) for o in body.origins],
                parents,
                body.description,
                expect_hash=body.content_hash,
                expect_rows=body.num_rows,
            )

        return json_response(version_json(await run_in_threadpool(create)), 201)

    async def show_version(request: Request) -> Response:
        """A version: columns, row count, content hash, Parquet digest, source, profile"""
        return json_response(version_json(await run_in_threadpool(version_of, request)))

    async def profile(request: Request) -> Response:
        """The stored profile of a version (per-column statistics)"""
        dv = await run_in_threadpool(version_of, request)
        if not dv.profile:
            raise NotFound(f"{dv.ref} has no stored profile")
        return json_response(dv.profile)

    async def parquet(request: Request) -> Response:
        """A version's data as Parquet (streamed)"""
        dv = await run_in_threadpool(version_of, request)
        headers = {
            "Content-Length": str(dv.size_bytes),
            "Content-Disposition": f'attachment; filename="{dv.name}@{dv.version}.parquet"',
            "X-Content-SHA256": dv.digest,
        }
        return StreamingResponse(ws.blobs._chunks(dv.digest), media_type=PARQUET, headers=headers)

    async def put_alias(request: Request) -> Response:
        """Point a dataset alias at a version"""
        name = dataset_name(request)
        alias: str = _checked("alias", check_dataset_name, request.path_params["alias"])
        body = await read_json(request, DatasetAlias)
        dv = await run_in_threadpool(
            lambda: data.set_alias(name, alias, body.version, workspace=ws)
        )
        return json_response(version_json(dv))

    dataset = "/api/v1/datasets/{name}"
    version = dataset + "/versions/{version}"
    paged = ("max_results", "page_token")
    return [
        route("/api/v1/datasets", list_datasets, methods=["GET"], query=paged),
        route(dataset + "/versions", list_versions, methods=["GET"], query=paged),
        route(dataset + "/versions", create_version, methods=["POST"], body=NewDatasetVersion),
        route(version, show_version, methods=["GET"]),
        route(version + "/profile", profile, methods=["GET"]),
        route(version + "/parquet", parquet, methods=["GET"]),
        route(dataset + "/aliases/{alias}", put_alias, methods=["PUT"], body=DatasetAlias),
    ]


__all__ = ["data_routes"]
