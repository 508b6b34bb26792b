"""Feature definitions: ``Entity``, ``FeatureView``, ``OnDemandFeatureView``, ``FeatureService``.

Constructors only store their arguments (and normalise their spelling); :func:`spec_of`
checks a definition and turns it into the plain JSON spec that ``apply`` versions, and
:func:`from_spec` turns a stored spec back into the object. Checks that need the data (do
the columns exist?) happen in :mod:`loopml.features._validate`.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pandas as pd

from loopml.errors import InvalidInput

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_TTL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DTYPES = ("float64", "float32", "int64", "int32", "bool", "string")


def check_name(name: object, what: str) -> str:
    """``name`` if it is a valid identifier-like name, else InvalidInput naming ``what``."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"invalid {what} name {name!r}: use letters, digits and '_', starting with a "
            "letter or '_' (at most 128 characters)"
        )
    return name


def parse_ttl(ttl: object, where: str) -> int | None:
    """A TTL (``timedelta``, seconds, or ``"30d"``/``"12h"``/``"15m"``...) in milliseconds;
    None means no limit."""
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        ms = ttl.total_seconds() * 1000
    elif isinstance(ttl, int | float) and not isinstance(ttl, bool):
        ms = float(ttl) * 1000
    elif isinstance(ttl, str) and (m := _TTL.match(ttl)):
        ms = float(m.group(1)) * _UNIT_SECONDS[m.group(2)] * 1000
    else:
        raise InvalidInput(
            f"{where}: bad ttl {ttl!r}: give a timedelta, seconds, or a string like "
            "'30d', '12h', '15m', '90s' (or None for no limit)"
        )
    if ms <= 0:
        raise InvalidInput(f"{where}: ttl must be positive, got {ttl!r}")
    return round(ms)


@dataclass(frozen=True)
class Feature:
    """One feature of a view: a column of its source, with an optional declared dtype."""

    name: str
    dtype: str | None = None


@dataclass(frozen=True)
class Entity:
    """What features describe, identified by its join keys (``Entity("customer",
    ["customer_id"])``)."""

    name: str
    join_keys: Sequence[str]
    description: str = ""


@dataclass(frozen=True)
class FeatureView:
    """Features of one or more entities, read from a source with a timestamp column.

    Parameters
    ----------
    name : the view's name; features are referenced as ``"name:feature"``.
    entities : the entities (or their names) whose join keys key the view.
    source : a dataset reference (``"txns@latest"``, ``"txns@3"``) or DuckDB SQL over
        datasets (``"select ... from {txns@latest}"``).
    timestamp_field : the column saying when each row's values became true.
    ttl : how long a value stays valid (``"30d"``, a timedelta, seconds); None: forever.
    features : feature columns (names or :class:`Feature`); default: every other column.
    owner, tags, description : free metadata.
    """

    name: str
    entities: Sequence[Entity | str]
    source: str
    timestamp_field: str = "event_timestamp"
    ttl: timedelta | float | str | None = None
    features: Sequence[Feature | str] = ()
    owner: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    @property
    def entity_names(self) -> list[str]:
        """The names of the view's entities."""
        return [e.name if isinstance(e, Entity) else e for e in self.entities]


@dataclass(frozen=True)
class OnDemandFeatureView:
    """Features computed at request time by ``function(frame) -> frame``.

    The frame holds the request fields and the stored features named in ``sources``
    (``"view:feature"``); the function returns a frame with the ``features`` columns.
    The function must be self-contained (import what it needs inside its body; ``pd`` and
    ``np`` are in scope) because its source is what ``apply`` stores and runs later.
    """

    name: str
    sources: Sequence[str]
    features: Sequence[Feature | str]
    function: Callable[[pd.DataFrame], pd.DataFrame]
    request_fields: Mapping[str, str] = field(default_factory=dict)
    owner: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class FeatureService:
    """A named set of features one model uses: ``"view:feature"`` refs or whole views."""

    name: str
    features: Sequence[str | FeatureView | OnDemandFeatureView]
    owner: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    description: str = ""


Definition = Entity | FeatureView | OnDemandFeatureView | FeatureService
KINDS: dict[type[Any], str] = {
    Entity: "entity",
    FeatureView: "feature_view",
    OnDemandFeatureView: "on_demand_feature_view",
    FeatureService: "feature_service",
}


def kind_of(definition: object) -> str:
    """The stored kind of a definition object."""
    kind = KINDS.get(type(definition))
    if kind is None:
        raise InvalidInput(
            f"{definition!r} is not a feature definition (Entity, FeatureView, "
            "OnDemandFeatureView or FeatureService)"
        )
    return kind


