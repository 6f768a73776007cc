"""Whole-model execution: every quantized conv/linear on the simulated array, the rest in PyTorch.

Each array layer's output is the TLM's (its own forward is replaced for the duration of a call,
or hooked for torch.ao layers), so ReLU, pooling, additions, flatten and the like run in PyTorch
on what the array produced. Array layers are

* modules with ``to_int_layer(name)`` (:class:`accel.layers.HasIntLayer`, e.g. ``accel.quant``):
  they receive float tensors, the TLM quantizes them with the layer's input scale and zero point
  and returns float (the requantized codes dequantised, or the dequantised accumulator);
* ``torch.ao.nn.quantized`` Linear / Conv2d (also fused with ReLU): they receive quint8 tensors and
  the TLM returns quint8 tensors, replicating the engine's semantics (:mod:`sim.tlm.torch_ao`); the
  original module's codes are compared with the TLM's on every call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from accel.config import ArrayConfig
from accel.layers import IntLayer
from sim.cycles import TimingNumbers, default_timing
from sim.tlm.layer import LayerStats, merge_stats, run_layer
from sim.tlm.torch_ao import ENGINE_SEMANTICS, EXACT_ENGINES, from_quantized, is_quantized_layer

__all__ = ["ModelResult", "ArraySimulator", "simulate_model", "array_layers"]


@dataclass
class ModelResult:
    """Per-layer statistics and per-model totals of a TLM run (JSON-ready via :meth:`to_dict`)."""

    config: dict[str, Any]
    timing: dict[str, int]
    engine: str | None
    semantics: str
    layers: list[LayerStats]
    samples: int = 0
    labelled: int = 0
    correct: int = 0
    reference_correct: int | None = None
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total_cycles(self) -> int:
        """Cycles of every job of every layer (no overlap between jobs, SPEC section 6)."""
        return sum(s.cycles for s in self.layers)

    @property
    def accuracy(self) -> float | None:
        """Top-1 accuracy of the TLM's outputs against the labels (None without labels)."""
        return self.correct / self.labelled if self.labelled else None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        ref = self.reference_correct
        return {
            "config": self.config, "timing": self.timing, "engine": self.engine,
            "semantics": self.semantics, "samples": self.samples, "accuracy": self.accuracy,
            "reference_accuracy": None if ref is None or not self.labelled else ref / self.labelled,
            "total_cycles": self.total_cycles,
            "cycles_per_sample": self.total_cycles / self.samples if self.samples else None,
            "wall_s": self.wall_s, "layers": [s.to_dict() for s in self.layers], **self.extra,
        }


def array_layers(model: Any) -> list[tuple[str, Any]]:
    """``(name, module)`` of every module the array runs, in registration order."""
    return [(name, m) for name, m in model.named_modules()
            if callable(getattr(m, "to_int_layer", None)) or is_quantized_layer(m)]


def _channel_last(a: np.ndarray, conv: bool) -> np.ndarray:
    return np.moveaxis(a, 1, -1) if conv else a


def _channel_first(a: np.ndarray, conv: bool) -> np.ndarray:
    return np.moveaxis(a, -1, 1) if conv else a


