"""Open Inference Protocol tensors to numpy and back: JSON data and the binary tensor extension.

JSON ``data`` is either flat (row-major) or nested exactly as ``shape``, and its values must be
of the input's ``datatype``: for ``FP32`` JSON numbers only, so booleans, strings and nulls are
refused rather than coerced, and so is nesting that does not follow the shape.

Binary data (the KServe/Triton binary tensor extension): the body is the JSON request, whose
size the ``Inference-Header-Content-Length`` header gives, followed by the raw bytes of each
input that has a ``binary_data_size`` parameter, in input order. Fixed-size types are
little-endian, row-major; ``BYTES`` elements are each a 4-byte little-endian length and the
bytes. Outputs asked for as binary are returned the same way.
"""

from __future__ import annotations

import array
import math
import struct
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from chimp.serving.inference import TensorShapeError
from chimp.serving.schemas import V2RequestInput
from chimp.shared.errors import BadRequestError

FP32 = "FP32"
BYTES = "BYTES"
BINARY_SIZE = "binary_data_size"

# Open Inference Protocol datatypes CHIMP serves, as little-endian numpy dtypes.
DTYPES: dict[str, np.dtype[Any]] = {
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
    FP32: np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    BYTES: np.dtype(object),
}

# ONNX element type -> Open Inference Protocol datatype.
FROM_ONNX: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": FP32,
    "tensor(double)": "FP64",
    "tensor(string)": BYTES,
    "tensor(bfloat16)": "BF16",
}
_BY_KIND = {(dt.kind, dt.itemsize): name for name, dt in DTYPES.items() if name != BYTES}

# Beyond this many 0/1 values one scan of every value's type is cheaper than picking them out.
_PICK_AT_MOST = 64
_LENGTH = struct.Struct("<I")


class BinaryBodyError(BadRequestError):
    """A binary tensor body whose sizes do not add up."""

    code = "invalid_binary_data"


def datatype_of(array: np.ndarray) -> str:
    """The protocol datatype of a numpy array (strings/bytes are ``BYTES``)."""
    if array.dtype.kind in "OSU":
        return BYTES
    name = _BY_KIND.get((array.dtype.kind, array.dtype.itemsize))
    if name is None:
        raise TensorShapeError(f"the model answered with {array.dtype}, which has no v2 datatype")
    return name


# -- requests -----------------------------------------------------------------------------------


def binary_size(item: V2RequestInput) -> int | None:
    """The input's ``binary_data_size`` (None when it sends JSON ``data``)."""
    if not item.parameters or BINARY_SIZE not in item.parameters:
        return None
    size = item.parameters[BINARY_SIZE]
    if type(size) is not int or size < 0:
        raise BinaryBodyError(
            f"input '{item.name}' has {BINARY_SIZE} {size!r}; it must be a whole number of bytes"
        )
    return size


def split_binary(
    inputs: Sequence[V2RequestInput], tail: memoryview | None
) -> list[memoryview | None]:
    """Each input's binary data (None for JSON inputs), cut from the bytes after the header."""
    parts: list[memoryview | None] = []
    offset = 0
    available = 0 if tail is None else len(tail)
    for item in inputs:
        size = binary_size(item)
        if size is None:
            parts.append(None)
            continue
        if tail is None:
            raise BinaryBodyError(
                f"input '{item.name}' has {BINARY_SIZE} but the request has no "
                "Inference-Header-Content-Length header saying where its binary data starts"
            )
        if item.data is not None:
            raise BinaryBodyError(f"input '{item.name}' has both data and {BINARY_SIZE}")
        if offset + size > available:
            raise BinaryBodyError(
                f"input '{item.name}' needs {size} bytes of binary data at offset {offset}, but "
                f"only {available - offset} follow the JSON header (truncated body, or sizes "
                "that do not add up)"
            )
        parts.append(tail[offset : offset + size])
        offset += size
    if offset != available:
        raise BinaryBodyError(
            f"{available} bytes follow the JSON header but the inputs' {BINARY_SIZE} add up to "
            f"{offset}"
        )
    return parts


