"""Safe unpacking of dataset zips.

A zip comes from a user, so every member is treated as hostile until proven otherwise: its
name must stay inside the dataset (no ``..``, absolute paths, drive letters, backslashes), it
must be a regular file (no symlinks or devices), and the whole archive must fit a file-count
budget and a byte budget. Bytes are counted while they are written, never taken from the
headers, so a zip bomb stops at the budget instead of filling the disk. A large entry that
inflates far beyond its packed size (a compression ratio no real image or CSV reaches) is
refused outright, and so is a dataset that would leave less than a set share of the disk free;
a disk that fills anyway ends as :class:`InsufficientStorageError` with nothing left behind.

This module is synchronous on purpose: callers run :func:`unpack_zip` in a worker thread.
"""

from __future__ import annotations

import errno
import lzma
import os
import re
import shutil
import stat
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from chimp.shared.errors import InsufficientStorageError, InvalidInputError, PayloadTooLargeError
from chimp.shared.schemas.datasets import DatasetEntry

MARKER_NAME = ".chimp-dataset.json"
"""Written last into every dataset; a dataset without it does not exist."""

# Files that archivers and desktops add and no dataset means to contain.
_JUNK_DIRS = frozenset({"__MACOSX"})
_JUNK_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})

# Folder names that are part of a dataset's layout, so never stripped as a wrapper.
_SPLIT_NAMES = frozenset(
    {"train", "training", "test", "testing", "val", "valid", "validation", "dev", "eval"}
)

_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_CHUNK = 1024 * 1024
# S3 keys are limited to 1024 bytes and most file systems to 255 bytes per name.
_MAX_PATH_BYTES = 900
_MAX_NAME_BYTES = 255

# What a corrupt member can raise while being read; none of these can come from writing.
_CORRUPT_DATA_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    NotImplementedError,
)
# While reading a member, bz2 also reports bad data as a plain OSError.
_READ_ERRORS: tuple[type[BaseException], ...] = (*_CORRUPT_DATA_ERRORS, OSError)


@dataclass(frozen=True)
class UnpackLimits:
    max_unpacked_bytes: int
    max_files: int
    max_compression_ratio: float = 100.0
    """Unpacked/packed size above which an entry is a bomb (entries past the minimum below)."""
    compression_ratio_min_bytes: int = 1024 * 1024
    """Entries smaller than this are never refused for their ratio (tiny CSVs pack well)."""
    min_free_disk_fraction: float = 0.05
    """Share of the unpacking disk that must stay free once the dataset is written."""


# How often (in written bytes) the free-disk reserve is looked at again while unpacking.
_DISK_CHECK_EVERY = 16 * 1024 * 1024


def _check_ratio(name: str, unpacked: int, packed: int, limits: UnpackLimits) -> None:
    """Refuse a bomb by its headers. Headers that understate the size cannot slip past:
    zipfile reads no more than the declared size and then fails the CRC check."""
    if unpacked < limits.compression_ratio_min_bytes:
        return
    if unpacked > limits.max_compression_ratio * max(packed, 1):
        raise InvalidInputError(
            f"zip entry {name!r} has a compression ratio over the limit of "
            f"{limits.max_compression_ratio:g}:1 ({unpacked} bytes from {packed}); "
            "refused as a zip bomb",
            detail={"limit": "max_compression_ratio", "value": limits.max_compression_ratio},
        )


def check_free_disk(folder: Path, needed: int, limits: UnpackLimits) -> None:
    """Refuse to write ``needed`` more bytes under ``folder`` if that eats into the reserve."""
    usage = shutil.disk_usage(folder)
    reserve = int(usage.total * limits.min_free_disk_fraction)
    if usage.free - needed < reserve:
        raise PayloadTooLargeError(
            f"not enough free disk: storing {needed} bytes would leave less than the "
            f"min_free_disk_fraction of {limits.min_free_disk_fraction:g} of the disk free",
            detail={"limit": "min_free_disk_fraction", "value": limits.min_free_disk_fraction},
        )


