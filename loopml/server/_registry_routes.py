"""``/api/v1`` routes for the model registry: models, versions, aliases, tags,
descriptions, model URIs and lineage.

A version is created from a package whose blobs were uploaded through ``/api/v1/blobs``
first; the server checks the package is whole and is what the posted row says. In a path,
``{version}`` is a version number, ``latest`` or an alias.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from loopml import api, registry
from loopml.errors import InvalidInput, LoopmlError
from loopml.registry import ModelVersion, Signature
from loopml.registry._package import package_info
from loopml.registry._records import model_json, version_json
from loopml.registry._registry import get_model, register_package
from loopml.registry._uri import LATEST, check_alias, check_name, parse_model_uri
from loopml.server._access import Access
from loopml.server._errors import ApiError
from loopml.server._http import decode_page_token, json_response, page, query_int, read_json
from loopml.store import Edge, Workspace

_DIGEST = r"^[0-9a-f]{64}$"
_NUMBER = re.compile(r"^[+-]?[0-9]+$")
MAX_VERSION = 2**31 - 1  # the version columns are 32-bit integers


def storable(text: str) -> str:
    """``text`` if a database can store it: no NUL character, no lone surrogate."""
    if "\x00" in text:
        raise ValueError("must not contain the NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid UTF-8 text") from None
    return text


Text = Annotated[str, AfterValidator(storable)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewModelVersion(_Body):
    package_digest: str = Field(pattern=_DIGEST)
    flavor: Text = Field(min_length=1, max_length=64)
    signature: dict[str, Any]
    run_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    description: Text = ""
    tags: dict[Text, Text] = {}


class AliasTarget(_Body):
    version: int = Field(ge=1, le=MAX_VERSION, strict=True)


class Description(_Body):
    description: Text


class ModelTags(_Body):
    tags: dict[Text, Text]


def _invalid(field: str, exc: InvalidInput) -> ApiError:
    return ApiError(422, "invalid_input", str(exc), field)


def model_name(request: Request) -> str:
    """The ``{name}`` of the path, checked; 422 naming ``name``."""
    try:
        return check_name(request.path_params["name"])
    except InvalidInput as exc:
        raise _invalid("name", exc) from None


def alias_name(request: Request) -> str:
    """The ``{alias}`` of the path, checked; 422 naming ``alias``."""
    try:
        return check_alias(request.path_params["alias"])
    except InvalidInput as exc:
        raise _invalid("alias", exc) from None


def version_uri(name: str, ref: str) -> str:
    """The model URI of ``ref`` (a number, ``latest`` or an alias); 422 naming ``version``."""
    if ref == LATEST:
        return f"models:/{name}"
    if _NUMBER.match(ref):
        if not 1 <= int(ref) <= MAX_VERSION:
            message = f"version {ref!r}: versions are from 1 to {MAX_VERSION}"
            raise ApiError(422, "invalid_input", message, "version")
        return f"models:/{name}/{int(ref)}"
    try:
        return f"models:/{name}@{check_alias(ref)}"
    except InvalidInput as exc:
        raise _invalid("version", exc) from None


def edge_json(edge: Edge) -> dict[str, Any]:
    """A lineage edge as the API shows it."""
    return {
        "src": {"kind": edge.src.kind, "id": edge.src.id},
        "dst": {"kind": edge.dst.kind, "id": edge.dst.id},
        "role": edge.role,
    }


def _shown(ws: Workspace, mv: ModelVersion) -> dict[str, Any]:
    """A version with its package's files and metadata (or why they cannot be read)."""
    try:
        package = package_info(ws, mv.package_digest)
    except LoopmlError as exc:
        package = {"digest": mv.package_digest, "files": None, "metadata": None, "error": str(exc)}
    return {**version_json(mv), "package": package}


def _uri_query(request: Request) -> str:
    uri = request.query_params.get("uri")
    if not uri:
        raise ApiError(
            422, "invalid_input", "uri is required, e.g. uri=models:/churn@production", "uri"
        )
    try:
        parse_model_uri(uri)
    except InvalidInput as exc:
        raise _invalid("uri", exc) from None
    return uri


