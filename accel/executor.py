"""The executor: runs an integer graph (:mod:`accel.graph`) on a batch, one node at a time.

As ``torch.fx.Interpreter`` does, :meth:`Executor.run_node` dispatches on the node's op kind to
one method per kind; host operations apply their node's exact integer semantics
(:mod:`accel.nodes`) and array layers go to the *array back end* (:mod:`accel.backends`: exact,
golden, or the RTL co-simulation from ``sim``), which answers only "run the GEMMs of this layer".
Measurements that need more than values plug in as *meters* (``sim.cycles.CycleMeter`` adds the
cycles of every GEMM job), so ``accel`` never imports ``sim``.

OverQ (SPEC section 4) changes what travels between layers, and only here: the array's lanes
take raw codes of ``config.lane_bits`` bits, ``integer << F | fraction`` with F =
``config.frac_bits``. So under an OverQ configuration every integer edge counts in units of 2^-F
code steps: the graph input's codes enter as ``code << F``; requantizing nodes (Requantize, Add,
AvgPool) keep their multipliers, scale their zero points by 2^F and clamp to the raw lane range
instead of N bits (outliers survive to reach the encoder; an input clamp narrower than N bits does
not apply); clamps scale their bounds; array layers count in 2^-F accumulator steps (bias × 2^F);
dequantisation divides by 2^F. Activations must be unsigned with zero point 0 (a zero lane is a
real zero) where they enter an array layer; signed codes that only host operations read (a
residual branch before its Add) keep their N-bit range, in the same units.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from accel.backends import ArrayBackend, LayerRun
from accel.graph import Graph
from accel.layers import LayerError
from accel.lowering import GemmShape
from accel.nodes import (Add, ArrayLayer, AvgPool, Clamp, Dequantize, Node, Quantize, Requantize)
from accel.stats import LayerStats, ModelResult

__all__ = ["Meter", "Run", "Executor", "simulate", "overq_node"]


class Meter(Protocol):
    """Adds measurements of one array-layer call to its statistics (e.g. cycles)."""

    def __call__(self, node: ArrayLayer, shape: GemmShape, stats: LayerStats) -> None: ...


@dataclass
class Run:
    """The result of :meth:`Executor.run` on one batch.

    ``outputs`` are the graph outputs' values in order (the first: the logits); ``layers`` the
    statistics of each array node called, by name; ``values`` every node's value when asked for.
    """

    outputs: list[np.ndarray]
    layers: dict[str, LayerStats]
    values: dict[str, np.ndarray] | None = None

    @property
    def logits(self) -> np.ndarray:
        return self.outputs[0]


def _shift(v: int | None, f: int) -> int | None:
    return None if v is None else v << f


def overq_node(node: Node, config: Any) -> Node:
    """``node`` counting in units of 2^-F code steps on raw lane codes (module docstring)."""
    f, lane_hi = config.frac_bits, config.lane_range[1]

    def codes(n: Node, **kw: Any) -> Node:
        if n.signed:        # host-side only (e.g. a residual branch before its Add): N-bit range
            return dataclasses.replace(n, bits=n.bits + f, zero_point=n.zero_point << f,
                                       lo=n.lo << f, hi=n.hi << f, **kw)
        return dataclasses.replace(n, bits=config.lane_bits, zero_point=n.zero_point << f,
                                   lo=n.lo << f, hi=lane_hi, **kw)

    if isinstance(node, ArrayLayer):
        lay = node.layer
        if lay.act_signed:
            raise LayerError(f"layer {lay.name!r}: OverQ lanes take unsigned codes; this layer "
                             "takes signed ones")
        if lay.input_zero_point != 0:
            raise LayerError(f"layer {lay.name!r}: OverQ lanes need input zero point 0 (a zero "
                             f"lane is a real zero), not {lay.input_zero_point}")
        if f == 0:
            return node
        return dataclasses.replace(node, layer=dataclasses.replace(
            lay, bias=None if lay.bias is None else lay.bias << f,
            input_scale=lay.input_scale / (1 << f)))
    if isinstance(node, Requantize):
        off = None if node.offset is None else node.offset * np.float32(1 << f)
        return codes(node, input_zero_point=node.input_zero_point << f, offset=off)
    if isinstance(node, Add):
        return codes(node, input_zero_points=tuple(z << f for z in node.input_zero_points))
    if isinstance(node, AvgPool):
        return codes(node, input_zero_point=node.input_zero_point << f)
    if isinstance(node, Clamp):
        return dataclasses.replace(node, lo=_shift(node.lo, f), hi=_shift(node.hi, f))
    if isinstance(node, Dequantize):
        return dataclasses.replace(node, zero_point=node.zero_point << f,
                                   scale=node.scale / (1 << f))
    return node


class Executor:
    """Runs ``graph`` with ``backend`` computing its array layers (module docstring).

    Parameters
    ----------
    graph : Graph
    backend : ArrayBackend
        Its ``config`` decides the lanes (and OverQ) for the whole graph.
    meters : sequence of Meter
        Called after every array-layer call.
    """

    def __init__(self, graph: Graph, backend: ArrayBackend, meters: Iterable[Meter] = ()) -> None:
        self.graph, self.backend, self.meters = graph, backend, list(meters)
        self.config = backend.config
        overq = self.config.overq is not None
        self.nodes = [overq_node(n, self.config) if overq else n for n in graph.nodes]
        self._shift = self.config.frac_bits if overq else 0

    def run(self, x: np.ndarray, keep: bool = False) -> Run:
        """Run the graph on the input batch ``x`` (real values, batch first)."""
        values: dict[str, np.ndarray] = {}
        stats: dict[str, LayerStats] = {}
        remaining = {n.name: 0 for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                remaining[i] += 1
        wanted = set(self.graph.outputs)
        for node in self.nodes:
            args = [x] if not node.inputs else [values[i] for i in node.inputs]
            if isinstance(node, ArrayLayer):
                out, st = self.run_array(node, args[0])
                stats[node.name] = st
            else:
                out = self.run_node(node, args)
            values[node.name] = out
            if not keep:                 # free what no later node reads
                for i in node.inputs:
                    remaining[i] -= 1
                    if remaining[i] == 0 and i not in wanted:
                        del values[i]
        return Run([values[o] for o in self.graph.outputs], stats, values if keep else None)

    def run_node(self, node: Node, args: list[np.ndarray]) -> np.ndarray:
        """The value of a host node: dispatch on its op kind (``run_<op>``, else its semantics)."""
        method = getattr(self, f"run_{node.op}", None)
        return method(node, *args) if method is not None else node.apply(*args)

    def run_input(self, node: Node, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32)

    def run_quantize(self, node: Quantize, x: np.ndarray) -> np.ndarray:
        codes = node.apply(x)
        return codes << self._shift if self._shift else codes

    def run_array(self, node: ArrayLayer, codes: np.ndarray) -> tuple[np.ndarray, LayerStats]:
        """The back end's result of an array layer and its statistics (with the meters')."""
        run = self.backend.run(node.layer, np.asarray(codes))
        st = layer_stats(node, np.shape(codes), run)
        for meter in self.meters:
            meter(node, run.shape, st)
        st.finish(self.config)
        if node.pair_bits is not None:        # the source runtime's pair saturation, host side
            if self._shift or self.config.overq is not None:
                raise LayerError(f"node {node.name!r}: a runtime's pair saturation (pair_bits) "
                                 "is defined on N-bit codes, not on OverQ lanes")
            return run.acc + node.pair_correction(np.asarray(codes)), st
        return run.acc, st


def layer_stats(node: ArrayLayer, input_shape: tuple[int, ...], run: LayerRun) -> LayerStats:
    """The statistics of one array-layer call from its back end's result."""
    sh = run.shape
    st = LayerStats(name=node.name, kind=node.layer.kind, input_shape=list(input_shape),
                    output_shape=list(sh.out_shape), t=sh.t, k=sh.k, o=sh.o, layer_groups=sh.groups)
    st.outputs = int(run.acc.size)
    st.pe_events, st.acc_events = int(run.pe_events), int(run.acc_events)
    if run.pe_overflow is not None and (run.pe_events or run.acc_events):
        st.pe_overflow_outputs = int(np.count_nonzero(run.pe_overflow))
        st.acc_overflow_outputs = int(np.count_nonzero(run.acc_overflow))
        st.affected_outputs = int(np.count_nonzero(run.pe_overflow | run.acc_overflow))
    st.exact_mismatches = 0 if run.acc is run.exact else int(np.count_nonzero(run.acc != run.exact))
    if run.extremes is not None:
        e = run.extremes
        st.pe_psum_min, st.pe_psum_max, st.acc_min, st.acc_max = e.pe_min, e.pe_max, e.acc_min, e.acc_max
        st.extremes_measured = True
    st.overq = run.overq
    return st