def _features(items: Sequence[Feature | str], where: str) -> list[dict[str, Any]]:
    if isinstance(items, str):
        raise InvalidInput(f"{where}: features must be a list of names, not a string")
    out: list[dict[str, Any]] = []
    for item in items:
        feat = Feature(item) if isinstance(item, str) else item
        if not isinstance(feat, Feature):
            raise InvalidInput(f"{where}: {item!r} is not a feature name or Feature")
        check_name(feat.name, f"{where}: feature")
        if feat.dtype is not None and feat.dtype not in DTYPES:
            raise InvalidInput(
                f"{where}: feature {feat.name!r} has unknown dtype {feat.dtype!r} "
                f"(one of {', '.join(DTYPES)})"
            )
        out.append({"name": feat.name, "dtype": feat.dtype})
    names = [f["name"] for f in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidInput(f"{where}: feature(s) listed twice: {', '.join(dupes)}")
    return out


def _meta(d: Any, where: str) -> dict[str, Any]:
    if not isinstance(d.tags, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in d.tags.items()
    ):
        raise InvalidInput(f"{where}: tags must map strings to strings")
    return {"owner": str(d.owner), "tags": dict(d.tags), "description": str(d.description)}


def function_source(fn: Callable[..., Any], where: str) -> str:
    """The dedented source of ``fn`` (what an on-demand view stores)."""
    if not callable(fn):
        raise InvalidInput(f"{where}: function must be callable, got {fn!r}")
    try:
        return textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as exc:
        raise InvalidInput(
            f"{where}: cannot read the source of {fn!r} ({exc}); define it with def in a file"
        ) from None


def spec_of(d: Definition) -> dict[str, Any]:
    """The checked, JSON-able spec of a definition (what apply stores and diffs)."""
    kind = kind_of(d)
    where = f"{kind.replace('_', ' ')} {d.name!r}"
    check_name(d.name, kind.replace("_", " "))
    if isinstance(d, Entity):
        keys = list(d.join_keys) if not isinstance(d.join_keys, str) else [d.join_keys]
        if not keys:
            raise InvalidInput(f"{where}: give at least one join key")
        for k in keys:
            check_name(k, f"{where}: join key")
        return {"join_keys": keys, "description": str(d.description)}
    if isinstance(d, FeatureView):
        if not isinstance(d.source, str) or not d.source.strip():
            raise InvalidInput(f"{where}: source must be a dataset reference or SQL string")
        if not d.entities:
            raise InvalidInput(f"{where}: give at least one entity")
        check_name(d.timestamp_field, f"{where}: timestamp_field")
        return {
            "entities": d.entity_names,
            "source": d.source.strip(),
            "timestamp_field": d.timestamp_field,
            "ttl_ms": parse_ttl(d.ttl, where),
            "features": _features(d.features, where),
            **_meta(d, where),
        }
    if isinstance(d, OnDemandFeatureView):
        sources = [d.sources] if isinstance(d.sources, str) else list(d.sources)
        for s in sources:
            parse_feature_ref(s, where)
        request = dict(d.request_fields)
        for name, dtype in request.items():
            check_name(name, f"{where}: request field")
            if dtype not in DTYPES:
                raise InvalidInput(
                    f"{where}: request field {name!r} has unknown dtype {dtype!r} "
                    f"(one of {', '.join(DTYPES)})"
                )
        features = _features(d.features, where)
        if not features:
            raise InvalidInput(f"{where}: give at least one feature")
        return {
            "sources": sources,
            "request_fields": request,
            "features": features,
            "function_name": getattr(d.function, "__name__", "function"),
            "function_source": function_source(d.function, where),
            **_meta(d, where),
        }
    refs: list[str] = []
    items = [d.features] if isinstance(d.features, str) else list(d.features)
    for item in items:
        if isinstance(item, FeatureView | OnDemandFeatureView):
            refs.append(item.name)
        elif isinstance(item, str):
            refs.append(item.strip())
        else:
            raise InvalidInput(f"{where}: {item!r} is not a feature reference or view")
    if not refs:
        raise InvalidInput(f"{where}: give at least one feature")
    for r in refs:
        view, _, feat = r.partition(":")
        check_name(view, f"{where}: view")
        if feat:
            check_name(feat, f"{where}: feature")
    return {"features": refs, **_meta(d, where)}


def parse_feature_ref(ref: object, where: str = "feature reference") -> tuple[str, str]:
    """``(view, feature)`` of ``"view:feature"``."""
    if not isinstance(ref, str) or ref.count(":") != 1:
        raise InvalidInput(f"{where}: {ref!r} is not a feature reference like 'view:feature'")
    view, feat = ref.split(":")
    check_name(view, f"{where}: view")
    check_name(feat, f"{where}: feature")
    return view, feat


def compile_function(spec: Mapping[str, Any], name: str) -> Callable[[pd.DataFrame], Any]:
    """The function of a stored on-demand view, rebuilt from its source."""
    import numpy as np

    namespace: dict[str, Any] = {"pd": pd, "np": np}
    try:
        exec(compile(spec["function_source"], f"<on-demand view {name}>", "exec"), namespace)
    except Exception as exc:
        raise InvalidInput(
            f"on-demand view {name!r}: its function does not compile: {exc}"
        ) from exc
    fn = namespace.get(spec["function_name"])
    if not callable(fn):
        raise InvalidInput(f"on-demand view {name!r}: {spec['function_name']} is not defined")
    return fn  # type: ignore[no-any-return]


def from_spec(kind: str, name: str, spec: Mapping[str, Any]) -> Definition:
    """The definition object of a stored spec."""
    meta = {k: spec.get(k, "") for k in ("owner", "description")}
    tags = dict(spec.get("tags", {}))
    if kind == "entity":
        return Entity(name, list(spec["join_keys"]), spec.get("description", ""))
    if kind == "feature_view":
        ttl = spec["ttl_ms"]
        return FeatureView(
            name,
            list(spec["entities"]),
            spec["source"],
            spec["timestamp_field"],
            None if ttl is None else timedelta(milliseconds=ttl),
            [Feature(f["name"], f["dtype"]) for f in spec["features"]],
            tags=tags,
            **meta,
        )
    if kind == "on_demand_feature_view":
        return OnDemandFeatureView(
            name,
            list(spec["sources"]),
            [Feature(f["name"], f["dtype"]) for f in spec["features"]],
            compile_function(spec, name),
            dict(spec["request_fields"]),
            tags=tags,
            **meta,
        )
    return FeatureService(name, list(spec["features"]), tags=tags, **meta)
