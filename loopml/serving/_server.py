"""Running the model server under uvicorn (uvloop + httptools), one or several processes."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import uvicorn
from starlette.applications import Starlette

from loopml.errors import InvalidInput
from loopml.serving._app import build_endpoints
from loopml.serving._asgi import create_app
from loopml.serving._batcher import BatchConfig
from loopml.serving._metrics import MULTIPROC_ENV
from loopml.serving._pool import ServeConfig
from loopml.store import Workspace

SPEC_ENV = "LOOPML_SERVE_SPEC"  # how `serve(workers=N)` hands its arguments to each process
_GRACE_S = 5.0


def _uvicorn_options(host: str, port: int, config: ServeConfig) -> dict[str, Any]:
    return {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "log_level": "warning",
        "timeout_graceful_shutdown": config.timeout_s + _GRACE_S,
        "server_header": False,
    }


def serve(
    ws: Workspace,
    models: Sequence[str] = (),
    *,
    deployments: Sequence[str] = (),
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    token: str | None = None,
    config: ServeConfig | None = None,
    log_predictions: bool = True,
) -> None:
    """Serve models and deployments over HTTP until SIGINT/SIGTERM (which drains requests).

    Parameters
    ----------
    ws : the workspace.
    models : model references (``churn@production``, ``churn/3``).
    deployments : deployment names.
    host, port : where to listen.
    workers : server processes; each loads the models itself. ``/metrics`` sums over all
        of them (prometheus-client multiprocess mode, in a temporary directory of this
        server's that is removed when it stops).
    token : bearer token every request but the health probes must carry (overrides
        ``config.token``).
    config : server settings.
    log_predictions : log every prediction to the workspace.

    Raises
    ------
    InvalidInput
        Bad port or workers, nothing to serve, or a malformed reference.
    NotFound
        A model, alias or deployment does not exist.
    """
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidInput(f"port must be an integer in 0-65535, not {port!r}")
    if not isinstance(workers, int) or workers < 1:
        raise InvalidInput(f"workers must be a positive integer, not {workers!r}")
    config = config or ServeConfig()
    if token is not None:
        config = dataclasses.replace(config, token=token)
    build_endpoints(ws, models, deployments)  # fail here, before any process starts
    options = _uvicorn_options(host, port, config)
    if workers == 1:
        app = create_app(ws, models, deployments=deployments, config=config, logger=log_predictions)
        uvicorn.run(app, **options)
        return
    spec = {
        "home": str(ws.home) if ws.home else None,
        "store_uri": ws.settings.store_uri,
        "artifact_uri": ws.settings.artifact_uri,
        "models": list(models),
        "deployments": list(deployments),
        "config": _config_dict(config),
        "log_predictions": log_predictions,
    }
    # one metrics directory per server, shared by its workers, removed when it stops
    with tempfile.TemporaryDirectory(prefix=f"loopml-metrics-{os.getpid()}-") as shared:
        env = {SPEC_ENV: json.dumps(spec), MULTIPROC_ENV: shared}
        with _worker_environ(env):
            uvicorn.run(f"{__name__}:app_from_env", factory=True, workers=workers, **options)


@contextlib.contextmanager
def _worker_environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the worker processes uvicorn spawns; restore after."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _config_dict(config: ServeConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_dict(data: dict[str, Any]) -> ServeConfig:
    """The :class:`ServeConfig` that :func:`dataclasses.asdict` produced."""
    batching = BatchConfig(**data.get("batching", {}))
    return ServeConfig(**{**data, "batching": batching})


def app_from_env() -> Starlette:
    """The app factory each worker process calls (``serve(workers=N)`` sets the spec).

    Raises
    ------
    InvalidInput
        The spec variable is missing or malformed.
    """
    raw = os.environ.get(SPEC_ENV)
    if not raw:
        raise InvalidInput(f"{SPEC_ENV} is not set; start workers through loopml serve")
    try:
        spec = json.loads(raw)
    except ValueError as exc:
        raise InvalidInput(f"{SPEC_ENV} is not valid JSON: {exc}") from None
    overrides = {k: spec[k] for k in ("store_uri", "artifact_uri") if spec.get(k)}
    ws = Workspace.open(spec.get("home"), **overrides)
    return create_app(
        ws,
        spec["models"],
        deployments=spec["deployments"],
        config=config_from_dict(spec["config"]),
        logger=spec["log_predictions"],
    )
