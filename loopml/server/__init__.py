"""The platform server: one REST API over a workspace (``/api/v1``), MLflow's REST API
(``/api/2.0/mlflow``) over the same store, users, tokens, roles and an audit log."""

from loopml.server._app import create_app
from loopml.server._run import run_server

__all__ = ["create_app", "run_server"]
