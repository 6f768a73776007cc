"""Built-in reference networks for the TLM: float PyTorch layers that carry their integer layer.

:class:`ArrayConv2d` / :class:`ArrayLinear` are ordinary ``nn.Conv2d`` / ``nn.Linear`` (their
forward is the plain float pass) whose weights are ``int_weight * weight_scale``; after
:func:`calibrate` they describe themselves as :class:`accel.layers.IntLayer` (``to_int_layer``),
so :class:`sim.tlm.model.ArraySimulator` runs them on the array. :func:`resnet18_random` is a
CIFAR-shaped ResNet-18 with random int8 weights (the benchmark network); :func:`from_int_model`
turns an ``accel.quant`` integer-model checkpoint into such a network.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from accel.layers import IntLayer, Requant, fold_zero_point

__all__ = ["ArrayConv2d", "ArrayLinear", "calibrate", "resnet18_random", "from_int_model",
           "REFERENCE_MODELS", "MODEL_DATASETS", "digits_cnn_random"]


class _ArrayLayer:
    """Mixin: the layer's integer description, set by :func:`calibrate` or from a checkpoint."""

    int_layer: IntLayer | None = None

    def to_int_layer(self, name: str) -> IntLayer:
        if self.int_layer is None:
            raise ValueError(f"layer {name!r} has no integer description yet: run calibrate() first")
        return self.int_layer


class ArrayConv2d(nn.Conv2d, _ArrayLayer):
    """``nn.Conv2d`` whose float weights are integer weights times a per-channel scale."""


class ArrayLinear(nn.Linear, _ArrayLayer):
    """``nn.Linear`` whose float weights are integer weights times a per-channel scale."""


def _set_int_weights(m: nn.Module, gen: torch.Generator, bits: int) -> None:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    q = torch.randint(lo, hi + 1, m.weight.shape, generator=gen)
    fan_in = m.weight[0].numel()
    scale = torch.full((m.weight.shape[0],), (3.0 / fan_in) ** 0.5 / hi, dtype=torch.float64)
    m.q_weight, m.w_scale = q, scale
    with torch.no_grad():
        m.weight.copy_((q * scale.view(-1, *[1] * (q.dim() - 1))).float())
        if m.bias is not None:
            m.bias.zero_()


def calibrate(model: nn.Module, x: torch.Tensor, act_bits: int = 8, out_bits: int = 8) -> None:
    """Give every Array layer its :class:`IntLayer` from one float pass over ``x``.

    Input codes are unsigned ``act_bits``-bit with zero point 0 and scale ``max(x) / (2^N - 1)``
    (the layer inputs of these networks are non-negative); each layer but the last requantizes
    to signed ``out_bits``-bit codes with scale ``max|y| / (2^(B-1) - 1)``; the last one
    dequantises its accumulator. Biases are zero.
    """
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, _ArrayLayer)]
    seen: dict[str, tuple[float, float]] = {}

    def hook(name: str):
        def f(_m: nn.Module, inp: tuple, out: torch.Tensor) -> None:
            if float(inp[0].min()) < 0:
                raise ValueError(f"layer {name!r}: calibration input is negative; these "
                                 "reference networks expect unsigned inputs")
            seen[name] = (float(inp[0].max()), float(out.abs().max()))
        return f

    handles = [m.register_forward_hook(hook(n)) for n, m in layers]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    for i, (name, m) in enumerate(layers):
        in_max, out_max = seen[name]
        s_x = max(in_max, 1e-12) / ((1 << act_bits) - 1)
        w = m.q_weight.numpy().astype(np.int64)
        rq = None
        if i < len(layers) - 1:
            s_y = max(out_max, 1e-12) / ((1 << (out_bits - 1)) - 1)
            mult = (np.float32(s_x) * m.w_scale.numpy().astype(np.float32)) / np.float32(s_y)
            rq = Requant(multiplier=mult, scale=s_y, zero_point=0, out_bits=out_bits,
                         out_signed=True, layer=name)
        common = dict(name=name, weight=w, weight_scale=m.w_scale.numpy(), input_scale=s_x,
                      input_zero_point=0, act_bits=act_bits, act_signed=False, weight_bits=8,
                      bias=fold_zero_point(None, w, 0), requant=rq)
        if isinstance(m, ArrayConv2d):
            m.int_layer = IntLayer(kind="conv2d", stride=m.stride, padding=m.padding,
                                   dilation=m.dilation, groups=m.groups, **common)
        else:
            m.int_layer = IntLayer(kind="linear", **common)


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = ArrayConv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.conv2 = ArrayConv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.relu = nn.ReLU()
        self.down = ArrayConv2d(c_in, c_out, 1, stride, bias=False) \
            if stride != 1 or c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.relu(self.conv1(x)))
        return self.relu(y + (x if self.down is None else self.down(x)))


