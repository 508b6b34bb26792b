"""Model serving: the ASGI app, micro-batching, traffic policies and the prediction log."""

from loopml.serving._asgi import create_app
from loopml.serving._batch import BatchResult, predict_file
from loopml.serving._batcher import BatchConfig
from loopml.serving._compact import CompactionResult, compact_predictions
from loopml.serving._deployments import (
    Deployment,
    delete_deployment,
    deploy,
    get_deployment,
    list_deployments,
    resolve_version,
)
from loopml.serving._pool import ServeConfig
from loopml.serving._predlog import PredictionLogger
from loopml.serving._predread import (
    labelled_predictions,
    read_errors,
    read_feedback,
    read_predictions,
)
from loopml.serving._request_stats import request_stats
from loopml.serving._server import serve

__all__ = [
    "BatchConfig",
    "BatchResult",
    "CompactionResult",
    "Deployment",
    "PredictionLogger",
    "ServeConfig",
    "compact_predictions",
    "create_app",
    "delete_deployment",
    "deploy",
    "get_deployment",
    "labelled_predictions",
    "list_deployments",
    "predict_file",
    "read_errors",
    "read_feedback",
    "read_predictions",
    "request_stats",
    "resolve_version",
    "serve",
]
