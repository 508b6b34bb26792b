"""Model signatures: the columns (and dtypes) a model takes and the outputs it gives."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from loopml.errors import InvalidInput
from loopml.registry._dtypes import Unconvertible, conform, dtype_name, normalize_dtype

InputType = Literal["dataframe", "ndarray"]
_INPUT_TYPES: tuple[InputType, ...] = ("dataframe", "ndarray")
_MAX_SHOWN = 60


@dataclass(frozen=True)
class ColumnSpec:
    """One named, typed column of a signature.

    Parameters
    ----------
    name : column name.
    dtype : dtype name such as ``int64``, ``float64``, ``bool``, ``string``,
        ``datetime64[ns]``, ``category`` or ``object``; normalised (``"int"`` → ``"int64"``).
    """

    name: str
    dtype: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidInput(f"column name must be a non-empty string, not {self.name!r}")
        object.__setattr__(self, "dtype", normalize_dtype(self.dtype))

    def __str__(self) -> str:
        return f"{self.name}: {self.dtype}"


def to_frame(data: Any) -> pd.DataFrame:
    """``data`` as a DataFrame with string column names.

    Accepts a DataFrame, a 2-D numpy array or list of rows (columns ``"0"``, ``"1"``, ...),
    a dict of columns or of one record's scalars, and a list of record dicts.

    Raises
    ------
    InvalidInput
        ``data`` is none of those, or its column names clash once made strings.
    """
    if isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, Mapping):
        frame = _frame_from_mapping(data)
    elif _is_records(data):
        frame = pd.DataFrame(list(data))
    elif _is_array(data):
        frame = _frame_from_array(data)
    else:
        raise InvalidInput(
            f"cannot read model input of type {type(data).__name__}; pass a pandas DataFrame, "
            "a 2-D numpy array, a dict of columns or a list of record dicts"
        )
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise InvalidInput(f"input has duplicate column(s) {', '.join(map(repr, dupes))}")
    if names != list(frame.columns):
        frame = frame.set_axis(names, axis=1)
    return frame


def _is_records(data: Any) -> bool:
    return (
        isinstance(data, Sequence)
        and len(data) > 0
        and all(isinstance(row, Mapping) for row in data)
    )


def _is_array(data: Any) -> bool:
    return isinstance(data, np.ndarray) or (
        isinstance(data, Sequence) and not isinstance(data, str | bytes) and not _is_records(data)
    )


def _frame_from_mapping(data: Mapping[Any, Any]) -> pd.DataFrame:
    try:
        if all(np.ndim(v) == 0 for v in data.values()):
            return pd.DataFrame([dict(data)])
        return pd.DataFrame(dict(data))
    except ValueError as exc:
        raise InvalidInput(f"cannot build a table from the dict input: {exc}") from exc


def _frame_from_array(data: Any) -> pd.DataFrame:
    try:
        array = np.asarray(data)
    except ValueError as exc:  # ragged rows
        raise InvalidInput(f"cannot read the input as an array: {exc}") from exc
    if array.ndim != 2:
        raise InvalidInput(
            f"array input must be 2-D (rows x columns); got {array.ndim}-D of shape {array.shape}"
        )
    return pd.DataFrame(array, columns=[str(i) for i in range(array.shape[1])])


def _output_columns(output: Any) -> list[ColumnSpec]:
    if isinstance(output, pd.DataFrame):
        frame = to_frame(output)
        return [ColumnSpec(n, dtype_name(frame[n])) for n in frame.columns]
    if isinstance(output, pd.Series):
        name = "prediction" if output.name is None else str(output.name)
        return [ColumnSpec(name, dtype_name(output))]
    array = np.asarray(output)
    if array.ndim == 1:
        return [ColumnSpec("prediction", dtype_name(pd.Series(array)))]
    if array.ndim == 2:
        frame = _frame_from_array(array)
        return [ColumnSpec(n, dtype_name(frame[n])) for n in frame.columns]
    raise InvalidInput(f"cannot describe a model output of shape {array.shape}")


def _show(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


@dataclass(frozen=True)
class Signature:
    """What a model takes and gives.

    Parameters
    ----------
    inputs : the input columns, in the order the model reads them.
    outputs : the output columns (a plain prediction vector is one column ``prediction``).
    input_type : ``"ndarray"`` when the model was fitted on a bare array (its columns are
        then named ``"0"``, ``"1"``, ... and it is fed an array), else ``"dataframe"``.
    declared : False for a version registered without one (through MLflow's API): it has
        no columns, and validating input against it raises InvalidInput.

    Examples
    --------
    >>> sig = Signature([ColumnSpec("age", "int64")], [ColumnSpec("prediction", "float64")])
    >>> sig.validate({"age": [31, 45]}).dtypes.to_dict()
    {'age': dtype('int64')}
    """

    inputs: tuple[ColumnSpec, ...]
    outputs: tuple[ColumnSpec, ...] = ()
    input_type: InputType = "dataframe"
    declared: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        if not self.inputs and self.declared:
            raise InvalidInput("a signature needs at least one input column")
        names = [c.name for c in self.inputs]
        if len(set(names)) != len(names):
            raise InvalidInput(f"signature input columns repeat a name: {names}")
        if self.input_type not in _INPUT_TYPES:
            raise InvalidInput(f"input_type must be one of {_INPUT_TYPES}, not {self.input_type!r}")

    @classmethod
    def infer(cls, input_example: Any, output_example: Any = None) -> Signature:
        """Describe ``input_example`` (and the model's ``output_example``, if given).

        Parameters
        ----------
        input_example : DataFrame, 2-D numpy array, dict of columns or list of record dicts.
        output_example : what the model returned for ``input_example`` (array, Series or
            DataFrame); ``None`` leaves the outputs empty.

        Returns
        -------
        Signature

        Raises
        ------
        InvalidInput
            An example cannot be read as a table.
        """
        frame = to_frame(input_example)
        inputs = [ColumnSpec(n, dtype_name(frame[n])) for n in frame.columns]
        outputs = [] if output_example is None else _output_columns(output_example)
        return cls(
            tuple(inputs), tuple(outputs), "ndarray" if _is_array(input_example) else "dataframe"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form; :meth:`from_dict` reads it back."""
        return {
            "inputs": [{"name": c.name, "dtype": c.dtype} for c in self.inputs],
            "outputs": [{"name": c.name, "dtype": c.dtype} for c in self.outputs],
            "input_type": self.input_type,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        """Read the form :meth:`to_dict` writes (empty ``inputs``: an undeclared signature).

        Raises
        ------
        InvalidInput
            ``data`` is not such a form.
        """
        try:
            inputs = tuple(ColumnSpec(c["name"], c["dtype"]) for c in data["inputs"])
            return cls(
                inputs,
                tuple(ColumnSpec(c["name"], c["dtype"]) for c in data.get("outputs", ())),
                data.get("input_type", "dataframe"),
                declared=bool(inputs),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidInput(
                "a signature dict needs 'inputs' (and optionally 'outputs'): lists of "
                f"{{'name': ..., 'dtype': ...}}; got {data!r:.200}"
            ) from exc

    def validate(self, data: Any) -> pd.DataFrame:
        """``data`` as a DataFrame of exactly the input columns, in order, with their dtypes.

        Extra columns are dropped. Columns of another dtype are converted when no value
        changes (integers to floats, integral floats to integers, ``object`` columns whose
        every value converts); numeric strings are not parsed. An undeclared signature
        raises InvalidInput.

        Parameters
        ----------
        data : DataFrame, 2-D numpy array, dict of columns or of one record, or records.

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        InvalidInput
            Naming every missing column with its expected dtype, and every column that does
            not convert with its dtype, the expected one and the first blocking value.
        """
        if not self.declared:
            raise InvalidInput(
                "this model version was registered without a signature (through MLflow's "
                "API), so loopml cannot check or feed its input"
            )
        frame = to_frame(data)
        problems: list[str] = []
        columns: dict[str, pd.Series] = {}
        for spec in self.inputs:
            if spec.name not in frame.columns:
                problems.append(f"missing column {spec.name!r} (expected {spec.dtype})")
                continue
            column = frame[spec.name]
            converted = conform(column, spec.dtype)
            if isinstance(converted, Unconvertible):
                problem = (
                    f"column {spec.name!r} has dtype {dtype_name(column)}, expected {spec.dtype}"
                )
                if converted.row is not None:
                    problem += (
                        f"; row {converted.row} value {_show(converted.value)} cannot be converted"
                    )
                problems.append(problem)
            else:
                columns[spec.name] = converted
        if problems:
            raise InvalidInput("input does not match the model signature: " + "; ".join(problems))
        return pd.DataFrame(columns, index=frame.index)

    def __str__(self) -> str:
        inputs = ", ".join(map(str, self.inputs))
        outputs = ", ".join(map(str, self.outputs))
        return f"({inputs}) -> ({outputs})"
