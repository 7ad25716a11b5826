"""Evaluation reports drawn with OpenCV: confusion matrix, training curves, per-class metrics."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
FONT = cv2.FONT_HERSHEY_SIMPLEX
GRID = (232, 232, 232)
AXIS = (150, 150, 150)
# BGR colour and legend caption of each split's curve, the same in both panels.
CURVE_STYLES = {"train": ((200, 110, 30), "train"), "val": ((20, 120, 230), "held-out")}


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


def _nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 up to at least ``top``."""
    raw = max(top, 1e-9) / count
    magnitude = 10 ** np.floor(np.log10(raw))
    step = float(next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw))
    return [round(i * step, 10) for i in range(count + 2) if i * step <= top + step * 0.999]


def _text(image: npt.NDArray[np.uint8], text: str, at: tuple[int, int], scale: float = 0.5,
          color: tuple[int, int, int] = BLACK, anchor: str = "left") -> None:  # fmt: skip
    (w, h), _ = cv2.getTextSize(text, FONT, scale, 1)
    x = at[0] - (w if anchor == "right" else w // 2 if anchor == "center" else 0)
    cv2.putText(image, text, (x, at[1] + h // 2), FONT, scale, color, 1, cv2.LINE_AA)


def _panel(
    image: npt.NDArray[np.uint8],
    origin: tuple[int, int],
    size: tuple[int, int],
    name: str,
    series: dict[str, list[float]],
    top: float,
) -> None:
    """One metric (``loss`` or ``accuracy``) per epoch: train and validation, axes labelled."""
    x0, y0 = origin
    w, h = size
    epochs = max(len(v) for v in series.values())
    ticks = _nice_ticks(top)
    top = ticks[-1]

    def px(epoch: int) -> int:  # epoch counts from 1
        return x0 + (w // 2 if epochs == 1 else int(w * (epoch - 1) / (epochs - 1)))

    def py(value: float) -> int:
        return y0 + h - int(h * min(max(value, 0.0), top) / top)

    for value in ticks:
        cv2.line(image, (x0, py(value)), (x0 + w, py(value)), GRID, 1)
        _text(image, f"{value:g}", (x0 - 8, py(value)), 0.42, anchor="right")
    step = max(1, -(-epochs // 10))
    for epoch in range(1, epochs + 1, step):
        cv2.line(image, (px(epoch), y0 + h), (px(epoch), y0 + h + 5), BLACK, 1)
        _text(image, str(epoch), (px(epoch), y0 + h + 16), 0.42, anchor="center")
    cv2.rectangle(image, (x0, y0), (x0 + w, y0 + h), AXIS, 1)
    _text(image, "epoch", (x0 + w // 2, y0 + h + 38), 0.5, anchor="center")
    label = np.full((24, h, 3), 255, np.uint8)
    _text(label, name, (h // 2, 10), 0.5, anchor="center")
    image[y0 : y0 + h, x0 - 62 : x0 - 38] = np.rot90(label)
    _text(image, name, (x0, y0 - 30), 0.6)
    legend_x = x0 + 100
    for split, values in series.items():
        color, caption = CURVE_STYLES[split]
        points = np.array([(px(i + 1), py(v)) for i, v in enumerate(values)], dtype=np.int32)
        cv2.polylines(image, [points], False, color, 2, cv2.LINE_AA)
        for point in points:
            cv2.circle(image, (int(point[0]), int(point[1])), 3, color, -1, cv2.LINE_AA)
        cv2.line(image, (legend_x, y0 - 30), (legend_x + 24, y0 - 30), color, 3)
        _text(image, f"{caption} (last {values[-1]:.3g})", (legend_x + 30, y0 - 30), 0.42)
        legend_x += 185


def draw_curves(history: dict[str, list[float]], path: Path, title: str) -> Path:
    """Loss and accuracy per epoch in two panels side by side, train and validation in each.

    Each panel has its own y axis (loss from 0, accuracy from 0 to 1), epochs on the x axis
    and the legend above the plot, so nothing hides a line.
    """
    width, height = 1200, 480
    image = np.full((height, width, 3), 255, np.uint8)
    _text(image, f"{title}: training curves", (20, 20), 0.6)
    panel_w, panel_h, top = width // 2 - 120, height - 170, 90
    for index, metric in enumerate(("loss", "accuracy")):
        series = {
            split: values for split in CURVE_STYLES if (values := history.get(f"{split}_{metric}"))
        }
        if not series:
            continue
        ceiling = 1.0 if metric == "accuracy" else max(max(v) for v in series.values())
        _panel(image, (90 + index * width // 2, top), (panel_w, panel_h), metric, series, ceiling)
    cv2.imwrite(str(path), image)
    return path
