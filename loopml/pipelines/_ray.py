"""The Ray executor: each step attempt is a Ray task asking for the step's resources.

Ray is an optional extra (``pip install "loopml[ray]"``), imported when the executor starts.
Without an address it starts (or joins) a local Ray; ``address="auto"`` joins a cluster.
"""

from __future__ import annotations

import functools
import importlib
import sys
from concurrent.futures import Future
from typing import Any

from loopml.errors import MissingDependency
from loopml.pipelines._worker import StepCall, execute
from loopml.settings import Settings
from loopml.store import Workspace, use_workspace


def import_ray() -> Any:
    """The ``ray`` module, or MissingDependency naming the extra."""
    try:
        return importlib.import_module("ray")
    except ImportError as exc:
        raise MissingDependency("ray", "ray") from exc


@functools.lru_cache(maxsize=1)
def _workspace(settings_json: str) -> Workspace:
    """The pipeline's workspace, opened once per Ray worker process (and made its default,
    for steps that call loopml without naming a workspace)."""
    return use_workspace(Workspace(Settings.model_validate_json(settings_json)))


def _task(settings_json: str, path: tuple[str, ...], call: StepCall) -> Any:
    """One step attempt in a Ray worker: the driver's import path, then the step."""
    sys.path.extend(p for p in path if p not in sys.path)
    return execute(call, _workspace(settings_json))


class RayExecutor:
    """Steps run as Ray tasks (``num_cpus``, ``num_gpus``, ``memory`` from the step)."""

    name = "ray"
    enforces_timeouts = False  # the runner cancels a timed-out task with ray.cancel

    def __init__(
        self, max_workers: int | None = None, *, address: str | None = None, **init: Any
    ) -> None:
        self.address = address
        self.init = init
        self.max_workers = max_workers
        self._ray: Any = None
        self._remote: Any = None
        self._settings = ""
        self._path: tuple[str, ...] = ()
        self._refs: dict[int, Any] = {}

    def start(self, ws: Workspace) -> None:
        ray = self._ray = import_ray()
        if not ray.is_initialized():
            options = {"include_dashboard": False, "log_to_driver": False, **self.init}
            if self.max_workers is not None:
                options.setdefault("num_cpus", self.max_workers)
            ray.init(address=self.address, **options)
        self._remote = ray.remote(_task)
        self._settings = ws.settings.model_dump_json()
        self._path = tuple(sys.path)  # so a local Ray finds the modules the driver finds

    def submit(self, call: StepCall) -> Future[Any]:
        options: dict[str, Any] = {"num_cpus": call.cpus, "num_gpus": call.gpus, "max_retries": 0}
        if call.memory is not None:
            options["memory"] = call.memory
        ref = self._remote.options(**options).remote(self._settings, self._path, call)
        future: Future[Any] = ref.future()
        self._refs[id(future)] = ref
        future.add_done_callback(lambda f: self._refs.pop(id(f), None))
        return future

    def cancel(self, future: Future[Any]) -> None:
        ref = self._refs.pop(id(future), None)
        if ref is not None:
            self._ray.cancel(ref, force=True)

    def close(self) -> None:
        """Leave Ray running: it is costly to start and may serve other work."""
        self._refs.clear()
