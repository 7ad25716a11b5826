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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chimp.shared.datastore import Datastore
from chimp.shared.errors import ChimpError, NotFoundError
from chimp.shared.registry import PRODUCTION, ModelRegistry
from chimp.shared.schemas.models import ModelVersionInfo
from chimp.training.config import TrainingSettings
from chimp.training.feedback import feedback_dataset, is_calibration_of, owner_of
from chimp.training.plugins.builtin.image_data import IMAGE_SUFFIXES

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
    labels: dict[str, int] = field(default_factory=dict)


def label_files(root: Path) -> list[tuple[str, Path]]:
    """``(label, file)`` of every image under ``train/<label>/`` (or top-level ``<label>/``)."""
    base = root / "train" if (root / "train").is_dir() else root
    found = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        if folder.name.startswith((".", "__")):
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                found.append((folder.name.strip().lower(), path))
    return found


def _place(files: list[tuple[str, Path]], train: Path, prefix: str, labels: set[str]) -> int:
    placed = 0
    for label, path in files:
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
        data.user_images += _place(label_files(folder), train, f"{USER_PREFIX}{name}-", wanted)
    source = production.metadata.dataset if production and production.metadata else None
    if replay_images > 0 and source and source not in names:
        try:
            manifest = await datastore.get_manifest(source)
            paths = replay_paths([e.path for e in manifest.entries], labels, replay_images, seed)
            if paths:
                folder = await datastore.download_files(source, paths, work / "replay")
                data.replay_images = _place(label_files(folder), train, REPLAY_PREFIX, wanted)
                data.replay_source = source
        except ChimpError as exc:
            logger.warning("no replay images from %s: %s", source, exc.message)
    for label, _ in label_files(root):
        data.labels[label] = data.labels.get(label, 0) + 1
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


def _production(tracking_uri: str, experiment: str, model_name: str) -> ModelVersionInfo | None:
    registry = ModelRegistry(tracking_uri, experiment=experiment)
    try:
        return registry.resolve(model_name, alias=PRODUCTION)
    except NotFoundError:
        return None


async def personal_datasets(
    settings: TrainingSettings,
    datastore: Datastore,
    *,
    user_id: str,
    arguments: dict[str, Any],
    datasets: dict[str, str],
    work: Path,
) -> tuple[dict[str, Path], PersonalData]:
    """The local datasets of a calibration task: its first dataset key gets the assembly."""
    model_name = str(arguments.get("model_name") or settings.model_name)
    production = await asyncio.to_thread(
        _production, settings.mlflow.tracking_uri, settings.mlflow.experiment, model_name
    )
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
    labels = {p.name for p in base.iterdir() if p.is_dir()}
    added = 0
    for info in await datastore.list_datasets():
        if owner_of(info.name) is None:
            continue
        folder = work / info.name
        try:
            await datastore.download_dataset(info.name, folder)
        except NotFoundError:
            continue
        added += _place(label_files(folder), base, f"{info.name}-", labels)
    logger.info("added %d corrections to %s", added, dataset_root)
    return added
