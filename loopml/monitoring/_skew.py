"""Training/serving skew: the feature values a deployment served vs the offline values.

A deployment with a feature service logs every looked-up value as an input column. The
skew report reads a window of those rows and computes, point in time, what a training set
would have held for the same entity keys at the same request times (the feature store's
ASOF join, nothing stored); per feature it counts the rows compared, the share that differ
and the largest absolute difference. Differences mean the online store is stale, was
written out of band, or the offline data changed after serving.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from loopml.errors import InvalidInput
from loopml.features._offline import point_in_time
from loopml.features._plan import make_plan
from loopml.serving import get_deployment, read_predictions
from loopml.store import Workspace

_TS = "__served_at"


@dataclass(frozen=True)
class FeatureSkew:
    """One feature's comparison.

    Attributes
    ----------
    feature : the feature column.
    rows : logged rows compared.
    mismatched : rows whose served value differs from the offline one (a null on one side
        only counts; both null does not).
    mismatch_share : ``mismatched / rows`` (0 without rows).
    max_abs_diff : the largest absolute difference of numeric values (None if none are
        numeric or both sides are never set together).
    """

    feature: str
    rows: int
    mismatched: int
    mismatch_share: float
    max_abs_diff: float | None


@dataclass(frozen=True)
class SkewReport:
    """Served vs offline feature values of a deployment over a window."""

    deployment: str
    service: str
    rows: int
    features: list[FeatureSkew]

    @property
    def skewed(self) -> list[str]:
        """Features with at least one mismatch."""
        return [f.feature for f in self.features if f.mismatched]

    def to_pandas(self) -> pd.DataFrame:
        """One row per feature."""
        cols = ["feature", "rows", "mismatched", "mismatch_share", "max_abs_diff"]
        return pd.DataFrame([vars(f) for f in self.features], columns=cols)


def _compare(served: pd.Series, offline: pd.Series, tolerance: float) -> tuple[int, float | None]:
    mismatched, worst = 0, None
    for a, b in zip(served.tolist(), offline.tolist(), strict=True):
        a_null, b_null = _is_null(a), _is_null(b)
        if a_null or b_null:
            mismatched += a_null != b_null
            continue
        if _number(a) and _number(b):
            diff = abs(float(a) - float(b))
            worst = diff if worst is None else max(worst, diff)
            mismatched += diff > tolerance
        else:
            mismatched += a != b
    return mismatched, worst


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def skew_report(
    ws: Workspace,
    deployment: str,
    *,
    since: Any = "1d",
    until: Any = None,
    tolerance: float = 1e-9,
) -> SkewReport:
    """Compare the feature values ``deployment`` served with the offline values.

    Parameters
    ----------
    ws : the workspace.
    deployment : a deployment made with ``features=`` (a feature service).
    since, until : the window of logged predictions (datetimes, ISO text or durations back
        from now such as ``"2h"``); default the last day.
    tolerance : numeric values closer than this count as equal.

    Returns
    -------
    SkewReport
        Per feature of the service: rows compared, mismatched, share, max abs difference.

    Raises
    ------
    InvalidInput
        The deployment has no feature service, or a bad window or tolerance.
    NotFound
        No such deployment, or its feature service no longer exists.

    Examples
    --------
    >>> skew_report(ws, "scorer-live", since="6h").to_pandas()  # doctest: +SKIP
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or tolerance < 0:
        raise InvalidInput(f"tolerance must be a number >= 0, not {tolerance!r}")
    d = get_deployment(ws, deployment)
    if d.features is None:
        raise InvalidInput(
            f"deployment {deployment!r} has no feature service: its requests carry every "
            "input, so there is nothing served to compare; deploy it with features="
        )
    plan = make_plan(ws, d.features)
    logged = read_predictions(ws, deployment, since=since, until=until)
    needed = [*plan.join_keys, *plan.request_fields]
    present = [c for c in [*needed, *plan.output] if f"input.{c}" in logged.column_names]
    features = [c for c in plan.output if c in present]
    if logged.num_rows == 0 or any(c not in present for c in needed):
        return SkewReport(
            deployment, d.features, 0, [FeatureSkew(f, 0, 0, 0.0, None) for f in plan.output]
        )
    entities = pa.table(
        {
            **{c: logged.column(f"input.{c}") for c in needed},
            _TS: logged.column("ts"),
        }
    )
    offline, _ = point_in_time(ws, plan, entities, _TS)
    got = offline.to_pandas()
    out = []
    for feat in plan.output:
        if feat not in features:
            out.append(FeatureSkew(feat, 0, 0, 0.0, None))
            continue
        served = logged.column(f"input.{feat}").to_pandas()
        mismatched, worst = _compare(served, got[feat], float(tolerance))
        n = len(served)
        out.append(FeatureSkew(feat, n, mismatched, mismatched / n if n else 0.0, worst))
    return SkewReport(deployment, d.features, logged.num_rows, out)
