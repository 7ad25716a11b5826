"""Reading a dataset folder reports progress a person can watch move."""

from __future__ import annotations

import re
from pathlib import Path

from chimp.shared.schemas.models import InputSpec
from chimp.training.plugins.builtin.image_data import load_folders
from tests.training.synthetic import write_folder_dataset


def test_the_reading_counter_moves_and_reaches_the_total(tmp_path: Path) -> None:
    root = write_folder_dataset(tmp_path / "faces", per_label=20)  # 7 labels: 140 images
    seen: list[tuple[float, str]] = []
    data = load_folders(
        root,
        InputSpec(height=48, width=48, channels=1, color="gray"),
        labels=None,
        detector=None,
        progress=lambda fraction, message: seen.append((fraction, message)),
    )
    assert len(data.train) == 140
    counts = [int(m.group(1)) for _, text in seen if (m := re.search(r"\((\d+)/140\)", text))]
    assert counts[0] == 0
    assert counts[-1] == 140
    assert len(set(counts)) >= 10, counts  # it moves while reading, not only at the ends
    assert counts == sorted(counts)
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
