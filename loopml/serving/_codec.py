"""Request bodies in, model input out; predictions out as response bodies.

Every protocol's body is parsed into one of three shapes — records (a list of JSON
objects), a split table (column names plus rows) or a pandas DataFrame — and
:meth:`InputSchema.prepare` turns that into checked model input. Numeric single-row JSON
takes a fast path (a numpy array built straight from the lists); anything the fast path
does not accept goes through :meth:`loopml.registry.Signature.validate`, whose message
names the column and the expected dtype.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from loopml.errors import InvalidInput
from loopml.registry import Signature

Split: TypeAlias = tuple[list[str], list[Any]]
Parsed: TypeAlias = list[Any] | Split | pd.DataFrame
ModelInput: TypeAlias = npt.NDArray[Any] | pd.DataFrame

JSON = "application/json"
CSV = "text/csv"
ARROW = ("application/vnd.apache.arrow.stream", "application/vnd.apache.arrow.file")
PARQUET = ("application/vnd.apache.parquet", "application/x-parquet")
CONTENT_TYPES = (JSON, CSV, *ARROW, *PARQUET)
_EXACT_INT = 1 << 53  # integers a float64 holds exactly
_FAST_DTYPES = ("float64", "int64")
_SHOWN = 60


class UnsupportedMediaType(InvalidInput):
    """The body's content type is none the endpoint reads."""


class BadRequest(InvalidInput):
    """The body is not well-formed for its content type (e.g. broken JSON)."""


def media_type(content_type: str | None) -> str:
    """The bare media type of a Content-Type header (``application/json; charset=...``)."""
    if not content_type:
        return JSON
    return content_type.split(";", 1)[0].strip().lower()


