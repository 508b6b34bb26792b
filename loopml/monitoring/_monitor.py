"""Monitors: a deployment watched against a reference summarised once.

:func:`create_monitor` finds the reference (by default the dataset version the deployment's
primary model version was trained on, walking lineage model_version ← run ←
dataset_version), summarises the model's input columns, the target (as the label
reference) and the model's predictions on it, and stores that summary as a blob.
:func:`check_monitor` (in :mod:`loopml.monitoring._check`) then never re-reads the
reference data.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from loopml import data, registry, tracking
from loopml.errors import AlreadyExists, InvalidInput, LoopmlError, NotFound
from loopml.monitoring._alerts import parse_rules
from loopml.monitoring._drift import summarize_parallel
from loopml.monitoring._notify import parse_notify
from loopml.monitoring._summary import ReferenceSummary
from loopml.monitoring._tests import TESTS
from loopml.serving import get_deployment, resolve_version
from loopml.store import Node, Workspace, add_edge, now_ms, upstream
from loopml.store.schema import alerts, monitor_reports, monitors

_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_DURATION: Final = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_MS: Final = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_ROLES: Final = ("primary", "shadow", "candidate")
_NO_PARAM: Final = ("", "None", "null")


@dataclass(frozen=True)
class Monitor:
    """A monitor record.

    Attributes
    ----------
    name, deployment : the monitor and the deployment it watches.
    reference : where the reference came from: ``dataset`` (``"churn@1"``), ``source``
        (``"lineage"`` or ``"given"``), ``model_version`` and ``run`` when known.
    features : the model's input columns, summarised.
    label : the reference's target column (compared with feedback labels), or None.
    prediction : the name the predictions' summary is kept under, or None.
    task : ``binary``, ``multiclass``, ``regression`` or None when unknown.
    window, window_rows : the current window: a duration back from now (``"1h"``) or the
        newest N predictions.
    role : the prediction-log role read (``"primary"``; None for every role).
    rules, notify : alert rules and notify specs.
    tests, thresholds, drift_share : drift test options (see :func:`drift_report`).
    summary_digest : the blob of the reference summary.
    """

    name: str
    deployment: str
    reference: dict[str, Any]
    features: list[str]
    label: str | None
    prediction: str | None
    task: str | None
    window: str | None
    window_rows: int | None
    role: str | None
    rules: list[str]
    notify: list[str]
    tests: dict[str, str]
    thresholds: dict[str, float]
    drift_share: float
    summary_digest: str
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def window_ms(self) -> int | None:
        """The time window in milliseconds (None for a row window)."""
        return None if self.window is None else parse_duration(self.window)

    def summary(self, ws: Workspace) -> ReferenceSummary:
        """The stored reference summary."""
        return ReferenceSummary.from_bytes(ws.blobs.get_bytes(self.summary_digest))


def _time(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def parse_duration(text: object, field: str = "window") -> int:
    """Milliseconds of a duration such as ``"30s"``, ``"15m"``, ``"1h"``, ``"7d"``, ``"1w"``."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise InvalidInput(
            f"{field} {text!r} is not a positive duration such as 30s, 15m, 1h, 7d or 1w"
        )
    return int(float(match.group(1)) * _UNIT_MS[match.group(2)])


