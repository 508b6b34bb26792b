"""The platform API's OpenAPI 3.1 document, built from its routes.

Routes declare their request model and query parameters on :class:`ApiRoute`; request
schemas are the pydantic models' JSON schemas, so the spec is the validation in use.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel
from starlette.routing import BaseRoute, Route

_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": ["string", "null"]},
            },
            "required": ["code", "message", "field"],
        }
    },
    "required": ["error"],
}
_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


class ApiRoute(Route):
    """A route that documents itself: a summary, its JSON body model and query parameters."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Sequence[str],
        body: type[BaseModel] | None = None,
        query: Sequence[str] = (),
        summary: str | None = None,
    ) -> None:
        super().__init__(path, endpoint, methods=list(methods))
        self.body = body
        self.query = tuple(query)
        doc = (endpoint.__doc__ or "").strip().splitlines()
        self.summary = summary or (doc[0] if doc else endpoint.__name__.replace("_", " "))


def _operation(route: ApiRoute, method: str, schemas: dict[str, Any]) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(route.path)
    ]
    params += [{"name": q, "in": "query", "schema": {"type": "string"}} for q in route.query]
    error = {
        "description": "Request error; the message names the offending field",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    op: dict[str, Any] = {
        "summary": route.summary,
        "operationId": f"{method.lower()}_{route.name}",
        "parameters": params,
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {}}}},
            **{code: error for code in ("400", "401", "403", "404", "409", "413", "422")},
        },
    }
    if route.body is not None:
        schema = route.body.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[route.body.__name__] = schema
        ref = {"$ref": f"#/components/schemas/{route.body.__name__}"}
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref}}}
    elif method in ("PUT", "POST"):
        op["requestBody"] = {
            "content": {"application/octet-stream": {"schema": {"type": "string"}}}
        }
    return op


def openapi_spec(routes: Sequence[BaseRoute], version: str) -> dict[str, Any]:
    """The OpenAPI document of the :class:`ApiRoute` entries in ``routes``."""
    schemas: dict[str, Any] = {"Error": _ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, ApiRoute):
            continue
        for method in sorted(route.methods or ()):
            if method == "HEAD" and "GET" in (route.methods or ()):
                continue
            path = _PARAM.sub(r"{\1}", route.path)
            paths.setdefault(path, {})[method.lower()] = _operation(route, method, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "loopml platform API", "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }


__all__ = ["ApiRoute", "openapi_spec"]
