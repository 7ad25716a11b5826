"""Datasets, stored unpacked in a local folder or an S3 bucket behind one async interface.

Build one per process with :func:`open_datastore` (in a lifespan or worker startup) and close it
on shutdown.
"""

from __future__ import annotations

from chimp.shared.datastore.archive import MARKER_NAME, UnpackLimits
from chimp.shared.datastore.base import Datastore
from chimp.shared.settings import ChimpSettings

__all__ = ["MARKER_NAME", "Datastore", "UnpackLimits", "open_datastore"]


def open_datastore(settings: ChimpSettings) -> Datastore:
    """The backend ``settings.datastore.backend`` names; it connects on first use.

    Await ``Datastore.open()`` (or use it as an async context manager) to connect eagerly.
    """
    config = settings.datastore
    limits = UnpackLimits(
        max_unpacked_bytes=config.max_unpacked_bytes,
        max_files=config.max_files,
        max_compression_ratio=config.max_compression_ratio,
        compression_ratio_min_bytes=config.compression_ratio_min_bytes,
        min_free_disk_fraction=config.min_free_disk_fraction,
    )
    if config.backend == "s3":
        # Imported here so the local default never pays for loading aioboto3.
        from chimp.shared.datastore.s3 import S3Datastore

        # Zips are unpacked and checked locally before anything reaches the bucket.
        return S3Datastore(config.s3, limits, staging_dir=settings.data_dir / "staging")
    from chimp.shared.datastore.local import LocalDatastore

    return LocalDatastore(settings.datastore_path(), limits)
