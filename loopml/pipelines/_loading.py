"""Finding a pipeline again from where it was defined (to run it from the CLI, resume it or
schedule it): ``module:name``, ``path/to/file.py:name`` or a ``loopml.yaml`` recipe."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from loopml.errors import InvalidInput
from loopml.pipelines import _records as records
from loopml.pipelines._executors import Executor
from loopml.pipelines._pipeline import Pipeline, PipelineRun
from loopml.pipelines._recipe import load_recipe
from loopml.pipelines._runner import EventHook
from loopml.pipelines._worker import load_file, module_name_for
from loopml.store import Workspace, default_workspace


def load_pipeline(source: str) -> Pipeline[Any]:
    """The pipeline at ``module:name``, ``path/to/file.py:name`` or a ``loopml.yaml`` recipe."""
    if source.endswith((".yaml", ".yml")):
        return load_recipe(source)
    where, sep, attr = source.rpartition(":")
    if not sep or not where or not attr:
        raise InvalidInput(f"pipeline {source!r}: expected 'module:name' or 'file.py:name'")
    if where.endswith(".py") or "/" in where:
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise InvalidInput(f"pipeline {source!r}: no such file {path}")
        module: Any = load_file(str(path))
        assert module.__name__ == module_name_for(str(path))
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise InvalidInput(f"pipeline {source!r}: cannot import {where!r}: {exc}") from exc
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
    if not isinstance(target, Pipeline):
        raise InvalidInput(f"pipeline {source!r}: {attr!r} is not a @loopml.pipeline function")
    return target


def resume(
    run_id: str,
    *,
    executor: str | Executor | None = None,
    workspace: Workspace | None = None,
    on_event: EventHook | None = None,
    raise_on_failure: bool = True,
) -> PipelineRun:
    """Resume failed pipeline run ``run_id``, finding its pipeline from where it was defined."""
    ws = workspace or default_workspace()
    found = records.get_pipeline_run(ws, run_id)
    return load_pipeline(found.source).resume(
        run_id,
        executor=executor,
        workspace=ws,
        on_event=on_event,
        raise_on_failure=raise_on_failure,
    )
