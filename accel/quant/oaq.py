"""OAQ: overflow-aware quantization's clamp controller (SPEC section 5).

Per OAQ layer, an integer input clamp ``c_x`` (the input quantizer's ``code_max``, starting at the
full code range) and weight clamp ``c_w`` (starting at ``2^(M-1) - 1``). After every training step,
:meth:`OAQController.step` runs each OAQ layer's batch through the golden model of its array (R, P,
Q, overflow mode, bias included) and compares with the exact int64 result; where they differ, both
clamps shrink by one code. They never grow. A mismatch with a clamp already at 1 is an
:class:`OAQError` naming the layer. The guarantee is empirical: :func:`residual_mismatches` counts
the outputs that still differ on a data set with the final (frozen) clamps.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
from torch import nn

from accel.backends import GoldenBackend
from accel.quant.convert import quant_layers
from accel.quant.modules import QuantLayer

__all__ = ["OAQError", "OAQController", "layer_mismatches", "residual_mismatches"]


class OAQError(RuntimeError):
    """OAQ cannot make a layer's golden result exact: a clamp reached 1."""


def layer_mismatches(name: str, layer: QuantLayer, codes: torch.Tensor) -> int:
    """Outputs of ``layer`` on input ``codes`` whose golden result differs from the exact one."""
    run = GoldenBackend(layer.config).run(layer.to_int_layer(name),
                                          np.asarray(codes.numpy(), dtype=np.int64))
    return int((run.acc != run.exact).sum())


class OAQController:
    """Shrinks the OAQ clamps of a model during training (module docstring)."""

    def __init__(self, model: nn.Module) -> None:
        self.layers = [(n, m) for n, m in quant_layers(model) if m.quantizer == "oaq"]
        self.shrinks = {n: 0 for n, _ in self.layers}
        for _, m in self.layers:
            m.record = True

    def step(self) -> None:
        """Check every OAQ layer on its latest batch; shrink its clamps on a mismatch."""
        for name, m in self.layers:
            if m.last_codes is None:
                continue
            if layer_mismatches(name, m, m.last_codes) == 0:
                continue
            c_w, c_x = int(m.weight_quant.clamp), int(m.act_quant.code_max)
            if c_w <= 1 or c_x <= 1:
                raise OAQError(f"OAQ layer {name!r}: golden result still differs from the exact one "
                               f"with clamps c_w = {c_w}, c_x = {c_x}; P = {m.config.pe_acc_bits}, "
                               f"Q = {m.config.out_bits} is too narrow for this layer")
            m.weight_quant.clamp.sub_(1)
            m.act_quant.code_max.sub_(1)
            self.shrinks[name] += 1

    def clamps(self) -> dict[str, dict[str, int]]:
        """Current ``{"c_w", "c_x", "shrinks"}`` per OAQ layer."""
        return {n: {"c_w": int(m.weight_quant.clamp), "c_x": int(m.act_quant.code_max),
                    "shrinks": self.shrinks[n]} for n, m in self.layers}

    def close(self) -> None:
        """Stop recording inputs."""
        for _, m in self.layers:
            m.record, m.last_codes = False, None


def residual_mismatches(model: nn.Module, batches: Iterable[torch.Tensor]) -> dict[str, int]:
    """Frozen pass: per OAQ layer, outputs whose golden result differs from the exact one."""
    layers = [(n, m) for n, m in quant_layers(model) if m.quantizer == "oaq"]
    counts = {n: 0 for n, _ in layers}
    for _, m in layers:
        m.record = True
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            for xb in batches:
                model(xb)
                for n, m in layers:
                    counts[n] += layer_mismatches(n, m, m.last_codes)
    finally:
        for _, m in layers:
            m.record, m.last_codes = False, None
        model.train(was)
    return counts
