"""The reference, summarised once: per-column sketches every drift and quality check reads.

A :class:`ReferenceSummary` holds one :class:`ColumnSummary` per column:

- numeric columns (integers, floats, decimals, dates, timestamps as epoch numbers): row and
  null counts, min/max/mean/std, ``edges`` — up to 1,001 distinct quantiles of the finite
  values (0, 0.001, ..., 1) — with ``cdf``, the exact share of values ``<= edge`` at each
  edge, and, when the column has at most :data:`EXACT_MAX` values, every value sorted
  (``values``), so that tests on small references are exact;
- categorical columns (strings, dictionaries, booleans): the count of each level (the
  :data:`MAX_LEVELS` most frequent; the rest pooled in ``other``).

The KS, Wasserstein and PSI tests need nothing else (:mod:`loopml.monitoring._tests`), so a
monitor stores the summary as a blob (:meth:`ReferenceSummary.to_bytes`) and never re-reads
the reference data. Float NaN counts as null; infinities are left out of the numeric sketch.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from loopml.errors import InvalidInput

Kind = Literal["numeric", "categorical"]
Floats = npt.NDArray[np.float64]

QUANTILE_POINTS: Final = 1001  # edges at quantiles 0, 0.001, ..., 1
EXACT_MAX: Final = 10_000  # references this small keep every value: exact tests
MAX_LEVELS: Final = 1_000  # categorical levels kept; rarer ones are pooled
_FORMAT: Final = 1


def column_kind(name: str, arrow_type: pa.DataType) -> Kind:
    """``"numeric"`` or ``"categorical"`` for a column's Arrow type.

    Raises
    ------
    InvalidInput
        Lists, structs, maps, binary, null-typed and other types drift tests cannot compare.
    """
    if pat.is_dictionary(arrow_type):
        return "categorical"
    if pat.is_integer(arrow_type) or pat.is_floating(arrow_type) or pat.is_decimal(arrow_type):
        return "numeric"
    if pat.is_timestamp(arrow_type) or pat.is_date(arrow_type):
        return "numeric"
    if pat.is_string(arrow_type) or pat.is_large_string(arrow_type) or pat.is_boolean(arrow_type):
        return "categorical"
    if pat.is_null(arrow_type):
        raise InvalidInput(f"column {name!r} is all null: there is nothing to compare")
    raise InvalidInput(
        f"column {name!r} has type {arrow_type}, which drift checks do not support "
        "(numbers, dates, timestamps, strings, booleans, dictionaries); leave it out with columns="
    )


def finite_values(name: str, column: pa.ChunkedArray | pa.Array) -> tuple[Floats, int, int]:
    """(finite values as float64, nulls incl. NaN, infinities) of a numeric column."""
    t = column.type
    if pat.is_timestamp(t) or pat.is_date(t):
        column = pc.cast(column, pa.timestamp("us")) if pat.is_date(t) else column
        column = pc.cast(column, pa.int64())
    elif pat.is_decimal(t):
        column = pc.cast(column, pa.float64())
    nulls = column.null_count
    arr = column.to_numpy(zero_copy_only=False) if nulls == 0 else _drop_nulls(column)
    arr = np.asarray(arr, dtype=np.float64)
    finite = np.isfinite(arr)
    if finite.all():
        return arr, nulls, 0
    nan = int(np.isnan(arr).sum())
    return arr[finite], nulls + nan, int(arr.size - finite.sum() - nan)


def _drop_nulls(column: pa.ChunkedArray | pa.Array) -> npt.NDArray[Any]:
    return np.asarray(pc.drop_null(column).to_numpy(zero_copy_only=False))


def level_counts(column: pa.ChunkedArray | pa.Array) -> dict[str, int]:
    """Non-null level -> count of a categorical column (levels as strings), most frequent first."""
    if pat.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    counts = pc.value_counts(column)
    values = counts.field("values")
    valid = pc.is_valid(values)
    keys = pc.cast(pc.filter(values, valid), pa.string()).to_pylist()
    numbers = pc.filter(counts.field("counts"), valid).to_pylist()
    pairs = sorted(zip(keys, numbers, strict=True), key=lambda kv: (-kv[1], kv[0]))
    return dict(pairs)


@dataclass(frozen=True)
class ColumnSummary:
    """The sketch of one reference column (see the module docstring)."""

    name: str
    kind: Kind
    arrow_type: str
    count: int
    nulls: int
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    infinite: int = 0
    edges: Floats | None = field(default=None, repr=False, compare=False)
    cdf: Floats | None = field(default=None, repr=False, compare=False)
    values: Floats | None = field(default=None, repr=False, compare=False)
    levels: dict[str, int] | None = field(default=None, repr=False)
    other: int = 0

    @property
    def rows(self) -> int:
        """Rows of the reference, nulls included."""
        return self.count + self.nulls + self.infinite

    @property
    def null_fraction(self) -> float:
        """Share of the reference's rows that are null (or NaN)."""
        return self.nulls / self.rows if self.rows else 0.0

    def ref_cdf(self, points: Floats) -> Floats:
        """Share of the reference's finite values ``<= points`` (exact at the edges, linear
        between them)."""
        if self.values is not None:
            found = np.searchsorted(self.values, points, side="right")
            return np.asarray(found / self.values.size, dtype=np.float64)
        assert self.edges is not None and self.cdf is not None
        below = points < self.edges[0]
        out = np.interp(points, self.edges, self.cdf)
        return np.where(below, 0.0, out)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data; float arrays as base64 little-endian float64 (exact)."""
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "arrow_type": self.arrow_type,
            "count": self.count,
            "nulls": self.nulls,
            "infinite": self.infinite,
        }
        if self.kind == "numeric":
            out.update(min=self.min, max=self.max, mean=self.mean, std=self.std)
            for key in ("edges", "cdf", "values"):
                arr = getattr(self, key)
                out[key] = None if arr is None else _pack(arr)
        else:
            out.update(levels=self.levels, other=self.other)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSummary:
        """The inverse of :meth:`to_dict`."""
        try:
            arrays = {k: _unpack(data[k]) for k in ("edges", "cdf", "values") if data.get(k)}
            return cls(
                name=str(data["name"]),
                kind=data["kind"],
                arrow_type=str(data["arrow_type"]),
                count=int(data["count"]),
                nulls=int(data["nulls"]),
                infinite=int(data.get("infinite", 0)),
                min=data.get("min"),
                max=data.get("max"),
                mean=data.get("mean"),
                std=data.get("std"),
                levels=data.get("levels"),
                other=int(data.get("other", 0)),
                **arrays,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a column summary: {exc!r}") from exc


def _pack(arr: Floats) -> str:
    return base64.b64encode(np.ascontiguousarray(arr, dtype="<f8").tobytes()).decode("ascii")


def _unpack(text: str) -> Floats:
    return np.frombuffer(base64.b64decode(text), dtype="<f8").astype(np.float64)


def summarize_numeric(name: str, column: pa.ChunkedArray | pa.Array) -> ColumnSummary:
    """The numeric sketch of one column (one sort of its finite values)."""
    values, nulls, infinite = finite_values(name, column)
    if values.size == 0:
        raise InvalidInput(f"column {name!r} has no finite values in the reference")
    ordered = np.sort(values)
    del values
    n = ordered.size
    picks = np.round(np.linspace(0, n - 1, min(QUANTILE_POINTS, n))).astype(np.int64)
    edges = np.unique(ordered[picks])
    cdf = np.searchsorted(ordered, edges, side="right") / n
    mean = float(ordered.mean())
    std = float(ordered.std(ddof=1)) if n > 1 else 0.0
    return ColumnSummary(
        name=name,
        kind="numeric",
        arrow_type=str(column.type),
        count=n,
        nulls=nulls,
        infinite=infinite,
        min=float(ordered[0]),
        max=float(ordered[-1]),
        mean=mean,
        std=std,
        edges=edges,
        cdf=np.asarray(cdf, dtype=np.float64),
        values=ordered if n <= EXACT_MAX else None,
    )


def summarize_categorical(name: str, column: pa.ChunkedArray | pa.Array) -> ColumnSummary:
    """The level counts of one categorical column."""
    counts = level_counts(column)
    if not counts:
        raise InvalidInput(f"column {name!r} is all null in the reference")
    kept = dict(list(counts.items())[:MAX_LEVELS])
    other = sum(counts.values()) - sum(kept.values())
    return ColumnSummary(
        name=name,
        kind="categorical",
        arrow_type=str(column.type),
        count=sum(counts.values()),
        nulls=column.null_count,
        levels=kept,
        other=other,
    )


def as_table(frame: object, what: str) -> pa.Table:
    """A pandas DataFrame, Arrow table or record batch as an Arrow table."""
    if isinstance(frame, pa.Table):
        table = frame
    elif isinstance(frame, pa.RecordBatch):
        table = pa.Table.from_batches([frame])
    elif isinstance(frame, pd.DataFrame):
        try:
            table = pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InvalidInput(f"{what}: cannot convert the DataFrame to Arrow: {exc}") from exc
    else:
        raise InvalidInput(
            f"{what} must be a pandas DataFrame, an Arrow table or a dataset reference, "
            f"not {type(frame).__name__}"
        )
    names = table.column_names
    if len(set(names)) != len(names):
        dupes = sorted({c for c in names if names.count(c) > 1})
        raise InvalidInput(f"{what} has duplicate column(s) {', '.join(map(repr, dupes))}")
    if table.num_rows == 0:
        raise InvalidInput(f"{what} has no rows")
    return table


@dataclass(frozen=True)
class ReferenceSummary:
    """Per-column sketches of a reference frame; build with :meth:`summarize`.

    Attributes
    ----------
    num_rows : rows of the reference.
    columns : name -> :class:`ColumnSummary`, in the frame's order.
    """

    num_rows: int
    columns: dict[str, ColumnSummary]

    @classmethod
    def summarize(cls, frame: object, columns: Sequence[str] | None = None) -> ReferenceSummary:
        """Summarise a pandas DataFrame or Arrow table (optionally only ``columns``).

        Raises
        ------
        InvalidInput
            An empty frame, an unknown column, a column all null or of an unsupported type.

        Examples
        --------
        >>> import pandas as pd
        >>> s = ReferenceSummary.summarize(pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"]}))
        >>> s.columns["x"].kind, s.columns["c"].levels
        ('numeric', {'a': 1, 'b': 1})
        """
        table = as_table(frame, "reference")
        names = list(columns) if columns is not None else table.column_names
        missing = [c for c in names if c not in table.column_names]
        if missing:
            raise InvalidInput(f"reference has no column(s) {', '.join(map(repr, missing))}")
        out = {}
        for name in names:
            column = table.column(name)
            if column.null_count == len(column):
                raise InvalidInput(f"column {name!r} is all null in the reference")
            kind = column_kind(name, column.type)
            summarize = summarize_numeric if kind == "numeric" else summarize_categorical
            out[name] = summarize(name, column)
        return cls(num_rows=table.num_rows, columns=out)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (see :meth:`from_dict`)."""
        return {
            "format": _FORMAT,
            "num_rows": self.num_rows,
            "columns": [c.to_dict() for c in self.columns.values()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceSummary:
        """The inverse of :meth:`to_dict`."""
        if not isinstance(data, Mapping) or data.get("format") != _FORMAT:
            raise InvalidInput("not a reference summary (unknown or missing 'format')")
        cols = [ColumnSummary.from_dict(c) for c in data.get("columns", [])]
        return cls(num_rows=int(data["num_rows"]), columns={c.name: c for c in cols})

    def to_bytes(self) -> bytes:
        """Compact bytes for a blob: zlib-compressed JSON of :meth:`to_dict`."""
        return zlib.compress(json.dumps(self.to_dict(), separators=(",", ":")).encode(), 6)

    @classmethod
    def from_bytes(cls, blob: bytes) -> ReferenceSummary:
        """The inverse of :meth:`to_bytes`."""
        try:
            data = json.loads(zlib.decompress(blob))
        except (zlib.error, ValueError, TypeError) as exc:
            raise InvalidInput(f"not a reference summary blob: {exc}") from exc
        return cls.from_dict(data)
