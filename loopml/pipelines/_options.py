"""Step options (retries, timeouts, resources, cache), validated when a step is declared."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from loopml.errors import InvalidInput

FailureHook = Callable[[str, BaseException], Any]


class StepOptions(BaseModel):
    """How a step runs: ``retries`` attempts after the first, ``retry_delay`` seconds before
    the first retry (times ``backoff`` for each next one), ``timeout`` seconds per attempt,
    ``on_failure(node, error)`` once all attempts failed, and the resources a Ray task asks
    for (``cpus``, ``memory`` in bytes, ``gpus``). ``deps`` are files or functions the step
    depends on beyond its own source; ``packages`` adds library versions to the cache key."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str | None = Field(default=None, min_length=1, max_length=200)
    cache: bool = True
    retries: int = Field(default=0, ge=0, le=100)
    retry_delay: float = Field(default=1.0, ge=0)
    backoff: float = Field(default=2.0, ge=1)
    timeout: float | None = Field(default=None, gt=0)
    on_failure: FailureHook | None = None
    cpus: float = Field(default=1.0, ge=0)
    memory: int | None = Field(default=None, gt=0)
    gpus: float = Field(default=0.0, ge=0)
    deps: tuple[Any, ...] = ()
    packages: tuple[str, ...] = ()

    @field_validator("on_failure")
    @classmethod
    def _callable(cls, value: object) -> object:
        if value is not None and not callable(value):
            raise ValueError("must be a callable (node name, error) -> None")
        return value

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (2 is the first retry)."""
        return float(self.retry_delay * self.backoff ** max(attempt - 2, 0))


def step_options(where: str, values: dict[str, Any]) -> StepOptions:
    """Validated options, or InvalidInput naming the option that is wrong."""
    for key in ("deps", "packages"):
        if isinstance(values.get(key), Sequence) and not isinstance(values[key], str):
            values[key] = tuple(values[key])
    try:
        return StepOptions(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        option = ".".join(str(p) for p in first["loc"]) or "options"
        raise InvalidInput(f"{where}: option {option!r}: {first['msg']}") from None
