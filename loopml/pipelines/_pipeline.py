"""``@pipeline``: a function whose step calls make a DAG; running it runs the DAG.

The pipeline's parameters are validated with pydantic (from the function's annotations)
before anything runs. A run is recorded as a pipeline run with a parent tracking run; a
failed run resumes from its failed steps with :func:`resume`, reusing the finished ones.
"""

from __future__ import annotations

import functools
import inspect
import json
import typing
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, ParamSpec, TypeVar, overload

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from loopml import tracking
from loopml.errors import InvalidInput, LoopmlError
from loopml.pipelines import _records as records
from loopml.pipelines import _values as values
from loopml.pipelines._executors import Executor, get_executor
from loopml.pipelines._graph import Graph, Output, building, outputs_in, substitute
from loopml.pipelines._runner import EventHook, Runner
from loopml.pipelines._step import _NAME
from loopml.store import Workspace, default_workspace, now_ms

P = ParamSpec("P")
R = TypeVar("R")


class PipelineFailed(LoopmlError):
    """A pipeline run ended FAILED; ``run`` is its :class:`PipelineRun`."""

    def __init__(self, message: str, run: PipelineRun) -> None:
        super().__init__(message)
        self.run = run


@dataclass
class PipelineRun:
    """The outcome of one pipeline run."""

    id: str
    pipeline: str
    status: str
    run_id: str
    ws: Workspace = field(repr=False)
    returned: Any = field(default=None, repr=False)

    @property
    def steps(self) -> pd.DataFrame:
        """One row per step call: status, cache hit, attempts, times, output, error."""
        return records.step_table(self.ws, self.id)

    def value(self, node: str) -> Any:
        """The stored output of step call ``node`` (loopml objects resolved)."""
        found = records.finished_steps(self.ws, self.id).get(node)
        if found is None:
            raise InvalidInput(f"pipeline run {self.id}: step {node!r} has no finished output")
        return values.from_wire(self.ws, values.load(self.ws, *found))

    @property
    def output(self) -> Any:
        """What the pipeline function returned, with each step output's value in place."""
        nodes = {o.node for o in outputs_in(self.returned)}
        return substitute(self.returned, {n: self.value(n) for n in nodes})


