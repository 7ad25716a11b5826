"""Deterministic held-out splits: an image's content decides its split, in every run.

An image is held out when the first 32 bits of the sha256 of its decoded pixels, read as a
fraction of 2**32, fall below the held-out fraction. The same image is therefore held out by
every training run that uses the same (or a larger) fraction, whatever dataset it comes in, so
the gate can tell which images a model never trained on without storing its split.
"""

from __future__ import annotations

import hashlib

from chimp.shared.preprocessing import UInt8Image

HOLDOUT_TAG = "chimp.holdout"
DATASET_KEY_TAG = "chimp.dataset_key"
TEST_SPLIT = "test-split"  # the dataset's own test/ folders were held out
HASH_PREFIX = "hash:"  # "hash:0.2": train images with is_held_out(hash, 0.2) were held out


def image_hash(image: UInt8Image) -> str:
    """sha256 of a decoded image (shape, type and pixels), as read by ``read_image``."""
    digest = hashlib.sha256(f"{image.shape}|{image.dtype}|".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def is_held_out(content_hash: str, fraction: float) -> bool:
    return int(content_hash[:8], 16) / 2**32 < fraction


def holdout_tag(fraction: float) -> str:
    return f"{HASH_PREFIX}{fraction:g}"


def parse_holdout(tag: str | None) -> float | None:
    """The fraction of a ``hash:<fraction>`` tag, else None."""
    if tag is None or not tag.startswith(HASH_PREFIX):
        return None
    try:
        return float(tag[len(HASH_PREFIX) :])
    except ValueError:
        return None