def registry_routes(ws: Workspace) -> list[BaseRoute]:
    """The registry half of ``/api/v1``."""
    access = ws.component(Access)
    route = access.route("model")

    def version_of(request: Request) -> ModelVersion:
        uri = version_uri(model_name(request), request.path_params["version"])
        return registry.get_model_version(ws, uri)

    async def list_models(request: Request) -> Response:
        """List registered models"""
        size = query_int(request, "max_results", 100, 1, 1000)
        offset = decode_page_token(request.query_params.get("page_token"))
        found = await run_in_threadpool(registry.list_models, ws)
        visible = await access.visible(request, "model", (m.name for m in found))
        found = [m for m in found if m.name in visible]
        items = [model_json(m) for m in found[offset : offset + size + 1]]
        return json_response(page("models", items, offset, size))

    def model_body(name: str) -> dict[str, Any]:
        versions = [version_json(v) for v in registry.list_versions(ws, name)]
        return {**model_json(get_model(ws, name)), "versions": versions}

    async def show_model(request: Request) -> Response:
        """A model with its versions, aliases, tags and description"""
        return json_response(await run_in_threadpool(model_body, model_name(request)))

    async def describe_model(request: Request) -> Response:
        """Set a model's description"""
        name, body = model_name(request), await read_json(request, Description)
        await run_in_threadpool(registry.set_description, ws, name, body.description)
        return json_response(await run_in_threadpool(model_body, name))

    async def tag_model(request: Request) -> Response:
        """Set tags of a model"""
        name, body = model_name(request), await read_json(request, ModelTags)

        def tag() -> dict[str, Any]:
            for key, value in body.tags.items():
                registry.set_model_tag(ws, name, key, value)
            return model_body(name)

        return json_response(await run_in_threadpool(tag))

    async def list_versions(request: Request) -> Response:
        """List a model's versions, oldest first"""
        name = model_name(request)
        size = query_int(request, "max_results", 100, 1, 1000)
        offset = decode_page_token(request.query_params.get("page_token"))
        found = await run_in_threadpool(registry.list_versions, ws, name)
        items = [version_json(v) for v in found[offset : offset + size + 1]]
        return json_response(page("versions", items, offset, size))

    async def create_version(request: Request) -> Response:
        """Register a version whose package blobs are uploaded"""
        name, body = model_name(request), await read_json(request, NewModelVersion)
        try:
            signature = Signature.from_dict(body.signature)
        except InvalidInput as exc:
            raise _invalid("signature", exc) from None

        def create() -> ModelVersion:
            return register_package(
                ws,
                name,
                body.package_digest,
                flavor=body.flavor,
                signature=signature,
                run_id=body.run_id,
                description=body.description,
                tags=body.tags,
            )

        return json_response(version_json(await run_in_threadpool(create)), 201)

    async def show_version(request: Request) -> Response:
        """A version: signature, package files and metadata, source run, status, tags"""
        mv = await run_in_threadpool(version_of, request)
        return json_response(await run_in_threadpool(_shown, ws, mv))

    async def describe_version(request: Request) -> Response:
        """Set a version's description"""
        body = await read_json(request, Description)

        def describe() -> ModelVersion:
            mv = version_of(request)
            registry.set_description(ws, mv.name, body.description, mv.version)
            return registry.get_model_version(ws, mv.uri)

        return json_response(version_json(await run_in_threadpool(describe)))

    async def tag_version(request: Request) -> Response:
        """Set tags of a version"""
        body = await read_json(request, ModelTags)

        def tag() -> ModelVersion:
            mv = version_of(request)
            for key, value in body.tags.items():
                registry.set_model_tag(ws, mv.name, key, value, mv.version)
            return registry.get_model_version(ws, mv.uri)

        return json_response(version_json(await run_in_threadpool(tag)))

    async def show_alias(request: Request) -> Response:
        """The version an alias points at"""
        uri = f"models:/{model_name(request)}@{alias_name(request)}"
        return json_response(
            version_json(await run_in_threadpool(registry.get_model_version, ws, uri))
        )

    async def put_alias(request: Request) -> Response:
        """Point an alias at a version (creating or moving it)"""
        name, alias = model_name(request), alias_name(request)
        body = await read_json(request, AliasTarget)
        mv = await run_in_threadpool(registry.set_alias, ws, name, alias, body.version)
        return json_response(version_json(mv))

    async def delete_alias(request: Request) -> Response:
        """Remove an alias"""
        name, alias = model_name(request), alias_name(request)
        await run_in_threadpool(registry.delete_alias, ws, name, alias)
        return json_response({"ok": True})

    async def resolve(request: Request) -> Response:
        """The version a model URI points at (models:/churn/3, models:/churn@production)"""
        uri = _uri_query(request)
        await access.named(request, "model", parse_model_uri(uri)[0], "viewer")
        mv = await run_in_threadpool(registry.get_model_version, ws, uri)
        return json_response(await run_in_threadpool(_shown, ws, mv))

    async def lineage(request: Request) -> Response:
        """The upstream lineage of a model version: run, its inputs, and theirs"""
        uri = _uri_query(request)
        await access.named(request, "model", parse_model_uri(uri)[0], "viewer")
        edges = await run_in_threadpool(lambda: api.lineage(uri, workspace=ws))
        return json_response({"uri": uri, "edges": [edge_json(e) for e in edges]})

    model = "/api/v1/models/{name}"
    version = model + "/versions/{version}"
    paged = ("max_results", "page_token")
    return [
        route("/api/v1/models", list_models, methods=["GET"], query=paged),
        route(model, show_model, methods=["GET"]),
        route(model, describe_model, methods=["PATCH"], body=Description),
        route(model + "/tags", tag_model, methods=["POST"], body=ModelTags),
        route(model + "/versions", list_versions, methods=["GET"], query=paged),
        route(model + "/versions", create_version, methods=["POST"], body=NewModelVersion),
        route(version, show_version, methods=["GET"]),
        route(version, describe_version, methods=["PATCH"], body=Description),
        route(version + "/tags", tag_version, methods=["POST"], body=ModelTags),
        route(model + "/aliases/{alias}", show_alias, methods=["GET"]),
        route(model + "/aliases/{alias}", put_alias, methods=["PUT"], body=AliasTarget),
        route(model + "/aliases/{alias}", delete_alias, methods=["DELETE"]),
        route("/api/v1/resolve", resolve, methods=["GET"], query=("uri",)),
        route("/api/v1/lineage", lineage, methods=["GET"], query=("uri",)),
    ]


__all__ = ["MAX_VERSION", "Text", "edge_json", "registry_routes", "storable", "version_uri"]
