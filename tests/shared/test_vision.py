import cv2
import numpy as np
import pytest
import skimage.data

from chimp.shared.errors import InvalidInputError
from chimp.shared.vision import (
    FaceDetector,
    center_square,
    crop,
    decode_image,
    image_dimensions,
)


def astronaut_frame() -> np.ndarray:
    """The astronaut photo (a real face) centred on a 640x480 webcam-sized frame."""
    photo = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    frame = np.full((480, 640, 3), 90, dtype=np.uint8)
    frame[:, 80:560] = cv2.resize(photo, (480, 480))
    return frame


def test_detects_the_face_in_a_real_photo() -> None:
    faces = FaceDetector().detect(astronaut_frame())
    assert len(faces) >= 1
    face = faces[0]
    # The astronaut's face sits in the upper middle of the frame.
    assert 200 < face.x + face.w / 2 < 400
    assert face.y + face.h / 2 < 240


def test_no_face_in_a_blank_frame() -> None:
    assert FaceDetector().detect(np.zeros((480, 640), np.uint8)) == []


def test_decode_round_trips_jpeg_and_png() -> None:
    frame = astronaut_frame()
    for ext in (".jpg", ".png"):
        ok, data = cv2.imencode(ext, frame)
        assert ok
        assert decode_image(data.tobytes()).shape == frame.shape


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"GIF89a not supported", "not a JPEG or PNG"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "corrupt"),
    ],
)
def test_bad_bytes_are_rejected_clearly(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        decode_image(data)


def test_truncated_jpeg_is_rejected() -> None:
    _, data = cv2.imencode(".jpg", astronaut_frame())
    with pytest.raises(InvalidInputError, match="truncated"):
        decode_image(data.tobytes()[: len(data) // 2])


def test_crop_clips_to_the_image_and_center_square() -> None:
    from chimp.shared.schemas import Box

    image = np.zeros((100, 200), np.uint8)
    assert crop(image, Box(x=180, y=90, w=40, h=40)).shape == (10, 20)
    assert center_square(image).shape == (100, 100)


def test_header_dimensions_of_jpeg_and_png() -> None:
    frame = astronaut_frame()
    for ext in (".jpg", ".png"):
        _, data = cv2.imencode(ext, frame)
        assert image_dimensions(data.tobytes()) == (640, 480)


def test_pixel_bomb_is_refused_before_decoding() -> None:
    # 12000x12000 of one colour compresses to a few hundred kilobytes of PNG.
    _, data = cv2.imencode(".png", np.zeros((12000, 12000), np.uint8))
    with pytest.raises(InvalidInputError, match="too large: 12000x12000"):
        decode_image(data.tobytes())
    _, small = cv2.imencode(".jpg", astronaut_frame())
    with pytest.raises(InvalidInputError, match="too large"):
        decode_image(small.tobytes(), max_pixels=640 * 479)
