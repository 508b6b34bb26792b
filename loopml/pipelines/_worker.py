"""What runs where a step executes (a pool process, a thread or a Ray worker): resolve the
step function, resolve references in its arguments, enforce the timeout, and return the
result as a wire value."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import FrameType, ModuleType
from typing import Any

from loopml.errors import InvalidInput, LoopmlError
from loopml.pipelines._values import from_wire, to_wire
from loopml.settings import Settings
from loopml.store import Workspace, default_workspace, use_workspace

_STEP_WORKSPACE: ContextVar[Workspace | None] = ContextVar("loopml_step_workspace", default=None)


def step_workspace() -> Workspace:
    """Inside a running step, the pipeline run's workspace (whatever the executor: with
    ``thread`` it need not be the process's default); elsewhere the default workspace."""
    return _STEP_WORKSPACE.get() or default_workspace()


class StepTimeout(LoopmlError):
    """A step attempt took longer than its ``timeout``."""


@dataclass
class StepCall:
    """One attempt of one step, as sent to an executor (picklable)."""

    node: str
    module: str
    qualname: str
    file: str | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    timeout: float | None
    cpus: float = 1.0
    memory: int | None = None
    gpus: float = 0.0
    fn: Callable[..., Any] | None = field(default=None, compare=False)  # in-process only

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "fn": None}


def module_name_for(file: str) -> str:
    """The module name a steps' file is loaded under (the same in every process)."""
    return "loopml_pipeline_" + hashlib.sha256(file.encode()).hexdigest()[:16]


def load_file(file: str) -> ModuleType:
    """Import a Python file as a module (once per process)."""
    name = module_name_for(file)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise InvalidInput(f"cannot load pipeline file {file}: not a Python file")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    try:
        spec.loader.exec_module(loaded)
    except BaseException:
        del sys.modules[name]
        raise
    return loaded


def _module(module: str, file: str | None) -> ModuleType:
    if module == "__main__":
        main = sys.modules.get("__main__")
        main_file = getattr(main, "__file__", None)
        if main is not None and (file is None or (main_file and _same(main_file, file))):
            return main
    else:
        found = sys.modules.get(module)
        if found is not None:
            return found
        try:
            return importlib.import_module(module)
        except ImportError:
            if file is None:
                raise
    if file is None:
        raise InvalidInput(f"the module {module!r} of a step cannot be imported here")
    return load_file(file)


def _same(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def resolve_function(module: str, qualname: str, file: str | None) -> Callable[..., Any]:
    """The plain function of the step ``module:qualname`` (loading ``file`` if needed)."""
    if "<locals>" in qualname:
        raise InvalidInput(
            f"step {qualname!r} is defined inside a function: steps that run in other "
            "processes must be defined at module level (or use executor='thread')"
        )
    target: Any = _module(module, file)
    for part in qualname.split("."):
        target = getattr(target, part)
    return getattr(target, "fn", target)  # type: ignore[no-any-return]


@contextmanager
def _deadline(seconds: float | None, node: str) -> Iterator[None]:
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield  # the runner enforces it from outside
        return

    def fire(_signum: int, _frame: FrameType | None) -> None:
        raise StepTimeout(f"step {node!r} timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def execute(call: StepCall, ws: Workspace | None = None) -> Any:
    """Run one attempt and return its result as a wire value (loopml objects resolved in
    ``ws``, default: this process's default workspace, set by :func:`init_worker`)."""
    fn = call.fn or resolve_function(call.module, call.qualname, call.file)
    ws = ws or default_workspace()
    args = from_wire(ws, call.args)
    kwargs = from_wire(ws, call.kwargs)
    token = _STEP_WORKSPACE.set(ws)
    try:
        with _deadline(call.timeout, call.node):
            result = fn(*args, **kwargs)
    finally:
        _STEP_WORKSPACE.reset(token)
    return to_wire(result)


def init_worker(settings: Settings) -> None:
    """Make the pipeline's workspace this worker process's default workspace."""
    use_workspace(Workspace(settings))


__all__ = [
    "StepCall",
    "StepTimeout",
    "execute",
    "init_worker",
    "load_file",
    "module_name_for",
    "resolve_function",
    "step_workspace",
]
