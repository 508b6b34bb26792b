"""Dataset profiling: per-column statistics of an Arrow table, computed by DuckDB.

:func:`profile_table` lets DuckDB scan the Arrow table in place, in a few queries whatever
the number of columns: one aggregate over every column; an exact ``count(DISTINCT)`` for
would-be identifiers; one ``UNION ALL`` of small ``GROUP BY``\\s for every histogram; a
``GROUP BY ... LIMIT top_k`` per string column. The result is a plain, JSON-serialisable
dict (:class:`Profile`); :mod:`loopml.data._profile_html` renders it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NotRequired, TypedDict, get_args

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from loopml.errors import InvalidInput

Kind = Literal["numeric", "categorical", "boolean", "datetime", "text", "identifier"]
KINDS: Final[tuple[Kind, ...]] = get_args(Kind)
QUANTILES: Final[tuple[float, ...]] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)

_Group = Literal["numeric", "boolean", "datetime", "string", "other"]
_ID_RECHECK = 0.8  # approx distinct >= this share of count: count exactly before judging
_EXACT_BELOW = 10_000  # so few distinct values that counting them exactly is cheap
_EPOCH = dt.datetime(1970, 1, 1)


class TopValue(TypedDict):
    """One frequent value (as a string) and how many rows hold it."""

    value: str
    count: int


class Histogram(TypedDict):
    """``bins`` equal-width bins: ``bins + 1`` edges (floats, or ISO strings) and counts."""

    edges: list[float] | list[str]
    counts: list[int]


class ColumnProfile(TypedDict):
    """Statistics of one column; which optional keys exist depends on its storage type.

    Numeric types (ints, floats, decimals) have ``min``, ``max``, ``mean``, ``std``,
    ``quantiles``, ``histogram``, ``zeros``, ``negatives``, ``infinite``; dates and
    timestamps have ``min``, ``max`` (ISO-8601) and ``histogram``; booleans have
    ``true_count`` and ``top_values``; strings and dictionaries have ``top_values``,
    ``min_length``, ``max_length``, ``mean_length``; integer identifiers also have
    ``top_values``. Other types (lists, structs, binary, ...) have only the common keys.

    Float NaN counts as null. ``min``/``max``/``mean``/``std`` (sample), quantiles (exact,
    linear interpolation) and histograms use finite values only; infinities are counted in
    ``infinite``. Timezone-aware timestamps are given in UTC. A statistic that cannot be
    computed is ``None``, never NaN or infinite; ``null_fraction`` of no rows is ``0.0``.
    """

    name: str
    arrow_type: str
    kind: Kind
    count: int
    nulls: int
    null_fraction: float
    distinct: int | None
    distinct_exact: bool
    min: NotRequired[float | str | None]
    max: NotRequired[float | str | None]
    mean: NotRequired[float | None]
    std: NotRequired[float | None]
    quantiles: NotRequired[dict[str, float | None] | None]
    histogram: NotRequired[Histogram | None]
    zeros: NotRequired[int]
    negatives: NotRequired[int]
    infinite: NotRequired[int]
    true_count: NotRequired[int]
    top_values: NotRequired[list[TopValue]]
    min_length: NotRequired[int | None]
    max_length: NotRequired[int | None]
    mean_length: NotRequired[float | None]


class Profile(TypedDict):
    """A table's profile: its row count and one :class:`ColumnProfile` per column, in order."""

    num_rows: int
    columns: dict[str, ColumnProfile]


def looks_like_id(name: str) -> bool:
    """Whether a column name reads as an identifier: ``id``, ``*_id`` or ``*id`` (any case)."""
    return name.lower().endswith("id")


