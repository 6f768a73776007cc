"""Reference networks with random integer weights (benchmarks, smoke tests of whole models).

Each is a float ``nn.Module`` whose conv/linear weights are integer weights times a per-channel
scale (the modules carry ``int_weight`` and ``weight_scale``, which the post-training front end
:func:`accel.frontends.ptq.from_float` takes as they are), and :func:`reference_graph` turns it into
the integer graph, calibrated on random inputs of the same seed. The float module's own forward
is the float reference of ``benchmarks/bench_tlm.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from accel.arith import code_range
from accel.frontends.ptq import from_float
from accel.graph import Graph

__all__ = ["resnet18_random", "digits_cnn_random", "reference_graph", "REFERENCE_MODELS",
           "MODEL_DATASETS"]


def _set_int_weights(m: nn.Module, gen: torch.Generator, bits: int) -> None:
    lo, hi = code_range(bits, True)
    q = torch.randint(lo, hi + 1, m.weight.shape, generator=gen)
    fan_in = m.weight[0].numel()
    scale = torch.full((m.weight.shape[0],), (3.0 / fan_in) ** 0.5 / hi, dtype=torch.float64)
    m.int_weight, m.weight_scale = q.numpy(), scale.numpy()
    with torch.no_grad():
        m.weight.copy_((q * scale.view(-1, *[1] * (q.dim() - 1))).float())
        if m.bias is not None:
            m.bias.zero_()


def _randomise(model: nn.Module, gen: torch.Generator) -> nn.Module:
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            _set_int_weights(m, gen, 8)
    return model.eval()


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.relu2 = nn.ReLU()
        self.down = nn.Conv2d(c_in, c_out, 1, stride, bias=False) \
            if stride != 1 or c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.relu1(self.conv1(x)))
        return self.relu2(y + (x if self.down is None else self.down(x)))


class _ResNet18(nn.Module):
    def __init__(self, classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.relu = nn.ReLU()
        blocks, c = [], 64
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [_BasicBlock(c, c_out, stride), _BasicBlock(c_out, c_out, 1)]
            c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.blocks(self.relu(self.conv1(x)))).flatten(1))


def resnet18_random(seed: int = 0, classes: int = 10) -> nn.Module:
    """CIFAR-shaped ResNet-18 (3x3 stem, no max pool, 32x32 input) with random int8 weights."""
    return _randomise(_ResNet18(classes), torch.Generator().manual_seed(seed))


def digits_cnn_random(seed: int = 0) -> nn.Module:
    """A small CNN for 1x8x8 digits images (pixels 0..16) with random int8 weights."""
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(8 * 16, 10, bias=False))
    return _randomise(model, torch.Generator().manual_seed(seed))


#: Built-in models: factory and the shape and range of the calibration inputs.
REFERENCE_MODELS: dict[str, tuple[Callable[[int], nn.Module], tuple[int, ...], float]] = {
    "resnet18-random": (resnet18_random, (3, 32, 32), 1.0),
    "digits-cnn-random": (digits_cnn_random, (1, 8, 8), 16.0),
}
#: The dataset each built-in model expects.
MODEL_DATASETS = {"resnet18-random": "random-cifar", "digits-cnn-random": "digits"}


def reference_graph(name: str, seed: int = 0, batch: int = 32) -> tuple[Graph, nn.Module]:
    """The integer graph of a built-in model and its float module: calibrated on ``batch``
    uniform random inputs in its input range, from the same seed."""
    if name not in REFERENCE_MODELS:
        raise ValueError(f"unknown built-in model {name!r}; known: {', '.join(REFERENCE_MODELS)}")
    factory, shape, top = REFERENCE_MODELS[name]
    model = factory(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    graph = from_float(model, top * torch.rand(batch, *shape, generator=gen))
    graph.meta.update(model=name, seed=seed)
    return graph, model
