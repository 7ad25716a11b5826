"""The original CHIMP plugin contract, run unchanged but for one import line.

A plugin written for the original system::

    from chimp.training.plugins.legacy import BasePlugin, PluginInfo

    class Plugin(BasePlugin):
        def init(self) -> PluginInfo:
            self._info = PluginInfo(
                name="my_plugin", version="1.0", description="...",
                arguments={"epochs": {"name": "epochs", "type": "int",
                                      "description": "...", "optional": False}},
                datasets={"train": {"name": "train", "description": "...", "optional": False}},
                model_return_type="onnx",
            )
            return self._info

        def run(self, *args, **kwargs) -> Optional[str]:
            kwargs["temp_dir"], kwargs["run_name"], kwargs["datasets"], kwargs["epochs"]
            self._connector.store_model(experiment_name, model, "onnx", ...)

is discovered like a native plugin (plugin folder, ``chimp.plugins`` entry points) and wrapped
by :func:`adapt` into a native :class:`chimp.training.plugins.base.BasePlugin`: its arguments
become typed :class:`chimp.shared.schemas.plugins.PluginArgument`\\ s (so the API validates them
and lists a JSON Schema), and ``run`` receives its keywords converted to their declared types.
"""

from __future__ import annotations

import inspect
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeGuard

from pydantic import BaseModel, Field, field_validator

from chimp.shared.schemas.models import ModelMetadata
from chimp.shared.schemas.plugins import PluginArgument as NativeArgument
from chimp.shared.schemas.plugins import PluginDataset as NativeDataset
from chimp.shared.schemas.plugins import PluginInfo as NativeInfo
from chimp.training.plugins import base

__all__ = ["BasePlugin", "LegacyPluginError", "PluginArgument", "PluginDataset", "PluginInfo"]

SUPPORTED_TYPES = ("str", "int", "float", "bool")
_OPTIONAL = (
    re.compile(r"^(?:typing\.)?Optional\[(.+)\]$"),
    re.compile(r"^(?:typing\.)?Union\[(.+),\s*None\]$"),
    re.compile(r"^(.+?)\s*\|\s*None$"),
    re.compile(r"^None\s*\|\s*(.+)$"),
)
ONNX_EXPORT_OPSET = 17
# Keywords run() always receives; no argument may use these names.
RESERVED = ("temp_dir", "run_name", "datasets")


class LegacyPluginError(Exception):
    """An original-contract plugin that cannot be adapted or used as written."""


class PluginArgument(BaseModel):
    name: str = ""
    type: Any = "str"
    description: str = ""
    optional: bool = False


class PluginDataset(BaseModel):
    name: str = ""
    description: str = ""
    optional: bool = False


