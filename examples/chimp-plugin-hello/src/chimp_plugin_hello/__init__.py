"""A mean-image ("template") classifier as a CHIMP plugin.

Each class's template is the average of its training images; a picture's logits are the
negative squared distances to every template. Small, dependency-light (numpy + onnx) and a
real model that serving can load.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from chimp.shared.preprocessing import preprocess_batch
from chimp.shared.schemas.models import InputSpec, ModelMetadata
from chimp.shared.schemas.plugins import PluginArgument, PluginDataset, PluginInfo
from chimp.training.plugins import BasePlugin, PluginContext

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


class HelloPlugin(BasePlugin):
    info = PluginInfo(
        name="hello",
        version="0.1.0",
        description="Nearest-mean-image classifier over train/<class>/ folders, stored as ONNX.",
        arguments=[
            PluginArgument(name="model_name", type="str", description="Registered model name."),
            PluginArgument(
                name="size",
                type="int",
                optional=True,
                default=32,
                choices=[16, 32, 48],
                description="Side of the gray input image.",
            ),
        ],
        datasets=[PluginDataset(name="train", description="train/<class>/*.png|jpg folders.")],
        model_return_type="onnx",
    )

    def run(self, context: PluginContext) -> Mapping[str, Any]:
        size = context.arguments["size"] or 32
        spec = InputSpec(height=size, width=size, channels=1, color="gray")
        root = context.datasets["train"]
        folders = sorted(p for p in (root / "train").iterdir() if p.is_dir())
        if not folders:
            raise ValueError("expected train/<class>/ folders")
        labels, templates = [], []
        for index, folder in enumerate(folders):
            context.check_cancelled()  # cooperative cancellation between steps
            files = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
            images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in files]
            batch = preprocess_batch([i for i in images if i is not None], spec)
            if len(batch) == 0:
                continue
            labels.append(folder.name)
            templates.append(batch.mean(axis=0).reshape(-1))
            context.report_progress((index + 1) / len(folders), f"class {folder.name}")
        onnx_path = write_template_onnx(context.tmp_dir / "model.onnx", np.stack(templates), spec)
        context.connector.store_model(
            context.arguments["model_name"],
            onnx_path,
            ModelMetadata(
                task="image-classification",
                labels=labels,
                input=spec,
                dataset=context.dataset_names.get("train"),
                plugin=self.info.name,
            ),
            params={"size": size},
            metrics={"classes": float(len(labels))},
        )
        return {"labels": labels}


def write_template_onnx(path: Path, templates: np.ndarray, spec: InputSpec) -> Path:
    """logits = 2 x.T - |T|^2 (the -|x|^2 term is the same for every class, so dropped)."""
    weights = (2.0 * templates.T).astype(np.float32)  # (features, classes)
    bias = (-(templates**2).sum(axis=1)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", [spec.input_name], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "weights"], ["scores"]),
            helper.make_node("Add", ["scores", "bias"], [spec.output_name]),
        ],
        "hello-templates",
        [helper.make_tensor_value_info(
            spec.input_name, TensorProto.FLOAT, ["batch", 1, spec.height, spec.width]
        )],
        [helper.make_tensor_value_info(
            spec.output_name, TensorProto.FLOAT, ["batch", len(bias)]
        )],
        initializer=[numpy_helper.from_array(weights, "weights"),
                     numpy_helper.from_array(bias, "bias")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