def _check_shape(item: V2RequestInput) -> int:
    if any(d < 0 for d in item.shape):
        raise TensorShapeError(f"input '{item.name}' has invalid shape {item.shape}")
    return math.prod(item.shape)


def tensor_from_binary(item: V2RequestInput, raw: memoryview) -> np.ndarray:
    """The input's binary data as an array of its ``datatype`` and ``shape``."""
    dtype = _dtype(item)
    count = _check_shape(item)
    if item.datatype == BYTES:
        values = _unpack_bytes(item, raw)
        if len(values) != count:
            raise BinaryBodyError(
                f"input '{item.name}' has {len(values)} BYTES elements but shape {item.shape} "
                f"needs {count}"
            )
        return np.array(values, dtype=object).reshape(item.shape)
    if len(raw) != count * dtype.itemsize:
        raise BinaryBodyError(
            f"input '{item.name}' has {len(raw)} bytes of binary data but shape {item.shape} of "
            f"{item.datatype} needs {count * dtype.itemsize}"
        )
    # Native byte order for the session; a no-op view on little-endian machines.
    return (
        np.frombuffer(raw, dtype=dtype)
        .astype(dtype.newbyteorder("="), copy=False)
        .reshape(item.shape)
    )


def _unpack_bytes(item: V2RequestInput, raw: memoryview) -> list[str]:
    values: list[str] = []
    offset, end = 0, len(raw)
    while offset < end:
        if offset + 4 > end:
            raise BinaryBodyError(f"input '{item.name}' BYTES data ends inside a length prefix")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > end:
            raise BinaryBodyError(
                f"input '{item.name}' BYTES element of {length} bytes runs past its data"
            )
        values.append(_text(item, bytes(raw[offset : offset + length])))
        offset += length
    return values


def _text(item: V2RequestInput, value: bytes) -> str:
    # ONNX string tensors hold text: bytes that are not UTF-8 cannot be fed to the model.
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise TensorShapeError(f"input '{item.name}' BYTES element is not UTF-8 text") from None


def _dtype(item: V2RequestInput) -> np.dtype[Any]:
    dtype = DTYPES.get(item.datatype)
    if dtype is None:
        raise TensorShapeError(
            f"input '{item.name}' has datatype {item.datatype}; CHIMP serves {', '.join(DTYPES)}"
        )
    return dtype


def tensor_from_input(item: V2RequestInput) -> np.ndarray:
    """The input's JSON ``data`` (flat or nested) as an array of its ``datatype`` and ``shape``."""
    if item.data is None:
        raise TensorShapeError(f"input '{item.name}' has neither data nor {BINARY_SIZE}")
    if item.datatype != FP32:
        return _typed_from_json(item, item.data)
    if not item.shape or any(d < 0 for d in item.shape):
        raise TensorShapeError(f"input '{item.name}' has invalid shape {item.shape}")
    values = item.data
    if values and type(values[0]) is list:
        values = _flatten(item, values)
    try:
        # array.array converts in C like np.asarray, but refuses what is not a number (str,
        # None, a list nested deeper than the shape) instead of parsing or NaN-ing it.
        tensor = np.frombuffer(array.array("f", values), dtype=np.float32)
    except (TypeError, OverflowError):
        raise TensorShapeError(
            f"input '{item.name}' data must be {FP32} numbers, flat or nested as shape {item.shape}"
        ) from None
    expected = math.prod(item.shape)
    if tensor.size != expected:
        raise TensorShapeError(
            f"input '{item.name}' has {tensor.size} values but shape {item.shape} needs {expected}"
        )
    if not np.isfinite(tensor).all():
        raise TensorShapeError(f"input '{item.name}' contains NaN or infinity")
    if _has_booleans(values, tensor):
        raise TensorShapeError(
            f"input '{item.name}' has datatype {FP32} but its data contains booleans"
        )
    return tensor.reshape(item.shape)


