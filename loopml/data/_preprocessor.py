"""The default preprocessing pipeline, built from a data profile.

:class:`Preprocessor` decides, column by column, what happens before a model sees the data
(impute, clip, scale, encode, split dates, or drop) and runs it as one scikit-learn
transformer, so it can be the first step of a ``Pipeline`` and is saved with the model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from loopml.data._columns import DatetimeFeatures, Scaler, Winsorizer
from loopml.data._encode import OneHotEncoder, OrdinalEncoder, TargetEncoder
from loopml.data._frame import (
    Objects,
    _FrameTransformer,
    _is_datetime,
    _is_numeric,
    _quoted,
    _to_frame,
)
from loopml.data._impute import Imputer
from loopml.errors import InvalidInput

KINDS = ("numeric", "categorical", "boolean", "datetime", "text", "identifier")
_ENCODED = ("categorical", "boolean")


@dataclass(frozen=True)
class _ColumnPlan:
    """What happens to one column.

    ``route`` is ``numeric``, ``onehot``, ``target``, ``ordinal``, ``datetime``, ``drop``,
    or ``undecided`` (a categorical column whose distinct count is known only at fit).
    """

    column: str
    kind: str
    route: str
    distinct: int | None = None
    reason: str = ""


def read_profile(profile: Any) -> tuple[dict[str, str], dict[str, int]]:
    """Column kinds and distinct counts from any accepted profile form.

    Parameters
    ----------
    profile : ``{"columns": {name: {"kind": ..., "distinct": int, ...}}}`` (the profiler's
        JSON), a plain ``{name: kind}`` mapping, or an object whose ``.profile`` attribute
        holds one of those.

    Returns
    -------
    (kinds, distinct) : column → kind, and column → distinct count where the profile has one.

    Raises
    ------
    InvalidInput
        The profile has none of those shapes, or a kind is not one of :data:`KINDS`.
    """
    if not isinstance(profile, Mapping) and hasattr(profile, "profile"):
        profile = profile.profile
    if not isinstance(profile, Mapping):
        raise InvalidInput(
            f"profile must be a mapping or have a .profile mapping, not {type(profile).__name__}"
        )
    columns = profile.get("columns")
    kinds: dict[str, Any] = {}
    distinct: dict[str, int] = {}
    if isinstance(columns, Mapping) and all(isinstance(v, Mapping) for v in columns.values()):
        for name, info in columns.items():
            kinds[str(name)] = info.get("kind")
            count = info.get("distinct")
            if isinstance(count, int) and not isinstance(count, bool):
                distinct[str(name)] = count
    else:
        kinds = {str(name): kind for name, kind in profile.items()}
    return _check_kinds(kinds), distinct


def _check_kinds(kinds: Mapping[str, Any]) -> dict[str, str]:
    checked: dict[str, str] = {}
    for name, kind in kinds.items():
        if not isinstance(kind, str) or kind.lower() not in KINDS:
            raise InvalidInput(
                f"profile: column {name!r} has kind {kind!r}; expected one of {_quoted(KINDS)}"
            )
        checked[str(name)] = kind.lower()
    return checked


def _infer_kind(s: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(s.dtype):
        return "boolean"
    if _is_datetime(s):
        return "datetime"
    return "numeric" if _is_numeric(s) else "categorical"


class Preprocessor(_FrameTransformer):
    """The default preprocessing: one scikit-learn transformer for a whole table.

    Rules, per column kind:

    - the target, columns listed in ``drop``, identifiers, free text, columns absent from
      the profile and columns with no value at fit are dropped (see ``dropped_``);
    - numeric: median imputation, clipping to the 0.1%/99.9% quantiles (:class:`Winsorizer`),
      standard scaling if ``scale``;
    - categorical and boolean: most-frequent imputation, then one-hot encoding (unseen values
      → all zeros) when the column has at most ``max_onehot`` distinct values, else target
      encoding when a ``target`` is set (cross-fitted in training) or ordinal encoding;
      encoded numbers other than one-hot are standard-scaled if ``scale``;
    - datetime: integer parts (year, month, day, dayofweek, hour), median imputation of
      missing timestamps' parts, standard scaling if ``scale``.

    Build it with :meth:`from_profile`, or directly: without ``kinds`` the kinds are read
    from the dtypes at fit (no identifier or text detection: list such columns in ``drop``).

    Parameters
    ----------
    kinds : column → kind (one of :data:`KINDS`), or None to infer from dtypes.
    distinct : column → distinct count from the profile; missing counts are taken at fit.
    target : name of the target column: dropped from X, and its presence turns on target
        encoding; ``fit`` uses ``X[target]`` as ``y`` when ``y`` is not given.
    drop : columns to leave out.
    scale : standard-scale the numeric outputs.
    max_onehot : most distinct values a column may have to be one-hot encoded.

    Attributes
    ----------
    columns_ : list of str, the input columns used (only these are needed at transform).
    dropped_ : dict, column → why it was dropped.
    plan_ : list, what happens to each column seen at fit (see :meth:`describe`).
    column_transformer_ : the fitted ``ColumnTransformer`` (pandas output, plain names).

    Raises
    ------
    InvalidInput
        Bad parameters, a profile column missing from X, nothing left to use, target
        encoding without a target, or (at transform) a used column missing.

    Examples
    --------
    >>> pre = Preprocessor.from_profile({"age": "numeric", "city": "categorical"})
    >>> model = Pipeline([("pre", pre), ("clf", LogisticRegression())])  # doctest: +SKIP
    """

    def __init__(
        self,
        kinds: Mapping[str, str] | None = None,
        distinct: Mapping[str, int] | None = None,
        target: str | None = None,
        drop: Sequence[str] = (),
        scale: bool = True,
        max_onehot: int = 20,
    ) -> None:
        self.kinds = kinds
        self.distinct = distinct
        self.target = target
        self.drop = drop
        self.scale = scale
        self.max_onehot = max_onehot

    @classmethod
    def from_profile(
        cls,
        profile: Any,
        target: str | None = None,
        *,
        drop: Sequence[str] = (),
        scale: bool = True,
        max_onehot: int = 20,
    ) -> Self:
        """A preprocessor for the columns a profile describes.

        Parameters
        ----------
        profile : ``{"columns": {name: {"kind": ..., "distinct": int}}}``, ``{name: kind}``,
            or an object with such a mapping in ``.profile`` (see :func:`read_profile`).
        target, drop, scale, max_onehot : as in the constructor.

        Returns
        -------
        Preprocessor, unfitted.

        Raises
        ------
        InvalidInput
            The profile cannot be read.
        """
        kinds, distinct = read_profile(profile)
        return cls(
            kinds=kinds,
            distinct=distinct or None,
            target=target,
            drop=(drop,) if isinstance(drop, str) else tuple(drop),
            scale=scale,
            max_onehot=max_onehot,
        )

    # -- planning --------------------------------------------------------------------------

    def _dropped_names(self) -> set[str]:
        return {self.drop} if isinstance(self.drop, str) else {str(c) for c in self.drop}

    def _check_params(self) -> dict[str, str] | None:
        m = self.max_onehot
        if not isinstance(m, int) or isinstance(m, bool) or m < 0:
            raise InvalidInput(f"Preprocessor: max_onehot must be an int >= 0, not {m!r}")
        if self.target is not None and not isinstance(self.target, str):
            raise InvalidInput(f"Preprocessor: target must be a column name, not {self.target!r}")
        return None if self.kinds is None else _check_kinds(self.kinds)

    def _plan(
        self,
        columns: Sequence[str],
        kind_of: Callable[[str], str | None],
        count_of: Callable[[str], int | None],
        empty: Callable[[str], bool],
    ) -> list[_ColumnPlan]:
        """Route each column; ``kind_of`` returns None for a column not in the profile."""
        dropped = self._dropped_names()
        plan: list[_ColumnPlan] = []
        for col in columns:
            kind = kind_of(col) or ""
            reason = ""
            if col == self.target:
                reason = "the target"
            elif col in dropped:
                reason = "listed in drop"
            elif not kind:
                reason = "not in the profile"
            elif kind in ("identifier", "text"):
                reason = "an identifier" if kind == "identifier" else "free text"
            elif empty(col):
                reason = "no values at fit"
            if reason:
                plan.append(_ColumnPlan(col, kind, "drop", reason=reason))
            elif kind in ("numeric", "datetime"):
                plan.append(_ColumnPlan(col, kind, kind))
            else:
                n = count_of(col)
                if n is None:
                    route = "undecided"
                elif n <= self.max_onehot:
                    route = "onehot"
                else:
                    route = "ordinal" if self.target is None else "target"
                plan.append(_ColumnPlan(col, kind, route, distinct=n))
        return plan

    def _build(self, plan: list[_ColumnPlan]) -> ColumnTransformer:
        groups: dict[str, list[str]] = {}
        for item in plan:
            if item.route != "drop":
                groups.setdefault(item.route, []).append(item.column)
        scale = [("scale", Scaler("standard"))] if self.scale else []
        transformers = []
        for route, cols in groups.items():
            if route == "numeric":
                steps = [
                    ("impute", Imputer("median", columns=cols)),
                    ("clip", Winsorizer(0.001, 0.999, columns=cols)),
                    *scale,
                ]
            elif route == "datetime":
                steps = [("parts", DatetimeFeatures(columns=cols)), ("impute", Imputer("median"))]
                steps += scale
            else:
                encoder: Any = {
                    "onehot": OneHotEncoder(columns=cols, handle_unknown="ignore"),
                    "target": TargetEncoder(columns=cols),
                    "ordinal": OrdinalEncoder(columns=cols),
                }[route]
                steps = [("impute", Imputer("most_frequent", columns=cols)), ("encode", encoder)]
                steps += [] if route == "onehot" else scale
            transformers.append((route, Pipeline(steps), cols))
        return ColumnTransformer(
            transformers, remainder="drop", sparse_threshold=0.0, verbose_feature_names_out=False
        ).set_output(transform="pandas")

    # -- fit / transform -------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None) -> Self:
        """Plan the columns and fit every step (as :meth:`fit_transform` does)."""
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: Any, y: Any = None) -> pd.DataFrame:
        """Fit and return the training output.

        Target encodings here are cross-fitted (each row encoded without its own target),
        which is why ``fit_transform`` is not ``fit(X, y).transform(X)``.
        """
        kinds = self._check_params()
        frame = self._start_fit(X)
        if kinds is not None:
            dropped = self._dropped_names()
            absent = [
                c
                for c, k in kinds.items()
                if c not in frame.columns
                and c != self.target
                and c not in dropped
                and k not in ("identifier", "text")
            ]
            if absent:
                raise InvalidInput(
                    f"Preprocessor: column(s) {_quoted(absent)} of the profile are not in X"
                )
        counts = dict(self.distinct or {})
        plan = self._plan(
            list(frame.columns),
            (lambda c: _infer_kind(frame[c])) if kinds is None else kinds.get,
            lambda c: counts[c] if c in counts else int(frame[c].nunique(dropna=True)),
            lambda c: bool(frame[c].isna().all()),
        )
        self.plan_ = plan
        self.dropped_ = {p.column: p.reason for p in plan if p.route == "drop"}
        self.columns_ = [p.column for p in plan if p.route != "drop"]
        if not self.columns_:
            raise InvalidInput("Preprocessor: every column was dropped; nothing is left to use")
        if y is None and self.target is not None and self.target in frame.columns:
            y = frame[self.target]
        encoded = [p.column for p in plan if p.route == "target"]
        if encoded and y is None:
            raise InvalidInput(
                f"Preprocessor: target encoding of {_quoted(encoded)} needs y; pass y to fit "
                f"or keep the target column {self.target!r} in X"
            )
        ct = self._build(plan)
        out = ct.fit_transform(frame[self.columns_], y)
        self.column_transformer_ = ct
        return out

    def transform(self, X: Any) -> pd.DataFrame:
        """Transform serving or evaluation data; only ``columns_`` need be present."""
        check_is_fitted(self, "column_transformer_")
        frame = _to_frame(X, list(self.feature_names_in_), "Preprocessor")
        missing = [c for c in self.columns_ if c not in frame.columns]
        if len(missing) == 1:
            raise InvalidInput(f"Preprocessor: column {missing[0]!r} seen at fit is missing")
        if missing:
            raise InvalidInput(f"Preprocessor: columns {_quoted(missing)} seen at fit are missing")
        out: pd.DataFrame = self.column_transformer_.transform(frame[self.columns_])
        return out

    def _names_out(self) -> list[str]:
        check_is_fitted(self, "column_transformer_")
        names: Objects = self.column_transformer_.get_feature_names_out()
        return [str(n) for n in names]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        return tags

    # -- description -----------------------------------------------------------------------

    def describe(self) -> list[str]:
        """One line per column saying what happens to it.

        After fit this is the fitted plan; before fit it is read from the profile (a
        categorical column without a distinct count is then described conditionally).

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Not fitted and built without ``kinds``.
        """
        if hasattr(self, "plan_"):
            plan = self.plan_
        else:
            kinds = self._check_params()
            if kinds is None:
                check_is_fitted(self, "plan_")
                return []
            counts = dict(self.distinct or {})
            plan = self._plan(list(kinds), kinds.get, counts.get, lambda c: False)
        return [self._line(p) for p in plan]

    def _line(self, p: _ColumnPlan) -> str:
        scaled = ", standard scaling" if self.scale else ""
        head = f"{p.column}: {p.kind}"
        if p.route == "drop":
            return f"{p.column}: dropped ({p.reason})"
        if p.route == "numeric":
            return f"{head} → median imputation, clipped to the 0.1%/99.9% quantiles{scaled}"
        if p.route == "datetime":
            return (
                f"{head} → integer year, month, day, dayofweek and hour, median imputation{scaled}"
            )
        other = "ordinal encoding" if self.target is None else f"target encoding ({self.target})"
        if p.route == "undecided":
            return (
                f"{head} → most-frequent imputation, one-hot encoding if it has at most "
                f"{self.max_onehot} distinct values at fit, else {other}"
            )
        head += f", {p.distinct} distinct → most-frequent imputation"
        if p.route == "onehot":
            return f"{head}, one-hot encoding (unseen values → all zeros)"
        if p.route == "target":
            return (
                f"{head}, target encoding against {self.target!r} (cross-fitted when training; "
                f"unseen values → target mean){scaled}"
            )
        return f"{head}, ordinal encoding (unseen values → -1){scaled}"


__all__ = ["KINDS", "Preprocessor", "read_profile"]
