"""Open Inference Protocol JSON tensors: flat or shape-nested numbers only, nothing coerced."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from chimp.serving.inference import TensorShapeError
from chimp.serving.schemas import V2RequestInput
from chimp.serving.tensors import tensor_from_input
from chimp.shared.errors import BadRequestError


def tensor(data: list[Any], shape: list[int], **fields: Any) -> np.ndarray:
    item = V2RequestInput.model_validate(
        {"name": "input", "shape": shape, "datatype": "FP32", "data": data, **fields}
    )
    return tensor_from_input(item)


def test_flat_and_shape_nested_data_give_the_same_tensor() -> None:
    values = np.arange(12, dtype=np.float32).reshape(2, 1, 2, 3)
    flat = tensor(values.ravel().tolist(), [2, 1, 2, 3])
    nested = tensor(values.tolist(), [2, 1, 2, 3])
    integers = tensor([int(v) for v in values.ravel()], [2, 1, 2, 3])

    assert flat.dtype == np.float32
    assert np.array_equal(flat, values)
    assert np.array_equal(nested, values)
    assert np.array_equal(integers, values)


def test_zeros_and_ones_are_numbers_not_booleans() -> None:
    assert tensor([0.0] * 100 + [1.0] * 100, [200]).sum() == 100
    assert tensor([0, 1, 0.5], [3]).tolist() == [0.0, 1.0, 0.5]


@pytest.mark.parametrize(
    ("data", "shape"),
    [
        ([True, 0.0, 0.5, 0.25], [1, 4]),  # one boolean
        ([0.0] * 99 + [False], [1, 100]),  # a false among many zeros
        ([True, False] * 50, [1, 100]),  # all booleans
        ([[0.5, 1.0], [True, 0.0]], [2, 2]),  # nested
    ],
)
def test_booleans_are_refused_for_fp32(data: list[Any], shape: list[int]) -> None:
    with pytest.raises(TensorShapeError, match=r"input 'input' has datatype FP32 .* booleans"):
        tensor(data, shape)


@pytest.mark.parametrize(
    "data", [["0.5", 0.5], [None, 0.5], [{"v": 1}, 0.5], [10**400, 0.5], [0.5, [0.5]]]
)
def test_values_that_are_not_numbers_are_refused(data: list[Any]) -> None:
    with pytest.raises(TensorShapeError, match=r"input 'input' data must be FP32 numbers.*\[2\]"):
        tensor(data, [2])


@pytest.mark.parametrize(
    ("data", "shape"),
    [
        ([[[0.5] * 2304]], [1, 2304]),  # nested deeper than the shape
        ([[0.5] * 48] * 48, [1, 1, 48, 48]),  # nested less deep
        ([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [2, 3]),  # nested as another shape, same size
        ([[1.0, 2.0, 3.0], [4.0, 5.0]], [2, 3]),  # ragged
        ([[1.0, 2.0, 3.0], 4.0, 5.0, 6.0], [2, 3]),  # lists and numbers mixed
    ],
)
def test_nesting_must_follow_the_shape(data: list[Any], shape: list[int]) -> None:
    with pytest.raises(TensorShapeError, match=f"input 'input' .*{re.escape(str(shape))}"):
        tensor(data, shape)


def test_size_datatype_and_binary_data_are_still_checked() -> None:
    with pytest.raises(TensorShapeError, match=r"has 3 values but shape \[4\] needs 4"):
        tensor([0.5] * 3, [4])
    with pytest.raises(TensorShapeError, match="INT64"):
        tensor([1, 2], [2], datatype="INT64")
    with pytest.raises(TensorShapeError, match="NaN or infinity"):
        tensor([1e39, 0.5], [2])
    with pytest.raises(BadRequestError, match="binary tensor data is not supported"):
        tensor([], [2], parameters={"binary_data_size": 8})
