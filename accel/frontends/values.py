"""What a traced tensor holds while a torch front end (Brevitas, pt2e) maps a program: codes of
a graph node, or the float output of a conv / linear still to be quantized."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from accel.layers import IntLayer
from accel.nodes import Node

__all__ = ["Codes", "Accumulator"]


@dataclass
class Codes:
    """A dequantized tensor: integer codes (graph node ``node``) with their scale and zero point."""

    node: str
    scale: float
    zero_point: int


@dataclass
class Accumulator:
    """The float output of a conv / linear: the array node's accumulator plus a float bias (per
    channel, in real units; None: none left to add)."""

    node: str
    layer: IntLayer
    bias: np.ndarray | None
    relu: bool = False
    #: ops applied to the float output before its quantize that commute with the (monotone)
    #: quantization (max pooling, flatten): applied to the codes after it.
    post: tuple[tuple[Any, Callable[[str, str], Node]], ...] = ()
