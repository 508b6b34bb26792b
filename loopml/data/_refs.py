"""Dataset references: ``churn@3``, ``churn@latest``, ``churn@clean`` (an alias), ``churn``."""

from __future__ import annotations

import re

from loopml.errors import InvalidInput

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def check_dataset_name(name: object) -> str:
    """``name`` if it is a valid dataset name, else InvalidInput saying what is allowed."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"invalid dataset name {name!r}: use letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (at most 128 characters)"
        )
    return name


def parse_dataset_ref(ref: str) -> tuple[str, int | None, str | None]:
    """``(name, version, alias)`` of ``name@3`` / ``name@alias`` / ``name@latest`` / ``name``.

    ``latest`` and a bare name give ``(name, None, None)``: the newest version.
    """
    if not isinstance(ref, str):
        raise InvalidInput(f"a dataset reference is a string like 'churn@3', got {ref!r}")
    name, at, tail = ref.strip().partition("@")
    check_dataset_name(name)
    if not at or tail == "latest":
        return name, None, None
    if tail.isdigit():
        version = int(tail)
        if version < 1:
            raise InvalidInput(f"{ref!r}: versions start at 1")
        return name, version, None
    if not _NAME.match(tail):
        raise InvalidInput(f"{ref!r}: after '@' give a version number, 'latest' or an alias")
    return name, None, tail
