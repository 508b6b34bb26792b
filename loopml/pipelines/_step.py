"""``@step``: a plain function that, called inside a pipeline, becomes a node of its DAG."""

from __future__ import annotations

import functools
import hashlib
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, ParamSpec, TypeVar, cast, overload

from loopml.errors import InvalidInput
from loopml.pipelines._graph import Output, current_graph
from loopml.pipelines._options import StepOptions, step_options

P = ParamSpec("P")
R = TypeVar("R")
_NAME = re.compile(r"^[A-Za-z_][\w.-]{0,199}$")


class Step(Generic[P, R]):
    """A function declared with :func:`step`. Outside a pipeline it is the plain function;
    inside one, a call records a node and returns an :class:`Output` handle."""

    def __init__(self, fn: Callable[P, R], options: StepOptions) -> None:
        self.fn = fn
        self.options = options
        self.name = options.name or fn.__name__
        if not _NAME.match(self.name):
            raise InvalidInput(
                f"step name {self.name!r}: use letters, digits, '_', '.', '-' "
                "(starting with a letter)"
            )
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"Step({self.name!r})"

    @property
    def module(self) -> str:
        """The module the function is defined in."""
        return str(self.fn.__module__)

    @property
    def qualname(self) -> str:
        """The function's qualified name in its module."""
        return str(self.fn.__qualname__)

    @property
    def file(self) -> str | None:
        """The function's source file, if it has one."""
        try:
            return str(Path(inspect.getfile(self.fn)).resolve())
        except (TypeError, OSError):
            return None

    @functools.cached_property
    def source_hash(self) -> str:
        """sha256 of the function's source (of its bytecode where no source is found)."""
        try:
            text = inspect.getsource(self.fn).encode()
        except (OSError, TypeError):
            code = self.fn.__code__
            text = code.co_code + repr(code.co_consts).encode()
        return hashlib.sha256(text).hexdigest()

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> inspect.BoundArguments:
        """The call's arguments bound to the signature, or InvalidInput naming the problem."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidInput(f"step {self.name!r}: {exc}") from None
        bound.apply_defaults()
        return bound

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        graph = current_graph()
        if graph is None:
            return self.fn(*args, **kwargs)
        self.bind(args, kwargs)
        return cast(R, graph.add(self, args, kwargs))  # an Output stands for R while building


@overload
def step(fn: Callable[P, R], /) -> Step[P, R]: ...


@overload
def step(
    *,
    name: str | None = None,
    cache: bool = True,
    retries: int = 0,
    retry_delay: float = 1.0,
    backoff: float = 2.0,
    timeout: float | None = None,
    on_failure: Callable[[str, BaseException], Any] | None = None,
    cpus: float = 1.0,
    memory: int | None = None,
    gpus: float = 0.0,
    deps: tuple[Any, ...] | list[Any] = (),
    packages: tuple[str, ...] | list[str] = (),
) -> Callable[[Callable[P, R]], Step[P, R]]: ...


def step(fn: Callable[P, R] | None = None, /, **options: Any) -> Any:
    """Declare a pipeline step.

    Parameters
    ----------
    name : the node name in the DAG (default: the function's name).
    cache : reuse the stored output of an earlier call with the same cache key.
    retries, retry_delay, backoff : attempts after the first; seconds before the first retry,
        multiplied by ``backoff`` for each later one.
    timeout : seconds an attempt may take.
    on_failure : ``hook(node, error)`` called once the last attempt failed.
    cpus, memory, gpus : what a Ray task of this step asks for (``memory`` in bytes).
    deps : files, folders or functions whose content joins the cache key.
    packages : distributions whose installed version joins the cache key.

    Examples
    --------
    >>> @step(retries=2, timeout=60)                      # doctest: +SKIP
    ... def clean(frame: pd.DataFrame) -> pd.DataFrame:
    ...     return frame.dropna()
    """

    def wrap(f: Callable[P, R]) -> Step[P, R]:
        if not callable(f) or isinstance(f, Step):
            raise InvalidInput(f"@step decorates a function, got {f!r}")
        where = f"@step on {getattr(f, '__qualname__', f)!r}"
        return Step(f, step_options(where, dict(options)))

    return wrap if fn is None else wrap(fn)


__all__ = ["Output", "Step", "step"]
