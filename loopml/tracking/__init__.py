"""Experiment tracking: experiments, runs, params (immutable), metric histories (buffered,
append-only), tags, artifacts in the blob store, dataset inputs as lineage, and search."""

from loopml.tracking._experiments import (
    Experiment,
    get_experiment,
    get_or_create_experiment,
    list_experiments,
)
from loopml.tracking._query import (
    RunRecord,
    download_artifacts,
    flush,
    get_metric_history,
    get_run,
    list_artifacts,
    resolve_run_id,
)
from loopml.tracking._runs import (
    STATUSES,
    Run,
    active_run,
    create_run,
    open_run,
    require_active_run,
    start_run,
    update_run,
)
from loopml.tracking._search import search_runs
from loopml.tracking._writer import MetricWriter

__all__ = [
    "STATUSES",
    "Experiment",
    "MetricWriter",
    "Run",
    "RunRecord",
    "active_run",
    "create_run",
    "download_artifacts",
    "flush",
    "get_experiment",
    "get_metric_history",
    "get_or_create_experiment",
    "get_run",
    "list_artifacts",
    "list_experiments",
    "open_run",
    "require_active_run",
    "resolve_run_id",
    "search_runs",
    "start_run",
    "update_run",
]