class _ResNet18(nn.Module):
    def __init__(self, classes: int) -> None:
        super().__init__()
        self.conv1 = ArrayConv2d(3, 64, 3, 1, 1, bias=False)
        self.relu = nn.ReLU()
        blocks, c = [], 64
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [_BasicBlock(c, c_out, stride), _BasicBlock(c_out, c_out, 1)]
            c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = ArrayLinear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.blocks(self.relu(self.conv1(x)))).flatten(1))


def resnet18_random(seed: int = 0, classes: int = 10, batch: int = 32) -> nn.Module:
    """CIFAR-shaped ResNet-18 (3x3 stem, no max pool, 32x32 input) with random int8 weights.

    Calibrated on ``batch`` uniform random images in [0, 1) from the same seed.
    """
    gen = torch.Generator().manual_seed(seed)
    model = _ResNet18(classes).eval()
    for m in model.modules():
        if isinstance(m, _ArrayLayer):
            _set_int_weights(m, gen, 8)
    calibrate(model, torch.rand(batch, 3, 32, 32, generator=gen))
    return model


class _Codes(nn.Module):
    """Re-applies an OAQ input clamp: real values above the clamp's code are limited to it."""

    def __init__(self, layer: IntLayer, clamp: int) -> None:
        super().__init__()
        self.limit = (clamp - layer.input_zero_point) * layer.input_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, max=self.limit)


def from_int_model(int_model: Any) -> nn.Sequential:
    """An ``accel.quant`` integer model (layers + graph + input clamps) as a runnable network.

    Each layer becomes an Array layer holding its :class:`IntLayer`; ``relu``, ``maxpool2d`` and
    ``flatten`` become the PyTorch modules; an input clamp below the code range becomes a clamp.
    """
    mods: list[nn.Module] = []
    for g in int_model.graph:
        op = g["op"]
        if op == "layer":
            lay = int_model.layer(g["name"])
            clamp = int_model.input_clamps.get(lay.name, lay.input_range[1])
            if clamp < lay.input_range[1]:
                mods.append(_Codes(lay, clamp))
            w = torch.from_numpy(lay.weight * np.broadcast_to(
                lay.weight_scale, (lay.out_channels,)).reshape(-1, *[1] * (lay.weight.ndim - 1))).float()
            if lay.kind == "conv2d":
                m = ArrayConv2d(lay.in_channels, lay.out_channels, lay.kernel_size, lay.stride,
                                lay.padding, lay.dilation, lay.groups, bias=False)
            else:
                m = ArrayLinear(lay.in_channels, lay.out_channels, bias=False)
            with torch.no_grad():
                m.weight.copy_(w)
            m.int_layer = lay
            mods.append(m)
        elif op == "relu":
            mods.append(nn.ReLU())
        elif op == "maxpool2d":
            mods.append(nn.MaxPool2d(g["kernel"], g["stride"]))
        elif op == "flatten":
            mods.append(nn.Flatten(g["start_dim"]))
        else:
            raise ValueError(f"unknown integer-model op {op!r}; known: layer, relu, maxpool2d, flatten")
    return nn.Sequential(*mods).eval()


def digits_cnn_random(seed: int = 0) -> nn.Module:
    """A small CNN for 1x8x8 digits images (pixels 0..16) with random int8 weights."""
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(ArrayConv2d(1, 8, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), ArrayLinear(8 * 16, 10, bias=False)).eval()
    for m in model.modules():
        if isinstance(m, _ArrayLayer):
            _set_int_weights(m, gen, 8)
    calibrate(model, 16 * torch.rand(64, 1, 8, 8, generator=gen))
    return model


#: Built-in models of ``accel simulate --model`` and the dataset each expects.
REFERENCE_MODELS = {"resnet18-random": resnet18_random, "digits-cnn-random": digits_cnn_random}
MODEL_DATASETS = {"resnet18-random": "random-cifar", "digits-cnn-random": "digits"}
