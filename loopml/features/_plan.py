"""Which views to read for a list of feature references (or a feature service).

A plan groups the requested ``"view:feature"`` refs by view, adds the stored features that
on-demand views need, and fixes the output column names (``feature``, or
``view__feature`` with ``full_feature_names``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from loopml.errors import InvalidInput
from loopml.features._definitions import (
    FeatureService,
    FeatureView,
    OnDemandFeatureView,
    compile_function,
    parse_feature_ref,
)
from loopml.features._registry import VIEW_KINDS, Registered, get
from loopml.store import Workspace

FeaturesArg = str | FeatureService | Sequence[str | FeatureView | OnDemandFeatureView]


@dataclass
class ViewPart:
    """The features read from one stored view, keyed by ``join_keys``."""

    view: Registered
    join_keys: list[str]
    features: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # output name per feature

    @property
    def ttl_ms(self) -> int | None:
        """The view's TTL in milliseconds (None: no limit)."""
        ttl: int | None = self.view.spec["ttl_ms"]
        return ttl


@dataclass
class OnDemandPart:
    """Features an on-demand view computes from request fields and stored features."""

    view: Registered
    function: Callable[[pd.DataFrame], Any]
    inputs: dict[str, str]  # the function's column -> the frame column holding it
    features: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)

    @property
    def request_fields(self) -> list[str]:
        """The request-time fields the function reads."""
        return list(self.view.spec["request_fields"])


@dataclass
class Plan:
    """The views to read and the columns to return."""

    views: list[ViewPart]
    on_demand: list[OnDemandPart]
    output: list[str]
    service: Registered | None = None

    @property
    def join_keys(self) -> list[str]:
        """Every join key the stored views need, in first-seen order."""
        keys: list[str] = []
        for part in self.views:
            keys += [k for k in part.join_keys if k not in keys]
        return keys

    @property
    def request_fields(self) -> list[str]:
        """Every request-time field the on-demand views need."""
        out: list[str] = []
        for part in self.on_demand:
            out += [f for f in part.request_fields if f not in out]
        return out

    @property
    def hidden(self) -> list[str]:
        """Columns read only as on-demand inputs, dropped from the result."""
        made = [c for p in self.views for c in p.columns]
        return [c for c in made if c not in self.output]


def _refs(ws: Workspace, features: FeaturesArg) -> tuple[list[str], Registered | None]:
    service = None
    if isinstance(features, FeatureService):
        features = features.name
    if isinstance(features, str) and ":" not in features:
        service = get(ws, "feature_service", features)
        items: list[Any] = list(service.spec["features"])
    elif isinstance(features, str):
        items = [features]
    else:
        items = list(features)
    if not items:
        raise InvalidInput("give at least one feature ('view:feature'), view or feature service")
    refs: list[str] = []
    for item in items:
        if isinstance(item, FeatureView | OnDemandFeatureView):
            item = item.name
        if not isinstance(item, str):
            raise InvalidInput(f"{item!r} is not a feature reference like 'view:feature'")
        if ":" in item:
            parse_feature_ref(item)
            refs.append(item)
        else:
            found = get(ws, VIEW_KINDS, item)
            refs += [f"{item}:{f}" for f in found.feature_names]
    return list(dict.fromkeys(refs)), service


def make_plan(ws: Workspace, features: FeaturesArg, *, full_feature_names: bool = False) -> Plan:
    """The plan for ``features``: refs, whole views, or a feature service (name or object)."""
    refs, service = _refs(ws, features)
    views: dict[str, ViewPart] = {}
    on_demand: dict[str, OnDemandPart] = {}
    output: list[str] = []

    def column(view: str, feat: str) -> str:
        return f"{view}__{feat}" if full_feature_names else feat

    def stored(view_name: str, feat: str, ref: str) -> str:
        part = views.get(view_name)
        if part is None:
            reg = get(ws, VIEW_KINDS, view_name)
            if reg.kind != "feature_view":
                raise InvalidInput(f"{ref!r}: an on-demand view cannot feed another")
            keys = []
            for entity in reg.spec["entities"]:
                keys += get(ws, "entity", entity).spec["join_keys"]
            part = views[view_name] = ViewPart(reg, list(dict.fromkeys(keys)))
        if feat not in part.view.feature_names:
            raise InvalidInput(
                f"{ref!r}: view {view_name!r} has no feature {feat!r} "
                f"(features: {', '.join(part.view.feature_names)})"
            )
        col = column(view_name, feat)
        if feat not in part.features:
            part.features.append(feat)
            part.columns.append(col)
        return col

    for ref in refs:
        view_name, feat = parse_feature_ref(ref)
        reg = get(ws, VIEW_KINDS, view_name)
        if reg.kind == "feature_view":
            col = stored(view_name, feat, ref)
        else:
            odp = on_demand.get(view_name)
            if odp is None:
                inputs = {}
                for src in reg.spec["sources"]:
                    sv, sf = parse_feature_ref(src)
                    inputs[sf] = stored(sv, sf, src)
                odp = on_demand[view_name] = OnDemandPart(
                    reg, compile_function(reg.spec, view_name), inputs
                )
            if feat not in reg.feature_names:
                raise InvalidInput(
                    f"{ref!r}: on-demand view {view_name!r} has no feature {feat!r} "
                    f"(features: {', '.join(reg.feature_names)})"
                )
            col = column(view_name, feat)
            odp.features.append(feat)
            odp.columns.append(col)
        if col in output:
            raise InvalidInput(
                f"two features would both be column {col!r}: pass full_feature_names=True "
                "to name columns 'view__feature'"
            )
        output.append(col)
    return Plan(list(views.values()), list(on_demand.values()), output, service)


def run_on_demand(plan: Plan, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the on-demand features added (computed from its columns)."""
    for part in plan.on_demand:
        inputs = pd.DataFrame(
            {
                **{f: frame[f] for f in part.request_fields},
                **{name: frame[col] for name, col in part.inputs.items()},
            },
            index=frame.index,
        )
        where = f"on-demand view {part.view.name!r}"
        try:
            result = part.function(inputs)
        except Exception as exc:
            raise InvalidInput(f"{where}: its function failed: {exc!r}") from exc
        if not isinstance(result, pd.DataFrame):
            raise InvalidInput(
                f"{where}: its function returned {type(result).__name__}, not a DataFrame"
            )
        for feat, col in zip(part.features, part.columns, strict=True):
            if feat not in result.columns:
                raise InvalidInput(f"{where}: its function returned no column {feat!r}")
            if len(result) != len(frame):
                raise InvalidInput(
                    f"{where}: its function returned {len(result)} rows, not {len(frame)}"
                )
            frame[col] = result[feat].to_numpy()
    return frame
