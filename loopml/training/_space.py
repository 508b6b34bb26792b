"""Search spaces for ``tune``, in Python or YAML.

Each hyperparameter is a list of choices, or a mapping::

    n_estimators: {type: int, low: 50, high: 500, log: true}
    learning_rate: {type: float, low: 0.01, high: 0.3, log: true}
    max_depth: [3, 5, 8]                  # categorical (and what grid search walks)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import yaml

from loopml.errors import InvalidInput

_FIELDS = {
    "int": {"low", "high", "log", "step"},
    "float": {"low", "high", "log", "step"},
    "categorical": {"choices"},
}


def load_space(space: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """The search space from a mapping, a YAML file or YAML text, checked."""
    if isinstance(space, str | Path):
        path = Path(space)
        text = path.read_text("utf-8") if path.suffix in (".yaml", ".yml") else str(space)
        if path.suffix in (".yaml", ".yml") and not path.is_file():
            raise InvalidInput(f"search space file {space} does not exist")
        try:
            space = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidInput(f"search space: not valid YAML ({exc})") from exc
    if not isinstance(space, Mapping) or not space:
        raise InvalidInput("search space must be a non-empty mapping of hyperparameters")
    out: dict[str, Any] = {}
    for name, spec in space.items():
        if isinstance(spec, list):
            if not spec:
                raise InvalidInput(f"search space {name!r}: the list of choices is empty")
            out[name] = {"type": "categorical", "choices": spec}
            continue
        if not isinstance(spec, Mapping) or spec.get("type") not in _FIELDS:
            raise InvalidInput(
                f"search space {name!r}: give a list of choices or "
                "{type: int|float|categorical, ...}"
            )
        extra = set(spec) - _FIELDS[spec["type"]] - {"type"}
        if extra:
            raise InvalidInput(f"search space {name!r}: unknown field(s) {sorted(extra)}")
        if spec["type"] != "categorical":
            if "low" not in spec or "high" not in spec or not spec["low"] < spec["high"]:
                raise InvalidInput(f"search space {name!r}: needs low < high")
        elif not spec.get("choices"):
            raise InvalidInput(f"search space {name!r}: needs a non-empty 'choices' list")
        out[name] = dict(spec)
    return out


def suggest(trial: optuna.Trial, space: Mapping[str, Any]) -> dict[str, Any]:
    """One trial's hyperparameters."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        kind = spec["type"]
        if kind == "int":
            params[name] = trial.suggest_int(
                name,
                int(spec["low"]),
                int(spec["high"]),
                step=int(spec.get("step", 1)),
                log=bool(spec.get("log", False)),
            )
        elif kind == "float":
            params[name] = trial.suggest_float(
                name,
                float(spec["low"]),
                float(spec["high"]),
                step=spec.get("step"),
                log=bool(spec.get("log", False)),
            )
        else:
            params[name] = trial.suggest_categorical(name, spec["choices"])
    return params


def grid(space: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The grid to walk: only categorical (list) hyperparameters can be searched by grid."""
    ranges = [n for n, s in space.items() if s["type"] != "categorical"]
    if ranges:
        raise InvalidInput(f"grid search needs lists of choices; {', '.join(ranges)} are ranges")
    return {n: list(s["choices"]) for n, s in space.items()}
