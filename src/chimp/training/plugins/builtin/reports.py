"""Evaluation reports drawn with OpenCV: confusion matrix, training curves, per-class metrics."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
FONT = cv2.FONT_HERSHEY_SIMPLEX
CURVE_COLORS = [(200, 80, 30), (40, 140, 40), (30, 30, 200), (150, 50, 150)]


def confusion_matrix(
    targets: npt.NDArray[np.int64], predictions: npt.NDArray[np.int64], classes: int
) -> npt.NDArray[np.int64]:
    """``matrix[true, predicted]`` counts."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (targets, predictions), 1)
    return matrix


def per_class_metrics(matrix: npt.NDArray[np.int64], labels: list[str]) -> dict[str, float]:
    """Precision, recall, F1 and support per label, plus macro F1 over labels that occur."""
    metrics: dict[str, float] = {}
    f1s = []
    for index, label in enumerate(labels):
        tp = float(matrix[index, index])
        predicted = float(matrix[:, index].sum())
        actual = float(matrix[index, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        metrics |= {
            f"precision_{label}": precision,
            f"recall_{label}": recall,
            f"f1_{label}": f1,
            f"support_{label}": actual,
        }
        if actual:
            f1s.append(f1)
    metrics["macro_f1"] = float(np.mean(f1s)) if f1s else 0.0
    return metrics


def draw_confusion_matrix(matrix: npt.NDArray[np.int64], labels: list[str], path: Path) -> Path:
    """A labelled heat map: rows are true labels, columns predictions, cells row-normalised."""
    cell, margin = 64, 110
    size = len(labels)
    image = np.full((margin + size * cell + 20, margin + size * cell + 20, 3), 255, np.uint8)
    rows = matrix.sum(axis=1, keepdims=True).clip(min=1)
    share = matrix / rows
    for r in range(size):
        for c in range(size):
            shade = int(255 - 200 * share[r, c])
            x0, y0 = margin + c * cell, margin + r * cell
            cv2.rectangle(image, (x0, y0), (x0 + cell, y0 + cell), (255, shade, shade), -1)
            cv2.rectangle(image, (x0, y0), (x0 + cell, y0 + cell), (200, 200, 200), 1)
            color = WHITE if share[r, c] > 0.6 else BLACK
            cv2.putText(image, str(matrix[r, c]), (x0 + 8, y0 + 38), FONT, 0.5, color, 1)
    for i, label in enumerate(labels):
        cv2.putText(image, label[:10], (5, margin + i * cell + 38), FONT, 0.45, BLACK, 1)
        column = np.full((cell, margin - 10, 3), 255, np.uint8)
        cv2.putText(column, label[:10], (5, 38), FONT, 0.45, BLACK, 1)
        x0 = margin + i * cell
        image[0 : margin - 10, x0 : x0 + cell] = np.rot90(column)[: margin - 10, :cell]
    cv2.putText(image, "true \\ predicted", (5, 20), FONT, 0.4, BLACK, 1)
    cv2.imwrite(str(path), image)
    return path


def draw_curves(history: dict[str, list[float]], path: Path, title: str) -> Path:
    """Line plot of per-epoch metrics (each scaled to its own max so losses and accuracies fit)."""
    width, height, pad = 640, 360, 40
    image = np.full((height, width, 3), 255, np.uint8)
    cv2.rectangle(image, (pad, pad), (width - pad, height - pad), (180, 180, 180), 1)
    cv2.putText(image, title, (pad, 25), FONT, 0.55, BLACK, 1)
    for index, (name, values) in enumerate(sorted(history.items())):
        color = CURVE_COLORS[index % len(CURVE_COLORS)]
        top = max(max(values), 1e-9)
        span = max(1, len(values) - 1)
        points = np.array(
            [
                (
                    pad + int((width - 2 * pad) * i / span),
                    height - pad - int((height - 2 * pad) * v / top),
                )
                for i, v in enumerate(values)
            ],
            dtype=np.int32,
        )
        cv2.polylines(image, [points], False, color, 2)
        label = f"{name} (max {top:.3g})"
        cv2.putText(image, label, (pad + 5, pad + 18 + 18 * index), FONT, 0.45, color, 1)
    cv2.imwrite(str(path), image)
    return path