class Pipeline(Generic[P]):
    """A function declared with :func:`pipeline`; ``run`` (or calling it) runs it."""

    def __init__(
        self,
        fn: Callable[P, Any],
        name: str,
        executor: str | Executor,
        cache: bool,
        *,
        source: str | None = None,
    ) -> None:
        if not _NAME.match(name):
            raise InvalidInput(f"pipeline name {name!r}: use letters, digits, '_', '.', '-'")
        self.fn = fn
        self.name = name
        self.executor = executor
        self.cache = cache
        self._source = source
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r})"

    @property
    def source(self) -> str:
        """Where the pipeline is found again: ``module:qualname``, ``file.py:qualname`` or
        the recipe file it was read from."""
        if self._source is not None:
            return self._source
        module = str(self.fn.__module__)
        if module == "__main__" or module.startswith("loopml_pipeline_"):
            return f"{Path(inspect.getfile(self.fn)).resolve()}:{self.fn.__qualname__}"
        return f"{module}:{self.fn.__qualname__}"

    @functools.cached_property
    def params_model(self) -> type[BaseModel]:
        """A pydantic model of the parameters, from the function's annotations."""
        fields: dict[str, Any] = {}
        try:  # annotations postponed by `from __future__ import annotations` are text
            hints = typing.get_type_hints(self.fn, include_extras=True)
        except (NameError, TypeError, AttributeError):  # unresolvable: pydantic names it
            hints = {}
        for p in self.signature.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise InvalidInput(f"pipeline {self.name!r}: *args/**kwargs are not supported")
            annotation = hints.get(p.name, Any if p.annotation is p.empty else p.annotation)
            fields[p.name] = (annotation, ... if p.default is p.empty else p.default)
        config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")
        return create_model(f"{self.name}_params", __config__=config, **fields)

    def validate(self, params: Mapping[str, Any] | None) -> BaseModel:
        """The validated parameters, or InvalidInput naming the parameter that is wrong."""
        if params is not None and not isinstance(params, Mapping):
            raise InvalidInput(f"pipeline {self.name!r}: params must be a mapping")
        try:
            return self.params_model.model_validate(dict(params or {}))
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"])
                msg = "unknown parameter" if err["type"] == "extra_forbidden" else err["msg"]
                problems.append(f"parameter {where!r}: {msg} (got {err.get('input')!r})")
            raise InvalidInput(f"pipeline {self.name!r}: " + "; ".join(problems)) from None

    def build(self, params: BaseModel) -> tuple[Graph, Any]:
        """The DAG the function builds for ``params``, and what it returned."""
        fn: Callable[..., Any] = self.fn
        with building() as graph:
            returned = fn(**{k: getattr(params, k) for k in type(params).model_fields})
        if not graph.calls:
            raise InvalidInput(f"pipeline {self.name!r} called no step")
        return graph, returned

    def run(
        self,
        params: Mapping[str, Any] | None = None,
        *,
        executor: str | Executor | None = None,
        cache: bool | None = None,
        max_workers: int | None = None,
        workspace: Workspace | None = None,
        on_event: EventHook | None = None,
        schedule: str | None = None,
        slot: int | None = None,
        only: str | None = None,
        raise_on_failure: bool = True,
    ) -> PipelineRun:
        """Validate ``params``, build the DAG and run it.

        Parameters
        ----------
        params : the pipeline function's arguments (validated first).
        executor : ``process`` (default), ``thread``, ``ray`` or an :class:`Executor`.
        cache : False re-runs every step even where a cached output exists.
        max_workers : steps run at once (default: the number of CPUs).
        on_event : called with a :class:`StepEvent` as each step changes state.
        only : run just this step call and the calls it needs (those from the cache where
            they ran before): what one Airflow task of an exported pipeline does.
        raise_on_failure : raise :class:`PipelineFailed` if a step failed.
        """
        validated = self.validate(params)
        graph, returned = self.build(validated)
        if only is not None:
            graph, returned = graph.needed_for(only), Output(only)
        ws = workspace or default_workspace()
        chosen = executor if executor is not None else self.executor
        runner_executor = get_executor(chosen, max_workers)
        try:
            stored = validated.model_dump(mode="json")
            json.dumps(stored)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(
                f"pipeline {self.name!r}: parameters must be JSON-able ({exc})"
            ) from exc
        run_id = uuid.uuid4().hex
        parent = tracking.create_run(
            ws,
            self.name,
            f"{self.name}-{run_id[:8]}",
            tags={"loopml.pipeline": self.name, "loopml.pipeline_run": run_id},
        )
        parent.log_params(stored)
        records.insert_pipeline_run(
            ws,
            {
                "id": run_id,
                "pipeline": self.name,
                "source": self.source,
                "params": stored,
                "status": "RUNNING",
                "executor": runner_executor.name,
                "run_id": parent.id,
                "schedule": schedule,
                "slot": slot,
            },
        )
        runner = Runner(
            ws,
            run_id,
            parent,
            graph,
            runner_executor,
            cache=self.cache if cache is None else cache,
            on_event=on_event,
        )
        owned = isinstance(chosen, str)
        return self._finish(ws, runner, runner_executor, owned, returned, raise_on_failure)

    def resume(
        self,
        run_id: str,
        *,
        executor: str | Executor | None = None,
        max_workers: int | None = None,
        workspace: Workspace | None = None,
        on_event: EventHook | None = None,
        raise_on_failure: bool = True,
    ) -> PipelineRun:
        """Run the failed and skipped steps of failed run ``run_id`` again, reusing the
        outputs of the steps that finished."""
        ws = workspace or default_workspace()
        found = records.get_pipeline_run(ws, run_id)
        if found.status == "FINISHED":
            raise InvalidInput(f"pipeline run {run_id} finished: there is nothing to resume")
        if found.status == "RUNNING":
            raise InvalidInput(f"pipeline run {run_id} is still running")
        if found.pipeline != self.name:
            raise InvalidInput(f"pipeline run {run_id} is of pipeline {found.pipeline!r}")
        graph, returned = self.build(self.validate(found.params))
        chosen = executor or found.executor
        runner_executor = get_executor(chosen, max_workers)
        assert found.run_id is not None
        parent = tracking.open_run(ws, found.run_id)
        tracking.update_run(ws, parent.id, status="RUNNING")
        records.update_pipeline_run(ws, run_id, status="RUNNING", ended_at=None, error=None)
        runner = Runner(
            ws,
            run_id,
            parent,
            graph,
            runner_executor,
            cache=False,
            reuse=records.finished_steps(ws, run_id),
            on_event=on_event,
        )
        owned = isinstance(chosen, str)
        return self._finish(ws, runner, runner_executor, owned, returned, raise_on_failure)

    def _finish(
        self,
        ws: Workspace,
        runner: Runner,
        executor: Executor,
        owned: bool,
        returned: Any,
        raise_on_failure: bool,
    ) -> PipelineRun:
        error: str | None = None
        try:
            status = runner.run()
        except BaseException as exc:
            status, error = "FAILED", f"the runner stopped: {exc!r}"
            records.update_pipeline_run(
                ws, runner.run_id, status=status, ended_at=now_ms(), error=error
            )
            tracking.update_run(ws, runner.parent.id, status="KILLED", error=error)
            raise
        finally:
            if owned:
                executor.close()
        if status == "FAILED":
            failed = ", ".join(runner.errors) or "-"
            error = f"failed steps: {failed}"
        records.update_pipeline_run(
            ws, runner.run_id, status=status, ended_at=now_ms(), error=error
        )
        tracking.update_run(
            ws,
            runner.parent.id,
            status="FINISHED" if status == "FINISHED" else "FAILED",
            error=error,
        )
        result = PipelineRun(runner.run_id, self.name, status, runner.parent.id, ws, returned)
        if status == "FAILED" and raise_on_failure:
            first = next(iter(runner.errors.values()), "").strip().splitlines()
            raise PipelineFailed(
                f"pipeline {self.name!r} run {runner.run_id} failed at step(s) {failed}: "
                f"{first[-1] if first else ''}; resume it with "
                f"`loopml pipeline resume {runner.run_id}`",
                result,
            )
        return result

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> PipelineRun:
        bound = self.signature.bind_partial(*args, **kwargs)
        return self.run(dict(bound.arguments))


