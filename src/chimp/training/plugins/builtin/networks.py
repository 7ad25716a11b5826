"""The networks the image plugins can train, by name, and how a registered version says which.

- ``compact``: :class:`~.classifier.CompactCNN`, pixels in [0, 1], trained from scratch in minutes.
- ``mini_xception``: :class:`chimp.training.pretrained.architecture.MiniXception` (batch norm
  folded), pixels in [-1, 1], FER2013's label order; the pretrained shared model's network, so a
  calibration fine-tunes it.

A version records its network in the tag ``chimp.architecture``; versions made before the tag
existed are ``compact``.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from chimp.shared.schemas.models import InputSpec, ModelVersionInfo
from chimp.training.plugins.builtin.classifier import CompactCNN
from chimp.training.pretrained.architecture import MiniXception

Architecture = Literal["compact", "mini_xception"]
ARCHITECTURES: tuple[Architecture, ...] = ("compact", "mini_xception")
DEFAULT_ARCHITECTURE: Architecture = "compact"
TAG_ARCHITECTURE = "chimp.architecture"


def check_architecture(name: str) -> Architecture:
    if name == "compact":
        return "compact"
    if name == "mini_xception":
        return "mini_xception"
    raise ValueError(f"architecture must be one of {list(ARCHITECTURES)}, got {name!r}")


def build_network(architecture: Architecture, channels: int, classes: int) -> nn.Module:
    if architecture == "mini_xception":
        return MiniXception(channels, classes, batch_norm=False)
    return CompactCNN(channels, classes)


def input_spec(architecture: Architecture, size: int, channels: int = 1) -> InputSpec:
    """The input a freshly trained network of ``architecture`` takes."""
    color = "gray" if channels == 1 else "rgb"
    if architecture == "mini_xception":
        # As the pretrained weights were trained: (x / 255 - 0.5) / 0.5, i.e. [-1, 1].
        return InputSpec(
            height=size,
            width=size,
            channels=channels,
            color=color,
            mean=[0.5] * channels,
            std=[0.5] * channels,
        )
    return InputSpec(height=size, width=size, channels=channels, color=color)


def architecture_of(version: ModelVersionInfo) -> Architecture | None:
    """The version's network; None when it names one this plugin cannot train."""
    try:
        return check_architecture(version.tags.get(TAG_ARCHITECTURE, DEFAULT_ARCHITECTURE))
    except ValueError:
        return None
