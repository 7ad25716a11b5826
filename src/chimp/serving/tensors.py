"""Open Inference Protocol JSON tensors to numpy, as strictly as the spec reads.

``data`` is either flat (row-major) or nested exactly as ``shape``, and its values must be of the
input's ``datatype``: for ``FP32`` JSON numbers only, so booleans, strings and nulls are refused
rather than coerced, and so is nesting that does not follow the shape.
"""

from __future__ import annotations

import array
import math
from operator import itemgetter
from typing import Any

import numpy as np

from chimp.serving.inference import TensorShapeError
from chimp.serving.schemas import V2RequestInput
from chimp.shared.errors import BadRequestError

FP32 = "FP32"

# Beyond this many 0/1 values one scan of every value's type is cheaper than picking them out.
_PICK_AT_MOST = 64


def tensor_from_input(item: V2RequestInput) -> np.ndarray:
    """The input's ``data`` (flat or nested) as a float32 array of its declared ``shape``."""
    if item.parameters and "binary_data_size" in item.parameters:
        raise BadRequestError(
            "binary tensor data is not supported; send JSON data (tritonclient: binary_data=False)"
        )
    if item.datatype != FP32:
        raise TensorShapeError(
            f"input '{item.name}' has datatype {item.datatype}; this model takes {FP32}"
        )
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
