"""Turn a float model into a quantization-aware one: fold batch norm, swap layers, calibrate."""

from __future__ import annotations

import copy
import dataclasses
from typing import Iterable

import torch
from torch import nn

from accel.config import ArrayConfig
from accel.quant.modules import QuantConv2d, QuantLayer, QuantLinear

__all__ = ["fold_batch_norm", "fold_batch_norms", "quantize_model", "quant_layers", "calibrate",
           "set_array_config", "regularizer"]

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


def fold_batch_norm(layer: nn.Conv2d | nn.Linear, bn: nn.BatchNorm1d | nn.BatchNorm2d
                    ) -> nn.Conv2d | nn.Linear:
    """A copy of ``layer`` with the following batch norm (inference statistics) folded in.

    ``w' = w γ / sqrt(var + eps)`` per output channel and ``b' = (b - mean) γ / sqrt(var + eps) + β``:
    the scale goes into the (per-channel quantized) weights, the shift into the bias, which the
    accumulator bound then includes. Folding happens on float weights, before any quantizer sees
    them, so A2Q's bound holds for the folded layer.
    """
    if bn.num_features != layer.weight.shape[0]:
        raise ValueError(f"batch norm has {bn.num_features} features but the layer before it has "
                         f"{layer.weight.shape[0]} output channels; cannot fold")
    out = copy.deepcopy(layer)
    with torch.no_grad():
        gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
        beta = bn.bias if bn.affine else torch.zeros_like(bn.running_var)
        k = gamma / torch.sqrt(bn.running_var + bn.eps)
        out.weight.copy_(layer.weight * k.reshape(-1, *([1] * (layer.weight.ndim - 1))))
        b = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
        out.bias = nn.Parameter((b - bn.running_mean) * k + beta)
    return out


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """A copy of ``model`` where every BN directly after a conv/linear in an ``nn.Sequential`` is
    folded into it and replaced by ``nn.Identity``; any other batch norm is an error."""
    model = copy.deepcopy(model)
    for mod in model.modules():
        if not isinstance(mod, nn.Sequential):
            continue
        names = list(mod._modules)
        for prev, cur in zip(names, names[1:]):
            if isinstance(mod._modules[cur], _BN) and \
                    isinstance(mod._modules[prev], (nn.Conv2d, nn.Linear)):
                mod._modules[prev] = fold_batch_norm(mod._modules[prev], mod._modules[cur])
                mod._modules[cur] = nn.Identity()
    left = [n for n, m in model.named_modules() if isinstance(m, _BN)]
    if left:
        raise ValueError(f"batch norm {left[0]!r} does not directly follow a conv/linear layer in "
                         "an nn.Sequential, so it cannot be folded before export")
    return model


def quant_layers(model: nn.Module) -> list[tuple[str, QuantLayer]]:
    """The quantized layers of ``model`` with their module paths, in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, QuantLayer)]


def quantize_model(model: nn.Module, quantizer: str, config: ArrayConfig, *,
                   input_range: float | None = None, act_mode: str = "calibrated",
                   tile: bool = False) -> nn.Module:
    """A quantization-aware copy of a float ``model`` for ``config``'s array.

    Batch norms are folded first (:func:`fold_batch_norms`); every ``nn.Conv2d`` / ``nn.Linear`` is
    replaced by :class:`QuantConv2d` / :class:`QuantLinear` with the weight quantizer ``quantizer``.
    The first layer's input scale is fixed by ``input_range`` (the real value of the top code)
    when given; the others use ``act_mode`` and must be calibrated (:func:`calibrate`).
    """
    qmodel = fold_batch_norms(model)
    first = True

    def swap(parent: nn.Module) -> None:
        nonlocal first
        for name, child in parent.named_children():
            if isinstance(child, (nn.Conv2d, nn.Linear)):
                kw = {"act_mode": act_mode, "tile": tile}
                if first and input_range is not None:
                    kw.update(act_mode="fixed", range_max=input_range)
                cls = QuantConv2d if isinstance(child, nn.Conv2d) else QuantLinear
                setattr(parent, name, cls.from_float(child, quantizer, config, **kw))
                first = False
            else:
                swap(child)

    swap(qmodel)
    if first:
        raise ValueError("model has no nn.Conv2d or nn.Linear layer to quantize")
    return qmodel


def calibrate(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Max-calibrate every non-fixed input quantizer on ``batches`` (float forward, no grad)."""
    layers = [m for _, m in quant_layers(model) if m.act_quant.mode != "fixed"]
    was_training = model.training
    model.eval()
    for m in layers:
        m.act_quant.calibrating = True
    with torch.no_grad():
        for xb in batches:
            model(xb)
    for m in layers:
        m.act_quant.finish_calibration()
    model.train(was_training)


def set_array_config(model: nn.Module, **changes: int | str) -> None:
    """Retarget every quantized layer to a variant of its array (``dataclasses.replace``).

    Only the accumulator side may change (``pe_acc_bits``, ``out_acc_bits``, ``overflow``,
    ``rows``, ``cols``, ``acc_depth``): N and M are baked into the trained codes.
    """
    allowed = {"pe_acc_bits", "out_acc_bits", "overflow", "rows", "cols", "acc_depth"}
    bad = sorted(set(changes) - allowed)
    if bad:
        raise ValueError(f"cannot retarget {', '.join(bad)} of a trained model; only "
                         f"{', '.join(sorted(allowed))} may change")
    for _, m in quant_layers(model):
        m.config = dataclasses.replace(m.config, **changes)
        m.weight_quant.config = m.config


def regularizer(model: nn.Module) -> torch.Tensor:
    """Sum of the weight quantizers' penalties (A2Q: ``1e-3 Σ relu(g - T s)``)."""
    total = torch.zeros((), dtype=torch.float64)
    for _, m in quant_layers(model):
        total = total + m.regularizer()
    return total
