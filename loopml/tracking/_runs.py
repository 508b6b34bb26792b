"""Runs: one execution of training code, with its params, metrics, tags and artifacts.

``start_run`` returns a :class:`Run` and makes it the active run of the current context
(thread or asyncio task), so module-level ``log_metric`` & co. find it. Used as a context
manager the run ends FINISHED, or FAILED with the error recorded if the block raises
(KILLED on Ctrl-C); buffered metrics are written before the status changes.
"""

from __future__ import annotations

import contextvars
import functools
import io
import json
import os
import subprocess
import sys
import traceback
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
import sqlalchemy as sa

from loopml.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from loopml.store import Node, Workspace, default_workspace, now_ms
from loopml.store.schema import experiments, runs
from loopml.tracking._experiments import (
    Experiment,
    ExperimentCache,
    check_name,
    get_experiment,
)
from loopml.tracking._remote import RemoteSender
from loopml.tracking._rows import MAX_ERROR, param_conflict
from loopml.tracking._sink import RunSink
from loopml.tracking._writer import MetricWriter

Status = Literal["RUNNING", "FINISHED", "FAILED", "KILLED"]
STATUSES: tuple[Status, ...] = ("RUNNING", "FINISHED", "FAILED", "KILLED")


def sink_for(ws: Workspace) -> RunSink:
    """Where the workspace's run handles write: its server, or its own database."""
    if ws.remote is not None:
        return ws.component(RemoteSender)
    return ws.component(MetricWriter)


_active: contextvars.ContextVar[tuple[Run, ...]] = contextvars.ContextVar(
    "loopml_active_runs", default=()
)