def _merge(total: dict[str, LayerStats], new: dict[str, LayerStats], config: Any) -> None:
    for name, st in new.items():
        if name not in total:
            total[name] = st
            continue
        total[name].merge(st)
        total[name].finish(config)


def _agree(stats: LayerStats, got: np.ndarray, want: np.ndarray, lsb: Any = None) -> None:
    """Count how many of ``got`` equal / are within 1 LSB of the reference ``want``: codes, or
    real values in units of ``lsb`` (a Dequantize node's scale)."""
    if lsb is not None:
        g, w = np.asarray(got, np.float64), np.asarray(want, np.float64)
        eq = g == w
        d = np.where(eq, 0.0, np.abs(g - w) / lsb)
        d = np.where(eq, 0, np.where(d <= 1, 1, 2))
    else:
        d = np.subtract(got, want, dtype=np.int64)
        np.abs(d, out=d)
    a = stats.agreement
    a["compared"] = a.get("compared", 0) + int(d.size)
    a["equal"] = a.get("equal", 0) + int(d.size - np.count_nonzero(d))
    a["within_1lsb"] = a.get("within_1lsb", 0) + int(np.count_nonzero(d <= 1))


def simulate(graph: Graph, batches: Iterable[tuple[Any, Any]], backend: ArrayBackend,
             meters: Iterable[Meter] = (), reference: Callable[[Any], dict[str, Any]] | None = None,
             progress: Callable[[int], None] | None = None) -> ModelResult:
    """Run ``graph`` on every ``(inputs, labels)`` batch; per-layer statistics and accuracy.

    ``labels`` may be None (no accuracy). ``reference(inputs)``, when given, returns what a
    reference runtime computed for the same batch: ``{"logits": ..., node name: codes, ...}``;
    its logits give ``reference_correct`` and every node it names is compared output for output
    (``LayerStats.agreement`` of the array node that feeds it, or of the node itself): codes
    exactly, the real values of a Dequantize node in steps of its scale.
    ``progress(n)`` is called after each batch with its size.
    """
    ex = Executor(graph, backend, meters)
    res = ModelResult(config=backend.config.to_dict(), semantics=backend.semantics, layers=[])
    total: dict[str, LayerStats] = {}
    ref_correct = 0
    start = time.perf_counter()
    for x, y in batches:
        x = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
        ref = reference(x) if reference is not None else None
        run = ex.run(x, keep=ref is not None and any(k != "logits" for k in ref))
        if ref is not None:
            for name, want in ref.items():
                if name != "logits":
                    owner = _owner(graph, name)
                    _agree(run.layers[owner], run.values[name], want, _lsb(graph, name, want))
        _merge(total, run.layers, backend.config)
        n = int(x.shape[0])
        res.samples += n
        if y is not None:
            labels = np.asarray(y.numpy() if hasattr(y, "numpy") else y)
            res.labelled += n
            res.correct += int((np.argmax(run.logits, axis=-1) == labels).sum())
            if ref is not None and "logits" in ref:
                ref_correct += int((np.argmax(np.asarray(ref["logits"]), axis=-1) == labels).sum())
        if progress is not None:
            progress(n)
    res.wall_s = time.perf_counter() - start
    res.reference_correct = ref_correct if reference is not None else None
    for st in total.values():
        st.finish(backend.config)
    res.layers = [total[n.name] for n in graph.array_nodes if n.name in total]
    return res


def _lsb(graph: Graph, name: str, value: Any) -> np.ndarray | None:
    """One step of a real-valued node's input (a Dequantize's scale, broadcast), else None."""
    node = graph.node(name)
    if not isinstance(node, Dequantize):
        return None
    s = node.scale
    nd = np.ndim(value)
    if s.shape[0] == 1 or nd == 0:
        return s.reshape(()) if s.shape[0] == 1 else s
    shape = [1] * nd
    shape[node.axis] = s.shape[0]
    return s.reshape(shape)


def _owner(graph: Graph, name: str) -> str:
    """The array node whose statistics a comparison at node ``name`` is recorded under: the
    nearest array node at or before it on its input path (the first array node for the input's
    quantizer and whatever else precedes every array node)."""
    node = graph.node(name)
    while not isinstance(node, ArrayLayer):
        if not node.inputs:
            if not graph.array_nodes:
                raise LayerError(f"reference node {name!r}: the graph has no array layer")
            return graph.array_nodes[0].name
        node = graph.node(node.inputs[0])
    return node.name