class ArraySimulator:
    """Runs a PyTorch model with its quantized layers on the simulated array.

    Parameters
    ----------
    model : torch.nn.Module
        In eval mode; see the module docstring for which layers run on the array.
    config : ArrayConfig
    tm : TimingNumbers, optional
        Defaults to the RTL's timing numbers for ``config``.
    engine : str, optional
        Quantized engine whose semantics to replicate for torch.ao layers (default: the current
        ``torch.backends.quantized.engine``).
    extremes : bool
        Measure exact partial-sum extremes (largest psum, minimum P and Q); slower.
    """

    def __init__(self, model: Any, config: ArrayConfig, tm: TimingNumbers | None = None,
                 engine: str | None = None, extremes: bool = True) -> None:
        import torch

        self.model, self.config, self.extremes = model, config, extremes
        self.tm = default_timing(config) if tm is None else tm
        self.layers = array_layers(model)
        if not self.layers:
            raise ValueError("the model has no layer the array can run: expected modules with "
                             "to_int_layer() (accel.quant) or torch.ao.nn.quantized Linear/Conv2d")
        self.has_ao = any(is_quantized_layer(m) for _, m in self.layers)
        self.engine = (engine or torch.backends.quantized.engine) if self.has_ao else None
        self.stats: dict[str, LayerStats] = {}
        self.agreement: dict[str, dict[str, int]] = {}
        self._int_layers: dict[tuple, IntLayer] = {}

    @property
    def semantics(self) -> str:
        """Which arithmetic the TLM replicated (the engine's, or the integer-layer description's)."""
        if self.engine is None:
            return "accel integer layers: integer bias in the accumulator, Requant per layer"
        return ENGINE_SEMANTICS.get(self.engine, self.engine)

    def _record(self, name: str, stats: LayerStats) -> None:
        self.stats[name] = merge_stats(self.stats.get(name), stats, self.config)

    def _ao_hook(self, name: str) -> Callable:
        """Forward hook of a torch.ao layer: the TLM's codes replace (and are compared with) its own."""
        import torch

        def hook(module: Any, inputs: tuple, output: Any) -> Any:
            x = inputs[0]
            key = (name, float(x.q_scale()), int(x.q_zero_point()))
            layer = self._int_layers.get(key)
            if layer is None:
                layer = from_quantized(module, name, key[1], key[2], self.engine)
                self._int_layers[key] = layer
            acc, stats = run_layer(layer, x.int_repr().numpy(), self.config, self.tm, self.extremes)
            conv = layer.kind == "conv2d"
            codes = _channel_first(layer.requant.apply(_channel_last(acc, conv)), conv)
            ref = output.int_repr().numpy().astype(np.int64)
            diff = np.abs(codes - ref)
            agg = self.agreement.setdefault(name, {"compared": 0, "equal": 0, "within_1lsb": 0})
            agg["compared"] += int(diff.size)
            agg["equal"] += int((diff == 0).sum())
            agg["within_1lsb"] += int((diff <= 1).sum())
            self._record(name, stats)
            return torch._make_per_tensor_quantized_tensor(
                torch.from_numpy(np.ascontiguousarray(codes).astype(np.uint8)),
                layer.requant.scale, layer.requant.zero_point)

        return hook

    def _forward(self, name: str, module: Any) -> Callable:
        """Forward of an integer-layer module on the array (its own float forward never runs)."""
        import torch

        def forward(x: Any) -> Any:
            layer = self._int_layers.get((name,))
            if layer is None:
                layer = self._int_layers[(name,)] = module.to_int_layer(name)
            codes = layer.quantize_input(x.detach().cpu().numpy())
            acc, stats = run_layer(layer, codes, self.config, self.tm, self.extremes)
            conv = layer.kind == "conv2d"
            acc_cl = _channel_last(acc, conv)
            if layer.requant is None:
                y = layer.dequantize_output(acc_cl)
            else:
                y = layer.requant.dequantize(layer.requant.apply(acc_cl))
            self._record(name, stats)
            return torch.from_numpy(np.ascontiguousarray(_channel_first(y, conv)))

        return forward

    def __call__(self, x: Any) -> Any:
        """The model's output on ``x`` with every array layer computed by the TLM."""
        import torch

        handles, patched = [], []
        try:
            for n, m in self.layers:
                if is_quantized_layer(m):
                    handles.append(m.register_forward_hook(self._ao_hook(n)))
                else:
                    m.forward = self._forward(n, m)       # instance attribute shadows the class's
                    patched.append(m)
            with torch.no_grad():
                return self.model(x)
        finally:
            for h in handles:
                h.remove()
            for m in patched:
                del m.forward

    def layer_stats(self) -> list[LayerStats]:
        """Per-layer statistics so far, in model order, with the torch.ao agreement attached."""
        out = []
        for name, _ in self.layers:
            if name in self.stats:
                s = self.stats[name]
                if name in self.agreement:
                    a = self.agreement[name]
                    s.torch = {**a, "equal_share": a["equal"] / max(1, a["compared"]),
                               "within_1lsb_share": a["within_1lsb"] / max(1, a["compared"]),
                               "exact_required": self.engine in EXACT_ENGINES}
                out.append(s)
        return out


def _logits(out: Any) -> Any:
    return out.dequantize() if getattr(out, "is_quantized", False) else out


def simulate_model(model: Any, batches: Iterable[tuple[Any, Any]], config: ArrayConfig,
                   tm: TimingNumbers | None = None, engine: str | None = None,
                   reference: bool = True, progress: Callable[[int], None] | None = None,
                   extremes: bool = True) -> ModelResult:
    """Run ``model`` on every ``(inputs, labels)`` batch with its array layers on the TLM.

    ``labels`` may be None (no accuracy). With ``reference``, the unmodified model's accuracy is
    measured on the same batches. ``progress(n)`` is called after each batch with its size.
    ``extremes=False`` skips the exact partial-sum extremes (faster; min P/Q not reported).
    """
    import torch

    sim = ArraySimulator(model, config, tm, engine, extremes)
    res = ModelResult(config=config.to_dict(), timing=dict(vars(sim.tm)) if hasattr(sim.tm, "__dict__")
                      else {}, engine=sim.engine, semantics=sim.semantics, layers=[])
    t0 = time.perf_counter()
    ref_correct = 0
    for x, y in batches:
        out = _logits(sim(x))
        n = int(x.shape[0])
        res.samples += n
        if y is not None:
            res.labelled += n
            res.correct += int((out.argmax(dim=-1) == y).sum())
            if reference:
                with torch.no_grad():
                    ref_correct += int((_logits(model(x)).argmax(dim=-1) == y).sum())
        if progress is not None:
            progress(n)
    res.wall_s = time.perf_counter() - t0
    res.reference_correct = ref_correct if reference else None
    res.layers = sim.layer_stats()
    return res
