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
    return _share_quantizers(qmodel, config)


def _share_quantizers(model: nn.Module, config: ArrayConfig) -> nn.Module:
    """One activation quantizer per real tensor that quantized operations read.

    The model is traced with ``torch.fx`` (quantized layers are leaves); every addition of two
    tensors becomes a :class:`QuantAdd`, and every reader of one tensor (layers, additions) gets
    the same quantizer, so the integer graph carries one code tensor per real tensor. An addition
    input that no layer quantizes gets a signed quantizer of its own (residual sums go negative).
    A model that needs neither (a chain of layers) comes back as it was.
    """
    import operator

    import torch.fx

    from accel.quant.act import ActQuant
    from accel.quant.export import tracer
    from accel.quant.modules import QuantAdd

    graph = tracer().trace(model)
    mods = dict(model.named_modules())

    def is_add(n: torch.fx.Node) -> bool:
        return (n.op == "call_function" and n.target in (operator.add, torch.add)) or \
            (n.op == "call_method" and n.target == "add")

    readers: dict[str, list[tuple[torch.fx.Node, int]]] = {}
    adds = [n for n in graph.nodes if is_add(n)]
    for n in graph.nodes:
        if n.op == "call_module" and isinstance(mods.get(n.target), QuantLayer):
            readers.setdefault(n.args[0].name, []).append((n, 0))
        elif n in adds:
            for i, a in enumerate(n.args[:2]):
                if not isinstance(a, torch.fx.Node):
                    raise ValueError(f"node {n.name!r}: an addition of two tensors is supported, "
                                     "not of a tensor and a constant")
                readers.setdefault(a.name, []).append((n, i))
    pools = [n for n in graph.nodes if _is_avgpool(n, mods)]
    if not adds and not pools and all(len(r) == 1 for r in readers.values()):
        return model
    quantizers: dict[str, ActQuant] = {}
    for name, rs in readers.items():
        layer = next((mods[n.target] for n, _ in rs if n.op == "call_module"), None)
        quantizers[name] = layer.act_quant if layer is not None else \
            ActQuant(config.act_bits, True, "calibrated")
        for n, _ in rs:
            if n.op == "call_module":
                mods[n.target].act_quant = quantizers[name]
    gm = torch.fx.GraphModule(model, graph)
    for i, n in enumerate(adds):
        mod = QuantAdd(quantizers[n.args[0].name], quantizers[n.args[1].name])
        gm.add_submodule(f"add{i}", mod)
        with gm.graph.inserting_after(n):
            new = gm.graph.call_module(f"add{i}", args=tuple(n.args[:2]))
        n.replace_all_uses_with(new)
        gm.graph.erase_node(n)
    # average pooling does not commute with rounding: the integer graph pools codes, so the
    # forward pass quantizes what it pools, with the quantizer of what reads the pooled result
    for i, n in enumerate(pools):
        reader = _reader_quantizer(n, mods, quantizers)
        gm.add_submodule(f"pool{i}_quant", reader)
        with gm.graph.inserting_before(n):
            q = gm.graph.call_module(f"pool{i}_quant", args=(n.args[0],))
        n.replace_input_with(n.args[0], q)
    gm.graph.lint()
    gm.recompile()
    return gm


def _is_avgpool(n: "torch.fx.Node", mods: dict) -> bool:  # noqa: F821
    import torch.nn.functional as F

    return (n.op == "call_module" and isinstance(mods.get(n.target), (nn.AvgPool2d,
                                                                       nn.AdaptiveAvgPool2d))) \
        or (n.op == "call_function" and n.target in (F.avg_pool2d, F.adaptive_avg_pool2d))


def _reader_quantizer(n: "torch.fx.Node", mods: dict, quantizers: dict) -> nn.Module:  # noqa: F821
    """The quantizer of the quantized operation that reads ``n``'s result (through ReLU, pooling,
    flatten and the like)."""
    stack = [n]
    while stack:
        node = stack.pop()
        if node.name in quantizers and node is not n:
            return quantizers[node.name]
        for user in node.users:
            if user.name in quantizers:
                return quantizers[user.name]
            if user.op == "call_module" and isinstance(mods.get(user.target), QuantLayer):
                return mods[user.target].act_quant
            if user.op != "output":
                stack.append(user)
    raise ValueError(f"node {n.name!r}: average pooling whose result no quantized layer reads "
                     "cannot be quantized")


def calibrate(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Max-calibrate every non-fixed activation quantizer on ``batches`` (float forward, no grad)."""
    from accel.quant.act import ActQuant

    quantizers = [m for m in model.modules() if isinstance(m, ActQuant) and m.mode != "fixed"]
    was_training = model.training
    model.eval()
    for m in quantizers:
        m.calibrating = True
    with torch.no_grad():
        for xb in batches:
            model(xb)
    for m in quantizers:
        m.finish_calibration()
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
