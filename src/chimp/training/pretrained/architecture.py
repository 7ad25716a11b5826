"""mini-Xception (Arriaga et al. 2017) in PyTorch, with Keras's padding and batch-norm semantics.

The network: two 3x3 "valid" convolutions (8 filters), four residual blocks (16, 32, 64, 128
filters) of two separable convolutions and a 3x3 stride-2 max pool beside a 1x1 stride-2
convolution, then a 3x3 convolution to one map per class and global average pooling. The
outputs are logits; the Keras original ends in a softmax, which CHIMP applies in serving.

Two forms of the same network:

- ``batch_norm=True``: every convolution is followed by batch normalisation (eps 1e-3, Keras's
  default), as in the weight file. :mod:`.keras_weights` loads it.
- ``batch_norm=False``: each batch norm folded into the convolution before it (a bias per
  output channel). Same outputs in inference; this is the form CHIMP exports, registers and
  fine-tunes, because the ONNX exporter keeps its parameters as initializers under their
  PyTorch names, so a registered ONNX model is enough to fine-tune from (see
  :func:`chimp.training.plugins.builtin.classifier.load_onnx_weights`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import nn

KERAS_BN_EPS = 1e-3
STEM_FILTERS = 8
BLOCK_FILTERS = (16, 32, 64, 128)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same" padding of one axis as (before, after): any odd pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class KerasMaxPool(nn.Module):
    """3x3 stride-2 max pooling with "same" padding: padded cells never win (-inf)."""

    def __init__(self, kernel: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.pool = nn.MaxPool2d(kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = same_padding(int(x.shape[-2]), self.kernel, self.stride)
        left, right = same_padding(int(x.shape[-1]), self.kernel, self.stride)
        padded = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        pooled: torch.Tensor = self.pool(padded)
        return pooled


class ConvUnit(nn.Module):
    """A convolution, then batch norm (or the norm folded into the convolution's bias)."""

    def __init__(
        self, cin: int, cout: int, kernel: int, *, stride: int, padding: int, batch_norm: bool
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=not batch_norm)
        self.norm: nn.Module = (
            nn.BatchNorm2d(cout, eps=KERAS_BN_EPS) if batch_norm else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.norm(self.conv(x))
        return out


class SeparableUnit(nn.Module):
    """Keras's SeparableConv2D (a 3x3 depthwise then a 1x1 pointwise convolution), then the norm."""

    def __init__(self, cin: int, cout: int, *, batch_norm: bool) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=not batch_norm)
        self.norm: nn.Module = (
            nn.BatchNorm2d(cout, eps=KERAS_BN_EPS) if batch_norm else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.norm(self.pointwise(self.depthwise(x)))
        return out


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, *, batch_norm: bool) -> None:
        super().__init__()
        self.first = SeparableUnit(cin, cout, batch_norm=batch_norm)
        self.second = SeparableUnit(cout, cout, batch_norm=batch_norm)
        self.pool = KerasMaxPool()
        # A 1x1 stride-2 "same" convolution never pads, whatever the size.
        self.shortcut = ConvUnit(cin, cout, 1, stride=2, padding=0, batch_norm=batch_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = self.pool(self.second(F.relu(self.first(x))))
        out: torch.Tensor = main + self.shortcut(x)
        return out


class MiniXception(nn.Module):
    """About 57 k parameters; any input of at least 16x16 pixels, trained on 64x64 gray."""

    def __init__(self, in_channels: int = 1, num_classes: int = 7, *, batch_norm: bool) -> None:
        super().__init__()
        self.batch_norm = batch_norm
        self.stem1 = ConvUnit(
            in_channels, STEM_FILTERS, 3, stride=1, padding=0, batch_norm=batch_norm
        )
        self.stem2 = ConvUnit(
            STEM_FILTERS, STEM_FILTERS, 3, stride=1, padding=0, batch_norm=batch_norm
        )
        blocks = []
        channels = STEM_FILTERS
        for filters in BLOCK_FILTERS:
            blocks.append(ResidualBlock(channels, filters, batch_norm=batch_norm))
            channels = filters
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(channels, num_classes, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem2(F.relu(self.stem1(x))))
        logits: torch.Tensor = self.head(self.blocks(x)).mean(dim=(2, 3))
        return logits


def _fold(conv: nn.Conv2d, norm: nn.Module, target: nn.Conv2d) -> None:
    """Write ``norm(conv(x))`` as one convolution with a bias into ``target``."""
    weight = conv.weight.detach()
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros(weight.shape[0])
    if isinstance(norm, nn.BatchNorm2d):
        assert norm.running_mean is not None
        assert norm.running_var is not None
        scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
        weight = weight * scale.reshape(-1, 1, 1, 1)
        bias = (bias - norm.running_mean) * scale + norm.bias.detach()
    target.weight.data.copy_(weight)
    assert target.bias is not None
    target.bias.data.copy_(bias)


def fold_batch_norm(model: MiniXception) -> MiniXception:
    """The same network (in inference) with every batch norm folded into its convolution."""
    if not model.batch_norm:
        raise ValueError("the model has no batch norm to fold")
    classes, channels = model.head.out_channels, model.stem1.conv.in_channels
    folded = MiniXception(channels, classes, batch_norm=False)
    with torch.no_grad():
        for source, target in ((model.stem1, folded.stem1), (model.stem2, folded.stem2)):
            _fold(source.conv, source.norm, target.conv)
        for block, into in zip(model.blocks, folded.blocks, strict=True):
            assert isinstance(block, ResidualBlock)
            assert isinstance(into, ResidualBlock)
            for unit, target_unit in ((block.first, into.first), (block.second, into.second)):
                target_unit.depthwise.weight.data.copy_(unit.depthwise.weight.detach())
                _fold(unit.pointwise, unit.norm, target_unit.pointwise)
            _fold(block.shortcut.conv, block.shortcut.norm, into.shortcut.conv)
        folded.head.load_state_dict(model.head.state_dict())
    return folded.eval()
