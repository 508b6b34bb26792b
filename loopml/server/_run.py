"""Running the platform server under uvicorn, in one process or several."""

from __future__ import annotations

import ipaddress
import json
import os
from typing import Any

import uvicorn
from starlette.applications import Starlette

from loopml.errors import InvalidInput
from loopml.server._app import create_app
from loopml.store import Workspace

SPEC_ENV = "LOOPML_SERVER_SPEC"  # how run_server(workers=N) hands its settings to each process


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, auth: bool, insecure: bool) -> None:
    """InvalidInput for a server without auth on an address other machines reach."""
    if not auth and not insecure and not is_loopback(host):
        raise InvalidInput(
            f"refusing to serve {host} without auth: anyone who reaches it could read and "
            "change every run and model. Use --auth (users from `loopml server users add`), "
            "or --insecure if the network is trusted"
        )


def run_server(
    ws: Workspace,
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int = 1,
    auth: bool = False,
    insecure: bool = False,
) -> None:
    """Serve ``ws``'s platform API until SIGINT/SIGTERM.

    Raises
    ------
    InvalidInput
        A bad port or worker count, or no auth on a non-loopback address without ``insecure``.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidInput(f"port must be an integer in 0-65535, not {port!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidInput(f"workers must be a positive integer, not {workers!r}")
    if ws.remote is not None:
        raise InvalidInput("the workspace to serve is itself remote (unset LOOPML_TRACKING_URI)")
    check_exposure(host, auth, insecure)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "log_level": "warning",
        "server_header": False,
    }
    if workers == 1:
        uvicorn.run(create_app(ws, auth=auth), **options)
        return
    os.environ[SPEC_ENV] = json.dumps(
        {
            "home": str(ws.home) if ws.home else None,
            "store_uri": ws.settings.store_uri,
            "artifact_uri": ws.settings.artifact_uri,
            "auth": auth,
        }
    )
    uvicorn.run(f"{__name__}:app_from_env", factory=True, workers=workers, **options)


def app_from_env() -> Starlette:
    """The app each worker process builds from the spec ``run_server`` left for it."""
    raw = os.environ.get(SPEC_ENV)
    if not raw:
        raise InvalidInput(f"{SPEC_ENV} is not set; start workers through `loopml server`")
    spec = json.loads(raw)
    overrides = {k: spec[k] for k in ("store_uri", "artifact_uri") if spec.get(k)}
    return create_app(Workspace.open(spec.get("home"), **overrides), auth=bool(spec["auth"]))


__all__ = ["app_from_env", "check_exposure", "is_loopback", "run_server"]
