import numpy as np

from chimp.shared.preprocessing import preprocess, preprocess_batch, softmax
from chimp.shared.schemas import InputSpec


def test_bgr_image_becomes_scaled_gray_nchw_tensor() -> None:
    image = np.full((96, 128, 3), 255, dtype=np.uint8)
    tensor = preprocess(image, InputSpec(height=48, width=48))
    assert tensor.shape == (1, 1, 48, 48)
    assert tensor.dtype == np.float32
    assert np.allclose(tensor, 1.0)


def test_rgb_spec_converts_channel_order_and_normalises() -> None:
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    image[..., 2] = 255  # red in BGR
    spec = InputSpec(height=10, width=10, channels=3, color="rgb", mean=[0.5] * 3, std=[0.5] * 3)
    tensor = preprocess(image, spec)
    assert tensor.shape == (1, 3, 10, 10)
    assert np.allclose(tensor[0, 0], 1.0)  # R channel first, (1 - 0.5) / 0.5
    assert np.allclose(tensor[0, 2], -1.0)


def test_batch_stacks_images_and_handles_empty() -> None:
    spec = InputSpec(height=8, width=8)
    images = [np.zeros((8, 8), np.uint8), np.full((16, 16), 128, np.uint8)]
    assert preprocess_batch(images, spec).shape == (2, 1, 8, 8)
    assert preprocess_batch([], spec).shape == (0, 1, 8, 8)


def test_softmax_rows_sum_to_one() -> None:
    probs = softmax(np.array([[1000.0, 0.0], [1.0, 1.0]], dtype=np.float32))
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert np.allclose(probs[1], [0.5, 0.5])