@dataclass(frozen=True)
class UnpackedDataset:
    """What :func:`unpack_zip` wrote: one entry per file, sorted by path."""

    entries: list[DatasetEntry]

    @property
    def files(self) -> int:
        return len(self.entries)

    @property
    def size_bytes(self) -> int:
        return sum(entry.size for entry in self.entries)


def safe_relative_path(name: str) -> PurePosixPath:
    """Turn an archive member or object key name into a path that cannot leave its root.

    Raises ``InvalidInputError`` naming the offending entry. Empty and ``.`` components are
    dropped (``a//./b`` is ``a/b``); ``..`` is refused even where it would stay inside, because
    no honest archive needs it.
    """
    if "\x00" in name:
        raise InvalidInputError(f"zip entry {name!r} has a NUL byte in its name")
    if "\\" in name:
        raise InvalidInputError(f"zip entry {name!r} uses backslashes; use '/' separators")
    if name.startswith("/"):
        raise InvalidInputError(f"zip entry {name!r} is an absolute path")
    if _DRIVE_RE.match(name):
        raise InvalidInputError(f"zip entry {name!r} starts with a drive letter")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidInputError(f"zip entry {name!r} points outside the dataset ('..')")
    if not parts:
        raise InvalidInputError(f"zip entry {name!r} has no file name")
    if len(name.encode()) > _MAX_PATH_BYTES or any(
        len(part.encode()) > _MAX_NAME_BYTES for part in parts
    ):
        raise InvalidInputError(f"zip entry {name[:80]!r}... has a path that is too long")
    return PurePosixPath(*parts)


def _is_junk(path: PurePosixPath) -> bool:
    return path.name in _JUNK_FILES or any(part in _JUNK_DIRS for part in path.parts)


def _check_member_kind(info: zipfile.ZipInfo) -> None:
    # The high 16 bits of external_attr hold the Unix mode when the zip was made on Unix.
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        raise InvalidInputError(f"zip entry {info.filename!r} is a symbolic link; refused")
    if kind not in (0, stat.S_IFREG):
        raise InvalidInputError(f"zip entry {info.filename!r} is not a regular file")
    if info.flag_bits & 0x1:
        raise InvalidInputError(f"zip entry {info.filename!r} is encrypted")


