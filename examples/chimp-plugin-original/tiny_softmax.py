"""A plugin written to the original CHIMP contract; only its first import line names the module.

It trains a softmax regression (one linear layer, PyTorch) on ``train/<label>/*.png|jpg``
images shrunk to 24x24 gray, and stores the PyTorch module: CHIMP exports it to ONNX and
registers it with the labels and input spec, so predict-image and v2 infer can use it.
"""

import os
from typing import Optional

import cv2
import numpy as np
import torch
from torch import nn

from chimp.training.plugins.legacy import BasePlugin, PluginInfo

SIZE = 24
SUFFIXES = (".png", ".jpg", ".jpeg")


class TinySoftmaxPlugin(BasePlugin):
    def init(self) -> PluginInfo:
        self._info = PluginInfo(
            name="tiny_softmax",
            version="1.0.0",
            description="Softmax regression on 24x24 gray images (original plugin contract).",
            arguments={
                "epochs": {
                    "name": "epochs",
                    "type": "int",
                    "description": "Passes over the training images.",
                    "optional": False,
                },
                "learning_rate": {
                    "name": "learning_rate",
                    "type": "float",
                    "description": "Adam learning rate.",
                    "optional": False,
                },
                "model_name": {
                    "name": "model_name",
                    "type": "Optional[str]",
                    "description": "Registered model name (default: tiny-softmax).",
                    "optional": True,
                },
            },
            datasets={
                "train": {
                    "name": "train",
                    "description": "A folder dataset: train/<label>/*.png",
                    "optional": False,
                }
            },
            model_return_type="onnx",
        )
        return self._info

    def run(self, *args, **kwargs) -> Optional[str]:
        temp_dir = kwargs["temp_dir"]
        model_name = kwargs["model_name"] or "tiny-softmax"
        root = os.path.join(kwargs["datasets"]["train"], "train")
        labels = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        images, targets = [], []
        for index, label in enumerate(labels):
            for file in sorted(os.listdir(os.path.join(root, label))):
                if file.lower().endswith(SUFFIXES):
                    gray = cv2.imread(os.path.join(root, label, file), cv2.IMREAD_GRAYSCALE)
                    images.append(cv2.resize(gray, (SIZE, SIZE), interpolation=cv2.INTER_AREA))
                    targets.append(index)
        x = torch.from_numpy(np.stack(images).astype(np.float32)[:, None] / 255.0)
        y = torch.tensor(targets)

        previous = self._connector.get_production_model(
            os.path.join(temp_dir, "previous"), model_name, kwargs["run_name"]
        )
        model = nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, len(labels)))
        optimiser = torch.optim.Adam(model.parameters(), lr=kwargs["learning_rate"])
        for _ in range(kwargs["epochs"]):
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimiser.step()
        accuracy = float((model(x).argmax(dim=1) == y).float().mean())

        self._connector.store_model(
            kwargs["run_name"],
            model,
            "pytorch",
            model_name=model_name,
            hyperparameters={"epochs": kwargs["epochs"], "learning_rate": kwargs["learning_rate"]},
            metrics={"train_accuracy": accuracy, "loss": float(loss)},
            tags={"warm_start": str(previous is not None)},
            # CHIMP's addition: what predict-image needs (labels, input spec).
            metadata={
                "task": "image-classification",
                "labels": labels,
                "input": {"height": SIZE, "width": SIZE, "channels": 1, "color": "gray"},
            },
        )
        return f"trained on {len(targets)} images, train accuracy {accuracy:.2f}"