@functools.lru_cache(maxsize=8)
def _git_commit(cwd: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _entry_point() -> str:
    main = sys.argv[0] if sys.argv and sys.argv[0] else "<interactive>"
    return os.path.basename(main) or main


def _metric_value(key: str, value: object) -> float:
    if isinstance(value, float):
        return value
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInput(f"metric {key!r}: value {value!r} is not a number") from None


def _param_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


class Run:
    """A handle on one run. Make runs with :func:`start_run`, not directly."""

    def __init__(
        self,
        ws: Workspace,
        id: str,
        experiment: Experiment,
        name: str,
        parent_id: str | None = None,
        next_steps: dict[str, int] | None = None,
    ) -> None:
        self.ws = ws
        self.id = id
        self.experiment = experiment
        self.name = name
        self.parent_id = parent_id
        self.status: Status = "RUNNING"
        self._sink = sink_for(ws)
        self._next_step: dict[str, int] = next_steps or {}
        self._params: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, name={self.name!r}, status={self.status!r})"

    # -- params and tags --------------------------------------------------------------
    def log_param(self, key: str, value: object) -> None:
        """Record one parameter. Params are immutable: a different value raises Conflict."""
        self.log_params({key: value})

    def log_params(self, values: Mapping[str, object]) -> None:
        """Record several parameters at once (see :meth:`log_param`)."""
        new = {check_name(k, "param key", max_len=250): _param_text(v) for k, v in values.items()}
        for key, text in new.items():
            if key in self._params and self._params[key] != text:
                raise Conflict(param_conflict(self.id, key, self._params[key], text))
        new = {k: v for k, v in new.items() if k not in self._params}
        if not new:
            return
        self._sink.log_params(self.id, new)
        self._params.update(new)

    def set_tag(self, key: str, value: object) -> None:
        """Set (or overwrite) one tag."""
        self.set_tags({key: value})

    def set_tags(self, values: Mapping[str, object]) -> None:
        """Set (or overwrite) several tags."""
        clean = {check_name(k, "tag key", max_len=250): str(v) for k, v in values.items()}
        if clean:
            self._sink.set_tags(self.id, clean)

    # -- metrics ----------------------------------------------------------------------
    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: int | None = None
    ) -> None:
        """Append a point to metric ``key``'s history (buffered; see :meth:`flush`).

        ``step`` defaults to one past the key's previous step in this run (0 first);
        ``timestamp`` is epoch milliseconds, default now.
        """
        if type(key) is not str or not key:
            check_name(key, "metric key")
        value = _metric_value(key, value)
        if step is None:
            step = self._next_step.get(key, 0)
        elif type(step) is not int:
            step = self._check_step(step)
        self._next_step[key] = step + 1
        self._sink.add(self.id, key, value, step, now_ms() if timestamp is None else timestamp)

    def log_metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        """Append one point to each of several metrics, all at the same step and time."""
        clean = {
            check_name(k, "metric key", max_len=250): _metric_value(k, v) for k, v in values.items()
        }
        if step is not None:
            step = self._check_step(step)
        steps = {k: self._next_step.get(k, 0) if step is None else step for k in clean}
        for key, s in steps.items():
            self._next_step[key] = s + 1
        self._sink.add_many(self.id, clean, steps, now_ms())

    def log_batch(
        self,
        key: str,
        values: Sequence[float] | np.ndarray,
        steps: Sequence[int] | np.ndarray | None = None,
        timestamps: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        """Append many points of one metric at once (e.g. a whole loss curve).

        ``steps`` default to consecutive steps after the key's last one; ``timestamps``
        (epoch ms) default to now.
        """
        check_name(key, "metric key", max_len=250)
        try:
            vals = np.asarray(values, dtype="f8")
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"metric {key!r}: values are not all numbers ({exc})") from None
        n = len(vals)
        if steps is None:
            start = self._next_step.get(key, 0)
            step_arr = np.arange(start, start + n, dtype="i8")
        else:
            step_arr = np.asarray(steps)
            if step_arr.shape != (n,) or (n and step_arr.dtype.kind not in "iu"):
                raise InvalidInput(f"metric {key!r}: steps must be {n} integers")
        stamps = np.full(n, now_ms(), dtype="i8") if timestamps is None else np.asarray(timestamps)
        if stamps.shape != (n,):
            raise InvalidInput(f"metric {key!r}: timestamps must be {n} integers")
        if n:
            self._next_step[key] = max(self._next_step.get(key, 0), int(step_arr.max()) + 1)
            self._sink.add_series(self.id, key, step_arr.tolist(), vals.tolist(), stamps.tolist())

    @staticmethod
    def _check_step(step: object) -> int:
        if isinstance(step, bool) or not isinstance(step, int | float) or step != int(step):
            raise InvalidInput(f"step must be an integer, got {step!r}")
        return int(step)

    def flush(self) -> None:
        """Write every buffered metric point of this process now."""
        self._sink.flush()

    # -- artifacts and inputs ---------------------------------------------------------
    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Store a file, or every file under a folder, as artifacts of this run.

        Files land at ``artifact_path/<name>`` (folders keep their inner layout).
        """
        src = Path(path)
        if not src.exists():
            raise NotFound(f"cannot log artifact: no such file or folder {str(src)!r}")
        prefix = (artifact_path.strip("/") + "/") if artifact_path else ""
        if src.is_file():
            files = {prefix + src.name: src}
        else:
            files = {
                prefix + p.relative_to(src).as_posix(): p
                for p in sorted(src.rglob("*"))
                if p.is_file()
            }
        self._record_artifacts(
            {rel: (self.ws.blobs.put_file(p), p.stat().st_size) for rel, p in files.items()}
        )

    def log_bytes(self, data: bytes, name: str) -> None:
        """Store ``data`` as the artifact ``name``."""
        check_name(name, "artifact name", max_len=1024)
        self._record_artifacts({name.strip("/"): (self.ws.blobs.put_bytes(data), len(data))})

    def log_text(self, text: str, name: str) -> None:
        """Store a string as a UTF-8 text artifact."""
        self.log_bytes(text.encode("utf-8"), name)

    def log_dict(self, data: Mapping[str, Any], name: str) -> None:
        """Store a dict as a JSON artifact (``name`` should end in .json)."""
        try:
            text = json.dumps(data, indent=2, sort_keys=True, default=str, allow_nan=True)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"log_dict({name!r}): not JSON-serialisable: {exc}") from exc
        self.log_text(text, name)

    def log_figure(self, figure: Any, name: str) -> None:
        """Store a matplotlib figure as an image artifact (format from the suffix, e.g. .png)."""
        if not hasattr(figure, "savefig"):
            raise InvalidInput(
                f"log_figure({name!r}): expected a matplotlib Figure, got {type(figure).__name__}"
            )
        fmt = Path(name).suffix.lstrip(".") or "png"
        buf = io.BytesIO()
        figure.savefig(buf, format=fmt, bbox_inches="tight")
        self.log_bytes(buf.getvalue(), name if Path(name).suffix else f"{name}.png")

    def _record_artifacts(self, files: dict[str, tuple[str, int]]) -> None:
        self._sink.record_artifacts(self.id, files)

    def log_input(self, dataset: object, role: str = "training") -> None:
        """Record that this run read ``dataset`` (a DatasetVersion or a ``name@version`` string)."""
        node = getattr(dataset, "lineage_node", None)
        if not isinstance(node, Node):
            if not isinstance(dataset, str) or "@" not in dataset:
                raise InvalidInput(
                    f"log_input: expected a DatasetVersion or a 'name@version' reference, "
                    f"got {dataset!r}"
                )
            node = Node("dataset_version", dataset)
        self._sink.add_input(self.id, node, check_name(role, "role"))

    # -- lifecycle --------------------------------------------------------------------
    def end(self, status: Status = "FINISHED", error: str | None = None) -> None:
        """Flush buffered metrics and close the run with ``status``."""
        if status not in STATUSES[1:]:
            raise InvalidInput(
                f"end status must be one of {', '.join(STATUSES[1:])}, got {status!r}"
            )

        self._sink.end_run(self.id, status, error)
        self.status = status
        stack = _active.get()
        if self in stack:
            _active.set(tuple(r for r in stack if r is not self))

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.status != "RUNNING":  # ended inside the block already (e.g. KILLED)
            return
        if exc is None or (isinstance(exc, SystemExit) and exc.code in (0, None)):
            self.end("FINISHED")
        elif isinstance(exc, KeyboardInterrupt):
            self.end("KILLED", error="KeyboardInterrupt")
        else:
            self.end("FAILED", error="".join(traceback.format_exception(exc)))


def start_run(
    experiment: str = "default",
    name: str | None = None,
    *,
    run_id: str | None = None,
    parent: Run | str | None = None,
    nested: bool = False,
    tags: Mapping[str, object] | None = None,
    workspace: Workspace | None = None,
) -> Run:
    """Start a run (or resume run ``run_id``) and make it the active run.

    Parameters
    ----------
    experiment : experiment name, created on first use.
    name : a human name for the run (default: ``run-<first 8 id characters>``).
    run_id : resume this existing run instead of creating one.
    parent : the parent run (or its id); ``nested=True`` takes the active run as parent.
    tags : initial tags.
    workspace : default: the process's default workspace.

    Examples
    --------
    >>> with start_run(experiment="churn") as run:      # doctest: +SKIP
    ...     run.log_metric("auc", 0.91)
    """
    ws = workspace or default_workspace()
    if run_id is not None:
        run = _resume(ws, run_id)
    else:
        if nested and parent is None:
            stack = _active.get()
            if not stack:
                raise InvalidInput("start_run(nested=True) needs an active run to nest under")
            parent = stack[-1]
        parent_id = parent.id if isinstance(parent, Run) else parent
        exp = ws.component(ExperimentCache).get_or_create(experiment)
        new_id = uuid.uuid4().hex
        run_name = check_name(name, "run name") if name is not None else f"run-{new_id[:8]}"
        row = {
            "id": new_id,
            "experiment_id": exp.id,
            "name": run_name,
            "status": "RUNNING",
            "start_time": now_ms(),
            "parent_id": parent_id,
            "source_commit": _git_commit(os.getcwd()),
            "source_entry_point": _entry_point(),
        }
        sink = sink_for(ws)
        if parent_id is not None:
            sink.check_parent(parent_id)
        sink.add_run(row)  # inserted by the run's first write (params, tags, flush, end)
        run = Run(ws, new_id, exp, run_name, parent_id)
    if tags:
        run.set_tags(tags)
    _active.set((*_active.get(), run))
    return run


def _resume(ws: Workspace, run_id: str) -> Run:
    stored = sink_for(ws).resume(run_id)
    exp = get_experiment(ws, stored.experiment)
    run = Run(ws, run_id, exp, stored.name, stored.parent_id, next_steps=stored.next_steps)
    run._params.update(stored.params)  # a changed param raises at once, also remotely
    return run


def create_run(
    ws: Workspace,
    experiment: str = "default",
    name: str | None = None,
    *,
    run_id: str | None = None,
    parent_id: str | None = None,
    start_time: int | None = None,
    source_commit: str | None = None,
    source_entry_point: str | None = None,
    tags: Mapping[str, object] | None = None,
) -> Run:
    """Create a RUNNING run now, for a caller elsewhere (a server's client), and return a
    handle as :func:`open_run` does: not active, and not ended when this process exits.

    ``start_time`` is epoch milliseconds (default now). Raises NotFound for a missing
    parent, AlreadyExists for a ``run_id`` in use.
    """
    new_id = run_id or uuid.uuid4().hex
    if len(new_id) != 32 or any(c not in "0123456789abcdef" for c in new_id):
        raise InvalidInput(f"run id must be 32 lowercase hex characters, got {new_id!r}")
    exp = ws.component(ExperimentCache).get_or_create(experiment)
    run_name = check_name(name, "run name") if name is not None else f"run-{new_id[:8]}"
    row = {
        "id": new_id,
        "experiment_id": exp.id,
        "name": run_name,
        "status": "RUNNING",
        "start_time": now_ms() if start_time is None else int(start_time),
        "parent_id": parent_id,
        "source_commit": source_commit,
        "source_entry_point": source_entry_point,
    }
    with ws.component(MetricWriter).write() as conn:
        if parent_id is not None:
            found = conn.execute(sa.select(runs.c.id).where(runs.c.id == parent_id)).first()
            if found is None:
                raise NotFound(f"parent run {parent_id!r} does not exist")
        if conn.execute(sa.select(runs.c.id).where(runs.c.id == new_id)).first() is not None:
            raise AlreadyExists(f"a run with id {new_id!r} exists already")
        conn.execute(runs.insert().values(row))
    run = Run(ws, new_id, exp, run_name, parent_id)
    if tags:
        run.set_tags(tags)
    return run


def update_run(
    ws: Workspace,
    run_id: str,
    *,
    status: Status | None = None,
    end_time: int | None = None,
    name: str | None = None,
    error: str | None = None,
) -> None:
    """Change a run's status (with its end time), name or error text; NotFound if none.

    Buffered points of this process are written first, so a run ends after its metrics.
    """
    values: dict[str, object] = {}
    if status is not None:
        if status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        values["status"] = status
        values["end_time"] = (
            None if status == "RUNNING" else (now_ms() if end_time is None else int(end_time))
        )
    elif end_time is not None:
        values["end_time"] = int(end_time)
    if name is not None:
        values["name"] = check_name(name, "run name")
    if error is not None:
        values["error"] = error[-MAX_ERROR:]
    writer = ws.component(MetricWriter)
    writer.flush()
    with writer.write() as conn:
        if not values:
            found = conn.execute(sa.select(runs.c.id).where(runs.c.id == run_id)).first()
            changed = 0 if found is None else 1
        else:
            changed = conn.execute(runs.update().where(runs.c.id == run_id).values(values)).rowcount
    if not changed:
        raise NotFound(f"no run with id {run_id!r}")


def open_run(ws: Workspace, run_id: str) -> Run:
    """A handle to log to the existing run ``run_id`` as it stands: its status is left as it
    is and it does not become the active run (what a server handling one request needs).

    Raises NotFound if there is no such run.
    """
    with ws.db.read() as conn:
        row = conn.execute(
            sa.select(runs.c.name, runs.c.parent_id, runs.c.status, experiments.c.name)
            .join(experiments, experiments.c.id == runs.c.experiment_id)
            .where(runs.c.id == run_id)
        ).first()
    if row is None:
        raise NotFound(f"no run with id {run_id!r}")
    run = Run(ws, run_id, get_experiment(ws, row[3]), row[0], row[1])
    run.status = row[2]
    return run


def active_run() -> Run | None:
    """The innermost active run of this context, or None."""
    stack = _active.get()
    return stack[-1] if stack else None


def require_active_run() -> Run:
    """The active run, or InvalidInput explaining how to start one."""
    run = active_run()
    if run is None:
        raise InvalidInput("no active run: wrap the code in `with loopml.start_run(...):`")
    return run