class PluginInfo(BaseModel):
    """The original description: ``arguments`` and ``datasets`` are dictionaries keyed by name."""

    name: str
    version: str = "0.0.0"
    description: str = ""
    arguments: dict[str, PluginArgument] = Field(default_factory=dict)
    datasets: dict[str, PluginDataset] = Field(default_factory=dict)
    model_return_type: str | None = None

    @field_validator("arguments", "datasets", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


def argument_type(hint: Any) -> tuple[str, bool]:
    """``(type name, optional)`` for a type hint written as a string (``"Optional[int]"``) or a
    type (``int``); only what CHIMP can validate and a form can ask for is accepted."""
    if isinstance(hint, type):
        hint = hint.__name__
    text = str(hint).strip().replace("builtins.", "")
    optional = False
    for pattern in _OPTIONAL:
        match = pattern.match(text)
        if match:
            text, optional = match.group(1).strip(), True
            break
    if text not in SUPPORTED_TYPES:
        raise LegacyPluginError(
            f"type {hint!r} is not supported: use one of {', '.join(SUPPORTED_TYPES)} "
            "(optionally Optional[...])"
        )
    return text, optional


def native_info(info: PluginInfo) -> NativeInfo:
    """The typed description CHIMP validates requests against."""
    arguments = []
    for key, arg in info.arguments.items():
        if (arg.name or key) in RESERVED:
            raise LegacyPluginError(
                f"plugin {info.name!r} argument {key!r}: the name is taken by run()'s own "
                f"keywords ({', '.join(RESERVED)})"
            )
        try:
            kind, hinted_optional = argument_type(arg.type)
        except LegacyPluginError as exc:
            raise LegacyPluginError(f"plugin {info.name!r} argument {key!r}: {exc}") from None
        arguments.append(
            NativeArgument(
                name=arg.name or key,
                type=kind,
                description=arg.description,
                optional=arg.optional or hinted_optional,
            )
        )
    datasets = [
        NativeDataset(name=ds.name or key, description=ds.description, optional=ds.optional)
        for key, ds in info.datasets.items()
    ]
    return NativeInfo(
        name=info.name,
        version=info.version,
        description=info.description,
        arguments=arguments,
        datasets=datasets,
        model_return_type=info.model_return_type,
    )


class Connector:
    """``self._connector`` of an original plugin, on top of the task's native connector."""

    def __init__(self, context: base.PluginContext, plugin: str) -> None:
        self._context = context
        self._plugin = plugin

    def get_production_model(
        self, save_to: str | Path, model_name: str, experiment_name: str | None = None
    ) -> str | None:
        """Download the production version of ``model_name`` into ``save_to`` (a folder, or a
        ``.onnx`` file path); the ONNX file's path, or None when there is no production model."""
        found = self._context.connector.get_production_model(model_name)
        if found is None:
            return None
        target = Path(save_to)
        if target.suffix != ".onnx":
            target.mkdir(parents=True, exist_ok=True)
            target = target / "model.onnx"
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(found.onnx_path, target)
        return str(target)

    def store_model(
        self,
        experiment_name: str,
        model: Any,
        model_type: str,
        model_name: str | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        *,
        metadata: ModelMetadata | Mapping[str, Any] | None = None,
        example_input: Any = None,
    ) -> None:
        """Register ``model`` as a new version of ``model_name`` (default: ``experiment_name``)
        once ``run`` returns.

        ``model_type="onnx"`` takes an ``onnx.ModelProto`` or the path of an ``.onnx`` file;
        ``"pytorch"`` (or any ``torch.nn.Module``) is exported to ONNX for you. ``metadata``
        (CHIMP's ``ModelMetadata``: labels, input spec) lets predict-image use the version;
        without it the version is served over the Open Inference Protocol from its graph.
        """
        meta = None if metadata is None else ModelMetadata.model_validate(metadata)
        folder = Path(tempfile.mkdtemp(prefix="legacy-model-", dir=self._context.tmp_dir))
        onnx_path = _to_onnx(model, model_type, folder / "model.onnx", meta, example_input)
        self._context.connector.store_model(
            model_name or experiment_name,
            onnx_path,
            meta,
            params=dict(hyperparameters or {}),
            metrics=dict(metrics or {}),
            tags={"chimp.legacy.experiment": experiment_name, **dict(tags or {})},
        )


def _is_torch_module(model: Any) -> bool:
    return any(
        cls.__module__.startswith("torch.nn") and cls.__name__ == "Module"
        for cls in inspect.getmro(type(model))
    )


def _to_onnx(
    model: Any,
    model_type: str,
    path: Path,
    metadata: ModelMetadata | None,
    example_input: Any,
) -> Path:
    kind = (model_type or "").strip().lower()
    if kind == "onnx":
        if isinstance(model, str | Path):
            source = Path(model)
            if not source.is_file():
                raise LegacyPluginError(f"store_model: ONNX file {source} does not exist")
            return source
        import onnx

        if isinstance(model, onnx.ModelProto):
            onnx.save(model, str(path))
            return path
        raise LegacyPluginError(
            "store_model(model_type='onnx') takes an onnx.ModelProto or the path of an .onnx "
            f"file, not {type(model).__name__}"
        )
    if kind in ("pytorch", "torch") or _is_torch_module(model):
        if not _is_torch_module(model):
            raise LegacyPluginError(
                f"store_model(model_type={model_type!r}) takes a torch.nn.Module, "
                f"not {type(model).__name__}"
            )
        return _export_torch(model, path, metadata, example_input)
    raise LegacyPluginError(
        f"store_model: model_type {model_type!r} is not supported; CHIMP stores 'onnx' (an "
        "onnx.ModelProto or an .onnx path) and 'pytorch' (a torch.nn.Module, exported to ONNX)"
    )


def _export_torch(
    model: Any, path: Path, metadata: ModelMetadata | None, example_input: Any
) -> Path:
    import contextlib
    import io
    import warnings

    import torch

    if example_input is None:
        if metadata is None:
            raise LegacyPluginError(
                "store_model: to export a PyTorch module CHIMP needs its input shape: pass "
                "metadata= (CHIMP's ModelMetadata) or example_input= (a sample tensor)"
            )
        spec = metadata.input
        example_input = torch.zeros(1, spec.channels, spec.height, spec.width)
    names = (
        (metadata.input.input_name, metadata.input.output_name) if metadata else ("input", "output")
    )
    model.eval()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example_input,),
            str(path),
            input_names=[names[0]],
            output_names=[names[1]],
            dynamic_axes={names[0]: {0: "batch"}, names[1]: {0: "batch"}},
            dynamo=False,
            opset_version=ONNX_EXPORT_OPSET,
        )
    return path


class BasePlugin:
    """The original base class: implement ``init`` (fill ``self._info``) and ``run``."""

    def __init__(self) -> None:
        self._info: PluginInfo | None = None
        self._connector: Connector | None = None

    def init(self) -> PluginInfo:
        raise NotImplementedError

    def get_info(self) -> PluginInfo:
        if self._info is None:
            self._info = self.init() or self._info
        if self._info is None:
            raise LegacyPluginError(f"{type(self).__name__}.init() set no self._info")
        return self._info

    def run(self, *args: Any, **kwargs: Any) -> str | None:
        raise NotImplementedError


def is_legacy_plugin(obj: object) -> TypeGuard[type[BasePlugin]]:
    return inspect.isclass(obj) and issubclass(obj, BasePlugin) and obj is not BasePlugin


def adapt(plugin: type[BasePlugin]) -> type[base.BasePlugin]:
    """A native plugin class that runs the original-contract ``plugin``."""
    info = native_info(plugin().get_info())

    class Adapted(base.BasePlugin):
        legacy: ClassVar[type[BasePlugin]] = plugin

        def run(self, context: base.PluginContext) -> Mapping[str, Any] | None:
            instance = plugin()
            instance.get_info()
            instance._connector = Connector(context, info.name)
            keywords = {arg.name: context.arguments.get(arg.name) for arg in info.arguments}
            outcome = instance.run(
                temp_dir=str(context.tmp_dir),
                run_name=f"{info.name}-{context.task_id[:8]}",
                datasets={key: str(path) for key, path in context.datasets.items()},
                **keywords,
            )
            return None if outcome is None else {"result": outcome}

    Adapted.info = info
    Adapted.__name__ = Adapted.__qualname__ = plugin.__name__
    Adapted.__module__ = plugin.__module__
    Adapted.__doc__ = plugin.__doc__
    return Adapted
