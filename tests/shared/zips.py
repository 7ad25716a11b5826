"""Builders for honest and hostile dataset zips, shared by the archive and datastore tests."""

from __future__ import annotations

import io
import stat
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path


def zip_bytes(files: Mapping[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip with exactly these member names (no normalisation), in this order."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # Duplicate names are one of the hostile cases; zipfile warns while writing them.
        warnings.simplefilter("ignore", UserWarning)
        with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
            for name, data in files.items():
                archive.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return buffer.getvalue()


def write_zip(path: Path, files: Mapping[str, bytes]) -> Path:
    path.write_bytes(zip_bytes(files))
    return path


def symlink_zip(path: Path) -> Path:
    """A zip holding a real file and a symlink entry pointing at /etc/passwd."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ok.txt", b"fine")
        link = zipfile.ZipInfo("link")
        link.create_system = 3  # Unix, so the mode bits in external_attr count
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    path.write_bytes(buffer.getvalue())
    return path


def duplicate_entries_zip(path: Path) -> Path:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("a.txt", b"first")
            archive.writestr("a.txt", b"second")
    path.write_bytes(buffer.getvalue())
    return path


def bomb_zip(path: Path, size: int) -> Path:
    """``size`` zero bytes in one member: a few hundred bytes on disk, ``size`` unpacked."""
    buffer = io.BytesIO()
    chunk = bytes(64 * 1024)
    with (
        zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("zeros.bin", "w") as member,
    ):
        for _ in range(size // len(chunk)):
            member.write(chunk)
    path.write_bytes(buffer.getvalue())
    return path


def understated_bomb_zip(path: Path, size: int) -> Path:
    """A bomb whose headers claim each member is 10 bytes, so header checks see nothing."""
    data = bytearray(bomb_zip(path, size).read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.infolist()[0]
    real = info.file_size.to_bytes(4, "little")
    fake = (10).to_bytes(4, "little")
    # The uncompressed size sits in both the local header and the central directory.
    patched = bytes(data).replace(real, fake)
    path.write_bytes(patched)
    return path


def corrupt_member_zip(path: Path) -> Path:
    """A zip whose central directory is fine but whose second member's data is garbage."""
    good = b"A" * 4096
    data = bytearray(
        zip_bytes({"a.txt": good, "b.txt": b"B" * 4096}, compression=zipfile.ZIP_STORED)
    )
    start = data.rindex(b"B" * 4096)
    data[start : start + 16] = b"\x00" * 16  # stored bytes no longer match the CRC
    path.write_bytes(bytes(data))
    return path


def not_a_zip(path: Path) -> Path:
    path.write_bytes(b"GIF89a definitely not a zip")
    return path


def truncated_zip(path: Path) -> Path:
    data = zip_bytes({f"f{i}.txt": bytes([i]) * 1000 for i in range(5)})
    path.write_bytes(data[: len(data) // 2])
    return path