def _plan(
    members: Iterable[zipfile.ZipInfo], limits: UnpackLimits
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Validate every member and decide where each file goes, before anything is written."""
    planned: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    for info in members:
        path = safe_relative_path(info.filename)
        if info.is_dir():
            continue
        _check_member_kind(info)
        _check_ratio(info.filename, info.file_size, info.compress_size, limits)
        if _is_junk(path):
            continue
        planned.append((info, path))
        if len(planned) > limits.max_files:
            raise InvalidInputError(f"zip has more than {limits.max_files} files")
    if not planned:
        raise InvalidInputError("zip contains no files")
    planned = _strip_wrapper_folder(planned)
    # A marker inside the zip (someone zipped a stored dataset) is ours to write, not theirs.
    planned = [(info, path) for info, path in planned if path != PurePosixPath(MARKER_NAME)]
    if not planned:
        raise InvalidInputError("zip contains no files")
    _check_collisions(path for _, path in planned)
    declared = sum(info.file_size for info, _ in planned)
    if declared > limits.max_unpacked_bytes:
        raise InvalidInputError(
            f"zip unpacks to {declared} bytes, more than the limit of {limits.max_unpacked_bytes}"
        )
    return planned


def _strip_wrapper_folder(
    planned: list[tuple[zipfile.ZipInfo, PurePosixPath]],
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Zipping a folder wraps everything in it; the dataset is what is inside that folder.

    A lone split folder (``train/...`` only) is the dataset's own layout, not a wrapper.
    """
    tops = {path.parts[0] for _, path in planned}
    if len(tops) != 1 or any(len(path.parts) < 2 for _, path in planned):
        return planned
    if tops.pop().lower() in _SPLIT_NAMES:
        return planned
    return [(info, PurePosixPath(*path.parts[1:])) for info, path in planned]


def _check_collisions(paths: Iterable[PurePosixPath]) -> None:
    files: set[PurePosixPath] = set()
    folders: set[PurePosixPath] = set()
    for path in paths:
        if path in files or path in folders:
            raise InvalidInputError(f"zip has more than one entry for {str(path)!r}")
        files.add(path)
        folders.update(path.parents)
    clash = files & folders
    if clash:
        raise InvalidInputError(f"zip has {str(min(clash))!r} as both a file and a folder")


def _open_zip(fh: IO[bytes], zip_path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
        raise InvalidInputError(_not_a_zip(zip_path, exc)) from exc


def _not_a_zip(zip_path: Path, exc: BaseException) -> str:
    return (
        f"{zip_path.name} is not a zip file ({exc}): a dataset is a .zip with a folder per "
        "label, e.g. train/<label>/001.jpg, or a FER2013 CSV inside a zip"
    )


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """Yield a member's bytes, turning every sign of corruption into ``InvalidInputError``.

    Reading is kept apart from writing so that a full disk (an ``OSError`` on write) is not
    mistaken for a corrupt zip (bz2 reports bad data as ``OSError``).
    """
    try:
        with archive.open(info) as src:
            while chunk := src.read(_CHUNK):
                yield chunk
    except _READ_ERRORS as exc:
        raise InvalidInputError(f"zip entry {info.filename!r} is corrupt: {exc}") from exc


def _extract(
    archive: zipfile.ZipFile,
    planned: list[tuple[zipfile.ZipInfo, PurePosixPath]],
    dest: Path,
    limits: UnpackLimits,
) -> list[DatasetEntry]:
    written = 0
    next_disk_check = _DISK_CHECK_EVERY
    entries: list[DatasetEntry] = []
    for info, rel in planned:
        target = dest.joinpath(*rel.parts)
        size = 0
        # Reading errors became InvalidInputError in _read: an OSError here is the disk's.
        with raising_disk_full("unpacking the dataset"):
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("xb") as out:
                for chunk in _read(archive, info):
                    size += len(chunk)
                    written += len(chunk)
                    if written > limits.max_unpacked_bytes:
                        raise InvalidInputError(
                            "zip unpacks to more than the limit of "
                            f"{limits.max_unpacked_bytes} bytes",
                            detail={
                                "limit": "max_unpacked_bytes",
                                "value": limits.max_unpacked_bytes,
                            },
                        )
                    if written >= next_disk_check:
                        check_free_disk(dest, len(chunk), limits)
                        next_disk_check = written + _DISK_CHECK_EVERY
                    out.write(chunk)
        entries.append(DatasetEntry(path=rel.as_posix(), size=size))
    return sorted(entries, key=lambda entry: entry.path)


@contextmanager
def raising_disk_full(doing: str) -> Iterator[None]:
    """Turn a full disk (or quota) into :class:`InsufficientStorageError` (507)."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InsufficientStorageError(
                f"the disk filled up while {doing}: {os.strerror(exc.errno)}; nothing was kept"
            ) from exc
        raise


def unpack_zip(zip_path: Path, dest: Path, limits: UnpackLimits) -> UnpackedDataset:
    """Unpack ``zip_path`` into ``dest``, which must not exist yet and is created here.

    Every member is validated before the first byte is written. On any failure ``dest`` is
    removed again, so the caller never sees a half-unpacked dataset. Raises
    ``InvalidInputError`` for anything wrong with the zip.
    """
    dest.mkdir(parents=False, exist_ok=False)
    try:
        with zip_path.open("rb") as fh, _open_zip(fh, zip_path) as archive:
            try:
                members = archive.infolist()
            except _CORRUPT_DATA_ERRORS as exc:
                raise InvalidInputError(_not_a_zip(zip_path, exc)) from exc
            planned = _plan(members, limits)
            check_free_disk(dest, sum(info.file_size for info, _ in planned), limits)
            entries = _extract(archive, planned, dest, limits)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return UnpackedDataset(entries=entries)
