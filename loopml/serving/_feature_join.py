"""Feature lookup inside serving: a deployment's feature service joined onto its requests.

A request to a deployment made with ``features="service"`` carries the service's entity
key columns, the request fields its on-demand features read, and any model input the
service does not provide. Each micro-batch is looked up in the online store at once (one
read per feature view, as ``get_online_features`` does), the values are joined onto the
request rows, and the model gets its inputs in signature order. A key with no online value
(or one older than its view's TTL) gives the model null, and the prediction log records
every looked-up value as an input column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from loopml.errors import InvalidInput
from loopml.features._lookup import PlanCache, lookup
from loopml.features._plan import Plan
from loopml.features._stores import default_online_store
from loopml.serving._codec import ModelInput, Parsed
from loopml.store import Workspace, now_ms


class FeatureJoin:
    """The lookup of feature service ``service`` for a model taking ``inputs`` (in order).

    Raises
    ------
    NotFound
        The service, or a view or entity it names, does not exist.
    """

    def __init__(self, ws: Workspace, service: str, inputs: Sequence[str]) -> None:
        self.ws = ws
        self.service = service
        self.inputs = list(inputs)
        plan = self._plan()
        provided = set(plan.output)
        self.join_keys = plan.join_keys
        self.request_columns = list(
            dict.fromkeys(
                [*plan.join_keys, *plan.request_fields, *(c for c in inputs if c not in provided)]
            )
        )

    def _plan(self) -> Plan:
        return self.ws.component(PlanCache).plan(self.service, False)

    def prepare(self, parsed: Parsed) -> tuple[ModelInput, int]:
        """The request rows (their key and request columns) and their number.

        Raises
        ------
        InvalidInput
            No rows, a record that is not an object, a missing entity key or request field,
            or a field the request must not carry.
        """
        if isinstance(parsed, pd.DataFrame):
            frame = parsed
        elif isinstance(parsed, tuple):
            columns, rows = parsed
            for i, row in enumerate(rows):
                if not isinstance(row, list) or len(row) != len(columns):
                    raise InvalidInput(f"row {i} must be a list of {len(columns)} values")
            frame = pd.DataFrame(rows, columns=columns)
        else:
            for i, rec in enumerate(parsed):
                if not isinstance(rec, dict):
                    raise InvalidInput(f"record {i} is a {type(rec).__name__}, not a JSON object")
            frame = pd.DataFrame(parsed)
        if len(frame) == 0:
            raise InvalidInput("the input has no rows")
        names = [str(c) for c in frame.columns]
        for name in self.request_columns:
            if name not in names:
                what = "entity key" if name in self.join_keys else "request field"
                raise InvalidInput(
                    f"the request has no {what} {name!r}: this deployment looks up feature "
                    f"service {self.service!r}; send {', '.join(map(repr, self.request_columns))}"
                )
        extra = [c for c in names if c not in self.request_columns]
        if extra:
            raise InvalidInput(
                f"unexpected field(s) {', '.join(map(repr, extra))}: feature service "
                f"{self.service!r} looks them up; send only "
                f"{', '.join(map(repr, self.request_columns))}"
            )
        frame = frame.set_axis(names, axis=1)[self.request_columns].reset_index(drop=True)
        return frame, len(frame)

    def join(self, parts: Sequence[ModelInput]) -> pd.DataFrame:
        """One micro-batch's request rows with the service's online values joined on: the
        request columns, then one column per feature (null where none is stored)."""
        frames = [p if isinstance(p, pd.DataFrame) else pd.DataFrame(p) for p in parts]
        requests = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        found: Any = lookup(self._plan(), default_online_store(self.ws), requests, now_ms())
        return pd.DataFrame(found)