def infer_kind(
    name: str,
    arrow_type: pa.DataType,
    *,
    count: int,
    distinct: int | None,
    mean_length: float | None = None,
) -> Kind:
    """The semantic kind of a column, from its name, Arrow type and a few statistics.

    Rules, first match wins:

    1. ``bool`` → ``"boolean"``; ``timestamp`` / ``date`` → ``"datetime"``.
    2. Integers, floats, decimals → ``"numeric"``, except an integer column whose name
       looks like an id (:func:`looks_like_id`) and whose values are all distinct
       (``distinct == count > 0``) → ``"identifier"``.
    3. Strings, dictionaries (and the all-null ``null`` type):

       - all non-null values distinct, at most 40 characters on average, and ``count > 50``
         or an id-like name → ``"identifier"``;
       - ``distinct > count / 2`` and ``mean_length > 20``, or ``mean_length > 50`` →
         ``"text"``;
       - otherwise → ``"categorical"``.

    4. Anything else (lists, structs, maps, binary, times, durations) → ``"text"``.

    Parameters
    ----------
    name, arrow_type : the column's name and Arrow type.
    count, distinct : non-null and distinct non-null values (``distinct`` exact near
        ``count``: it decides identifiers).
    mean_length : mean length of the non-null values, for string columns.

    Returns
    -------
    Kind
        One of :data:`KINDS`.

    Examples
    --------
    >>> import pyarrow as pa
    >>> infer_kind("user_id", pa.int64(), count=3, distinct=3)
    'identifier'
    >>> infer_kind("city", pa.string(), count=100, distinct=4, mean_length=6.0)
    'categorical'
    """
    group = _group(arrow_type)
    unique = distinct is not None and count > 0 and distinct == count
    if group != "string":
        if group == "numeric" and pat.is_integer(arrow_type) and unique and looks_like_id(name):
            return "identifier"
        return "text" if group == "other" else group
    short = mean_length is None or mean_length <= 40  # ids and UUIDs; not free text
    if unique and short and (count > 50 or looks_like_id(name)):
        return "identifier"
    if mean_length is not None and (
        mean_length > 50 or (distinct is not None and distinct > count / 2 and mean_length > 20)
    ):
        return "text"
    return "categorical"


def profile_table(
    table: pa.Table, *, exact_distinct: bool = False, bins: int = 20, top_k: int = 10
) -> Profile:
    """Profile every column of ``table``: counts, distribution and frequent values.

    Parameters
    ----------
    table : the data; read in place, never copied.
    exact_distinct : count distinct values exactly, however many (slower, more memory).
        By default columns with up to 10,000 distinct values and would-be identifiers are
        counted exactly, others estimated (HyperLogLog, a few % off); ``distinct_exact``
        says which.
    bins : number of equal-width histogram bins for numeric and datetime columns.
    top_k : how many most frequent values to keep for categorical/text/identifier columns.

    Returns
    -------
    Profile
        ``{"num_rows": int, "columns": {name: ColumnProfile}}``, columns in table order,
        kinds by :func:`infer_kind`, statistics as :class:`ColumnProfile` describes. Plain
        JSON: ``json.dumps(profile, allow_nan=False)`` works.

    Raises
    ------
    InvalidInput
        ``table`` is not a ``pyarrow.Table``, has duplicate column names, or ``bins`` /
        ``top_k`` is out of range.

    Examples
    --------
    >>> import pyarrow as pa
    >>> profile = profile_table(pa.table({"x": [1.0, 2.0, None]}))
    >>> profile["columns"]["x"]["nulls"], profile["columns"]["x"]["mean"]
    (1, 1.5)
    """
    _check_args(table, bins, top_k)
    cols = [_Col(i, f.name, f.type, _group(f.type)) for i, f in enumerate(table.schema)]
    with duckdb.connect() as con:
        core = [c for c in cols if c.group != "other"]
        if core:
            con.register("t", _duck_table(table, core))
            _main_stats(con, core, exact_distinct)
            if not exact_distinct:
                _recount_candidates(con, core)
        _other_stats(con, table, [c for c in cols if c.group == "other"], exact_distinct)
        for c in cols:
            c.kind = infer_kind(
                c.name,
                c.type,
                count=c.count,
                distinct=c.distinct,
                mean_length=c.raw.get("mean_len"),
            )
        _histograms(con, [c for c in core if c.group in ("numeric", "datetime")], bins)
        for c in core:
            if c.group == "string" or c.kind == "identifier":
                c.top = _top_values(con, c, top_k)
    columns = {c.name: _column_profile(c, table.num_rows) for c in cols}
    return {"num_rows": table.num_rows, "columns": columns}


@dataclass
class _Col:
    """One column while it is being profiled: identity, then query results."""

    index: int
    name: str
    type: pa.DataType
    group: _Group
    raw: dict[str, Any] = field(default_factory=dict)
    count: int = 0
    distinct: int | None = None
    distinct_exact: bool = False
    kind: Kind = "text"
    hist: Histogram | None = None
    top: list[TopValue] = field(default_factory=list)

    @property
    def alias(self) -> str:
        return f"c{self.index}"

    def set_distinct(self, found: Any, exact: bool) -> None:
        """Record a distinct count, kept within ``[min(count, 1), count]``."""
        self.distinct = min(max(int(found), int(self.count > 0)), self.count)
        self.distinct_exact = exact or self.count == 0


