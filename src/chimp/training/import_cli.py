"""``chimp-train models import`` and ``models set-metadata``: models made elsewhere, from a shell.

    chimp-train models import NAME model.onnx --labels a,b,c --input 64x64 --color gray
        [--scale 1/255] [--mean 0.5] [--std 0.5] [--task image-classification]
        [--input-name X] [--output-name Y] [--probabilities] [--no-promote]
    chimp-train models set-metadata NAME VERSION --labels ... (the same metadata flags)

The flags become the ``ModelMetadata`` JSON of ``POST /models/{name}/versions`` and
``PUT /models/{name}/versions/{version}/metadata``; the API checks it against the graph.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx


def _number(text: str) -> float:
    """``0.5``, ``1/255`` or ``1``."""
    try:
        return float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a number or fraction: {text!r}") from None


def _numbers(text: str) -> list[float]:
    return [_number(part) for part in text.split(",")]


def _size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` (``64x64``) or one side (``64``)."""
    parts = text.lower().split("x")
    try:
        sides = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"input size must look like 64x64, got {text!r}") from None
    if len(sides) == 1:
        sides *= 2
    if len(sides) != 2 or min(sides) < 1:
        raise argparse.ArgumentTypeError(f"input size must look like 64x64, got {text!r}")
    return sides[0], sides[1]


def metadata_json(args: argparse.Namespace) -> str:
    """The ``ModelMetadata`` JSON the flags describe (tensor names only when given)."""
    width, height = args.input
    spec: dict[str, Any] = {
        "height": height,
        "width": width,
        "channels": 1 if args.color == "gray" else 3,
        "color": args.color,
        "scale": args.scale,
    }
    if args.mean is not None:
        spec["mean"] = args.mean
    if args.std is not None:
        spec["std"] = args.std
    if args.input_name:
        spec["input_name"] = args.input_name
    if args.output_name:
        spec["output_name"] = args.output_name
    labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    return json.dumps(
        {
            "task": args.task,
            "labels": labels,
            "input": spec,
            "outputs_probabilities": args.probabilities,
        }
    )


def _metadata_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", required=True, help="labels in output order, comma-separated")
    parser.add_argument("--input", required=True, type=_size, help="input size WIDTHxHEIGHT")
    parser.add_argument("--color", choices=["gray", "rgb"], default="gray")
    parser.add_argument("--scale", type=_number, default=1 / 255, help="pixel factor (1/255)")
    parser.add_argument("--mean", type=_numbers, help="per-channel mean after scaling")
    parser.add_argument("--std", type=_numbers, help="per-channel std after scaling")
    parser.add_argument(
        "--task",
        choices=["image-classification", "face-classification"],
        default="image-classification",
    )
    parser.add_argument("--input-name", help="graph input (default: its first)")
    parser.add_argument("--output-name", help="graph output (default: its first)")
    parser.add_argument(
        "--probabilities", action="store_true", help="outputs are probabilities, not logits"
    )


ACTIONS = ("import", "set-metadata")


def add_commands(actions: Any) -> None:
    """Add ``import`` and ``set-metadata`` to the ``models`` subcommand's actions."""
    imported = actions.add_parser("import", help="register an ONNX file made elsewhere")
    imported.add_argument("name")
    imported.add_argument("file", type=Path)
    _metadata_flags(imported)
    imported.add_argument(
        "--no-promote",
        dest="promote",
        action="store_false",
        help="let the gate judge it, but never move production past the champion",
    )
    described = actions.add_parser("set-metadata", help="add CHIMP metadata to a version")
    described.add_argument("name")
    described.add_argument("version")
    _metadata_flags(described)


def run(args: argparse.Namespace, client: httpx.Client, check: Callable[[Any], Any]) -> int:
    """Run the ``models`` action; ``check`` turns an error answer into the CLI's error."""
    metadata = metadata_json(args)
    if args.action == "import":
        with args.file.open("rb") as fh:
            answer = check(
                client.post(
                    f"/models/{args.name}/versions",
                    files={"file": (args.file.name, fh, "application/octet-stream")},
                    data={"metadata": metadata, "promote": str(args.promote).lower()},
                )
            )
        info, decision = answer["version"], answer["decision"]
        print(f"gate: {decision['verdict']}: {decision['reason']}")
    else:
        info = check(
            client.put(
                f"/models/{args.name}/versions/{args.version}/metadata",
                content=metadata,
                headers={"content-type": "application/json"},
            )
        )
    aliases = ", ".join(info["aliases"]) or "no alias"
    print(f"{info['name']} version {info['version']} ({aliases})")
    return 0