def check_monitor_name(name: object) -> str:
    """``name`` if usable as a monitor name; raise InvalidInput otherwise."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"monitor name {name!r} is not valid: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def _from_row(r: Any) -> Monitor:
    c = dict(r.config)
    return Monitor(
        name=r.name,
        deployment=r.deployment,
        reference=dict(r.reference),
        features=list(c["features"]),
        label=c.get("label"),
        prediction=c.get("prediction"),
        task=c.get("task"),
        window=c.get("window"),
        window_rows=c.get("window_rows"),
        role=c.get("role"),
        rules=list(c.get("rules", [])),
        notify=list(c.get("notify", [])),
        tests=dict(c.get("tests", {})),
        thresholds=dict(c.get("thresholds", {})),
        drift_share=float(c.get("drift_share", 0.5)),
        summary_digest=r.summary_digest,
        created_at=_time(r.created_at),
        updated_at=_time(r.updated_at),
    )


# -- the reference -----------------------------------------------------------------------
def training_reference(ws: Workspace, mv: registry.ModelVersion) -> tuple[str, str]:
    """(dataset ref, run id) of the data ``mv`` was trained on, found by lineage.

    Raises
    ------
    NotFound
        No run produced ``mv``, or its run read no dataset version.
    """
    node = Node("model_version", f"{mv.name}/{mv.version}")
    edges = upstream(ws.db, node, max_depth=2)
    runs = [e.src.id for e in edges if e.dst == node and e.src.kind == "run"]
    if not runs:
        raise NotFound(
            f"model version {mv.name}/{mv.version} has no run in its lineage (it was registered "
            "without one), so its training data is unknown; pass reference='dataset@version'"
        )
    for run_id in runs:
        inputs = [
            e for e in edges if e.dst == Node("run", run_id) and e.src.kind == "dataset_version"
        ]
        chosen = [e for e in inputs if e.role == "training"] or inputs
        if chosen:
            return chosen[0].src.id, run_id
    raise NotFound(
        f"the run {runs[0]} that produced model version {mv.name}/{mv.version} read no dataset "
        "version (it trained on a DataFrame); pass reference='dataset@version'"
    )


def _run_param(ws: Workspace, run_id: str | None, key: str) -> str | None:
    if run_id is None:
        return None
    try:
        value = tracking.get_run(ws, run_id).params.get(key)
    except NotFound:
        return None
    return None if value is None or value in _NO_PARAM else value


def _prediction_name(features: Sequence[str], label: str | None) -> str:
    name = "prediction"
    while name in features or name == label:
        name += "_"
    return name


def _predictions(
    ws: Workspace, mv: registry.ModelVersion, table: pa.Table, features: list[str]
) -> pa.Array | None:
    """The model's predictions on the reference (None when they are not one column)."""
    model = registry.load_model(ws, mv)
    try:
        values = np.asarray(model.predict(table.select(features).to_pandas()))
    except LoopmlError:
        raise
    except Exception as exc:  # the model library's own error on its training data
        raise InvalidInput(f"{mv.uri} cannot predict on the reference: {exc}") from exc
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        return None
    return pa.array(values)


def _check_options(
    features: list[str],
    extra: list[str],
    tests: Mapping[str, str] | None,
    thresholds: Mapping[str, float] | None,
    drift_share: float,
) -> tuple[dict[str, str], dict[str, float]]:
    columns = {*features, *extra}
    out_tests: dict[str, str] = {}
    for key, test in dict(tests or {}).items():
        if key not in columns and key not in ("numeric", "categorical"):
            raise InvalidInput(f"tests: {key!r} is neither a monitored column nor a kind")
        if test not in TESTS:
            raise InvalidInput(f"tests: unknown drift test {test!r}; use one of {', '.join(TESTS)}")
        out_tests[str(key)] = str(test)
    out_thresholds: dict[str, float] = {}
    for key, value in dict(thresholds or {}).items():
        if key not in columns and key not in TESTS:
            raise InvalidInput(
                f"thresholds: {key!r} is neither a drift test nor a monitored column"
            )
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not np.isfinite(value) or value < 0:
            raise InvalidInput(f"thresholds: {key!r} must be a number >= 0, not {value!r}")
        out_thresholds[str(key)] = float(value)
    ok = isinstance(drift_share, int | float) and not isinstance(drift_share, bool)
    if not ok or not 0 < drift_share <= 1:
        raise InvalidInput(f"drift_share must be in (0, 1], not {drift_share!r}")
    return out_tests, out_thresholds


