"""What a personal model is trained on: everything the person gave, plus a replay sample.

A calibration task (a task with a user id) does not train on its one named dataset alone. The
worker assembles one folder in the training layout::

    train/<label>/u-<dataset>-<file>     every calibration frame and correction of the user
    train/<label>/replay-<file>          ~``replay_images`` images of production's own dataset

The user's images keep their content, so the pipeline's content-hash hold-out sets the same
frames aside in every run: the personal gate compares two personal models on frames neither
trained on. Replay images (shared data the production model learnt from) limit forgetting.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chimp.shared.datastore import Datastore
from chimp.shared.errors import ChimpError, NotFoundError
from chimp.shared.registry import PRODUCTION, ModelRegistry
from chimp.shared.schemas.models import ModelVersionInfo
from chimp.training.config import TrainingSettings
from chimp.training.feedback import feedback_dataset, is_calibration_of, owner_of
from chimp.training.plugins.builtin.image_data import IMAGE_SUFFIXES, label_folders

logger = logging.getLogger(__name__)

USER_PREFIX = "u-"
REPLAY_PREFIX = "replay-"


@dataclass
class PersonalData:
    root: Path
    datasets: list[str]  # the user's datasets that went in
    user_images: int = 0
    replay_images: int = 0
    replay_source: str | None = None


def label_files(root: Path) -> list[tuple[str, Path]]:
    """``(label, file)`` of every image under ``train/<label>/`` (or top-level ``<label>/``)."""
    base = root / "train" if (root / "train").is_dir() else root
    return [(label, path) for label, paths in label_folders(base).items() for path in paths]


def _place(source: Path, train: Path, prefix: str, labels: set[str]) -> int:
    """Copy the images of ``source`` into ``train/<label>/`` (file work: run it in a thread)."""
    placed = 0
    for label, path in label_files(source):
        if labels and label not in labels:
            continue
        target = train / label / f"{prefix}{path.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # the same file name twice in one dataset's subfolders
            target = target.with_name(f"{target.stem}-{placed}{target.suffix}")
        shutil.copyfile(path, target)
        placed += 1
    return placed


async def user_datasets(datastore: Datastore, user_id: str) -> list[str]:
    """The user's stored datasets: calibrations (oldest first) and corrections."""
    names = [d.name for d in await datastore.list_datasets()]
    mine = sorted(n for n in names if is_calibration_of(n, user_id))
    if feedback_dataset(user_id) in names:
        mine.append(feedback_dataset(user_id))
    return mine


def replay_paths(entries: list[str], labels: list[str], count: int, seed: int) -> list[str]:
    """A random sample of ``count`` training images of a dataset, from its manifest paths."""
    known = set(labels)
    candidates = []
    for path in entries:
        parts = path.split("/")
        if parts[0] == "train" and len(parts) >= 3:
            parts = parts[1:]
        elif parts[0] in ("test", "val", "validation"):
            continue
        if len(parts) < 2 or parts[0].lower() not in known:
            continue
        if Path(path).suffix.lower() in IMAGE_SUFFIXES:
            candidates.append(path)
    rng = random.Random(seed)
    return sorted(rng.sample(candidates, min(count, len(candidates))))


async def assemble(
    datastore: Datastore,
    *,
    user_id: str,
    requested: list[str],
    production: ModelVersionInfo | None,
    replay_images: int,
    labels: list[str],
    work: Path,
    seed: int = 0,
) -> PersonalData:
    """Download the user's data (and ``requested`` datasets) and a replay sample into one folder."""
    names = list(dict.fromkeys([*requested, *await user_datasets(datastore, user_id)]))
    root = work / "personal"
    train = root / "train"
    train.mkdir(parents=True, exist_ok=True)
    wanted = set(labels)
    data = PersonalData(root=root, datasets=[])
    for name in names:
        folder = work / "sources" / name
        try:
            await datastore.download_dataset(name, folder)
        except NotFoundError:
            continue  # deleted meanwhile
        data.datasets.append(name)
        prefix = f"{USER_PREFIX}{name}-"
        data.user_images += await asyncio.to_thread(_place, folder, train, prefix, wanted)
    source = production.metadata.dataset if production and production.metadata else None
    if replay_images > 0 and source and source not in names:
        try:
            manifest = await datastore.get_manifest(source)
            paths = replay_paths([e.path for e in manifest.entries], labels, replay_images, seed)
            if paths:
                folder = await datastore.download_files(source, paths, work / "replay")
                data.replay_images = await asyncio.to_thread(
                    _place, folder, train, REPLAY_PREFIX, wanted
                )
                data.replay_source = source
        except ChimpError as exc:
            logger.warning("no replay images from %s: %s", source, exc.message)
    logger.info(
        "personal data for %s: %d own images from %s, %d replay images from %s",
        user_id,
        data.user_images,
        ", ".join(data.datasets) or "nothing",
        data.replay_images,
        data.replay_source or "nowhere",
    )
    return data


def user_image(path: Path) -> bool:
    """Whether a file of an assembled folder is the user's own (not a replay image)."""
    return path.name.startswith(USER_PREFIX)


def _production(registry: ModelRegistry, model_name: str) -> ModelVersionInfo | None:
    try:
        return registry.resolve(model_name, alias=PRODUCTION)
    except NotFoundError:
        return None


async def personal_datasets(
    settings: TrainingSettings,
    datastore: Datastore,
    registry: ModelRegistry,
    *,
    user_id: str,
    arguments: dict[str, Any],
    datasets: dict[str, str],
    work: Path,
) -> tuple[dict[str, Path], PersonalData]:
    """The local datasets of a calibration task: its first dataset key gets the assembly."""
    model_name = str(arguments.get("model_name") or settings.model_name)
    production = await asyncio.to_thread(_production, registry, model_name)
    labels = list(production.metadata.labels) if production and production.metadata else []
    data = await assemble(
        datastore,
        user_id=user_id,
        requested=list(datasets.values()),
        production=production,
        replay_images=settings.training.replay_images,
        labels=labels,
        work=work,
        seed=int(arguments.get("seed") or 0),
    )
    key = next(iter(datasets), "train")
    return {key: data.root}, data


async def add_corrections(datastore: Datastore, dataset_root: Path, work: Path) -> int:
    """Copy every user's corrections into the train folders of ``dataset_root``."""
    base = dataset_root / "train" if (dataset_root / "train").is_dir() else dataset_root
    labels = {p.name for p in await asyncio.to_thread(list, base.iterdir()) if p.is_dir()}
    added = 0
    for info in await datastore.list_datasets():
        if owner_of(info.name) is None:
            continue
        folder = work / info.name
        try:
            await datastore.download_dataset(info.name, folder)
        except NotFoundError:
            continue
        added += await asyncio.to_thread(_place, folder, base, f"{info.name}-", labels)
    logger.info("added %d corrections to %s", added, dataset_root)
    return added
