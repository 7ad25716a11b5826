"""The training-curves picture keeps loss and accuracy apart, on axes that read as epochs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from chimp.training.plugins.builtin.reports import CURVE_STYLES, draw_curves

HISTORY = {
    "train_loss": [1.9, 1.5, 1.2, 1.0, 0.9],
    "val_loss": [1.95, 1.7, 1.5, 1.45, 1.4],
    "train_accuracy": [0.2, 0.35, 0.5, 0.6, 0.66],
    "val_accuracy": [0.18, 0.3, 0.4, 0.44, 0.46],
}


def _trend(panel: np.ndarray, bgr: tuple[int, int, int]) -> float:
    """Mean image row of a colour's pixels in the right third minus the left third of a panel
    (positive: the curve goes down the picture, i.e. its value falls)."""
    mask = np.all(np.abs(panel.astype(int) - np.array(bgr)) <= 10, axis=2)
    rows, cols = np.nonzero(mask)
    third = panel.shape[1] // 3
    early, late = rows[cols < third], rows[cols > 2 * third]
    assert len(early), "curve missing on the left"
    assert len(late), "curve missing on the right"
    return float(late.mean() - early.mean())


def test_loss_and_accuracy_are_drawn_in_separate_panels(tmp_path: Path) -> None:
    path = draw_curves(HISTORY, tmp_path / "curves.png", "emotion-recognition")
    image = cv2.imread(str(path))
    assert image is not None
    width = image.shape[1]
    assert width >= 900  # two readable panels side by side, not a thumbnail
    loss_panel, accuracy_panel = image[:, : width // 2], image[:, width // 2 :]
    for split, (color, _) in CURVE_STYLES.items():
        # Falling loss on the left, rising accuracy on the right, for train and validation.
        assert _trend(loss_panel, color) > 20, split
        assert _trend(accuracy_panel, color) < -20, split


def test_each_epoch_is_a_point_on_the_x_axis(tmp_path: Path) -> None:
    short = {key: values[:2] for key, values in HISTORY.items()}
    long = {key: values * 8 for key, values in HISTORY.items()}  # 40 epochs
    for history in (short, long):
        assert draw_curves(history, tmp_path / "c.png", "m").exists()
    single = {"train_loss": [1.0], "train_accuracy": [0.5]}  # one epoch must not divide by 0
    assert draw_curves(single, tmp_path / "one.png", "m").exists()