def create_monitor(
    ws: Workspace,
    name: str,
    deployment: str,
    *,
    reference: str | data.DatasetVersion | None = None,
    label: str | None = None,
    window: str | None = None,
    window_rows: int | None = None,
    role: str | None = "primary",
    tests: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    drift_share: float = 0.5,
    rules: Sequence[str] | None = None,
    notify: Sequence[str] | None = None,
    replace: bool = False,
) -> Monitor:
    """Create monitor ``name`` watching ``deployment``; summarise its reference once.

    Parameters
    ----------
    ws : the workspace.
    name : monitor name (letters, digits, ``.``, ``_``, ``-``).
    deployment : the deployment watched.
    reference : a dataset version (``"churn@1"``); default: the one the deployment's primary
        model version was trained on (lineage model_version ← run ← dataset_version).
    label : the reference's target column; default: the training run's ``target``.
    window : the current window as a duration back from now (default ``"1h"``); or
    window_rows : the newest N predictions.
    role : prediction-log role to read (``"primary"``; None reads every role).
    tests, thresholds, drift_share : as :func:`loopml.monitoring.drift_report` takes them.
    rules : alert rules, e.g. ``["drift_share > 0.3", "rows < 1"]``.
    notify : ``"log"``, ``"webhook:https://..."``, ``"slack:https://..."``.
    replace : replace an existing monitor of that name (its reports and alerts stay).

    Returns
    -------
    Monitor

    Raises
    ------
    InvalidInput
        A bad name, window, rule, notify spec, test or threshold; a reference lacking one of
        the model's input columns or the label; a model whose inputs are unnamed.
    NotFound
        The deployment, its model version, the reference, or (without ``reference``) a
        training dataset in the lineage.
    AlreadyExists
        A monitor of that name exists and ``replace`` is False.

    Examples
    --------
    >>> create_monitor(ws, "churn", "churn", window="1h",  # doctest: +SKIP
    ...                rules=["drift_share > 0.3", "rows < 1"], notify=["log"])
    """
    check_monitor_name(name)
    if window is not None and window_rows is not None:
        raise InvalidInput("give window (a duration) or window_rows (a row count), not both")
    if window_rows is not None:
        if isinstance(window_rows, bool) or not isinstance(window_rows, int) or window_rows < 1:
            raise InvalidInput(f"window_rows must be a whole number >= 1, not {window_rows!r}")
    else:
        window = window or "1h"
        parse_duration(window)
        window = window.strip()
    if role is not None and role not in _ROLES:
        raise InvalidInput(f"role must be one of {', '.join(_ROLES)} or None, not {role!r}")
    rule_texts = [str(r) for r in parse_rules(rules)]
    if isinstance(notify, str):
        raise InvalidInput(f"notify must be a list of specs, e.g. [{notify!r}]")
    notify_specs = [parse_notify(n) for n in notify or []]
    if not replace and _find(ws, name) is not None:
        raise AlreadyExists(f"a monitor named {name!r} exists; delete it or pass replace=True")

    dep = get_deployment(ws, deployment)
    version = resolve_version(ws, dep.model, dep.primary)
    mv = registry.get_model_version(ws, f"{dep.model}/{version}")
    if mv.signature.input_type == "ndarray":
        raise InvalidInput(
            f"{mv.uri} was fitted on a bare array (inputs '0', '1', ...): a monitor needs "
            "named input columns to compare with a reference dataset"
        )
    features = [c.name for c in mv.signature.inputs]
    run_id: str | None = mv.run_id
    if reference is None:
        ref, run_id = training_reference(ws, mv)
        source = "lineage"
    else:
        ref = reference.ref if isinstance(reference, data.DatasetVersion) else reference
        source = "given"
    if not isinstance(ref, str):
        raise InvalidInput(f"reference must be a dataset reference such as 'churn@1', not {ref!r}")
    dv = data.resolve(ref, workspace=ws)
    if label is None:
        target = _run_param(ws, run_id, "target")
        label = target if target in dv.column_names and target not in features else None
    elif label not in dv.column_names:
        raise InvalidInput(f"label column {label!r} is not in the reference {dv.ref}")
    missing = [c for c in features if c not in dv.column_names]
    if missing:
        raise InvalidInput(
            f"reference {dv.ref} lacks the model's input column(s) "
            f"{', '.join(map(repr, missing))} ({mv.uri} takes {', '.join(features)})"
        )
    wanted = [*features, *([label] if label else [])]
    table = dv.to_arrow(wanted)
    summary = summarize_parallel(table, wanted)
    predictions = _predictions(ws, mv, table, features)
    prediction: str | None = None
    if predictions is not None and predictions.null_count < len(predictions):
        prediction = _prediction_name(features, label)
        part = summarize_parallel(pa.table({prediction: predictions}), [prediction])
        summary = ReferenceSummary(summary.num_rows, {**summary.columns, **part.columns})
    task = _run_param(ws, run_id, "task")
    tests_, thresholds_ = _check_options(
        features, [c for c in (label, prediction) if c], tests, thresholds, drift_share
    )
    digest = ws.blobs.put_bytes(summary.to_bytes())
    config = {
        "features": features,
        "label": label,
        "prediction": prediction,
        "task": task,
        "window": window if window_rows is None else None,
        "window_rows": window_rows,
        "role": role,
        "rules": rule_texts,
        "notify": notify_specs,
        "tests": tests_,
        "thresholds": thresholds_,
        "drift_share": float(drift_share),
    }
    ref_info = {
        "dataset": dv.ref,
        "source": source,
        "model_version": f"{mv.name}/{mv.version}",
        "run": run_id,
        "rows": summary.num_rows,
    }
    now = now_ms()
    row = {
        "name": name,
        "deployment": deployment,
        "reference": ref_info,
        "summary_digest": digest,
        "config": config,
        "created_at": now,
        "updated_at": now,
    }
    with ws.db.write() as conn:
        update = [k for k in row if k not in ("name", "created_at")] if replace else []
        written = ws.db.upsert(conn, monitors, [row], keys=["name"], update=update)
        if not written:
            raise AlreadyExists(f"a monitor named {name!r} exists; delete it or pass replace=True")
        add_edge(ws.db, conn, dv.lineage_node, Node("monitor", name), "reference")
        add_edge(ws.db, conn, Node("deployment", deployment), Node("monitor", name), "watched_by")
    return get_monitor(ws, name)


