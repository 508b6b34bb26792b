"""``drift_report``: has the current data drifted from the reference, column by column?

Each column gets one test (:mod:`loopml.monitoring._tests`), chosen by its kind and the
reference's size unless ``tests`` says otherwise:

- reference of at most :data:`SMALL_REFERENCE` rows: ``ks`` (numeric) and ``chi2``
  (categorical), drifted when p < 0.05 / number of columns tested (Bonferroni: a 5% chance
  of any false alarm in the whole report, where 0.05 per column would cry wolf on about one
  column in twenty);
- larger references: ``wasserstein`` (normalised by the reference's std, drifted at >= 0.1)
  and ``jensenshannon`` (drifted at >= 0.1), as Evidently's defaults; ``psi`` at >= 0.1.

The dataset drifts when the share of drifted feature columns reaches ``drift_share`` (0.5).
The prediction and label columns are tested the same way but reported apart.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import numpy as np
import pyarrow as pa

from loopml import data
from loopml.errors import InvalidInput
from loopml.monitoring._report_html import render_drift_html
from loopml.monitoring._summary import (
    ColumnSummary,
    Floats,
    ReferenceSummary,
    as_table,
    column_kind,
    finite_values,
    level_counts,
)
from loopml.monitoring._tests import P_VALUE_TESTS, TESTS, aligned_levels, is_drifted, run_test
from loopml.store import Workspace

Role = Literal["feature", "prediction", "label"]
SMALL_REFERENCE: Final = 1_000
DEFAULT_THRESHOLDS: Final[dict[str, float]] = {
    "ks": 0.05,  # family-wise, divided by the number of columns tested
    "chi2": 0.05,
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
    "psi": 0.1,
}
_PLOT_BINS: Final = 30
_PLOT_LEVELS: Final = 20
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True)
class ColumnDrift:
    """The drift test of one column.

    Attributes
    ----------
    column, kind, role : the column, ``"numeric"``/``"categorical"``, and
        ``"feature"``/``"prediction"``/``"label"``.
    test : ``"ks"``, ``"chi2"``, ``"wasserstein"``, ``"jensenshannon"`` or ``"psi"``.
    statistic : the test's statistic or distance.
    p_value : for ``ks`` and ``chi2``; ``None`` for distances.
    threshold : p-value below which, or distance from which, the column drifted.
    drifted : whether it did.
    reference_rows, current_rows : rows compared (non-null values) on each side.
    reference_null_fraction, current_null_fraction : share of null rows on each side.
    plot : the distributions for the HTML report (``edges`` or ``levels``, and the shares of
        ``reference`` and ``current``).
    """

    column: str
    kind: str
    role: Role
    test: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    reference_rows: int
    current_rows: int
    reference_null_fraction: float
    current_null_fraction: float
    plot: dict[str, list[Any]] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "column": self.column,
            "kind": self.kind,
            "role": self.role,
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "reference_null_fraction": self.reference_null_fraction,
            "current_null_fraction": self.current_null_fraction,
            "plot": self.plot,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ColumnDrift:
        """The inverse of :meth:`to_dict`."""
        try:
            return cls(
                **{k: d[k] for k in cls.__dataclass_fields__ if k != "plot"},
                plot=d.get("plot") or {},
            )
        except KeyError as exc:
            raise InvalidInput(f"not a column drift result: missing {exc}") from exc


@dataclass(frozen=True)
class DriftReport:
    """What :func:`drift_report` found.

    Attributes
    ----------
    columns : name -> :class:`ColumnDrift`, features first, then prediction and label.
    drift_share : share of feature columns that drifted.
    dataset_drift : ``drift_share >= drift_share_threshold``.
    drift_share_threshold : the share from which the dataset counts as drifted.
    reference_rows, current_rows : rows on each side.
    created_at : when the report was made (ISO-8601, UTC).
    seconds : how long it took.
    """

    columns: dict[str, ColumnDrift]
    drift_share: float
    dataset_drift: bool
    drift_share_threshold: float
    reference_rows: int
    current_rows: int
    created_at: str
    seconds: float = 0.0

    @property
    def drifted_columns(self) -> list[str]:
        """The feature columns that drifted, in order."""
        return [c.column for c in self.columns.values() if c.role == "feature" and c.drifted]

    @property
    def prediction_drift(self) -> ColumnDrift | None:
        """The prediction column's result, if one was given."""
        return next((c for c in self.columns.values() if c.role == "prediction"), None)

    @property
    def label_drift(self) -> ColumnDrift | None:
        """The label column's result, if one was given."""
        return next((c for c in self.columns.values() if c.role == "label"), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (what monitors store)."""
        return {
            "created_at": self.created_at,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "drift_share": self.drift_share,
            "dataset_drift": self.dataset_drift,
            "drift_share_threshold": self.drift_share_threshold,
            "drifted_columns": self.drifted_columns,
            "seconds": round(self.seconds, 6),
            "columns": [c.to_dict() for c in self.columns.values()],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DriftReport:
        """The inverse of :meth:`to_dict` (e.g. a stored report, for a drift history)."""
        try:
            cols = [ColumnDrift.from_dict(c) for c in d["columns"]]
            return cls(
                columns={c.column: c for c in cols},
                drift_share=float(d["drift_share"]),
                dataset_drift=bool(d["dataset_drift"]),
                drift_share_threshold=float(d["drift_share_threshold"]),
                reference_rows=int(d["reference_rows"]),
                current_rows=int(d["current_rows"]),
                created_at=str(d["created_at"]),
                seconds=float(d.get("seconds", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a drift report: {exc!r}") from exc

    def to_html(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        title: str = "Drift report",
        history: Sequence[DriftReport | Mapping[str, Any]] = (),
    ) -> str:
        """One self-contained HTML page; written atomically to ``path`` when given.

        ``history`` (earlier reports, oldest first) adds a drift-share-over-time chart.
        """
        past = [h.to_dict() if isinstance(h, DriftReport) else dict(h) for h in history]
        page = render_drift_html(self.to_dict(), title, past)
        if path is not None:
            write_atomic(Path(path), page)
        return page


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed into place."""
    if not path.parent.is_dir():
        raise InvalidInput(f"folder {str(path.parent)!r} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a report is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def parallel_map(fn: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    """``[fn(x) for x in items]`` on a few threads (numpy sorts and Arrow kernels release
    the GIL); the first exception is raised."""
    items = list(items)
    workers = min(len(items), os.cpu_count() or 1, 4)
    if workers <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def _load(source: object, ws: Workspace | None) -> Any:
    """A dataset reference resolved to its Arrow table; anything else as given."""
    if isinstance(source, str | data.DatasetVersion):
        return data.resolve(source, workspace=ws).to_arrow()
    return source


def drift_report(
    reference: ReferenceSummary | object,
    current: object,
    *,
    columns: Sequence[str] | None = None,
    tests: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    prediction_column: str | None = None,
    label_column: str | None = None,
    drift_share: float = 0.5,
    workspace: Workspace | None = None,
) -> DriftReport:
    """Compare ``current`` with ``reference`` column by column.

    Parameters
    ----------
    reference : ReferenceSummary, DataFrame, Arrow table or dataset reference (``"churn@3"``)
    current : DataFrame, Arrow table or dataset reference
    columns : the feature columns to test; default: every column both sides share, except
        the prediction and label columns.
    tests : test per column name or per kind (``"numeric"``/``"categorical"``), e.g.
        ``{"age": "psi", "categorical": "chi2"}``; see :mod:`loopml.monitoring._tests`.
    thresholds : threshold per test name or column name, e.g. ``{"wasserstein": 0.2}``
        (given p-value thresholds are used as they are, without the Bonferroni division).
    prediction_column, label_column : tested too, reported as prediction and label drift.
    drift_share : share of drifted features from which the dataset counts as drifted.
    workspace : where dataset references resolve (default: the current workspace).

    Returns
    -------
    DriftReport

    Raises
    ------
    InvalidInput
        Empty frames, no common columns, a named column missing on either side, a column all
        null or of an unsupported type, a column whose kind differs between the sides, an
        unknown test or one that does not fit the column, a bad threshold.

    Examples
    --------
    >>> import pandas as pd
    >>> ref = pd.DataFrame({"x": [0.1 * i for i in range(100)]})
    >>> drift_report(ref, ref + 5.0).drifted_columns
    ['x']
    """
    started = time.perf_counter()
    if not 0 < drift_share <= 1:
        raise InvalidInput(f"drift_share must be in (0, 1], not {drift_share!r}")
    cur = as_table(_load(current, workspace), "current")
    summary = _reference_summary(
        reference, cur, columns, prediction_column, label_column, workspace
    )
    roles = _roles(summary, cur, columns, prediction_column, label_column)
    chosen = {
        name: _choose_test(name, summary.columns[name], summary.num_rows, tests) for name in roles
    }
    limits = _thresholds(chosen, thresholds)

    def one(name: str) -> ColumnDrift:
        return _column_drift(
            summary.columns[name], cur.column(name), roles[name], chosen[name], limits[name]
        )

    results = parallel_map(one, list(roles))
    features = [r for r in results if r.role == "feature"]
    share = sum(r.drifted for r in features) / len(features) if features else 0.0
    return DriftReport(
        columns={r.column: r for r in results},
        drift_share=share,
        dataset_drift=bool(features) and share >= drift_share,
        drift_share_threshold=drift_share,
        reference_rows=summary.num_rows,
        current_rows=cur.num_rows,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        seconds=time.perf_counter() - started,
    )


def _reference_summary(
    reference: object,
    cur: pa.Table,
    columns: Sequence[str] | None,
    prediction: str | None,
    label: str | None,
    ws: Workspace | None,
) -> ReferenceSummary:
    if isinstance(reference, ReferenceSummary):
        return reference
    wanted = None
    if columns is not None:
        wanted = [*columns, *(c for c in (prediction, label) if c is not None)]
    table = as_table(_load(reference, ws), "reference")
    names = (
        wanted if wanted is not None else [c for c in table.column_names if c in cur.column_names]
    )
    if not names:
        raise _no_common(table.column_names, cur.column_names)
    missing = [c for c in names if c not in table.column_names]
    if missing:
        raise InvalidInput(f"reference has no column(s) {', '.join(map(repr, missing))}")
    return summarize_parallel(table, names)


def summarize_parallel(table: pa.Table, names: Sequence[str]) -> ReferenceSummary:
    """:meth:`ReferenceSummary.summarize` of ``names``, a few columns at a time."""
    parts = parallel_map(lambda n: ReferenceSummary.summarize(table.select([n])), names)
    return ReferenceSummary(
        table.num_rows, {n: p.columns[n] for n, p in zip(names, parts, strict=True)}
    )


def _no_common(ref: Sequence[str], cur: Sequence[str]) -> InvalidInput:
    return InvalidInput(
        f"reference and current share no column (reference: {', '.join(ref[:10])}; "
        f"current: {', '.join(cur[:10])})"
    )


def _roles(
    summary: ReferenceSummary,
    cur: pa.Table,
    columns: Sequence[str] | None,
    prediction: str | None,
    label: str | None,
) -> dict[str, Role]:
    special = {c: r for c, r in ((prediction, "prediction"), (label, "label")) if c is not None}
    if columns is not None:
        if isinstance(columns, str):
            raise InvalidInput("columns must be a list of column names, not one string")
        features = list(columns)
    else:
        features = [c for c in summary.columns if c in cur.column_names and c not in special]
    roles: dict[str, Role] = {c: "feature" for c in features}
    roles.update(special)  # type: ignore[arg-type]
    if not roles:
        raise _no_common(list(summary.columns), cur.column_names)
    for name in roles:
        for side, names in (("reference", summary.columns), ("current", cur.column_names)):
            if name not in names:
                raise InvalidInput(f"column {name!r} is not in the {side} data")
    return roles


def _choose_test(
    name: str, ref: ColumnSummary, ref_rows: int, tests: Mapping[str, str] | None
) -> str:
    given = (tests or {}).get(name) or (tests or {}).get(ref.kind)
    if given is None:
        small = ref_rows <= SMALL_REFERENCE
        if ref.kind == "numeric":
            return "ks" if small else "wasserstein"
        return "chi2" if small else "jensenshannon"
    if given not in TESTS:
        raise InvalidInput(
            f"unknown drift test {given!r} for column {name!r}; use one of {', '.join(TESTS)}"
        )
    if ref.kind not in TESTS[given]:
        raise InvalidInput(f"test {given!r} does not apply to {ref.kind} column {name!r}")
    return given


def _thresholds(chosen: Mapping[str, str], given: Mapping[str, float] | None) -> dict[str, float]:
    given = dict(given or {})
    for key, value in given.items():
        if key not in TESTS and key not in chosen:
            raise InvalidInput(f"thresholds: {key!r} is neither a drift test nor a tested column")
        ok = isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)
        if not ok or value < 0:
            raise InvalidInput(f"thresholds: {key!r} must be a number >= 0, not {value!r}")
    out = {}
    for name, test in chosen.items():
        if name in given:
            out[name] = float(given[name])
        elif test in given:
            out[name] = float(given[test])
        elif test in P_VALUE_TESTS:
            out[name] = DEFAULT_THRESHOLDS[test] / len(chosen)
        else:
            out[name] = DEFAULT_THRESHOLDS[test]
    for name, value in out.items():
        if chosen[name] in P_VALUE_TESTS and not 0 < value < 1:
            raise InvalidInput(f"thresholds: the p-value threshold of {name!r} must be in (0, 1)")
    return out


def _column_drift(
    ref: ColumnSummary, column: pa.ChunkedArray, role: Role, test: str, threshold: float
) -> ColumnDrift:
    name = ref.name
    rows = len(column)
    if column.null_count == rows:
        raise InvalidInput(f"column {name!r} is all null in the current data")
    kind = column_kind(name, column.type)
    if kind != ref.kind:
        raise InvalidInput(
            f"column {name!r} is {ref.kind} in the reference but {kind} ({column.type}) now"
        )
    current: Floats | dict[str, int]
    if kind == "numeric":
        values, nulls, _ = finite_values(name, column)
        if values.size == 0:
            raise InvalidInput(f"column {name!r} has no finite values in the current data")
        current = np.sort(values)
        del values
        count, null_rows = current.size, nulls
        plot = _numeric_plot(ref, current)
    else:
        current = level_counts(column)
        count, null_rows = sum(current.values()), column.null_count
        plot = _level_plot(ref, current)
    statistic, p_value = run_test(test, ref, current)
    return ColumnDrift(
        column=name,
        kind=kind,
        role=role,
        test=test,
        statistic=statistic,
        p_value=p_value,
        threshold=threshold,
        drifted=is_drifted(test, statistic, p_value, threshold),
        reference_rows=ref.count,
        current_rows=count,
        reference_null_fraction=ref.null_fraction,
        current_null_fraction=null_rows / rows,
        plot=plot,
    )


def _ref_quantile(ref: ColumnSummary, q: float) -> float:
    if ref.values is not None:
        return float(np.quantile(ref.values, q))
    assert ref.edges is not None and ref.cdf is not None
    return float(np.interp(q, ref.cdf, ref.edges))


def _numeric_plot(ref: ColumnSummary, cur: Floats) -> dict[str, list[Any]]:
    """Shares of both sides in 30 equal-width bins over both sides' 0.5%-99.5% range."""
    q = [cur[int(p * (cur.size - 1))] for p in (0.005, 0.995)]
    lo = min(_ref_quantile(ref, 0.005), float(q[0]))
    hi = max(_ref_quantile(ref, 0.995), float(q[1]))
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, _PLOT_BINS + 1)
    r = np.diff(ref.ref_cdf(edges))
    c = np.diff(np.searchsorted(cur, edges, side="right")) / cur.size
    return {"edges": edges.tolist(), "reference": r.tolist(), "current": c.tolist()}


def _level_plot(ref: ColumnSummary, cur: Mapping[str, int]) -> dict[str, list[Any]]:
    """Shares of both sides for the levels most frequent on either side."""
    names, r, c = aligned_levels(ref, cur)
    rs, cs = r / max(r.sum(), 1.0), c / max(c.sum(), 1.0)
    order = np.argsort(-(rs + cs), kind="stable")[:_PLOT_LEVELS]
    return {
        "levels": [names[i] for i in order],
        "reference": rs[order].tolist(),
        "current": cs[order].tolist(),
    }
