"""``get_online_features``: the stored values for entity keys, as a DataFrame.

A value older than its view's TTL (relative to ``at``, default now) comes back as null, as
it would in a training set built at that time. Resolving feature names to views takes a
few metadata queries, so the resolved plan is cached per workspace for
:data:`PLAN_TTL_S` seconds (a definition applied meanwhile is seen after that).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pandas as pd

from loopml.errors import InvalidInput
from loopml.features._definitions import FeatureService, FeatureView, OnDemandFeatureView
from loopml.features._materialize import to_ms
from loopml.features._online import OnlineStore, encode_key
from loopml.features._plan import FeaturesArg, Plan, make_plan, run_on_demand
from loopml.features._stores import default_online_store
from loopml.store import Workspace, default_workspace, now_ms

PLAN_TTL_S = 5.0


class PlanCache:
    """Resolved plans of one workspace, each reused for ``PLAN_TTL_S`` seconds."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._plans: dict[Any, tuple[float, Plan]] = {}
        self._lock = threading.Lock()

    def plan(self, features: FeaturesArg, full_feature_names: bool) -> Plan:
        """The plan of ``features`` (cached)."""
        key = (_cache_key(features), full_feature_names)
        now = time.monotonic()
        with self._lock:
            hit = self._plans.get(key)
        if hit is not None and now - hit[0] < PLAN_TTL_S:
            return hit[1]
        plan = make_plan(self.ws, features, full_feature_names=full_feature_names)
        with self._lock:
            self._plans[key] = (now, plan)
        return plan

    def close(self) -> None:
        """Forget the plans."""
        self._plans.clear()


def _cache_key(features: FeaturesArg) -> Any:
    if isinstance(features, str):
        return features
    if isinstance(features, FeatureService):
        return ("service", features.name)
    return tuple(
        f.name if isinstance(f, FeatureView | OnDemandFeatureView) else f for f in features
    )


def _rows(entity_rows: Any) -> tuple[dict[str, list[Any]], int]:
    """Entity rows (list of dicts, dict of lists, or a DataFrame) as columns."""
    if isinstance(entity_rows, pd.DataFrame):
        return {c: entity_rows[c].tolist() for c in entity_rows.columns}, len(entity_rows)
    if isinstance(entity_rows, Mapping):
        cols = {k: list(v) for k, v in entity_rows.items()}
        lengths = {len(v) for v in cols.values()}
        if len(lengths) > 1:
            raise InvalidInput("entity_rows: the columns have different lengths")
        return cols, lengths.pop() if lengths else 0
    if isinstance(entity_rows, Sequence) and not isinstance(entity_rows, str):
        rows = list(entity_rows)
        if not rows:
            raise InvalidInput("entity_rows is empty")
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise InvalidInput(f"entity_rows[{i}] is {type(row).__name__}, not a mapping")
        names = list(rows[0])  # every row needs the first row's fields
        for i, row in enumerate(rows):
            missing = [n for n in names if n not in row]
            if missing:
                raise InvalidInput(f"entity_rows[{i}] has no {missing[0]!r}")
        return {n: [row[n] for row in rows] for n in names}, len(rows)
    raise InvalidInput(
        "entity_rows must be a list of dicts, a dict of lists, or a DataFrame, "
        f"not {type(entity_rows).__name__}"
    )


def lookup(plan: Plan, store: OnlineStore, entity_rows: Any, at_ms: int, to: str = "pandas") -> Any:
    """Read ``plan``'s features for ``entity_rows`` from ``store`` (a DataFrame, or with
    ``to="dict"`` a dict of lists)."""
    cols, _ = _rows(entity_rows)
    for name in [*plan.join_keys, *plan.request_fields]:
        if name not in cols:
            raise InvalidInput(
                f"entity_rows have no {name!r}: the features need join key(s) {plan.join_keys}"
                + (f" and request field(s) {plan.request_fields}" if plan.request_fields else "")
            )
    out: dict[str, list[Any]] = dict(cols)
    for part in plan.views:
        keys = [
            encode_key(values) for values in zip(*(cols[k] for k in part.join_keys), strict=True)
        ]
        found = store.read(part.view.name, keys)
        ttl = part.ttl_ms
        oldest = None if ttl is None else at_ms - ttl
        for feat, col in zip(part.features, part.columns, strict=True):
            out[col] = [
                None
                if hit is None or hit[0] > at_ms or (oldest is not None and hit[0] < oldest)
                else hit[1].get(feat)
                for hit in found
            ]
    if plan.on_demand:
        frame = run_on_demand(plan, pd.DataFrame(out))[[*cols, *plan.output]]
        return frame if to == "pandas" else {c: frame[c].tolist() for c in frame.columns}
    for col in plan.hidden:
        del out[col]
    return pd.DataFrame(out) if to == "pandas" else out


def get_online_features(
    entity_rows: Any,
    features: FeaturesArg,
    *,
    at: Any = None,
    store: OnlineStore | None = None,
    full_feature_names: bool = False,
    to: Literal["pandas", "dict"] = "pandas",
    workspace: Workspace | None = None,
) -> Any:
    """The online values of ``features`` for each entity row.

    Parameters
    ----------
    entity_rows : ``[{"customer_id": 7}, ...]``, a dict of lists, or a DataFrame; with
        the request fields on-demand features need.
    features : ``["view:feature", ...]``, whole views, or a feature service.
    at : the time TTLs are measured from (default: now); a value stored for a later time
        is not returned either.
    store : the online store (default: the workspace's).
    to : ``"pandas"`` (a DataFrame) or ``"dict"`` (column -> list of values: no DataFrame
        to build, for a request path where every 0.1 ms counts).

    Returns
    -------
    pandas.DataFrame or dict
        The entity rows' columns, then one column per feature (null where no value is
        stored or it is older than the view's TTL).
    """
    if to not in ("pandas", "dict"):
        raise InvalidInput(f"to must be 'pandas' or 'dict', got {to!r}")
    ws = workspace or default_workspace()
    plan = ws.component(PlanCache).plan(features, full_feature_names)
    at_ms = now_ms() if at is None else to_ms(at, "at")
    target = store if store is not None else default_online_store(ws)
    return lookup(plan, target, entity_rows, at_ms, to)