def _find(ws: Workspace, name: str) -> Monitor | None:
    with ws.db.read() as conn:
        row = conn.execute(sa.select(monitors).where(monitors.c.name == name)).first()
    return None if row is None else _from_row(row)


def get_monitor(ws: Workspace, name: str) -> Monitor:
    """Monitor ``name``.

    Raises
    ------
    NotFound
        No monitor has that name; the message lists the ones that exist.
    """
    check_monitor_name(name)
    found = _find(ws, name)
    if found is None:
        names = [m.name for m in list_monitors(ws)]
        hint = f"monitors: {', '.join(map(repr, names[:10]))}" if names else "none exist yet"
        raise NotFound(f"no monitor named {name!r}; {hint}")
    return found


def list_monitors(ws: Workspace, deployment: str | None = None) -> list[Monitor]:
    """Every monitor (of ``deployment``, if given), by name."""
    query = sa.select(monitors).order_by(monitors.c.name)
    if deployment is not None:
        query = query.where(monitors.c.deployment == deployment)
    with ws.db.read() as conn:
        return [_from_row(r) for r in conn.execute(query)]


def delete_monitor(ws: Workspace, name: str) -> None:
    """Remove monitor ``name`` with its report rows and alerts (blobs stay).

    Raises
    ------
    NotFound
        No monitor has that name.
    """
    get_monitor(ws, name)
    with ws.db.write() as conn:
        conn.execute(sa.delete(monitor_reports).where(monitor_reports.c.monitor == name))
        conn.execute(sa.delete(alerts).where(alerts.c.source == name))
        conn.execute(sa.delete(monitors).where(monitors.c.name == name))


__all__ = [
    "Monitor",
    "check_monitor_name",
    "create_monitor",
    "delete_monitor",
    "get_monitor",
    "list_monitors",
    "parse_duration",
    "training_reference",
]
