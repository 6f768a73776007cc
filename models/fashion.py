"""A residual CNN for Fashion-MNIST (28x28 grey images, 10 classes), the real-data reference model.

Inputs are ``[B, 1, 28, 28]`` float32 raw pixel values 0..255 (:data:`INPUT_RANGE`): at 8 bits the
first layer's codes are the pixels themselves (scale 1), at 4 bits ``255 / 15`` per step. Layers:
``stem`` (conv 1->8, 3x3, batch norm, ReLU, 2x2 max pool: 14x14), ``block1`` (two 3x3 convs of 8
channels with batch norm, a residual addition, ReLU), ``down`` (conv 8->16, 3x3 stride 2: 7x7),
``block2`` (as block1 at 16 channels), global average pooling and ``fc`` (16 -> 10). About 0.5 M
multiply-accumulates per image; convs and batch norms sit in ``nn.Sequential`` pairs so that
:func:`accel.quant.fold_batch_norms` folds them.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from accel.data import load_data

__all__ = ["INPUT_RANGE", "load_split", "ResidualBlock", "fashion_resnet", "MODELS"]

#: Largest pixel value (the real value of the top input code).
INPUT_RANGE = 255.0


def load_split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_test, y_test)``: Fashion-MNIST's 60,000 / 10,000 images, raw pixels."""
    train, test = load_data("fashion-mnist", split="train"), load_data("fashion-mnist", split="test")
    return tuple(torch.from_numpy(a) for a in (train.x, train.y, test.x, test.y))


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(OrderedDict(conv=nn.Conv2d(c_in, c_out, 3, stride, 1),
                                     bn=nn.BatchNorm2d(c_out)))


class ResidualBlock(nn.Module):
    """``relu(conv_bn2(relu(conv_bn1(x))) + x)``: two 3x3 convs of ``c`` channels and a skip."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.relu1 = _conv_bn(c, c), nn.ReLU()
        self.conv2, self.relu2 = _conv_bn(c, c), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu2(self.conv2(self.relu1(self.conv1(x))) + x)


class FashionResNet(nn.Module):
    """The residual CNN of the module docstring."""

    def __init__(self, width: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(OrderedDict(conv=_conv_bn(1, width), relu=nn.ReLU(),
                                              pool=nn.MaxPool2d(2)))
        self.block1 = ResidualBlock(width)
        self.down = nn.Sequential(OrderedDict(conv=_conv_bn(width, 2 * width, 2), relu=nn.ReLU()))
        self.block2 = ResidualBlock(2 * width)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.block2(self.down(self.block1(self.stem(x))))).flatten(1))


def fashion_resnet() -> nn.Module:
    """A fresh (untrained) :class:`FashionResNet`."""
    return FashionResNet()


#: Reference networks by name.
MODELS = {"fashion-resnet": fashion_resnet}
