"""Safe unpacking of dataset zips: what lands where, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from chimp.shared.datastore.archive import UnpackLimits, safe_relative_path, unpack_zip
from chimp.shared.errors import InvalidInputError, PayloadTooLargeError
from tests.shared.zips import (
    bomb_zip,
    corrupt_member_zip,
    duplicate_entries_zip,
    symlink_zip,
    truncated_zip,
    understated_bomb_zip,
    write_zip,
)

LIMITS = UnpackLimits(max_unpacked_bytes=1024 * 1024, max_files=100)


def files_under(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_unpacks_files_with_sizes(tmp_path: Path) -> None:
    zip_path = write_zip(tmp_path / "d.zip", {"train/happy/1.png": b"x" * 3, "labels.csv": b"ab"})
    result = unpack_zip(zip_path, tmp_path / "out", LIMITS)
    assert [(e.path, e.size) for e in result.entries] == [
        ("labels.csv", 2),
        ("train/happy/1.png", 3),
    ]
    assert (result.files, result.size_bytes) == (2, 5)
    assert files_under(tmp_path / "out") == {"labels.csv": b"ab", "train/happy/1.png": b"xxx"}


def test_single_wrapper_folder_is_stripped(tmp_path: Path) -> None:
    zip_path = write_zip(
        tmp_path / "d.zip",
        {
            "mydata/": b"",
            "mydata/train/happy/1.png": b"1",
            "mydata/test/sad/2.png": b"2",
            "__MACOSX/mydata/._1.png": b"junk",
        },
    )
    unpack_zip(zip_path, tmp_path / "out", LIMITS)
    assert sorted(files_under(tmp_path / "out")) == ["test/sad/2.png", "train/happy/1.png"]


@pytest.mark.parametrize(
    "names",
    [
        ["a/x.png", "b/y.png"],  # two top-level folders
        ["mydata/x.png", "readme.txt"],  # a file beside the folder
        ["only.txt"],
        ["train/happy/1.png", "train/sad/2.png"],  # a split folder is layout, not a wrapper
    ],
)
def test_no_stripping_without_a_single_wrapper(tmp_path: Path, names: list[str]) -> None:
    zip_path = write_zip(tmp_path / "d.zip", dict.fromkeys(names, b"."))
    unpack_zip(zip_path, tmp_path / "out", LIMITS)
    assert sorted(files_under(tmp_path / "out")) == sorted(names)


def test_junk_and_our_own_marker_are_ignored(tmp_path: Path) -> None:
    zip_path = write_zip(
        tmp_path / "d.zip",
        {
            "a/.DS_Store": b"junk",
            "__MACOSX/._a": b"junk",
            "Thumbs.db": b"junk",
            ".chimp-dataset.json": b"{}",
            "a/1.png": b"1",
        },
    )
    unpack_zip(zip_path, tmp_path / "out", LIMITS)
    assert files_under(tmp_path / "out") == {"a/1.png": b"1"}


def test_dot_and_empty_components_are_normalised(tmp_path: Path) -> None:
    zip_path = write_zip(tmp_path / "d.zip", {"./a//./b.txt": b"b", "c.txt": b"c"})
    unpack_zip(zip_path, tmp_path / "out", LIMITS)
    assert sorted(files_under(tmp_path / "out")) == ["a/b.txt", "c.txt"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../evil.txt", "outside"),
        ("good/../../evil.txt", "outside"),
        ("/etc/evil.txt", "absolute"),
        ("C:/evil.txt", "drive letter"),
        ("c:evil.txt", "drive letter"),
        ("..\\evil.txt", "backslash"),
        ("dir\\file.txt", "backslash"),
    ],
)
def test_paths_escaping_the_dataset_are_refused(tmp_path: Path, name: str, reason: str) -> None:
    zip_path = write_zip(tmp_path / "d.zip", {"ok.txt": b"fine", name: b"evil"})
    with pytest.raises(InvalidInputError, match=reason):
        unpack_zip(zip_path, tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_safe_relative_path_never_leaves_its_root() -> None:
    assert safe_relative_path("a/./b//c.txt").as_posix() == "a/b/c.txt"
    for hostile in ["", "/", "..", "a/../..", "x\x00y", "D:\\x", "\\\\server\\share"]:
        with pytest.raises(InvalidInputError):
            safe_relative_path(hostile)


def test_symlink_entries_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="symbolic link"):
        unpack_zip(symlink_zip(tmp_path / "d.zip"), tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()


def test_bomb_over_the_declared_budget_is_refused(tmp_path: Path) -> None:
    zip_path = bomb_zip(tmp_path / "d.zip", 4 * 1024 * 1024)
    assert zip_path.stat().st_size < 64 * 1024
    with pytest.raises(InvalidInputError, match="limit"):
        unpack_zip(zip_path, tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()


def test_bomb_with_lying_headers_is_refused(tmp_path: Path) -> None:
    zip_path = understated_bomb_zip(tmp_path / "d.zip", 4 * 1024 * 1024)
    with pytest.raises(InvalidInputError):
        unpack_zip(zip_path, tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()


def test_too_many_files_are_refused(tmp_path: Path) -> None:
    zip_path = write_zip(tmp_path / "d.zip", {f"{i}.txt": b"." for i in range(4)})
    with pytest.raises(InvalidInputError, match="more than 3 files"):
        unpack_zip(zip_path, tmp_path / "out", UnpackLimits(max_unpacked_bytes=1000, max_files=3))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a zip file"),
        (b"this is not a zip file at all", "not a zip file"),
    ],
)
def test_not_a_zip_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    zip_path = tmp_path / "d.zip"
    zip_path.write_bytes(content)
    with pytest.raises(InvalidInputError, match=message):
        unpack_zip(zip_path, tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()


def test_truncated_zip_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not a zip file"):
        unpack_zip(truncated_zip(tmp_path / "d.zip"), tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()


def test_corrupt_member_data_is_refused_and_partial_files_removed(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="corrupt"):
        unpack_zip(corrupt_member_zip(tmp_path / "d.zip"), tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"empty-folder/": b""},
        {"__MACOSX/._x": b"junk", ".DS_Store": b"junk"},
    ],
)
def test_zip_without_files_is_refused(tmp_path: Path, files: dict[str, bytes]) -> None:
    zip_path = write_zip(tmp_path / "d.zip", files)
    with pytest.raises(InvalidInputError, match="no files"):
        unpack_zip(zip_path, tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()


def test_duplicate_entries_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="more than one entry"):
        unpack_zip(duplicate_entries_zip(tmp_path / "d.zip"), tmp_path / "out", LIMITS)


def test_file_and_folder_with_one_name_are_refused(tmp_path: Path) -> None:
    zip_path = write_zip(tmp_path / "d.zip", {"a": b"file", "a/b.txt": b"nested"})
    with pytest.raises(InvalidInputError, match="both a file and a folder"):
        unpack_zip(zip_path, tmp_path / "out", LIMITS)


def test_entry_inflating_past_the_ratio_is_refused_by_its_headers(tmp_path: Path) -> None:
    zip_path = bomb_zip(tmp_path / "d.zip", 2 * 1024 * 1024)
    limits = UnpackLimits(max_unpacked_bytes=1 << 30, max_files=100, max_compression_ratio=100)
    with pytest.raises(InvalidInputError, match="compression ratio") as caught:
        unpack_zip(zip_path, tmp_path / "out", limits)
    assert caught.value.detail["limit"] == "max_compression_ratio"
    assert not (tmp_path / "out").exists()


def test_free_disk_reserve_refuses_before_writing(tmp_path: Path) -> None:
    zip_path = write_zip(tmp_path / "d.zip", {"a.txt": b"a" * 100})
    limits = UnpackLimits(max_unpacked_bytes=1 << 30, max_files=100, min_free_disk_fraction=1.0)
    with pytest.raises(PayloadTooLargeError, match="min_free_disk_fraction"):
        unpack_zip(zip_path, tmp_path / "out", limits)
    assert not (tmp_path / "out").exists()
