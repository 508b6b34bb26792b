"""The server's OpenAPI 3 description, with request schemas taken from the served signatures."""

from __future__ import annotations

from typing import Any

import numpy as np

from loopml._version import __version__
from loopml.registry import Signature
from loopml.serving._pool import Endpoint

_ERROR = {
    "description": "A request error; the message names the offending field.",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }
    },
}
_OK_JSON = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}


def _json_type(dtype: str) -> dict[str, Any]:
    try:
        kind = np.dtype(dtype).kind
    except TypeError:
        return {"type": "string"}
    types: dict[str, dict[str, Any]] = {
        "b": {"type": "boolean"},
        "i": {"type": "integer"},
        "u": {"type": "integer", "minimum": 0},
        "f": {"type": "number"},
    }
    return types.get(kind, {"type": "string"})


def _record(signature: Signature) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {c.name: _json_type(c.dtype) for c in signature.inputs},
        "required": [c.name for c in signature.inputs],
        "additionalProperties": False,
    }


def _name_param(names: list[str]) -> dict[str, Any]:
    return {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": names},
    }


def _responses(*codes: str) -> dict[str, Any]:
    out: dict[str, Any] = {"200": _OK_JSON}
    out.update({code: _ERROR for code in codes})
    return out


def openapi_spec(endpoints: dict[str, Endpoint]) -> dict[str, Any]:
    """The OpenAPI document of a server with these endpoints."""
    names = sorted(endpoints)
    records: list[dict[str, Any]] = []
    for name in names:
        served = endpoints[name].primary.current
        if served is not None:
            records.append(_record(served.loaded.signature))
    record: dict[str, Any] = records[0] if len(records) == 1 else {"type": "object"}
    v1_body = {
        "oneOf": [
            {"type": "array", "items": record, "minItems": 1},
            record,
            {"type": "object", "additionalProperties": {"type": "array"}},
        ]
    }
    tensor = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string", "enum": ["BOOL", "INT64", "FP32", "FP64", "BYTES"]},
            "data": {"type": "array"},
        },
        "required": ["name", "shape", "datatype", "data"],
    }
    mlflow_body = {
        "type": "object",
        "properties": {
            "dataframe_split": {
                "type": "object",
                "properties": {
                    "columns": {"type": "array", "items": {"type": "string"}},
                    "data": {"type": "array", "items": {"type": "array"}},
                },
                "required": ["columns", "data"],
            },
            "dataframe_records": {"type": "array", "items": record},
            "instances": {"type": "array"},
            "inputs": {"type": "array"},
        },
    }
    name_param = _name_param(names)
    errors = ("400", "404", "413", "415", "422", "503", "504")
    return {
        "openapi": "3.0.3",
        "info": {"title": "loopml model server", "version": __version__},
        "paths": {
            "/healthz": {"get": {"summary": "Alive", "responses": _responses()}},
            "/readyz": {"get": {"summary": "Models loaded", "responses": _responses("503")}},
            "/v1/models": {"get": {"summary": "Served endpoints", "responses": _responses()}},
            "/v1/models/{name}": {
                "get": {
                    "summary": "One endpoint",
                    "parameters": [name_param],
                    "responses": _responses("404"),
                }
            },
            "/v1/models/{name}/predict": {
                "post": {
                    "summary": "Predict (JSON records or columns, CSV, Arrow IPC, Parquet)",
                    "parameters": [
                        name_param,
                        {"name": "proba", "in": "query", "schema": {"type": "boolean"}},
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": v1_body},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    "responses": _responses(*errors),
                }
            },
            "/v1/features": {
                "post": {
                    "summary": "Online feature values for entity keys",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "features": {
                                            "oneOf": [
                                                {"type": "string"},
                                                {
                                                    "type": "array",
                                                    "items": {"type": "string"},
                                                    "minItems": 1,
                                                },
                                            ]
                                        },
                                        "entities": {
                                            "type": "array",
                                            "items": {"type": "object"},
                                            "minItems": 1,
                                        },
                                        "at": {"type": "string"},
                                    },
                                    "required": ["features", "entities"],
                                }
                            }
                        },
                    },
                    "responses": _responses("400", "404", "413", "415", "422"),
                }
            },
            "/v1/feedback": {
                "post": {
                    "summary": "Ground-truth labels for earlier predictions",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "deployment": {"type": "string"},
                                        "feedback": {
                                            "type": "array",
                                            "items": {
                                                "type": "object",
                                                "properties": {
                                                    "request_id": {"type": "string"},
                                                    "label": {},
                                                },
                                            },
                                        },
                                    },
                                    "required": ["deployment", "feedback"],
                                }
                            }
                        },
                    },
                    "responses": {"202": _OK_JSON, **_responses(*errors)},
                }
            },
            "/v2/models/{name}": {
                "get": {
                    "summary": "Open Inference Protocol model metadata",
                    "parameters": [name_param],
                    "responses": _responses("404", "503"),
                }
            },
            "/v2/models/{name}/infer": {
                "post": {
                    "summary": "Open Inference Protocol inference",
                    "parameters": [name_param],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "id": {"type": "string"},
                                        "inputs": {"type": "array", "items": tensor},
                                        "parameters": {"type": "object"},
                                    },
                                    "required": ["inputs"],
                                }
                            }
                        },
                    },
                    "responses": _responses(*errors),
                }
            },
            "/invocations": {
                "post": {
                    "summary": "MLflow-compatible scoring",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": mlflow_body},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    "responses": _responses(*errors),
                }
            },
        },
    }
