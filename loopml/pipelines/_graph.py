"""The DAG a pipeline function builds: each step call inside it becomes a :class:`Call`
and returns an :class:`Output` handle that later calls take as an argument."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput

if TYPE_CHECKING:
    from loopml.pipelines._step import Step


@dataclass(frozen=True)
class Output:
    """The lazy output of one step call; pass it to other steps or return it."""

    node: str

    def __repr__(self) -> str:
        return f"Output({self.node!r})"

    def __bool__(self) -> bool:
        raise TypeError(
            f"the output of step call {self.node!r} is not known while the pipeline is "
            "being built; branch inside a step instead"
        )


@dataclass
class Call:
    """One call of a step in the DAG: its arguments may hold Output handles."""

    node: str
    step: Step[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    upstream: tuple[str, ...]


@dataclass
class Graph:
    """The calls in the order they were made (which is a topological order)."""

    calls: dict[str, Call] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)

    def add(self, step: Step[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Output:
        n = self._counts[step.name] = self._counts.get(step.name, 0) + 1
        node = step.name if n == 1 else f"{step.name}-{n}"
        upstream = tuple(dict.fromkeys(o.node for o in outputs_in((args, kwargs))))
        self.calls[node] = Call(node, step, args, kwargs, upstream)
        return Output(node)

    def needed_for(self, node: str) -> Graph:
        """The part of the graph that ``node`` needs: it and its upstream calls."""
        if node not in self.calls:
            known = ", ".join(self.calls)
            raise InvalidInput(f"no step call {node!r} in this pipeline (it has {known})")
        keep = {node}
        for call in reversed(self.calls.values()):
            if call.node in keep:
                keep.update(call.upstream)
        return Graph({n: c for n, c in self.calls.items() if n in keep}, dict(self._counts))

    def downstream(self) -> dict[str, list[str]]:
        """For each node, the nodes that take its output."""
        found: dict[str, list[str]] = {n: [] for n in self.calls}
        for call in self.calls.values():
            for up in call.upstream:
                found[up].append(call.node)
        return found


def outputs_in(value: Any) -> Iterator[Output]:
    """Every Output handle inside ``value`` (through lists, tuples, sets and dicts)."""
    if isinstance(value, Output):
        yield value
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from outputs_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from outputs_in(item)


def substitute(value: Any, known: dict[str, Any]) -> Any:
    """``value`` with each Output handle replaced by ``known[handle.node]``."""
    if isinstance(value, Output):
        return known[value.node]
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(substitute(v, known) for v in value)
    if isinstance(value, dict):
        return {k: substitute(v, known) for k, v in value.items()}
    return value


_building: contextvars.ContextVar[Graph | None] = contextvars.ContextVar(
    "loopml_pipeline_graph", default=None
)


def current_graph() -> Graph | None:
    """The graph being built in this context, if a pipeline function is running."""
    return _building.get()


@contextmanager
def building() -> Iterator[Graph]:
    """Collect the step calls made inside the block into a new graph."""
    graph = Graph()
    token = _building.set(graph)
    try:
        yield graph
    finally:
        _building.reset(token)