def _group(t: pa.DataType) -> _Group:
    if pat.is_boolean(t):
        return "boolean"
    if pat.is_timestamp(t) or pat.is_date(t):
        return "datetime"
    if pat.is_integer(t) or pat.is_floating(t) or pat.is_decimal(t):
        return "numeric"
    stringy = pat.is_string(t) or pat.is_large_string(t) or pat.is_string_view(t)
    if stringy or pat.is_dictionary(t) or pat.is_null(t):
        return "string"
    return "other"


def _check_args(table: object, bins: object, top_k: object) -> None:
    if not isinstance(table, pa.Table):
        raise InvalidInput(
            f"table must be a pyarrow.Table, not {type(table).__name__}; "
            "convert a DataFrame with pyarrow.Table.from_pandas(df)"
        )
    for label, value, least in (("bins", bins, 1), ("top_k", top_k, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise InvalidInput(f"{label} must be an integer >= {least}, not {value!r}")
    names = table.column_names
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise InvalidInput(f"table has duplicate column name(s) {', '.join(map(repr, dupes))}")


def _duck_table(table: pa.Table, cols: list[_Col]) -> pa.Table:
    """The columns renamed ``c<i>`` (no SQL quoting needed), in types DuckDB reads."""
    arrays = []
    for c in cols:
        array, t = table.column(c.index), c.type
        if pat.is_dictionary(t) and (pat.is_floating(t.value_type) or pat.is_decimal(t.value_type)):
            array, t = pc.cast(array, t.value_type), t.value_type
        if pat.is_float16(t) or pat.is_decimal(t):  # DuckDB reads neither half floats nor
            array = pc.cast(array, pa.float64())  # decimals wider than 38 digits
        arrays.append(array)
    return pa.Table.from_arrays(arrays, names=[c.alias for c in cols])


def _stat_sql(c: _Col) -> tuple[str, str]:
    """SQL for the DOUBLE that statistics use (finite numbers, epoch µs), and when it is valid."""
    a = c.alias
    if c.group == "datetime":
        tz = pat.is_timestamp(c.type) and c.type.tz is not None
        cast = "TIMESTAMPTZ" if tz else "TIMESTAMP"
        return f"CAST(epoch_us(CAST({a} AS {cast})) AS DOUBLE)", f"{a} IS NOT NULL"
    if pat.is_floating(c.type) or pat.is_decimal(c.type):
        return f"CAST({a} AS DOUBLE)", f"isfinite({a})"
    return f"CAST({a} AS DOUBLE)", f"{a} IS NOT NULL"


def _main_stats(con: Any, cols: list[_Col], exact: bool) -> None:
    """The one aggregate query over every column; fills ``raw``, ``count``, ``distinct``."""
    quantiles = "[" + ", ".join(map(str, QUANTILES)) + "]"
    project: list[str] = []
    aggs: list[tuple[_Col, str, str]] = []
    fn = "count(DISTINCT {})" if exact else "approx_count_distinct({})"
    for c in cols:
        i, a = c.index, c.alias
        value, usable = _stat_sql(c)
        if c.group == "numeric":
            floating = pat.is_floating(c.type) or pat.is_decimal(c.type)
            v = f"nullif({value}, 'NaN'::DOUBLE)" if floating else value
            f = f"CASE WHEN {usable} THEN {value} END" if floating else f"v{i}"
            project += [f"{v} AS v{i}", f"{f} AS f{i}", a]
            v, f = f"v{i}", f"f{i}"
            aggs += [(c, "count", f"count({v})"), (c, "distinct", fn.format(v if floating else a))]
            aggs += [(c, "zeros", f"count_if({v} = 0)"), (c, "negatives", f"count_if({v} < 0)")]
            aggs += [(c, "infinite", f"count_if(isinf({v}))"), (c, "mean", f"avg({f})")]
            aggs += [(c, "min", f"min({f})"), (c, "max", f"max({f})")]
            aggs += [(c, "std", f"stddev_samp({f})")]
            aggs += [(c, "quantiles", f"quantile_cont({f}, {quantiles})")]
        elif c.group == "boolean":
            project.append(a)
            aggs += [(c, "count", f"count({a})"), (c, "true_count", f"count_if({a})")]
        elif c.group == "datetime":
            project += [a, f"{value} AS f{i}"]
            aggs += [(c, "count", f"count({a})"), (c, "distinct", fn.format(a))]
            aggs += [(c, "min", f"min(f{i})"), (c, "max", f"max(f{i})")]
        else:
            project.append(f"CAST({a} AS VARCHAR) AS s{i}")
            aggs += [(c, "count", f"count(s{i})"), (c, "distinct", fn.format(f"s{i}"))]
            aggs += [(c, "min_len", f"min(length(s{i}))"), (c, "max_len", f"max(length(s{i}))")]
            aggs += [(c, "mean_len", f"avg(length(s{i}))")]
    select = ", ".join(sql for _, _, sql in aggs)
    row = con.execute(f"SELECT {select} FROM (SELECT {', '.join(project)} FROM t)").fetchall()[0]
    for (c, key, _), value in zip(aggs, row, strict=True):
        c.raw[key] = value
    for c in cols:
        c.count = int(c.raw["count"])
        if c.group == "boolean":
            true = c.raw["true_count"] = int(c.raw["true_count"] or 0)
            c.set_distinct(int(true > 0) + int(c.count > true), exact=True)
        else:
            c.set_distinct(c.raw["distinct"], exact)


def _recount_candidates(con: Any, cols: list[_Col]) -> None:
    """Count distinct exactly where it is cheap, or where an estimate could hide an identifier."""
    maybe = [c for c in cols if not c.distinct_exact and _worth_recounting(c)]
    if maybe:
        select = ", ".join(f"count(DISTINCT {_distinct_sql(c)})" for c in maybe)
        row = con.execute(f"SELECT {select} FROM t").fetchall()[0]
        for c, found in zip(maybe, row, strict=True):
            c.set_distinct(found, exact=True)


def _worth_recounting(c: _Col) -> bool:
    found = c.distinct or 0
    id_like = c.group == "string" or (pat.is_integer(c.type) and looks_like_id(c.name))
    return found <= _EXACT_BELOW or (id_like and found >= _ID_RECHECK * c.count)


def _distinct_sql(c: _Col) -> str:
    """SQL for the values whose distinct count is taken: NaN is no value."""
    if pat.is_floating(c.type) or pat.is_decimal(c.type):
        return f"nullif(CAST({c.alias} AS DOUBLE), 'NaN'::DOUBLE)"
    return c.alias


def _other_stats(con: Any, table: pa.Table, cols: list[_Col], exact: bool) -> None:
    """Counts from Arrow and, where DuckDB can read the type, distinct counts."""
    fn = "count(DISTINCT x)" if exact else "approx_count_distinct(x)"
    for c in cols:  # one at a time: a type DuckDB cannot read must not sink the others
        c.count = table.num_rows - table.column(c.index).null_count
        try:
            con.register("o", pa.table({"x": table.column(c.index)}))
            c.set_distinct(con.execute(f"SELECT {fn} FROM o").fetchall()[0][0], exact)
        except duckdb.Error:  # e.g. unions: compare the Python values' reprs instead
            with contextlib.suppress(pa.ArrowException):
                values = table.column(c.index).to_pylist()
                c.set_distinct(len({repr(v) for v in values if v is not None}), exact=True)
        finally:
            con.unregister("o")


def _histograms(con: Any, cols: list[_Col], bins: int) -> None:
    """Every histogram in one UNION ALL of per-column GROUP BYs over ``bins`` buckets."""
    parts: list[str] = []
    plans: dict[int, tuple[_Col, list[float]]] = {}
    for c in cols:
        low, high = _float(c.raw.get("min")), _float(c.raw.get("max"))
        if low is None or high is None:
            continue
        if low == high:  # numpy's convention: a unit-wide range centred on the value
            pad = 500_000.0 if c.group == "datetime" else 0.5
            low, high = low - pad, high + pad
        # like numpy.linspace; past 1e308 (high - low overflows) blend the ends instead
        fits = math.isfinite(high - low)
        width = (high - low) / bins if fits else high / bins - low / bins
        steps = [
            low + k * width if fits else low * (1 - k / bins) + high * (k / bins)
            for k in range(bins)
        ]
        plans[c.index] = (c, [*steps, float(high)])
        value, usable = _stat_sql(c)
        bucket = f"floor(({value} - '{low!r}'::DOUBLE) / '{width!r}'::DOUBLE)"
        parts.append(
            f"SELECT {c.index} AS col, CAST(greatest(least({bucket}, {bins - 1}), 0) AS INTEGER)"
            f" AS b, count(*) AS n FROM t WHERE {usable} GROUP BY b"
        )
    counts = {i: [0] * bins for i in plans}
    if parts:
        for index, b, n in con.execute(" UNION ALL ".join(parts)).fetchall():
            counts[index][b or 0] = int(n)
    for index, (c, edges) in plans.items():
        iso = [_iso(e, c.type, as_date=False) or "" for e in edges if c.group == "datetime"]
        c.hist = {"edges": iso or edges, "counts": counts[index]}


def _top_values(con: Any, c: _Col, top_k: int) -> list[TopValue]:
    """The ``top_k`` most frequent values, ties broken by value, as strings."""
    if top_k == 0 or c.count == 0:
        return []
    a = c.alias
    rows = con.execute(
        f"SELECT CAST(v AS VARCHAR), n FROM (SELECT {a} AS v, count(*) AS n FROM t "
        f"WHERE {a} IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT {top_k}) ORDER BY n DESC, v"
    ).fetchall()
    return [{"value": str(v), "count": int(n)} for v, n in rows]


def _column_profile(c: _Col, num_rows: int) -> ColumnProfile:
    nulls = num_rows - c.count
    out: ColumnProfile = {
        "name": c.name,
        "arrow_type": str(c.type),
        "kind": c.kind,
        "count": c.count,
        "nulls": nulls,
        "null_fraction": nulls / num_rows if num_rows else 0.0,
        "distinct": c.distinct,
        "distinct_exact": c.distinct_exact,
    }
    if c.group == "numeric":
        out["min"], out["max"] = _float(c.raw.get("min")), _float(c.raw.get("max"))
        out["mean"], out["std"] = _float(c.raw.get("mean")), _float(c.raw.get("std"))
        out["quantiles"] = _quantiles(c.raw.get("quantiles"))
        out["histogram"] = c.hist
        # count_if() over no rows is NULL
        out["zeros"], out["negatives"] = (
            int(c.raw.get("zeros") or 0),
            int(c.raw.get("negatives") or 0),
        )
        out["infinite"] = int(c.raw.get("infinite") or 0)
    elif c.group == "datetime":
        out["min"] = _iso(c.raw.get("min"), c.type, as_date=pat.is_date(c.type))
        out["max"] = _iso(c.raw.get("max"), c.type, as_date=pat.is_date(c.type))
        out["histogram"] = c.hist
    elif c.group == "boolean":
        true = out["true_count"] = c.raw["true_count"]
        pairs = [("false", c.count - true), ("true", true)]
        ranked = sorted((p for p in pairs if p[1] > 0), key=lambda p: (-p[1], p[0]))
        out["top_values"] = [{"value": v, "count": n} for v, n in ranked]
    if c.group == "string" or c.kind == "identifier":
        out["top_values"] = c.top
    if c.group == "string":
        min_length, max_length = c.raw.get("min_len"), c.raw.get("max_len")
        out["min_length"] = None if min_length is None else int(min_length)
        out["max_length"] = None if max_length is None else int(max_length)
        out["mean_length"] = _float(c.raw.get("mean_len"))
    return out


def _quantiles(values: list[float] | None) -> dict[str, float | None] | None:
    if values is None:
        return None
    return {f"{q:g}": _float(v) for q, v in zip(QUANTILES, values, strict=True)}


def _float(value: Any) -> float | None:
    """``value`` as a float, or None when missing, NaN or infinite."""
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _iso(micros: float | None, arrow_type: pa.DataType, *, as_date: bool) -> str | None:
    """Epoch microseconds as ISO-8601: a date, a naive timestamp, or UTC with its offset."""
    if micros is None:
        return None
    try:
        moment = _EPOCH + dt.timedelta(microseconds=round(micros))
    except OverflowError:  # beyond datetime's years 1..9999
        return None
    if as_date:
        return moment.date().isoformat()
    if pat.is_timestamp(arrow_type) and arrow_type.tz is not None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.isoformat()
