"""Where a run handle's writes go: the workspace's own database (``MetricWriter``) or a
loopml server (``RemoteSender``). Both buffer metrics and write them in batches."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from loopml.store import Node


@dataclass(frozen=True)
class StoredRun:
    """What resuming a run needs to know of it."""

    name: str
    parent_id: str | None
    experiment: str
    next_steps: dict[str, int] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


class RunSink(Protocol):
    """The writes of :class:`~loopml.tracking.Run` handles of one workspace."""

    open_runs: dict[str, None]

    def add(self, run_id: str, key: str, value: float, step: int, timestamp: int) -> None: ...

    def add_series(
        self, run_id: str, key: str, steps: list[int], values: list[float], timestamps: list[int]
    ) -> None: ...

    def add_many(
        self, run_id: str, points: dict[str, float], steps: dict[str, int], timestamp: int
    ) -> None: ...

    def add_run(self, row: dict[str, object]) -> None: ...

    def check_parent(self, parent_id: str) -> None: ...

    def resume(self, run_id: str) -> StoredRun: ...

    def log_params(self, run_id: str, new: Mapping[str, str]) -> None: ...

    def set_tags(self, run_id: str, values: Mapping[str, str]) -> None: ...

    def record_artifacts(self, run_id: str, files: Mapping[str, tuple[str, int]]) -> None: ...

    def add_input(self, run_id: str, dataset: Node, role: str) -> None: ...

    def end_run(self, run_id: str, status: str, error: str | None) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


__all__ = ["RunSink", "StoredRun"]
