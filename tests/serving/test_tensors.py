"""Open Inference Protocol tensors: JSON data (flat or shape-nested, nothing coerced) and the
binary tensor extension, for every datatype CHIMP serves."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from chimp.serving.inference import TensorShapeError
from chimp.serving.schemas import V2RequestInput
from chimp.serving.tensors import (
    BinaryBodyError,
    output_binary,
    output_json,
    split_binary,
    tensor_from_binary,
    tensor_from_input,
)


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


def test_size_datatype_and_values_are_still_checked() -> None:
    with pytest.raises(TensorShapeError, match=r"has 3 values but shape \[4\] needs 4"):
        tensor([0.5] * 3, [4])
    with pytest.raises(TensorShapeError, match="INT64: its data must be integers"):
        tensor([1.5, 2], [2], datatype="INT64")
    with pytest.raises(TensorShapeError, match="out of range for UINT8"):
        tensor([1, 256], [2], datatype="UINT8")
    with pytest.raises(TensorShapeError, match="NaN or infinity"):
        tensor([1e39, 0.5], [2])
    with pytest.raises(TensorShapeError, match="BF16; CHIMP serves"):
        tensor([1.0], [1], datatype="BF16")
    with pytest.raises(TensorShapeError, match="neither data nor binary_data_size"):
        tensor_from_input(V2RequestInput(name="input", shape=[1], datatype="FP32"))


SAMPLES: dict[str, np.ndarray] = {
    "BOOL": np.array([[True, False, True]]),
    "UINT8": np.array([[0, 7, 255]], dtype=np.uint8),
    "UINT16": np.array([[0, 7, 65535]], dtype=np.uint16),
    "UINT32": np.array([[0, 7, 2**32 - 1]], dtype=np.uint32),
    "UINT64": np.array([[0, 7, 2**64 - 1]], dtype=np.uint64),
    "INT8": np.array([[-128, 0, 127]], dtype=np.int8),
    "INT16": np.array([[-(2**15), 0, 2**15 - 1]], dtype=np.int16),
    "INT32": np.array([[-(2**31), 0, 2**31 - 1]], dtype=np.int32),
    "INT64": np.array([[-(2**63), 0, 2**63 - 1]], dtype=np.int64),
    "FP16": np.array([[-1.5, 0.0, 65504.0]], dtype=np.float16),
    "FP32": np.array([[-1.5, 0.25, 3.0e38]], dtype=np.float32),
    "FP64": np.array([[-1.5, 0.1, 1e300]], dtype=np.float64),
    "BYTES": np.array([["happy", "", "ünïcödé"]], dtype=object),
}


@pytest.mark.parametrize("datatype", sorted(SAMPLES))
def test_every_datatype_round_trips_as_json_and_binary(datatype: str) -> None:
    sample = SAMPLES[datatype]
    as_json = output_json("t", sample)
    entry, raw = output_binary("t", sample)
    item = {"name": "t", "shape": entry["shape"], "datatype": entry["datatype"]}
    from_json = tensor_from_input(V2RequestInput.model_validate({**item, "data": as_json["data"]}))
    binary_item = V2RequestInput.model_validate({**item, "parameters": entry["parameters"]})
    (part,) = split_binary([binary_item], memoryview(raw))
    assert part is not None
    from_binary = tensor_from_binary(binary_item, part)

    assert as_json["datatype"] == entry["datatype"] == datatype
    assert entry["parameters"] == {"binary_data_size": len(raw)}
    for decoded in (from_json, from_binary):
        assert decoded.shape == sample.shape
        assert decoded.dtype == sample.dtype
        assert decoded.tolist() == sample.tolist()


def test_binary_bytes_elements_are_length_prefixed() -> None:
    _, raw = output_binary("t", np.array(["ab", "c"], dtype=object))
    item = V2RequestInput(name="t", shape=[2], datatype="BYTES", parameters={"binary_data_size": 9})

    assert raw == b"\x02\x00\x00\x00ab\x01\x00\x00\x00c"
    assert tensor_from_binary(item, memoryview(raw)).tolist() == ["ab", "c"]
    with pytest.raises(BinaryBodyError, match="runs past its data"):
        tensor_from_binary(item, memoryview(raw[:-1]))
    with pytest.raises(BinaryBodyError, match="inside a length prefix"):
        tensor_from_binary(item, memoryview(raw + b"\x01"))
    with pytest.raises(BinaryBodyError, match="has 1 BYTES elements but shape"):
        tensor_from_binary(item, memoryview(raw[:6]))


def binary_input(name: str, size: Any, shape: list[int] | None = None) -> V2RequestInput:
    return V2RequestInput.model_validate(
        {"name": name, "shape": shape or [2], "datatype": "FP32",
         "parameters": {"binary_data_size": size}}
    )  # fmt: skip


def test_binary_sizes_must_add_up_to_the_body() -> None:
    a, b = binary_input("a", 8), binary_input("b", 8)
    json_input = V2RequestInput(name="j", shape=[1], datatype="FP32", data=[1.0])
    body = memoryview(np.arange(4, dtype=np.float32).tobytes())

    parts = split_binary([a, json_input, b], body)
    assert [None if p is None else bytes(p) for p in parts] == [
        body[:8].tobytes(),
        None,
        body[8:].tobytes(),
    ]
    with pytest.raises(
        BinaryBodyError, match=r"24 bytes follow the JSON header but .* add up to 16"
    ):
        split_binary([a, b], memoryview(bytes(24)))
    with pytest.raises(BinaryBodyError, match=r"needs 8 bytes .* only 4 follow"):
        split_binary([a, b], memoryview(bytes(12)))
    with pytest.raises(BinaryBodyError, match="no Inference-Header-Content-Length"):
        split_binary([a], None)
    with pytest.raises(BinaryBodyError, match="whole number of bytes"):
        split_binary([binary_input("a", -1)], memoryview(b""))
    with pytest.raises(BinaryBodyError, match="whole number of bytes"):
        split_binary([binary_input("a", "8")], memoryview(bytes(8)))
    with pytest.raises(BinaryBodyError, match=r"12 bytes of binary data but shape \[2\] of FP32"):
        tensor_from_binary(binary_input("a", 12), memoryview(bytes(12)))