def _typed_from_json(item: V2RequestInput, data: list[Any]) -> np.ndarray:
    """JSON data of any datatype but FP32 (the hot path above), each value of its JSON kind."""
    dtype = _dtype(item)
    count = _check_shape(item)
    values = _flatten(item, data) if data and type(data[0]) is list else data
    if len(values) != count:
        raise TensorShapeError(
            f"input '{item.name}' has {len(values)} values but shape {item.shape} needs {count}"
        )
    kinds = set(map(type, values))
    if item.datatype == "BOOL":
        allowed: set[type] = {bool}
    elif item.datatype == BYTES:
        allowed = {str}
    elif dtype.kind in "iu":
        allowed = {int}
    else:
        allowed = {int, float}
    if not kinds <= allowed:
        wanted = {"BOOL": "true/false", BYTES: "strings"}.get(
            item.datatype, "integers" if dtype.kind in "iu" else "numbers"
        )
        raise TensorShapeError(
            f"input '{item.name}' has datatype {item.datatype}: its data must be {wanted}, "
            f"flat or nested as shape {item.shape}"
        )
    try:
        tensor = np.array(values, dtype=dtype.newbyteorder("=") if dtype.kind != "O" else dtype)
    except OverflowError:
        raise TensorShapeError(
            f"input '{item.name}' has values out of range for {item.datatype}"
        ) from None
    return tensor.reshape(item.shape)


def _flatten(item: V2RequestInput, nested: list[Any]) -> list[Any]:
    """Row-major values of ``nested``, which must be lists nested exactly as ``item.shape``."""
    level: list[Any] = [nested]
    for size in item.shape:
        below: list[Any] = []
        for part in level:
            if type(part) is not list or len(part) != size:
                raise TensorShapeError(
                    f"input '{item.name}' data is not nested as its shape {item.shape}; send "
                    "flat (row-major) data or lists nested exactly as the shape"
                )
            below.extend(part)
        level = below
    # Anything nested deeper is now a list among the values, which the conversion refuses.
    return level


def _has_booleans(values: list[Any], converted: np.ndarray) -> bool:
    """Whether a JSON ``true``/``false`` hid among the numbers (they convert to 1.0/0.0)."""
    # Only a value that converted to exactly 0 or 1 can have been a boolean, and real inputs
    # rarely hold many: the common request pays two vectorised comparisons and no Python loop.
    suspects = np.flatnonzero((converted == 0) | (converted == 1))
    if suspects.size == 0:
        return False
    if suspects.size == 1:
        return type(values[int(suspects[0])]) is bool
    picked = values if suspects.size > _PICK_AT_MOST else itemgetter(*suspects.tolist())(values)
    return bool in map(type, picked)


# -- responses ----------------------------------------------------------------------------------


def output_json(name: str, result: np.ndarray) -> dict[str, Any]:
    """One output tensor with JSON ``data`` (flat, row-major)."""
    datatype = datatype_of(result)
    flat = result.ravel()
    data: list[Any]
    if datatype == BYTES:
        data = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat]
    else:
        data = flat.tolist()
    return {"name": name, "shape": list(result.shape), "datatype": datatype, "data": data}


def output_binary(name: str, result: np.ndarray) -> tuple[dict[str, Any], bytes]:
    """One output tensor as binary data: its JSON entry (with ``binary_data_size``) and bytes."""
    datatype = datatype_of(result)
    if datatype == BYTES:
        parts = []
        for value in result.ravel():
            encoded = value if isinstance(value, bytes) else str(value).encode("utf-8")
            parts += [_LENGTH.pack(len(encoded)), encoded]
        raw = b"".join(parts)
    else:
        raw = np.ascontiguousarray(result, dtype=DTYPES[datatype]).tobytes()
    entry = {
        "name": name,
        "shape": list(result.shape),
        "datatype": datatype,
        "parameters": {BINARY_SIZE: len(raw)},
    }
    return entry, raw
