"""The datastore contract, run against both backends (local folder and a real S3 server)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aioboto3
import pytest
from botocore.exceptions import EndpointConnectionError

from chimp.shared.datastore import Datastore, UnpackLimits, open_datastore
from chimp.shared.datastore.local import LocalDatastore
from chimp.shared.datastore.s3 import S3Datastore
from chimp.shared.errors import (
    BadRequestError,
    ConflictError,
    DependencyUnavailableError,
    InvalidInputError,
    NotFoundError,
)
from chimp.shared.settings import ChimpSettings, DatastoreConfig
from tests.fixtures.ports import free_port
from tests.fixtures.s3 import DatastoreFactory, make_s3_config, make_settings
from tests.shared.zips import (
    bomb_zip,
    corrupt_member_zip,
    not_a_zip,
    symlink_zip,
    truncated_zip,
    understated_bomb_zip,
    write_zip,
)

FILES = {
    "mydata/train/happy/1.png": b"\x89PNG happy",
    "mydata/train/sad/2.png": b"\x89PNG sad" * 100,
    "mydata/labels.csv": b"path,label\n",
}
STORED = {
    "labels.csv": FILES["mydata/labels.csv"],
    "train/happy/1.png": FILES["mydata/train/happy/1.png"],
    "train/sad/2.png": FILES["mydata/train/sad/2.png"],
}


def files_under(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def s3_client(settings: ChimpSettings) -> Any:
    """A plain client on the test bucket's server, to look behind the datastore's back."""
    s3 = settings.datastore.s3
    assert s3.access_key_id is not None
    assert s3.secret_access_key is not None
    session = aioboto3.Session(
        aws_access_key_id=s3.access_key_id.get_secret_value(),
        aws_secret_access_key=s3.secret_access_key.get_secret_value(),
        region_name=s3.region,
    )
    return session.client("s3", endpoint_url=s3.endpoint_url)


async def bucket_keys(settings: ChimpSettings) -> list[str]:
    s3 = settings.datastore.s3
    keys: list[str] = []
    async with s3_client(settings) as client:
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=s3.bucket):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return sorted(keys)


async def leftovers(settings: ChimpSettings) -> list[str]:
    """Everything the backend keeps (files, objects, staging), whatever its visibility."""
    if settings.datastore.backend == "local":
        root = settings.datastore_path()
        return (
            sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []
        )
    staging = settings.data_dir / "staging"
    staged = [p.name for p in staging.iterdir()] if staging.exists() else []
    return staged + await bucket_keys(settings)


# -- the roundtrip ------------------------------------------------------------------------------


async def test_upload_list_manifest_download_delete(datastore: Datastore, tmp_path: Path) -> None:
    info = await datastore.upload_dataset_zip("faces", write_zip(tmp_path / "d.zip", FILES))
    assert (info.name, info.files) == ("faces", 3)
    assert info.size_bytes == sum(len(data) for data in STORED.values())

    assert await datastore.list_datasets() == [info]

    manifest = await datastore.get_manifest("faces")
    assert manifest.name == "faces"
    assert [(e.path, e.size) for e in manifest.entries] == [
        (path, len(data)) for path, data in STORED.items()
    ]

    out = await datastore.download_dataset("faces", tmp_path / "out" / "faces")
    assert files_under(out) == STORED

    await datastore.delete_dataset("faces")
    assert await datastore.list_datasets() == []
    with pytest.raises(NotFoundError):
        await datastore.get_manifest("faces")


async def test_datasets_are_listed_by_name(datastore: Datastore, tmp_path: Path) -> None:
    for name in ["b-set", "a.set", "C_set"]:
        await datastore.upload_dataset_zip(name, write_zip(tmp_path / f"{name}.zip", FILES))
    assert [info.name for info in await datastore.list_datasets()] == ["C_set", "a.set", "b-set"]


async def test_nothing_is_left_after_delete(
    datastore: Datastore, datastore_settings: ChimpSettings, tmp_path: Path
) -> None:
    await datastore.upload_dataset_zip("faces", write_zip(tmp_path / "d.zip", FILES))
    await datastore.delete_dataset("faces")
    assert await leftovers(datastore_settings) == []


async def test_existing_name_conflicts_unless_overwrite(
    datastore: Datastore, tmp_path: Path
) -> None:
    await datastore.upload_dataset_zip("faces", write_zip(tmp_path / "a.zip", FILES))
    newer = write_zip(tmp_path / "b.zip", {"train/angry/9.png": b"angry"})
    with pytest.raises(ConflictError, match="faces"):
        await datastore.upload_dataset_zip("faces", newer)
    assert files_under(await datastore.download_dataset("faces", tmp_path / "old")) == STORED

    info = await datastore.upload_dataset_zip("faces", newer, overwrite=True)
    assert info.files == 1
    # Files of the old version are gone, not merged with the new ones.
    assert files_under(await datastore.download_dataset("faces", tmp_path / "new")) == {
        "train/angry/9.png": b"angry"
    }
    assert [info.files for info in await datastore.list_datasets()] == [1]


async def test_overwrite_with_a_broken_zip_keeps_the_old_dataset(
    datastore: Datastore, tmp_path: Path
) -> None:
    await datastore.upload_dataset_zip("faces", write_zip(tmp_path / "a.zip", FILES))
    with pytest.raises(InvalidInputError):
        await datastore.upload_dataset_zip(
            "faces", truncated_zip(tmp_path / "b.zip"), overwrite=True
        )
    assert files_under(await datastore.download_dataset("faces", tmp_path / "out")) == STORED


async def test_unknown_dataset_is_not_found(datastore: Datastore, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        await datastore.get_manifest("nope")
    with pytest.raises(NotFoundError):
        await datastore.download_dataset("nope", tmp_path / "out")
    with pytest.raises(NotFoundError):
        await datastore.delete_dataset("nope")


@pytest.mark.parametrize("name", ["", "../up", "a/b", ".hidden", "x" * 65, "two..dots", "sp ace"])
async def test_bad_dataset_names_are_refused(
    datastore: Datastore, tmp_path: Path, name: str
) -> None:
    with pytest.raises(BadRequestError, match="invalid dataset name"):
        await datastore.upload_dataset_zip(name, write_zip(tmp_path / "d.zip", FILES))
    with pytest.raises(BadRequestError):
        await datastore.get_manifest(name)
    with pytest.raises(BadRequestError):
        await datastore.delete_dataset(name)
    assert await datastore.list_datasets() == []


async def test_check_passes_when_reachable(datastore: Datastore) -> None:
    await datastore.check()


# -- hostile and broken zips ---------------------------------------------------------------------

HOSTILE: dict[str, Callable[[Path], Path]] = {
    "path traversal": lambda p: write_zip(p, {"ok.txt": b"ok", "../../evil.txt": b"evil"}),
    "absolute path": lambda p: write_zip(p, {"ok.txt": b"ok", "/tmp/evil.txt": b"evil"}),
    "drive letter": lambda p: write_zip(p, {"ok.txt": b"ok", "C:/evil.txt": b"evil"}),
    "backslashes": lambda p: write_zip(p, {"ok.txt": b"ok", "..\\evil.txt": b"evil"}),
    "symlink": symlink_zip,
    "bomb": lambda p: bomb_zip(p, 2 * 1024 * 1024),
    "bomb with lying headers": lambda p: understated_bomb_zip(p, 2 * 1024 * 1024),
    "too many files": lambda p: write_zip(p, {f"{i}.txt": b"." for i in range(6)}),
    "not a zip": not_a_zip,
    "truncated zip": truncated_zip,
    "corrupt member": corrupt_member_zip,
    "empty zip": lambda p: write_zip(p, {}),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
async def test_hostile_zip_is_refused_and_leaves_nothing(
    make_datastore: DatastoreFactory,
    datastore_settings: ChimpSettings,
    tmp_path: Path,
    kind: str,
) -> None:
    store = await make_datastore(max_unpacked_bytes=512 * 1024, max_files=5)
    zip_path = HOSTILE[kind](tmp_path / "upload.zip")
    with pytest.raises(InvalidInputError):
        await store.upload_dataset_zip("hostile", zip_path)
    assert await store.list_datasets() == []
    assert await leftovers(datastore_settings) == []
    assert not (tmp_path / "evil.txt").exists()


# -- backend specifics ---------------------------------------------------------------------------


async def test_a_dataset_without_its_marker_is_not_listed(
    datastore: Datastore, datastore_settings: ChimpSettings, tmp_path: Path
) -> None:
    """What a crashed upload would leave: files but no marker. It must stay invisible."""
    if isinstance(datastore, LocalDatastore):
        (datastore.root / "half" / "train").mkdir(parents=True)
        (datastore.root / "half" / "train" / "1.png").write_bytes(b"x")
    else:
        async with s3_client(datastore_settings) as client:
            await client.put_object(
                Bucket=datastore_settings.datastore.s3.bucket, Key="half/train/1.png", Body=b"x"
            )
    assert await datastore.list_datasets() == []
    with pytest.raises(NotFoundError):
        await datastore.get_manifest("half")
    # Uploading under that name replaces the debris instead of merging with it.
    await datastore.upload_dataset_zip("half", write_zip(tmp_path / "d.zip", FILES))
    assert [e.path for e in (await datastore.get_manifest("half")).entries] == list(STORED)


def test_factory_picks_the_configured_backend(
    local_settings: ChimpSettings, tmp_path: Path
) -> None:
    assert isinstance(open_datastore(local_settings), LocalDatastore)
    s3 = make_settings(
        tmp_path, DatastoreConfig(backend="s3", s3=make_s3_config("http://127.0.0.1:1"))
    )
    assert isinstance(open_datastore(s3), S3Datastore)


async def test_local_backend_reports_an_unusable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the datastore folder should be")
    settings = make_settings(tmp_path, DatastoreConfig(backend="local", local_path=blocker))
    async with open_datastore(settings) as store:
        with pytest.raises(DependencyUnavailableError, match="not-a-folder"):
            await store.check()


async def test_local_concurrent_uploads_of_one_name_let_exactly_one_win(
    local_settings: ChimpSettings, tmp_path: Path
) -> None:
    zips = [write_zip(tmp_path / f"{i}.zip", FILES) for i in range(2)]
    async with open_datastore(local_settings) as store:
        results = await asyncio.gather(
            *(store.upload_dataset_zip("faces", z) for z in zips), return_exceptions=True
        )
        assert sorted(type(r).__name__ for r in results) == ["ConflictError", "DatasetInfo"]
        assert [info.name for info in await store.list_datasets()] == ["faces"]
    assert [p.name for p in local_settings.datastore_path().iterdir()] == ["faces"]


async def test_local_backend_sweeps_what_a_killed_process_left(
    local_settings: ChimpSettings,
) -> None:
    root = local_settings.datastore_path()
    for leftover in [".delete-abc", ".upload-old", ".upload-live"]:
        (root / leftover / "train").mkdir(parents=True)
        (root / leftover / "train" / "1.png").write_bytes(b"x")
    old = time.time() - 7 * 3600
    os.utime(root / ".upload-old", (old, old))
    async with open_datastore(local_settings):
        pass
    # A recent staging folder may belong to an upload still running in another process.
    assert sorted(p.name for p in root.iterdir()) == [".upload-live"]


async def test_s3_keys_live_under_the_prefix(s3_endpoint: str, tmp_path: Path) -> None:
    config = make_s3_config(s3_endpoint, prefix="/team/chimp/")
    settings = make_settings(tmp_path, DatastoreConfig(backend="s3", s3=config))
    async with open_datastore(settings) as store:
        await store.upload_dataset_zip("faces", write_zip(tmp_path / "d.zip", FILES))
        assert [info.name for info in await store.list_datasets()] == ["faces"]
        assert await bucket_keys(settings) == sorted(
            [f"team/chimp/faces/{path}" for path in STORED]
            + ["team/chimp/faces/.chimp-dataset.json"]
        )
        await store.delete_dataset("faces")
    assert await bucket_keys(settings) == []


async def test_s3_listings_follow_every_page(s3_settings: ChimpSettings, tmp_path: Path) -> None:
    limits = UnpackLimits(max_unpacked_bytes=1024 * 1024, max_files=100)
    # Two keys per page, so three datasets of four objects each span many pages.
    async with S3Datastore(s3_settings.datastore.s3, limits, page_size=2) as store:
        for name in ["one", "two", "three"]:
            await store.upload_dataset_zip(name, write_zip(tmp_path / f"{name}.zip", FILES))
        assert [info.name for info in await store.list_datasets()] == ["one", "three", "two"]
        assert [e.path for e in (await store.get_manifest("two")).entries] == list(STORED)
        assert files_under(await store.download_dataset("two", tmp_path / "out")) == STORED
        await store.delete_dataset("two")
        await store.delete_dataset("one")
        assert [info.name for info in await store.list_datasets()] == ["three"]


async def test_s3_upload_failing_midway_removes_what_it_wrote(
    s3_settings: ChimpSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_datastore(s3_settings) as store:
        assert isinstance(store, S3Datastore)
        real_upload = store._upload_file
        calls = 0

        async def flaky_upload(*args: Any) -> None:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise EndpointConnectionError(endpoint_url="http://s3.invalid")
            await real_upload(*args)

        monkeypatch.setattr(store, "_upload_file", flaky_upload)
        with pytest.raises(DependencyUnavailableError, match="S3"):
            await store.upload_dataset_zip("faces", write_zip(tmp_path / "d.zip", FILES))
        assert await store.list_datasets() == []
    assert await leftovers(s3_settings) == []


async def test_s3_server_down_is_a_dependency_error(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = make_settings(tmp_path, DatastoreConfig(backend="s3", s3=make_s3_config(endpoint)))
    store = open_datastore(settings)
    try:
        with pytest.raises(DependencyUnavailableError, match="S3") as caught:
            await store.check()
        assert endpoint in caught.value.message
    finally:
        await store.close()
    # Retrying would only slow the rest down; every operation must fail the same way.
    staging = tmp_path / "staging"
    limits = UnpackLimits(max_unpacked_bytes=1024 * 1024, max_files=100)
    store = S3Datastore(settings.datastore.s3, limits, staging_dir=staging, max_attempts=1)
    try:
        with pytest.raises(DependencyUnavailableError, match=endpoint):
            await store.open()
        with pytest.raises(DependencyUnavailableError, match=endpoint):
            await store.list_datasets()
        with pytest.raises(DependencyUnavailableError, match=endpoint):
            await store.get_manifest("faces")
        with pytest.raises(DependencyUnavailableError, match=endpoint):
            await store.upload_dataset_zip("faces", write_zip(tmp_path / "d.zip", FILES))
    finally:
        await store.close()
    assert not any(staging.glob("*"))


# -- datasets that grow a file at a time ---------------------------------------------------------


async def test_put_files_creates_then_grows_a_dataset(datastore: Datastore, tmp_path: Path) -> None:
    first = await datastore.put_files("feedback-ann", {"train/happy/a.png": b"one"})
    assert (first.name, first.files, first.size_bytes) == ("feedback-ann", 1, 3)
    grown = await datastore.put_files(
        "feedback-ann", {"train/sad/b.png": b"two!", "provenance/b.json": b"{}"}
    )
    assert (grown.files, grown.size_bytes) == (3, 9)
    assert grown.created_at == first.created_at
    assert await datastore.list_datasets() == [grown]
    out = await datastore.download_dataset("feedback-ann", tmp_path / "out")
    assert files_under(out) == {
        "provenance/b.json": b"{}",
        "train/happy/a.png": b"one",
        "train/sad/b.png": b"two!",
    }


@pytest.mark.parametrize("path", ["../x.png", "/abs.png", ".chimp-dataset.json", "a/.part-1"])
async def test_put_files_refuses_paths_outside_or_reserved(datastore: Datastore, path: str) -> None:
    with pytest.raises(InvalidInputError):
        await datastore.put_files("feedback-ann", {path: b"x"})
    assert await datastore.list_datasets() == []


async def test_download_files_fetches_only_the_named_files(
    datastore: Datastore, tmp_path: Path
) -> None:
    await datastore.upload_dataset_zip("faces", write_zip(tmp_path / "d.zip", FILES))
    wanted = sorted(STORED)[:1]
    out = await datastore.download_files("faces", wanted, tmp_path / "some")
    assert files_under(out) == {wanted[0]: STORED[wanted[0]]}
    with pytest.raises(NotFoundError):
        await datastore.download_files("faces", ["no/such.png"], tmp_path / "none")
