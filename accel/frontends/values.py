"""What a traced tensor holds while a torch front end (Brevitas, pt2e) maps a program: codes of
a graph node, or the float output of a conv / linear still to be quantized."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from accel.layers import IntLayer
from accel.nodes import Node

__all__ = ["Codes", "Accumulator", "recording_run"]


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


def recording_run(module: Any, record: Callable[[Any, Any], tuple[str, np.ndarray] | None]
                  ) -> Callable[[np.ndarray], tuple[Any, dict[str, np.ndarray]]]:
    """``x -> (output, codes)``: ``module`` (a ``torch.fx`` graph module) run node by node by a
    ``torch.fx.Interpreter`` on float32 ``x``; ``record(fx_node, value)`` names the codes a node
    produced (``(graph node, int64 codes)``) or None, and the first value of each name is kept."""
    import torch
    import torch.fx

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n: Any) -> Any:
            out = super().run_node(n)
            got = record(n, out)
            if got is not None and got[0] not in self.seen:
                self.seen[got[0]] = got[1]
            return out

    def run(x: np.ndarray) -> tuple[Any, dict[str, np.ndarray]]:
        rec = Recorder(module)
        rec.seen = {}
        with torch.no_grad():
            out = rec.run(torch.from_numpy(np.asarray(x, np.float32)))
        return out, rec.seen

    return run
