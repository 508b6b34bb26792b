"""The binary tensor data extension of the Open Inference Protocol (what ``tritonclient`` sends).

A request with an ``Inference-Header-Content-Length: N`` header carries its JSON inference
header in the first ``N`` bytes of the body and the inputs' raw data after it, back to back
in input order; each binary input says how many bytes are its own in
``parameters.binary_data_size``. Fixed-size datatypes are little-endian and row-major, BOOL
is one byte per value, and BYTES is each element as a 4-byte little-endian length followed
by that many bytes. A response answers binary outputs the same way.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np

from loopml.errors import InvalidInput
from loopml.serving._codec import BadRequest

HEADER = "inference-header-content-length"
_DTYPES = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_PREFIX = 4  # bytes of the length before each BYTES element


def header_length(value: str, body_size: int) -> int:
    """The JSON header's size from the ``Inference-Header-Content-Length`` header.

    Raises
    ------
    BadRequest
        Not a non-negative integer, or larger than the body.
    """
    if not value.strip().isdigit():
        raise BadRequest(
            f"Inference-Header-Content-Length must be a non-negative integer, not {value!r}"
        )
    size = int(value)
    if size > body_size:
        raise BadRequest(
            f"Inference-Header-Content-Length is {size} bytes but the body has only {body_size}"
        )
    return size


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body without its ``Content-Encoding`` (``gzip`` or ``deflate``, as tritonclient
    compresses), at most ``limit`` bytes once inflated.

    Raises
    ------
    BadRequest
        An unknown encoding, a corrupt stream, or an inflated size past ``limit``.
    """
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise BadRequest(f"Content-Encoding {encoding!r} is not supported; use gzip or deflate")
    inflater = zlib.decompressobj(zlib.MAX_WBITS | (16 if encoding == "gzip" else 0))
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"the {encoding} body cannot be decompressed: {exc}") from None
    if len(out) > limit:
        raise BadRequest(f"the decompressed body exceeds the limit of {limit} bytes")
    return out


class BinaryReader:
    """Hands each binary input its bytes, in order, from the data after the JSON header."""

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.offset = 0

    def take(self, what: str, size: int) -> memoryview:
        """The next ``size`` bytes.

        Raises
        ------
        BadRequest
            Fewer than ``size`` bytes are left.
        """
        left = len(self.data) - self.offset
        if size > left:
            raise BadRequest(
                f"{what}: binary_data_size is {size} bytes but only {left} bytes of binary "
                "data are left in the body"
            )
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def finish(self) -> None:
        """Check that every byte after the header belonged to an input.

        Raises
        ------
        BadRequest
            Bytes are left over.
        """
        extra = len(self.data) - self.offset
        if extra:
            raise BadRequest(
                f"the body has {extra} bytes after the JSON header that no input's "
                "binary_data_size accounts for"
            )


def decode(raw: memoryview, datatype: str, shape: list[int], what: str) -> list[Any]:
    """One input's binary data as a flat list of values (row-major).

    Raises
    ------
    InvalidInput
        The size does not match the shape times the datatype's size, or BYTES elements
        are truncated, not UTF-8 text, or not as many as the shape holds.
    """
    count = math.prod(shape)
    if datatype == "BYTES":
        strings = _decode_bytes(raw, what)
        if len(strings) != count:
            raise InvalidInput(
                f"{what}: shape {shape} holds {count} values, the binary data has {len(strings)}"
            )
        return strings
    dtype = _DTYPES.get(datatype)
    if dtype is None:
        raise InvalidInput(
            f"{what}: datatype {datatype!r} cannot be sent as binary data; send one of "
            f"{', '.join([*_DTYPES, 'BYTES'])}"
        )
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise InvalidInput(
            f"{what}: binary_data_size is {len(raw)} bytes but shape {shape} of {datatype} "
            f"takes {count} x {dtype.itemsize} = {expected}"
        )
    decoded: list[Any] = np.frombuffer(raw, dtype).tolist()
    return decoded


def _decode_bytes(raw: memoryview, what: str) -> list[Any]:
    values: list[Any] = []
    offset, end = 0, len(raw)
    while offset < end:
        if offset + _PREFIX > end:
            raise InvalidInput(
                f"{what}: BYTES element {len(values)} has a truncated 4-byte length prefix"
            )
        size = int.from_bytes(raw[offset : offset + _PREFIX], "little")
        offset += _PREFIX
        if offset + size > end:
            raise InvalidInput(
                f"{what}: BYTES element {len(values)} says {size} bytes but only "
                f"{end - offset} are left"
            )
        try:
            values.append(str(raw[offset : offset + size], "utf-8"))
        except UnicodeDecodeError:
            raise InvalidInput(f"{what}: BYTES element {len(values)} is not UTF-8 text") from None
        offset += size
    return values


def encode(array: np.ndarray[Any, Any]) -> tuple[str, bytes]:
    """An output tensor's V2 datatype and raw bytes."""
    kind = array.dtype.kind
    if kind == "b":
        return "BOOL", np.ascontiguousarray(array, dtype="?").tobytes()
    if kind in "iuf":
        if kind == "f" and array.dtype.itemsize > 8:
            array = array.astype("<f8")
        dtype = array.dtype.newbyteorder("<")
        name = {"i": "INT", "u": "UINT", "f": "FP"}[kind] + str(8 * dtype.itemsize)
        return name, np.ascontiguousarray(array, dtype=dtype).tobytes()
    parts = []
    for value in array.reshape(-1).tolist():
        data = value if isinstance(value, bytes) else str(value).encode()
        parts.append(len(data).to_bytes(_PREFIX, "little") + data)
    return "BYTES", b"".join(parts)
