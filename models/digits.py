"""Reference networks on scikit-learn's 8x8 digits, with a fixed seeded stratified split.

Images are ``[B, 1, 8, 8]`` float32 pixel values 0..16 (:data:`INPUT_RANGE`); the first layer
quantizes them to unsigned N-bit codes with the fixed scale ``16 / (2^N - 1)``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch
from torch import nn

from accel.data import digits_split

__all__ = ["INPUT_RANGE", "load_split", "build_model", "MODELS"]

#: Largest pixel value of the digits images (the real value of the top input code).
INPUT_RANGE = 16.0


def load_split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_test, y_test)`` as torch tensors: the split of
    :func:`accel.data.digits_split` (1437 / 360 images, stratified, seeded)."""
    return tuple(torch.from_numpy(a) for a in digits_split())


def mlp() -> nn.Sequential:
    """64 -> 64 -> 10 perceptron: ``fc1`` and ``fc2`` (K = 64 each)."""
    return nn.Sequential(OrderedDict(flatten=nn.Flatten(), fc1=nn.Linear(64, 64), relu1=nn.ReLU(),
                                     fc2=nn.Linear(64, 10)))


def cnn() -> nn.Sequential:
    """Small CNN: ``conv1`` 1->16 (K = 9), ``conv2`` 16->32 (K = 144), ``fc`` 128->10 (K = 128).

    Both convs are 3x3 with padding 1 and batch norm (folded before quantization), each followed
    by ReLU and 2x2 max pooling.
    """
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(1, 16, 3, padding=1), bn1=nn.BatchNorm2d(16), relu1=nn.ReLU(),
        pool1=nn.MaxPool2d(2),
        conv2=nn.Conv2d(16, 32, 3, padding=1), bn2=nn.BatchNorm2d(32), relu2=nn.ReLU(),
        pool2=nn.MaxPool2d(2),
        flatten=nn.Flatten(), fc=nn.Linear(128, 10)))


#: Reference networks by name.
MODELS: dict[str, Callable[[], nn.Sequential]] = {"mlp": mlp, "cnn": cnn}


def build_model(name: str) -> nn.Sequential:
    """A fresh (untrained) reference network."""
    if name not in MODELS:
        raise ValueError(f"unknown reference model {name!r}; valid: {', '.join(MODELS)}")
    return MODELS[name]()
