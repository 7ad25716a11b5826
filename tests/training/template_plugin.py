"""A fast, torch-free classifier plugin for tests of the continual loop.

It "trains" a nearest-class-mean classifier on the images it does not hold out (the same
content-hash split as the built-in plugins) and registers it as ONNX: logits are
``2 x . m_k - |m_k|^2``, so the arg-max is the nearest class mean. ``swap`` replaces that many
class means with the next class's, so a test can ask for a worse model. Copied into a plugin
folder by the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from chimp.shared.schemas.models import InputSpec, ModelMetadata
from chimp.shared.schemas.plugins import PluginArgument, PluginDataset, PluginInfo
from chimp.training.plugins.base import BasePlugin, PluginContext
from chimp.training.plugins.builtin.image_data import hash_split, load_folders
from chimp.training.splits import DATASET_KEY_TAG, HOLDOUT_TAG, TEST_SPLIT, holdout_tag

SPEC = InputSpec(height=24, width=24, channels=1, color="gray")


def template_onnx(means: np.ndarray, path: str) -> None:
    features = means.shape[1]
    weights = (2.0 * means.T).astype(np.float32)
    bias = (-(means**2).sum(axis=1)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "weights"], ["scores"]),
            helper.make_node("Add", ["scores", "bias"], ["logits"]),
        ],
        "template",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 24, 24])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", means.shape[0]])],
        initializer=[
            numpy_helper.from_array(weights.reshape(features, -1), "weights"),
            numpy_helper.from_array(bias, "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


class TemplatePlugin(BasePlugin):
    info = PluginInfo(
        name="template",
        version="1.0.0",
        description="Nearest class mean on 24x24 gray images (tests).",
        arguments=[
            PluginArgument(name="model_name", type="str", description="Registered model."),
            PluginArgument(name="swap", type="int", optional=True, default=0,
                           description="Class means replaced by the next class's."),
            PluginArgument(name="validation_split", type="float", optional=True, default=0.3,
                           description="Held-out share of train."),
        ],
        datasets=[PluginDataset(name="train", description="train/<label>/*.png")],
        model_return_type="onnx",
    )  # fmt: skip

    def run(self, context: PluginContext) -> Mapping[str, Any]:
        args = context.arguments
        data = load_folders(
            context.datasets["train"],
            SPEC,
            labels=None,
            detector=None,
            progress=lambda _f, _m: None,
        )
        if data.test is not None:
            train, held, holdout = data.train, data.test, TEST_SPLIT
        else:
            fraction = float(args["validation_split"])
            train, split_held = hash_split(data.train, fraction)
            assert split_held is not None
            held, holdout = split_held, holdout_tag(fraction)
        flat = train.images.reshape(len(train), -1)
        means = np.stack([flat[train.targets == k].mean(axis=0) for k in range(len(data.labels))])
        for k in range(int(args["swap"] or 0)):
            means[k] = means[(k + 1) % len(means)]
        path = context.tmp_dir / "model.onnx"
        template_onnx(means, str(path))
        logits = held.images.reshape(len(held), -1) @ (2 * means.T) - (means**2).sum(axis=1)
        accuracy = float(np.mean(logits.argmax(axis=1) == held.targets))
        context.connector.store_model(
            args["model_name"],
            path,
            ModelMetadata(
                task="image-classification",
                labels=data.labels,
                input=SPEC,
                dataset=context.dataset_names.get("train"),
                plugin=self.info.name,
            ),
            metrics={"test_accuracy": accuracy},
            tags={DATASET_KEY_TAG: "train", HOLDOUT_TAG: holdout},
        )
        return {"test_accuracy": accuracy, "held_out": len(held)}
