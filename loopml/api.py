"""The top-level API: tracking and registry joined, bound to the default workspace.

Every function takes an optional ``workspace``; without it, the process's default
workspace is used (``LOOPML_HOME``, else the workspace found from the current folder).
Module-level logging functions act on the active run of the current thread or task.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from loopml import registry, tracking
from loopml.errors import InvalidInput
from loopml.store import Edge, Node, Workspace, default_workspace, upstream

# -- logging to the active run ----------------------------------------------------------


def log_param(key: str, value: object) -> None:
    """Record a parameter of the active run."""
    tracking.require_active_run().log_param(key, value)


def log_params(values: Mapping[str, object]) -> None:
    """Record parameters of the active run."""
    tracking.require_active_run().log_params(values)


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Append a point to a metric of the active run."""
    tracking.require_active_run().log_metric(key, value, step)


def log_metrics(values: Mapping[str, float], step: int | None = None) -> None:
    """Append a point to several metrics of the active run."""
    tracking.require_active_run().log_metrics(values, step)


def set_tag(key: str, value: object) -> None:
    """Set a tag of the active run."""
    tracking.require_active_run().set_tag(key, value)


def set_tags(values: Mapping[str, object]) -> None:
    """Set tags of the active run."""
    tracking.require_active_run().set_tags(values)


def log_artifact(path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    """Store a file or folder as artifacts of the active run."""
    tracking.require_active_run().log_artifact(path, artifact_path)


def log_dict(data: Mapping[str, Any], name: str) -> None:
    """Store a dict as a JSON artifact of the active run."""
    tracking.require_active_run().log_dict(data, name)


def log_figure(figure: Any, name: str) -> None:
    """Store a matplotlib figure as an image artifact of the active run."""
    tracking.require_active_run().log_figure(figure, name)


def log_input(dataset: object, role: str = "training") -> None:
    """Record a dataset version the active run read."""
    tracking.require_active_run().log_input(dataset, role)


# -- queries ----------------------------------------------------------------------------


def search_runs(
    experiments: str | list[str] | None = None,
    filter: str | None = None,
    order_by: list[str] | None = None,
    max_results: int = 1000,
    *,
    workspace: Workspace | None = None,
) -> pd.DataFrame:
    """Runs matching ``filter`` as a DataFrame (see ``loopml.tracking.search_runs``).

    Examples
    --------
    >>> search_runs("churn", "metrics.auc > 0.8 and params.model = 'xgb'",
    ...             order_by=["metrics.auc DESC"])  # doctest: +SKIP
    """
    ws = workspace or default_workspace()
    return tracking.search_runs(ws, experiments, filter, order_by, max_results)


def get_run(run_id: str, *, workspace: Workspace | None = None) -> tracking.RunRecord:
    """Everything recorded about one run."""
    return tracking.get_run(workspace or default_workspace(), run_id)


def get_metric_history(
    run_id: str, key: str, *, workspace: Workspace | None = None
) -> pd.DataFrame:
    """Every point of one metric of one run (columns step, value, timestamp)."""
    return tracking.get_metric_history(workspace or default_workspace(), run_id, key)


# -- registry ---------------------------------------------------------------------------


def register_model(
    model: Any,
    name: str,
    *,
    run: tracking.Run | str | None = None,
    input_example: Any = None,
    workspace: Workspace | None = None,
    **options: Any,
) -> registry.ModelVersion:
    """Register ``model`` as the next version of ``name``, linked to ``run``.

    ``run`` defaults to the active run, if any. Other options (``signature``, ``flavor``,
    ``description``, ``tags``, ``onnx``) go to ``loopml.registry.register_model``.
    """
    run = run if run is not None else tracking.active_run()
    ws = workspace or (run.ws if isinstance(run, tracking.Run) else default_workspace())
    run_id = run.id if isinstance(run, tracking.Run) else run
    tracking.flush(ws)  # the run may still be queued in this process
    return registry.register_model(
        ws, model, name, run_id=run_id, input_example=input_example, **options
    )


def load_model(
    uri: str, *, workspace: Workspace | None = None, **options: Any
) -> registry.LoadedModel:
    """Load ``models:/name/3`` or ``models:/name@alias`` for prediction.

    Options (``runtime="onnx"``, ``threads``, ``device="cuda"``) go to
    ``loopml.registry.load_model``.
    """
    return registry.load_model(workspace or default_workspace(), uri, **options)


def get_model_version(uri: str, *, workspace: Workspace | None = None) -> registry.ModelVersion:
    """The model version a URI names."""
    return registry.get_model_version(workspace or default_workspace(), uri)


def set_alias(name: str, alias: str, version: int, *, workspace: Workspace | None = None) -> None:
    """Point ``name@alias`` at ``version`` (moving it if it exists)."""
    registry.set_alias(workspace or default_workspace(), name, alias, version)


def delete_alias(name: str, alias: str, *, workspace: Workspace | None = None) -> None:
    """Remove an alias."""
    registry.delete_alias(workspace or default_workspace(), name, alias)


def lineage(model_uri: str, *, workspace: Workspace | None = None) -> list[Edge]:
    """The chain that made a model version, walking upstream: run, its inputs, and theirs.

    Examples
    --------
    >>> for edge in lineage("models:/churn@production"):  # doctest: +SKIP
    ...     print(edge)       # run:3f2a... --produced--> model_version:churn/1
    """
    ws = workspace or default_workspace()
    if ws.remote is not None:
        found = ws.remote.get("/api/v1/lineage", uri=model_uri)["edges"]
        return [Edge(Node(**e["src"]), Node(**e["dst"]), e["role"]) for e in found]
    mv = registry.get_model_version(ws, model_uri)
    return upstream(ws.db, Node("model_version", f"{mv.name}/{mv.version}"))


# -- workspaces -------------------------------------------------------------------------


def init(path: str | os.PathLike[str] = ".", **settings: Any) -> Workspace:
    """Create a workspace in ``path`` and return it (it does not become the default)."""
    if not isinstance(path, str | os.PathLike):
        raise InvalidInput(f"init: path must be a folder path, got {path!r}")
    return Workspace.init(Path(path), **settings)
