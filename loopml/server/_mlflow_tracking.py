"""MLflow's tracking API over loopml's runs: experiments, runs, params, metrics and tags.

Ids: an MLflow experiment id is loopml's integer experiment id as a string, and ``"0"``,
MLflow's default experiment, is loopml's ``default`` experiment; run ids are loopml's.
MLflow-only extras live in run tags (``mlflow.user``...), except two that are loopml run
columns: the name (``mlflow.runName``) and the parent (``mlflow.parentRunId``); the git
commit and source name tags also fill loopml's source columns. A run's artifact URI is
``mlflow-artifacts:/<experiment>/<run>/artifacts``, so the client sends its artifacts
through this server's artifact proxy. Runs and experiments are never deleted or renamed.

Each handler takes the workspace and the request's :class:`Fields` and returns the JSON
answer; it runs in a worker thread and flushes what it wrote before returning.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from loopml.errors import AlreadyExists, InvalidInput, NotFound
from loopml.server._mlflow_artifacts import artifact_uri
from loopml.server._mlflow_protocol import (
    Fields,
    Handler,
    decode_token,
    encode_token,
    finite,
    max_results,
    natural,
    not_implemented,
    run_handle,
)
from loopml.server._mlflow_search import Clause, Searched, run_filter, run_order, search_page
from loopml.store import Workspace, now_ms
from loopml.store.schema import experiments, latest_metrics, params, run_tags, runs
from loopml.tracking import (
    STATUSES,
    MetricWriter,
    Run,
    create_run,
    flush,
    get_metric_history,
    get_or_create_experiment,
    update_run,
)
from loopml.tracking._experiments import check_name
from loopml.tracking._search import compile_filter, compile_order_by

DEFAULT_EXPERIMENT = "default"  # what MLflow's experiment "0" is in loopml
MAX_RUNS = 50_000  # per search page, as MLflow's server
MAX_HISTORY = 1_000_000  # metric points per page
MAX_BATCH = {"metrics": 1000, "params": 100, "tags": 100}
_CHUNK = 500  # ids per IN list
_RUN_NAME, _PARENT, _USER = "mlflow.runName", "mlflow.parentRunId", "mlflow.user"
_COMMIT, _SOURCE = "mlflow.source.git.commit", "mlflow.source.name"


# -- experiments ------------------------------------------------------------------------------
def _experiment_json(row: Any) -> dict[str, Any]:
    return {
        "experiment_id": str(row.id),
        "name": row.name,
        "artifact_location": f"mlflow-artifacts:/{row.id}",
        "lifecycle_stage": "active",
        "creation_time": row.created_at,
        "last_update_time": row.created_at,
        "tags": [],
    }


def experiment_id(ws: Workspace, text: str, *, create_default: bool = True) -> int | None:
    """loopml's id of MLflow experiment ``text`` (``"0"``: the default experiment, created
    on first use unless ``create_default`` is false, when None means it does not exist)."""
    number = natural(text, 18)
    if number is None:
        raise InvalidInput(f"experiment id must be an integer, got {text!r:.80}")
    if number:
        return number
    if create_default:
        return get_or_create_experiment(ws, DEFAULT_EXPERIMENT).id
    with ws.db.read() as conn:
        found = conn.execute(
            sa.select(experiments.c.id).where(experiments.c.name == DEFAULT_EXPERIMENT)
        ).scalar()
    return None if found is None else int(found)


def _experiment_row(ws: Workspace, text: str) -> Any:
    number = experiment_id(ws, text)
    with ws.db.read() as conn:
        row = conn.execute(sa.select(experiments).where(experiments.c.id == number)).first()
    if row is None:
        raise NotFound(f"no experiment with id {text!r}")
    return row


def create_experiment(ws: Workspace, f: Fields) -> dict[str, Any]:
    """experiments/create: a new experiment; RESOURCE_ALREADY_EXISTS if the name is taken."""
    name = check_name(f.need("name"), "experiment name")
    if f.text("artifact_location"):
        raise not_implemented("loopml stores every experiment's artifacts in its blob store")
    if f.messages("tags"):
        raise not_implemented("loopml experiments have no tags; tag the runs instead")
    try:
        with ws.db.write() as conn:
            inserted = conn.execute(experiments.insert().values(name=name, created_at=now_ms()))
    except IntegrityError:
        raise AlreadyExists(f"experiment {name!r} already exists") from None
    key = inserted.inserted_primary_key
    assert key is not None
    return {"experiment_id": str(key[0])}


def get_experiment(ws: Workspace, f: Fields) -> dict[str, Any]:
    """experiments/get."""
    return {"experiment": _experiment_json(_experiment_row(ws, f.need("experiment_id")))}


def get_experiment_by_name(ws: Workspace, f: Fields) -> dict[str, Any]:
    """experiments/get-by-name."""
    name = f.need("experiment_name")
    with ws.db.read() as conn:
        row = conn.execute(sa.select(experiments).where(experiments.c.name == name)).first()
    if row is None:
        raise NotFound(f"no experiment named {name!r}")
    return {"experiment": _experiment_json(row)}


def _no_experiment_tags(clause: Clause, dialect: str) -> sa.ColumnElement[bool]:
    return sa.true() if clause.op == "IS NULL" else sa.false()  # no experiment has tags


_EXPERIMENTS = Searched(
    "experiment",
    experiments,
    {
        "name": (experiments.c.name, "string"),
        "experiment_id": (experiments.c.id, "number"),
        "creation_time": (experiments.c.created_at, "number"),
        "last_update_time": (experiments.c.created_at, "number"),
    },
    {k: k for k in ("name", "experiment_id", "creation_time", "last_update_time")},
    _no_experiment_tags,
    (experiments.c.created_at.desc(),),
    (experiments.c.id.asc(),),
    "experiments",
    lambda conn, rows: [_experiment_json(r) for r in rows],
)
_VIEW_TYPES = {1: "ACTIVE_ONLY", 2: "DELETED_ONLY", 3: "ALL"}
_RUN_STATUSES = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}


def _deleted_only(f: Fields, name: str) -> bool:
    """Whether the search asks for deleted things only (loopml deletes nothing)."""
    return f.enum(name, _VIEW_TYPES) == "DELETED_ONLY"


def search_experiments(ws: Workspace, f: Fields) -> dict[str, Any]:
    """experiments/search: filter on name and times, order_by, pages."""
    answer = search_page(ws, f, _EXPERIMENTS, 1000, 50_000)
    return {"experiments": []} if _deleted_only(f, "view_type") else answer


def update_experiment(ws: Workspace, f: Fields) -> dict[str, Any]:
    """experiments/update: only a no-op rename is accepted (loopml never renames them)."""
    row = _experiment_row(ws, f.need("experiment_id"))
    new_name = f.need("new_name")
    if new_name != row.name:
        raise not_implemented(
            f"loopml experiments cannot be renamed (experiment {row.name!r} keeps its name); "
            f"log new runs to experiment {new_name!r} instead"
        )
    return {}


def refuse_experiment_change(ws: Workspace, f: Fields) -> dict[str, Any]:
    """experiments/delete, restore and experiment tags: refused."""
    _experiment_row(ws, f.need("experiment_id"))
    raise not_implemented(
        "loopml keeps every experiment and has no experiment tags: experiments cannot be "
        "deleted, restored or tagged"
    )


# -- runs as MLflow sees them -------------------------------------------------------------------
def _chunks(ids: Sequence[str]) -> list[Sequence[str]]:
    return [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)]


def _pairs(conn: Connection, table: sa.Table, ids: Sequence[str]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for chunk in _chunks(ids):
        query = sa.select(table.c.run_id, table.c.key, table.c.value)
        for run_id, key, value in conn.execute(query.where(table.c.run_id.in_(chunk))):
            found.setdefault(run_id, {})[key] = value
    return found


def _tags_json(row: Any, stored: dict[str, str]) -> list[dict[str, str]]:
    tags = dict(stored)
    if row.source_commit and _COMMIT not in tags:
        tags[_COMMIT] = row.source_commit
    if row.source_entry_point and _SOURCE not in tags:
        tags[_SOURCE] = row.source_entry_point
    tags[_RUN_NAME] = row.name
    if row.parent_id is not None:
        tags[_PARENT] = row.parent_id
    return [{"key": k, "value": v} for k, v in sorted(tags.items())]


def _info_json(row: Any, user: str) -> dict[str, Any]:
    info = {
        "run_id": row.id,
        "run_uuid": row.id,
        "run_name": row.name,
        "experiment_id": str(row.experiment_id),
        "user_id": user,
        "status": row.status,
        "start_time": row.start_time,
        "artifact_uri": artifact_uri(row.experiment_id, row.id),
        "lifecycle_stage": "active",
    }
    if row.end_time is not None:
        info["end_time"] = row.end_time
    return info


def run_views(ws: Workspace, ids: Sequence[str]) -> list[dict[str, Any]]:
    """The MLflow ``Run`` of each id, in order (ids that are not runs are left out)."""
    with ws.db.read() as conn:
        rows: dict[str, Any] = {}
        for chunk in _chunks(ids):
            rows |= {r.id: r for r in conn.execute(sa.select(runs).where(runs.c.id.in_(chunk)))}
        points: dict[str, list[dict[str, Any]]] = {}
        m = latest_metrics.c
        for chunk in _chunks(ids):
            query = sa.select(m.run_id, m.key, m.value, m.step, m.timestamp)
            for run_id, key, value, step, stamp in conn.execute(query.where(m.run_id.in_(chunk))):
                value = finite(float("nan") if value is None else float(value))
                points.setdefault(run_id, []).append(
                    {"key": key, "value": value, "timestamp": stamp, "step": step}
                )
        param_values = _pairs(conn, params, ids)
        tag_values = _pairs(conn, run_tags, ids)
    views = []
    for run_id in ids:
        row = rows.get(run_id)
        if row is None:
            continue
        tags = tag_values.get(run_id, {})
        data = {
            "metrics": sorted(points.get(run_id, []), key=lambda p: str(p["key"])),
            "params": [
                {"key": k, "value": v} for k, v in sorted(param_values.get(run_id, {}).items())
            ],
            "tags": _tags_json(row, tags),
        }
        views.append({"info": _info_json(row, tags.get(_USER, "")), "data": data})
    return views


def run_view(ws: Workspace, run_id: str) -> dict[str, Any]:
    """The MLflow ``Run`` ``run_id``; NotFound if there is none."""
    found = run_views(ws, [run_id])
    if not found:
        raise NotFound(f"no run with id {run_id!r}")
    return found[0]


# -- runs ------------------------------------------------------------------------------------------
def _run_id(f: Fields) -> str:
    return f.need("run_id", "run_uuid")


def _set_parent(ws: Workspace, run_id: str, parent_id: str | None) -> None:
    if parent_id == run_id:
        raise InvalidInput(f"run {run_id} cannot be its own parent")
    with ws.component(MetricWriter).write() as conn:
        if parent_id is not None:
            exists = conn.execute(sa.select(runs.c.id).where(runs.c.id == parent_id)).first()
            if exists is None:
                raise NotFound(f"parent run {parent_id!r} does not exist")
        conn.execute(runs.update().where(runs.c.id == run_id).values(parent_id=parent_id))


def _set_tags(ws: Workspace, run: Run, tags: dict[str, str]) -> None:
    """Set tags, the ones loopml keeps as run columns (name, parent) in their columns."""
    rest = dict(tags)
    name, parent = rest.pop(_RUN_NAME, None), rest.pop(_PARENT, None)
    if name is not None:
        update_run(ws, run.id, name=name)
    if parent is not None:
        _set_parent(ws, run.id, parent)
    if rest:
        run.set_tags(rest)


def create_run_handler(ws: Workspace, f: Fields) -> dict[str, Any]:
    """runs/create: a RUNNING run; ``mlflow.parentRunId`` makes it a child run."""
    exp = _experiment_row(ws, f.need("experiment_id"))
    tags = f.pairs("tags")
    name = tags.pop(_RUN_NAME, None)
    name = f.text("run_name") or name or None
    parent = tags.pop(_PARENT, None) or None
    user = f.text("user_id")
    if user and _USER not in tags:
        tags[_USER] = user
    commit = tags.get(_COMMIT)
    run = create_run(
        ws,
        exp.name,
        name,
        parent_id=parent,
        start_time=f.integer("start_time", low=0),
        source_commit=commit if commit and len(commit) <= 64 else None,
        source_entry_point=tags.get(_SOURCE),
        tags=tags,
    )
    run.flush()
    return {"run": run_view(ws, run.id)}


def get_run_handler(ws: Workspace, f: Fields) -> dict[str, Any]:
    """runs/get."""
    flush(ws)
    return {"run": run_view(ws, _run_id(f))}


def update_run_handler(ws: Workspace, f: Fields) -> dict[str, Any]:
    """runs/update: status, end time and name."""
    run_id = _run_id(f)
    status = f.enum("status", _RUN_STATUSES)
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    update_run(
        ws,
        run_id,
        status=status,
        end_time=f.integer("end_time", low=0),
        name=f.text("run_name"),
    )
    return {"run_info": run_view(ws, run_id)["info"]}


def refuse_run_change(ws: Workspace, f: Fields) -> dict[str, Any]:
    """runs/delete and runs/restore: refused."""
    run_view(ws, _run_id(f))
    raise not_implemented(
        "loopml keeps every run (registered models and lineage point at them): runs "
        "cannot be deleted or restored; tag the run instead"
    )


def log_metric(ws: Workspace, f: Fields) -> dict[str, Any]:
    """runs/log-metric."""
    run = run_handle(ws, _run_id(f))
    timestamp = f.integer("timestamp")
    run.log_metric(
        f.need("key"),
        f.number("value"),
        f.integer("step") or 0,
        now_ms() if timestamp is None else timestamp,
    )
    run.flush()
    return {}


def log_param(ws: Workspace, f: Fields) -> dict[str, Any]:
    """runs/log-parameter: params are immutable (INVALID_PARAMETER_VALUE on a change)."""
    run = run_handle(ws, _run_id(f))
    run.log_params({f.need("key"): f.text("value") or ""})
    run.flush()
    return {}


def log_batch(ws: Workspace, f: Fields) -> dict[str, Any]:
    """runs/log-batch: params first (all or none), then metrics and tags."""
    for name, limit in MAX_BATCH.items():
        if len(f.messages(name)) > limit:
            raise InvalidInput(f"a batch holds at most {limit} {name}, got {len(f.messages(name))}")
    run = run_handle(ws, _run_id(f))
    series: dict[str, tuple[list[float], list[int], list[int]]] = {}
    now = now_ms()
    for metric in f.messages("metrics"):
        values, steps, stamps = series.setdefault(
            check_name(metric.need("key"), "metric key", max_len=250), ([], [], [])
        )
        values.append(metric.number("value"))
        steps.append(metric.integer("step") or 0)
        stamp = metric.integer("timestamp")
        stamps.append(now if stamp is None else stamp)
    tags = f.pairs("tags")
    for key in tags:
        check_name(key, "tag key", max_len=250)
    if _RUN_NAME in tags:
        check_name(tags[_RUN_NAME], "run name")
    new_params = f.pairs("params")
    if new_params:
        run.log_params(new_params)
    for key, (values, steps, stamps) in series.items():
        run.log_batch(key, values, steps, stamps)
    _set_tags(ws, run, tags)
    run.flush()
    return {}


def set_tag(ws: Workspace, f: Fields) -> dict[str, Any]:
    """runs/set-tag (``mlflow.runName`` renames the run)."""
    run = run_handle(ws, _run_id(f))
    _set_tags(ws, run, {f.need("key"): f.text("value") or ""})
    run.flush()
    return {}


def delete_tag(ws: Workspace, f: Fields) -> dict[str, Any]:
    """runs/delete-tag; RESOURCE_DOES_NOT_EXIST if the run has no such tag."""
    run, key = run_handle(ws, _run_id(f)), f.need("key")
    if key == _RUN_NAME:
        raise InvalidInput(f"tag {_RUN_NAME!r} is the run's name, which cannot be deleted")
    if key == _PARENT:
        _set_parent(ws, run.id, None)
        return {}
    with ws.component(MetricWriter).write() as conn:
        deleted = conn.execute(
            run_tags.delete().where(run_tags.c.run_id == run.id, run_tags.c.key == key)
        ).rowcount
    if not deleted:
        raise NotFound(f"run {run.id} has no tag {key!r}")
    return {}


def get_metric_history_handler(ws: Workspace, f: Fields) -> dict[str, Any]:
    """metrics/get-history: every point of one metric, in pages if the client asks."""
    run_id, key = _run_id(f), f.need("metric_key")
    limit = max_results(f, MAX_HISTORY, MAX_HISTORY)
    offset = decode_token(f.text("page_token"))
    run_view(ws, run_id)  # RESOURCE_DOES_NOT_EXIST for an unknown run
    try:
        history = get_metric_history(ws, run_id, key)
    except NotFound:  # the run exists but never logged the key: an empty history
        return {"metrics": []}
    page = history.iloc[offset : offset + limit]
    stamps = (page["timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    answer: dict[str, Any] = {
        "metrics": [
            {"key": key, "value": finite(value), "timestamp": int(stamp), "step": int(step)}
            for step, value, stamp in zip(page["step"], page["value"], stamps, strict=True)
        ]
    }
    if offset + limit < len(history):
        answer["next_page_token"] = encode_token(offset + limit)
    return answer


def search_runs_handler(ws: Workspace, f: Fields) -> dict[str, Any]:
    """runs/search: MLflow's filter and order_by over the given experiments' runs."""
    expr = run_filter(f.text("filter"))
    keys = run_order(f.texts("order_by"))
    limit = max_results(f, 1000, MAX_RUNS)
    offset = decode_token(f.text("page_token"))
    found_ids = [experiment_id(ws, e, create_default=False) for e in f.texts("experiment_ids")]
    ids = [i for i in found_ids if i is not None]
    if _deleted_only(f, "run_view_type") or not ids:
        return {"runs": []}
    flush(ws)
    where = sa.and_(compile_filter(expr, ws.db.dialect), runs.c.experiment_id.in_(ids))
    source, order = compile_order_by(keys, runs)
    query = sa.select(runs.c.id).select_from(source).where(where).order_by(*order)
    with ws.db.read() as conn:
        found = list(conn.execute(query.offset(offset).limit(limit + 1)).scalars())
    answer: dict[str, Any] = {"runs": run_views(ws, found[:limit])}
    if len(found) > limit:
        answer["next_page_token"] = encode_token(offset + limit)
    return answer


def refuse_inputs(ws: Workspace, f: Fields) -> dict[str, Any]:
    """runs/log-inputs and runs/outputs: refused unless empty."""
    run_view(ws, _run_id(f))
    if any(f.messages(name) for name in ("datasets", "models")):
        raise not_implemented(
            "loopml records a run's datasets as lineage of its own versioned datasets "
            "(loopml.data) and its models in its registry: MLflow dataset inputs and logged "
            "models are not supported"
        )
    return {}


HANDLERS: list[tuple[str, str, Handler]] = [
    ("/experiments/create", "POST", create_experiment),
    ("/experiments/get", "GET", get_experiment),
    ("/experiments/get-by-name", "GET", get_experiment_by_name),
    ("/experiments/search", "POST", search_experiments),
    ("/experiments/search", "GET", search_experiments),
    ("/experiments/update", "POST", update_experiment),
    ("/experiments/delete", "POST", refuse_experiment_change),
    ("/experiments/restore", "POST", refuse_experiment_change),
    ("/experiments/set-experiment-tag", "POST", refuse_experiment_change),
    ("/experiments/delete-experiment-tag", "POST", refuse_experiment_change),
    ("/runs/create", "POST", create_run_handler),
    ("/runs/get", "GET", get_run_handler),
    ("/runs/update", "POST", update_run_handler),
    ("/runs/delete", "POST", refuse_run_change),
    ("/runs/restore", "POST", refuse_run_change),
    ("/runs/log-metric", "POST", log_metric),
    ("/runs/log-parameter", "POST", log_param),
    ("/runs/log-batch", "POST", log_batch),
    ("/runs/set-tag", "POST", set_tag),
    ("/runs/delete-tag", "POST", delete_tag),
    ("/runs/search", "POST", search_runs_handler),
    ("/runs/log-inputs", "POST", refuse_inputs),
    ("/runs/outputs", "POST", refuse_inputs),
    ("/metrics/get-history", "GET", get_metric_history_handler),
]
"""``(path under /api/2.0/mlflow, method, handler)`` of every tracking endpoint."""
