"""``POST /v1/features``: online feature values from the workspace's online store.

Body: ``{"features": ["view:feature", ...] | "<feature service>", "entities": [{...}],
"at": <optional ISO time>}``; answer: ``{"features": {column: [value per entity]}}``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from loopml import features
from loopml.errors import InvalidInput
from loopml.serving._app import ModelServer, json_response
from loopml.serving._codec import UnsupportedMediaType, loads, media_type

MAX_ENTITIES = 1_000


def _check(data: Any) -> tuple[Any, list[dict[str, Any]], Any]:
    if not isinstance(data, dict):
        raise InvalidInput('send {"features": [...] or "<service>", "entities": [{...}]}')
    wanted = data.get("features")
    if isinstance(wanted, list):
        if not wanted or not all(isinstance(f, str) for f in wanted):
            raise InvalidInput("'features' must be a non-empty list of 'view:feature' strings")
    elif not isinstance(wanted, str):
        raise InvalidInput("'features' must be a feature service name or a list of features")
    entities = data.get("entities")
    if not isinstance(entities, list) or not entities:
        raise InvalidInput("'entities' must be a non-empty list of objects")
    if len(entities) > MAX_ENTITIES:
        raise InvalidInput(f"at most {MAX_ENTITIES} entities per request")
    for i, row in enumerate(entities):
        if not isinstance(row, dict):
            raise InvalidInput(f"entities[{i}] must be an object")
        for key, value in row.items():
            if not (value is None or isinstance(value, str | int | float | bool)):
                raise InvalidInput(f"entities[{i}].{key} must be a string, number or boolean")
    at = data.get("at")
    if at is not None and not isinstance(at, str):
        raise InvalidInput("'at' must be an ISO time string")
    return wanted, entities, at


async def features_route(server: ModelServer, request: Request) -> Response:
    """Look the requested features up for the given entities."""
    if media_type(request.headers.get("content-type")) != "application/json":
        raise UnsupportedMediaType("/v1/features takes application/json")
    wanted, entities, at = _check(loads(await server.body(request)))
    found = await asyncio.to_thread(
        features.get_online_features,
        entities,
        wanted,
        at=at,
        to="dict",
        workspace=server.pool.ws,
    )
    return json_response({"features": found})