@overload
def pipeline(fn: Callable[P, Any], /) -> Pipeline[P]: ...


@overload
def pipeline(
    *, name: str | None = None, executor: str | Executor = "process", cache: bool = True
) -> Callable[[Callable[P, Any]], Pipeline[P]]: ...


def pipeline(fn: Callable[P, Any] | None = None, /, **options: Any) -> Any:
    """Declare a pipeline: a function that calls steps (and returns their outputs).

    Parameters
    ----------
    name : the pipeline's name (default: the function's name); runs are tracked under an
        experiment of that name.
    executor : the default executor: ``process``, ``thread`` or ``ray``.
    cache : the default for reusing cached step outputs.

    Examples
    --------
    >>> @pipeline                                            # doctest: +SKIP
    ... def churn(path: str, alpha: float = 0.1):
    ...     return train(clean(load(path)), alpha=alpha)
    >>> churn.run({"path": "data.csv"}).output              # doctest: +SKIP
    """
    unknown = set(options) - {"name", "executor", "cache"}
    if unknown:
        raise InvalidInput(f"@pipeline: unknown option(s) {', '.join(sorted(unknown))}")

    def wrap(f: Callable[P, Any]) -> Pipeline[P]:
        if not callable(f):
            raise InvalidInput(f"@pipeline decorates a function, got {f!r}")
        cache = options.get("cache", True)
        if not isinstance(cache, bool):
            raise InvalidInput(f"@pipeline: option 'cache' must be True or False, got {cache!r}")
        return Pipeline(
            f, options.get("name") or f.__name__, options.get("executor", "process"), cache
        )

    return wrap if fn is None else wrap(fn)
