"""Suites: named lists of checks, written in YAML for people to read and edit.

A suite in YAML::

    name: churn
    checks:
      - {check: not_null, column: customer_id}
      - {check: in_range, column: age, min: 18, max: 120, severity: warning}
      - {check: sql, expression: "monthly_fee >= 0", name: fee_non_negative}
      - {check: mean_within, column: monthly_fee, tolerance: 0.1}

Each ``check`` names a type of :data:`CHECK_TYPES`; the other keys are that check's fields.
Errors name the check and the field: ``checks[2] (in_range): unknown field 'maxx'``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from loopml.data._check_base import BadField, Check, did_you_mean
from loopml.data._checks import (
    ColumnExists,
    Fresh,
    InRange,
    InSet,
    Matches,
    NotNull,
    RowCount,
    SqlPredicate,
    Unique,
)
from loopml.data._drift_checks import MeanWithin, NoNewCategories, QuantileWithin, StdWithin
from loopml.errors import InvalidInput, NotFound

CHECK_TYPES: dict[str, type[Check]] = {
    cls.kind: cls
    for cls in (
        ColumnExists,
        NotNull,
        Unique,
        InRange,
        InSet,
        Matches,
        SqlPredicate,
        RowCount,
        Fresh,
        MeanWithin,
        StdWithin,
        QuantileWithin,
        NoNewCategories,
    )
}


def check_from_dict(data: object, where: str = "check") -> Check:
    """The check that ``{check: kind, field: value, ...}`` describes.

    Raises
    ------
    InvalidInput
        Unknown check type, unknown or missing field, or a wrong value; the message starts
        with ``where`` and the type: ``"checks[2] (in_range): unknown field 'maxx'"``.
    """
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{where}: must be a mapping such as {{check: not_null, column: id}}")
    kind = data.get("check")
    if kind is None:
        raise InvalidInput(f"{where}: missing field 'check' (the check type)")
    cls = CHECK_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InvalidInput(
            f"{where}: unknown check type {kind!r}{did_you_mean(kind, CHECK_TYPES)}; "
            f"known types: {', '.join(CHECK_TYPES)}"
        )
    where = f"{where} ({kind})"
    init = {f.name: f for f in fields(cls) if f.init}
    for key in data:
        if key != "check" and key not in init:
            raise InvalidInput(f"{where}: unknown field {key!r}{did_you_mean(key, init)}")
    for f in init.values():
        if f.name not in data and f.default is MISSING:
            raise InvalidInput(f"{where}: missing field {f.name!r}")
    try:
        return cls(**{str(k): v for k, v in data.items() if k != "check"})
    except BadField as exc:
        raise InvalidInput(f"{where}: {exc.detail}") from None


@dataclass
class Suite:
    """A named list of checks, run together by :func:`validate_table`.

    Parameters
    ----------
    checks : the checks, in report order.
    name : shown in reports.

    Examples
    --------
    >>> suite = Suite([NotNull("customer_id"), InRange("age", 18, 120)], name="churn")
    >>> Suite.from_yaml(suite.to_yaml()) == suite
    True
    """

    checks: Sequence[Check]
    name: str = "suite"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidInput(f"suite: 'name' must be a non-empty string, not {self.name!r}")
        if isinstance(self.checks, str | Mapping) or not isinstance(self.checks, Sequence):
            raise InvalidInput(f"suite: 'checks' must be a list of checks, not {self.checks!r}")
        self.checks = list(self.checks)
        for i, check in enumerate(self.checks):
            if not isinstance(check, Check):
                raise InvalidInput(f"checks[{i}]: {type(check).__name__} is not a check")

    @classmethod
    def from_dict(cls, data: object) -> Suite:
        """The suite ``{"name": ..., "checks": [{"check": kind, ...}, ...]}`` describes.

        Raises
        ------
        InvalidInput
            The message names the offending check (``checks[2] (in_range)``) and field.
        """
        if not isinstance(data, Mapping):
            raise InvalidInput("a suite must be a mapping with 'name' and 'checks'")
        for key in data:
            if key not in ("name", "checks"):
                raise InvalidInput(f"suite: unknown field {key!r}; expected 'name' and 'checks'")
        if "checks" not in data:
            raise InvalidInput("suite: missing field 'checks'")
        items = data["checks"]
        if not isinstance(items, list):
            raise InvalidInput(f"suite: 'checks' must be a list, not {type(items).__name__}")
        checks = [check_from_dict(item, f"checks[{i}]") for i, item in enumerate(items)]
        return cls(checks, name=data.get("name", "suite"))

    @classmethod
    def from_yaml(cls, source: str | Path) -> Suite:
        """The suite in YAML text, or in the YAML file at ``source`` (a Path, or a one-line
        string ending in ``.yaml``/``.yml``).

        Raises
        ------
        NotFound
            ``source`` names a YAML file that does not exist.
        InvalidInput
            The YAML is malformed or describes no valid suite.
        """
        if not isinstance(source, str | Path):
            raise InvalidInput(f"from_yaml takes YAML text or a path, not {type(source).__name__}")
        text = source
        if isinstance(source, Path) or (
            "\n" not in source and source.strip().endswith((".yaml", ".yml"))
        ):
            path = Path(source).expanduser()
            if not path.is_file():
                raise NotFound(f"no suite file at {str(path)!r}")
            text = path.read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(str(text))
        except yaml.YAMLError as exc:
            raise InvalidInput(f"suite YAML does not parse: {exc}") from None
        if data is None:
            raise InvalidInput("suite YAML is empty")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., "checks": [...]}``, fields at their defaults left out."""
        return {"name": self.name, "checks": [check.to_dict() for check in self.checks]}

    def to_yaml(self) -> str:
        """The suite as YAML, each check a one-line mapping (wrapped past 100 characters),
        ready to edit and load back with :meth:`from_yaml`."""
        data = {"name": self.name, "checks": [_OneLine(c.to_dict()) for c in self.checks]}
        return yaml.dump(data, Dumper=_SuiteDumper, sort_keys=False, allow_unicode=True, width=100)


class _OneLine(dict[str, Any]):
    """A mapping written in YAML flow style, on one line."""


class _SuiteDumper(yaml.SafeDumper):
    """Indents list items under their key, and writes :class:`_OneLine` in flow style."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_one_line(dumper: yaml.SafeDumper, data: _OneLine) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)


_SuiteDumper.add_representer(_OneLine, _represent_one_line)
