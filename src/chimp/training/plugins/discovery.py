"""Find plugins: the built-ins, the ``chimp.plugins`` entry-point group, and a plugin folder.

A plugin folder holds ``.py`` files and packages (folders with ``__init__.py``); every
:class:`BasePlugin` subclass defined in them is a plugin, and so is every subclass of the
original contract's base class (:mod:`chimp.training.plugins.legacy`), adapted. A plugin that
fails to import is logged and recorded in :attr:`PluginCatalog.errors` instead of taking the
service down. The first plugin registered under a name wins, so a folder cannot shadow a built-in.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import logging
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from chimp.shared.errors import NotFoundError
from chimp.shared.schemas.plugins import PluginInfo
from chimp.training.plugins import legacy
from chimp.training.plugins.base import BasePlugin

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "chimp.plugins"

BUILTIN_MODULES = (
    "chimp.training.plugins.builtin.example",
    "chimp.training.plugins.builtin.emotion_recognition",
    "chimp.training.plugins.builtin.image_classification",
)


@dataclass
class PluginCatalog:
    plugins: dict[str, type[BasePlugin]] = field(default_factory=dict)
    # source -> why it did not load
    errors: dict[str, str] = field(default_factory=dict)

    def add(self, plugin: type[BasePlugin], source: str) -> None:
        info = getattr(plugin, "info", None)
        if not isinstance(info, PluginInfo):
            self.errors[source] = f"{plugin.__name__} has no PluginInfo 'info' attribute"
            return
        if info.name in self.plugins:
            if self.plugins[info.name] is not plugin:
                logger.warning("plugin %r from %s ignored: the name is taken", info.name, source)
            return
        self.plugins[info.name] = plugin

    def get(self, name: str) -> type[BasePlugin]:
        try:
            return self.plugins[name]
        except KeyError:
            raise NotFoundError(f"no plugin named '{name}'", detail={"plugin": name}) from None

    def infos(self) -> list[PluginInfo]:
        return [self.plugins[name].info for name in sorted(self.plugins)]


def plugins_in_module(
    module: ModuleType, errors: dict[str, str] | None = None
) -> list[type[BasePlugin]]:
    """Concrete plugins defined in ``module`` (not merely imported into it).

    Original-contract plugins (:mod:`chimp.training.plugins.legacy`) come back adapted; one
    that cannot be adapted is recorded in ``errors`` under its qualified name.
    """
    found: list[type[BasePlugin]] = []
    for _, obj in inspect.getmembers(module, inspect.isclass):
        if obj.__module__ != module.__name__:
            continue
        if issubclass(obj, BasePlugin) and obj is not BasePlugin and not inspect.isabstract(obj):
            found.append(obj)
        elif legacy.is_legacy_plugin(obj):
            try:
                found.append(legacy.adapt(obj))
            except Exception as exc:  # a broken plugin must not hide the others
                logger.warning("original-contract plugin %s not usable: %s", obj.__name__, exc)
                if errors is not None:
                    errors[f"{module.__name__}.{obj.__name__}"] = f"{type(exc).__name__}: {exc}"
    return found


def _load_path(path: Path) -> ModuleType:
    # A stable, path-derived module name: two folders may both hold a "plugin.py".
    digest = hashlib.sha1(str(path.resolve()).encode(), usedforsecurity=False).hexdigest()[:10]
    module_name = f"chimp_plugin_dir_{digest}_{path.stem}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    if path.is_dir():
        spec = importlib.util.spec_from_file_location(
            module_name, path / "__init__.py", submodule_search_locations=[str(path)]
        )
    else:
        spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def _folder_entries(folder: Path) -> list[Path]:
    entries = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(("_", ".")):
            continue
        if (path.is_file() and path.suffix == ".py") or (path / "__init__.py").is_file():
            entries.append(path)
    return entries


def discover_plugins(
    plugin_dir: Path | None = None, *, entry_point_group: str = ENTRY_POINT_GROUP
) -> PluginCatalog:
    catalog = PluginCatalog()
    for module_name in BUILTIN_MODULES:
        for plugin in plugins_in_module(importlib.import_module(module_name)):
            catalog.add(plugin, module_name)

    for ep in entry_points(group=entry_point_group):
        source = f"entry point {ep.name} ({ep.value})"
        try:
            loaded = ep.load()
        except Exception as exc:  # a broken third-party plugin must not stop the service
            logger.exception("cannot load plugin %s", source)
            catalog.errors[source] = f"{type(exc).__name__}: {exc}"
            continue
        if isinstance(loaded, ModuleType):
            for plugin in plugins_in_module(loaded, catalog.errors):
                catalog.add(plugin, source)
        elif inspect.isclass(loaded) and issubclass(loaded, BasePlugin):
            catalog.add(loaded, source)
        elif legacy.is_legacy_plugin(loaded):
            try:
                catalog.add(legacy.adapt(loaded), source)
            except Exception as exc:
                logger.warning("cannot adapt plugin %s: %s", source, exc)
                catalog.errors[source] = f"{type(exc).__name__}: {exc}"
        else:
            catalog.errors[source] = "entry point is neither a BasePlugin subclass nor a module"

    if plugin_dir is not None:
        if not plugin_dir.is_dir():
            catalog.errors[str(plugin_dir)] = "plugin folder does not exist"
            logger.warning("plugin folder %s does not exist", plugin_dir)
        else:
            for path in _folder_entries(plugin_dir):
                try:
                    module = _load_path(path)
                except Exception as exc:
                    logger.exception("cannot load plugin %s", path)
                    catalog.errors[str(path)] = f"{type(exc).__name__}: {exc}"
                    continue
                for plugin in plugins_in_module(module, catalog.errors):
                    catalog.add(plugin, str(path))
    return catalog
