"""MLflow's request protocol: typed request fields (proto3 JSON or query parameters),
doubles as proto3 JSON writes them, opaque page tokens, the refusal of what loopml does
not do, and cached run handles. What every MLflow handler of :mod:`loopml.server._mlflow`
reads and answers with.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from loopml.errors import InvalidInput
from loopml.server._errors import ApiError
from loopml.store import Workspace
from loopml.tracking import Run, open_run

INT64 = 2**63


def not_implemented(message: str) -> ApiError:
    """The MLflow error for a valid request that loopml does not carry out."""
    return ApiError(501, "NOT_IMPLEMENTED", message)


# -- request fields -----------------------------------------------------------------------
class Fields:
    """The fields of one MLflow request: its JSON body, or its query parameters.

    Proto3 JSON has no null: an absent field, ``null`` and the empty string all read as
    unset. Integers may come as numbers or strings (int64), doubles also as ``"NaN"``.
    """

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    def _get(self, names: Sequence[str]) -> tuple[str, Any]:
        for name in names:
            value = self._data.get(name)
            if value is not None and value != "":
                return name, value
        return names[0], None

    def text(self, *names: str, required: bool = False) -> str | None:
        """The string field ``names[0]`` (or an alias of it), or None when unset."""
        name, value = self._get(names)
        if isinstance(value, list) and len(value) == 1:  # a query parameter given once
            value = value[0]
        if value is None:
            if required:
                raise InvalidInput(f"missing value for required parameter {name!r}")
            return None
        if not isinstance(value, str):
            raise InvalidInput(f"parameter {name!r} must be a string, got {value!r:.100}")
        return _storable(name, value)

    def need(self, *names: str) -> str:
        """Like :meth:`text` for a required field."""
        value = self.text(*names, required=True)
        assert value is not None
        return value

    def integer(self, name: str, *, low: int = -INT64, high: int = INT64 - 1) -> int | None:
        """The integer field ``name`` in [low, high], or None when unset."""
        _, value = self._get([name])
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if value is None:
            return None
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str | float) and _integral(value):
            number = int(value)
        if number is None:
            raise InvalidInput(f"parameter {name!r} must be an integer, got {value!r:.100}")
        if not low <= number <= high:
            raise InvalidInput(f"parameter {name!r} must be from {low} to {high}, got {number}")
        return number

    def number(self, name: str) -> float:
        """The required double field ``name`` (``"NaN"``, ``"Infinity"`` allowed)."""
        _, value = self._get([name])
        if value is None:
            raise InvalidInput(f"missing value for required parameter {name!r}")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise InvalidInput(f"parameter {name!r} must be a number, got {value!r:.100}")

    def enum(self, name: str, values: Mapping[int, str]) -> str | None:
        """The enum field ``name``, by its name or number, or None when unset."""
        _, value = self._get([name])
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, int) and not isinstance(value, bool):
            value = values.get(value, value)
        if value is None:
            return None
        if value not in values.values():
            known = ", ".join(values.values())
            raise InvalidInput(f"parameter {name!r} must be one of {known}, got {value!r:.100}")
        return str(value)

    def texts(self, name: str) -> list[str]:
        """The repeated string field ``name`` (empty when unset)."""
        value = self._data.get(name)
        if value is None:
            return []
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(item, str) for item in items):
            raise InvalidInput(f"parameter {name!r} must be a list of strings, got {value!r:.100}")
        return [_storable(name, item) for item in items]

    def messages(self, name: str) -> list[Fields]:
        """The repeated message field ``name`` (e.g. a run's tags), each as Fields."""
        value = self._data.get(name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise InvalidInput(f"parameter {name!r} must be a list of objects, got {value!r:.100}")
        return [Fields(item) for item in value]

    def pairs(self, name: str) -> dict[str, str]:
        """A repeated ``{key, value}`` field (tags) as a dict; a key given twice is refused."""
        found: dict[str, str] = {}
        for item in self.messages(name):
            key, value = item.need("key"), item.text("value") or ""
            if key in found and found[key] != value:
                raise InvalidInput(f"{name}: key {key!r} is given twice with different values")
            found[key] = value
        return found


def _integral(value: str | float) -> bool:
    if isinstance(value, float):
        return value.is_integer() and abs(value) < INT64
    return natural(value.strip().removeprefix("-"), 19) is not None


def natural(text: str, max_digits: int) -> int | None:
    """``text`` as a non-negative integer if it is 1 to ``max_digits`` ASCII digits."""
    if not 0 < len(text) <= max_digits or not all("0" <= c <= "9" for c in text):
        return None
    return int(text)


def _storable(name: str, value: str) -> str:
    """``value`` if the database can store it: no NUL, no lone surrogate (bad UTF-8)."""
    if "\x00" in value:
        raise InvalidInput(f"parameter {name!r} must not contain the NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"parameter {name!r} is not valid UTF-8 text") from None
    return value


Handler = Callable[[Workspace, "Fields"], dict[str, Any]]
"""An endpoint's work: the workspace and the request's fields in, the JSON answer out."""


def finite(value: float) -> float | str:
    """A double for proto3 JSON: NaN and the infinities as the strings MLflow reads."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


# -- page tokens ----------------------------------------------------------------------------
def encode_token(offset: int) -> str:
    """The opaque page token of the page starting at ``offset``."""
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_token(token: str | None) -> int:
    """The offset a page token stands for (0 for none)."""
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeError):
        offset = None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidInput(f"invalid page_token {token[:80]!r}: pass back the one a page returned")
    return offset


def max_results(fields: Fields, default: int, limit: int) -> int:
    """The ``max_results`` field, from 1 to ``limit``."""
    value = fields.integer("max_results", low=1, high=limit)
    return default if value is None else value


class RunHandles:
    """A workspace's run handles by id, kept while the server runs, so a request that logs
    to a run makes no query to find it (a run never changes experiment, its params never
    change, and MLflow's API cannot delete runs here)."""

    def __init__(self, ws: Workspace, size: int = 10_000) -> None:
        self._ws = ws
        self._size = size
        self._handles: OrderedDict[str, Run] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, run_id: str) -> Run:
        """The handle of run ``run_id`` (NotFound if there is none)."""
        with self._lock:
            found = self._handles.get(run_id)
            if found is not None:
                self._handles.move_to_end(run_id)
                return found
        found = open_run(self._ws, run_id)
        with self._lock:
            self._handles[run_id] = found
            if len(self._handles) > self._size:
                self._handles.popitem(last=False)
        return found

    def close(self) -> None:
        """Nothing to release."""


def run_handle(ws: Workspace, run_id: str) -> Run:
    """The (cached) handle to log to run ``run_id``."""
    return ws.component(RunHandles).get(run_id)
