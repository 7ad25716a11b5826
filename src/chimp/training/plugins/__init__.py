"""The plugin contract (:class:`BasePlugin`, :class:`PluginContext`) and plugin discovery."""

from chimp.training.plugins.base import (
    BasePlugin,
    ModelConnector,
    PluginContext,
    ProductionModel,
    TaskCancelledError,
)

__all__ = ["BasePlugin", "ModelConnector", "PluginContext", "ProductionModel", "TaskCancelledError"]