def loads(body: bytes) -> Any:
    """Parse a JSON body; raise :class:`BadRequest` saying where it is broken."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, deep nesting
        raise BadRequest(f"malformed JSON body: {str(exc)[:200]}") from None


def dumps(obj: Any) -> bytes:
    """Encode a response; numpy scalars and other odd values fall back to ``str``."""
    return json.dumps(obj, default=_default, separators=(",", ":")).encode()


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def to_list(values: Any) -> list[Any]:
    """Model output (array, Series, DataFrame, list) as a JSON-ready list."""
    if isinstance(values, pd.DataFrame | pd.Series):
        values = values.to_numpy()
    array = np.asarray(values)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        return [_finite_or_none(v) for v in array.tolist()]
    out: list[Any] = array.tolist()
    return out


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value if math.isfinite(value) else None


def read_table(body: bytes, media: str) -> pd.DataFrame:
    """A CSV, Arrow IPC or Parquet body as a DataFrame.

    Raises
    ------
    BadRequest
        The body cannot be read in that format.
    UnsupportedMediaType
        ``media`` is not one of those formats.
    """
    try:
        if media == CSV:
            return pd.read_csv(io.BytesIO(body))
        if media in ARROW:
            import pyarrow as pa

            reader = pa.ipc.open_stream if media == ARROW[0] else pa.ipc.open_file
            return reader(pa.BufferReader(body)).read_all().to_pandas()
        if media in PARQUET:
            import pyarrow.parquet as pq

            return pq.read_table(io.BytesIO(body)).to_pandas()
    except Exception as exc:  # each reader raises its own family; all mean "unreadable body"
        raise BadRequest(f"cannot read the {media} body: {str(exc)[:200]}") from None
    raise UnsupportedMediaType(
        f"content type {media!r} is not supported; send one of {', '.join(CONTENT_TYPES)}"
    )


def parse_v1(body: bytes, media: str) -> Parsed:
    """A ``/v1/models/{name}/predict`` body: JSON records, one record, columns, or a table.

    JSON may be a list of record objects, one record object (scalar values) or an object
    of equal-length column lists; CSV, Arrow IPC and Parquet bodies are tables.
    """
    if media != JSON:
        return read_table(body, media)
    data = loads(body)
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        if not data:
            raise InvalidInput("the JSON object is empty: send records or columns")
        lists = [isinstance(v, list) for v in data.values()]
        if all(lists):
            return columns_frame(data)
        if not any(lists):
            return [data]
        shown = ", ".join(repr(k) for k, v in data.items() if isinstance(v, list))
        raise InvalidInput(
            "a JSON object body must be one record (scalar values) or columns (lists of values); "
            f"this one mixes both: {shown} are lists"
        )
    raise InvalidInput(
        f"the JSON body is a {type(data).__name__}; send a list of records, one record object "
        "or an object of column lists"
    )


def columns_frame(data: Mapping[str, Any]) -> pd.DataFrame:
    """A DataFrame from ``{column: [values...]}``; raise InvalidInput on ragged columns."""
    lengths = {k: len(v) for k, v in data.items() if isinstance(v, list)}
    if len(lengths) != len(data):
        bad = next(k for k in data if k not in lengths)
        raise InvalidInput(f"column {bad!r} must be a list of values")
    if len(set(lengths.values())) > 1:
        raise InvalidInput(f"columns have different lengths: {lengths}")
    return pd.DataFrame(dict(data))


def split_table(payload: Any, what: str = "dataframe_split") -> Split:
    """``{"columns": [...], "data": [[...], ...]}`` (pandas' split orient) as (columns, rows)."""
    if not isinstance(payload, dict):
        raise InvalidInput(f"{what} must be an object with 'columns' and 'data'")
    columns, rows = payload.get("columns"), payload.get("data")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InvalidInput(f"{what}.columns must be a list of column names (strings)")
    if not isinstance(rows, list):
        raise InvalidInput(f"{what}.data must be a list of rows")
    unknown = sorted(set(payload) - {"columns", "data", "index"})
    if unknown:
        raise InvalidInput(f"{what} has unknown key(s) {unknown}; expected columns, data, index")
    return columns, rows


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


class InputSchema:
    """A signature compiled for the request path.

    Parameters
    ----------
    signature : the model's signature.
    numpy_input : whether the model is fed a numpy array (else a DataFrame).
    """

    def __init__(self, signature: Signature, numpy_input: bool) -> None:
        self.signature = signature
        self.names = [c.name for c in signature.inputs]
        self.keys = frozenset(self.names)
        self.numpy_input = numpy_input
        dtypes = {c.dtype for c in signature.inputs}
        only = next(iter(dtypes)) if len(dtypes) == 1 else None
        self.fast_dtype: np.dtype[Any] | None = np.dtype(only) if only in _FAST_DTYPES else None
        self._fast_float = only == "float64"

    def describe(self) -> str:
        """``a: float64, b: string`` — what the model takes."""
        return ", ".join(str(c) for c in self.signature.inputs)

    def prepare(self, parsed: Parsed) -> tuple[ModelInput, int]:
        """Checked model input and its number of rows.

        Raises
        ------
        InvalidInput
            No rows, a record that is not an object, an unexpected field, or a missing or
            mistyped one (the message names it and the expected dtype).
        """
        if isinstance(parsed, pd.DataFrame):
            return self._from_frame(parsed)
        if isinstance(parsed, tuple):
            columns, rows = parsed
            fast = self._fast_split(columns, rows)
            if fast is not None:
                return fast, len(rows)
            return self._from_frame(self._split_frame(columns, rows))
        fast = self._fast_records(parsed)
        if fast is not None:
            return fast, len(parsed)
        return self._from_frame(self._records_frame(parsed))

    # -- the fast path: plain lists of numbers, built straight into an array ---------------
    def _numbers_ok(self, rows: list[list[Any]]) -> bool:
        is_float = self._fast_float
        for row in rows:
            for v in row:
                t = type(v)
                if t is float and is_float:
                    continue
                if t is int and (not is_float or -_EXACT_INT <= v <= _EXACT_INT):
                    continue
                return False
        return True

    def _fast_records(self, records: list[Any]) -> ModelInput | None:
        if self.fast_dtype is None or not records:
            return None
        keys, names = self.keys, self.names
        rows = []
        for rec in records:
            if type(rec) is not dict or rec.keys() != keys:
                return None
            rows.append([rec[n] for n in names])
        return self._array(rows) if self._numbers_ok(rows) else None

    def _fast_split(self, columns: list[str], rows: list[Any]) -> ModelInput | None:
        if self.fast_dtype is None or not rows or len(columns) != len(self.names):
            return None
        width = len(columns)
        if not all(type(r) is list and len(r) == width for r in rows):
            return None
        if columns != self.names:
            if set(columns) != self.keys:
                return None
            order = [columns.index(n) for n in self.names]
            rows = [[r[i] for i in order] for r in rows]
        return self._array(rows) if self._numbers_ok(rows) else None

    def _array(self, rows: list[list[Any]]) -> ModelInput:
        # stays an array even for DataFrame models: combine() makes one frame per batch
        return np.array(rows, dtype=self.fast_dtype)

    # -- the general path: a DataFrame checked by the signature ----------------------------
    def _records_frame(self, records: list[Any]) -> pd.DataFrame:
        for i, rec in enumerate(records):
            if not isinstance(rec, dict):
                raise InvalidInput(f"record {i} is a {type(rec).__name__}, not a JSON object")
        return pd.DataFrame(records)

    def _split_frame(self, columns: list[str], rows: list[Any]) -> pd.DataFrame:
        if len(set(columns)) != len(columns):
            raise InvalidInput(f"columns repeat a name: {columns}")
        for i, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != len(columns):
                raise InvalidInput(
                    f"row {i} must be a list of {len(columns)} values (one per column), "
                    f"not {_show(row)}"
                )
        return pd.DataFrame(rows, columns=columns)

    def _from_frame(self, frame: pd.DataFrame) -> tuple[ModelInput, int]:
        if len(frame) == 0:
            raise InvalidInput("the input has no rows")
        names = [str(c) for c in frame.columns]
        extra = [c for c in names if c not in self.keys]
        if extra:
            raise InvalidInput(
                f"unexpected field(s) {', '.join(map(repr, extra))}; the model takes "
                f"{self.describe()}"
            )
        if names != list(frame.columns):
            frame = frame.set_axis(names, axis=1)
        checked = self.signature.validate(frame.reset_index(drop=True))
        if self.numpy_input:
            return checked.to_numpy(), len(checked)
        return checked, len(checked)


def combine(parts: Sequence[ModelInput], schema: InputSchema) -> ModelInput:
    """Several requests' inputs as one batch in the form the model takes.

    Arrays are stacked (and made one DataFrame when the model takes frames); frames are
    concatenated.
    """
    if all(isinstance(p, np.ndarray) for p in parts):
        array = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if schema.numpy_input:
            return array
        return pd.DataFrame(array, columns=schema.names, copy=False)
    frames = [as_frame(p, schema.names) for p in parts]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def as_frame(data: ModelInput, names: list[str]) -> pd.DataFrame:
    """Model input as a DataFrame (for the prediction log)."""
    return data if isinstance(data, pd.DataFrame) else pd.DataFrame(data, columns=names)
