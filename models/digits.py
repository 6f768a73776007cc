"""Reference networks on scikit-learn's 8x8 digits, with a fixed seeded stratified split.

Images are ``[B, 1, 8, 8]`` float32 pixel values 0..16 (:data:`INPUT_RANGE`); the first layer
quantizes them to unsigned N-bit codes with the fixed scale ``16 / (2^N - 1)``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import numpy as np
import torch
from torch import nn

__all__ = ["INPUT_RANGE", "SPLIT_SEED", "TEST_SHARE", "load_split", "build_model", "MODELS"]

#: Largest pixel value of the digits images (the real value of the top input code).
INPUT_RANGE = 16.0
#: Seed and share of the stratified train/test split (fixed: every recipe uses the same split).
SPLIT_SEED = 0
TEST_SHARE = 0.2


def load_split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_test, y_test)``: 1437 / 360 images, stratified, ``SPLIT_SEED``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.images.astype(np.float32)[:, None]
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=TEST_SHARE, stratify=d.target,
                                          random_state=SPLIT_SEED)
    return (torch.from_numpy(xtr), torch.from_numpy(ytr).long(), torch.from_numpy(xte),
            torch.from_numpy(yte).long())


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
