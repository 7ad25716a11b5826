"""A minimal plugin: typed arguments, progress, cancellation, no model.

It shows the contract in the docs and exercises the machinery in tests: ``duration_s`` makes
a long-running task to cancel, ``fail`` makes a failing one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from chimp.shared.schemas.plugins import PluginArgument, PluginDataset, PluginInfo
from chimp.training.plugins.base import BasePlugin, PluginContext


class ExamplePlugin(BasePlugin):
    info = PluginInfo(
        name="example",
        version="1.0.0",
        description="Greets, counts to `steps` over `duration_s` seconds, stores no model.",
        arguments=[
            PluginArgument(name="greeting", type="str", description="Text to echo back."),
            PluginArgument(
                name="steps", type="int", optional=True, default=5, description="Progress steps."
            ),
            PluginArgument(
                name="duration_s",
                type="float",
                optional=True,
                default=0.0,
                description="Seconds the whole run takes (to show progress and cancel).",
            ),
            PluginArgument(
                name="fail",
                type="bool",
                optional=True,
                default=False,
                description="Raise an error at the end instead of succeeding.",
            ),
            PluginArgument(
                name="mode",
                type="str",
                optional=True,
                default="count",
                choices=["count", "list"],
                description="'list' also returns the files of the optional dataset.",
            ),
        ],
        datasets=[PluginDataset(name="data", optional=True, description="Any dataset.")],
        model_return_type=None,
        comparable_models=False,
    )

    def run(self, context: PluginContext) -> Mapping[str, Any]:
        args = context.arguments
        steps: int = max(1, args["steps"] if args["steps"] is not None else 5)
        pause = float(args["duration_s"] or 0.0) / steps
        for step in range(1, steps + 1):
            context.check_cancelled()
            if pause:
                time.sleep(pause)
            context.report_progress(step / steps, f"step {step}/{steps}")
        if args["fail"]:
            raise RuntimeError(f"example failure after {steps} steps")
        result: dict[str, Any] = {"greeting": args["greeting"], "steps": steps}
        if args["mode"] == "list" and "data" in context.datasets:
            root = context.datasets["data"]
            result["files"] = sorted(
                str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
            )
        return result
