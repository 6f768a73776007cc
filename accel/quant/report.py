"""Per-layer quantization report: l1 norms, sparsity and the minimum safe P and Q (JSON-ready),
and the certificate of a whole graph (:func:`certify`: every array layer on the input code range
its graph edge actually carries)."""

from __future__ import annotations

from typing import Any

import numpy as np

from accel import bounds
from accel.arith import code_range, fold_count
from accel.config import ArrayConfig
from accel.layers import IntLayer

__all__ = ["layer_report", "model_report", "certify", "input_code_range", "accumulator_targets"]


def layer_report(layer: IntLayer, config: ArrayConfig, x_range: tuple[int, int] | None = None,
                 bias: np.ndarray | None = None) -> dict[str, Any]:
    """Bounds of one integer layer on ``config``'s array (fold height R).

    Every width is for raw input codes anywhere in ``x_range`` (default: the layer's declared N-bit
    code range; OAQ's narrower clamp is not assumed) and the preloaded ``bias`` (default: the
    layer's). ``min_safe_p`` / ``min_safe_q`` come from the exact range test (per fold; whole K plus
    the bias actually preloaded), ``min_safe_q_weights`` is the whole-K test without the bias; the
    others are the closed forms for comparison.
    """
    o = layer.out_channels
    q = layer.weight.reshape(o, -1).T          # [K, O]
    k = q.shape[0]
    x_range = layer.input_range if x_range is None else x_range
    bias = layer.bias if bias is None else bias
    safe = bounds.min_safe_widths(q, x_range, config.rows, bias)
    l1 = np.abs(q).sum(axis=0)
    rep: dict[str, Any] = {
        "name": layer.name, "kind": layer.kind, "K": int(k), "O": int(o),
        "folds": fold_count(k, config.rows),
        "l1_max": int(l1.max()), "l1_mean": float(l1.mean()), "l1_per_channel": l1.tolist(),
        "sparsity": float((q == 0).mean()),
        "bias_abs_max": int(np.abs(bias).max()) if bias is not None else 0,
        "input_range": [int(v) for v in x_range],
        "min_safe_p": safe.p, "min_safe_q": safe.q,
        "min_safe_q_weights": int(bounds.exact_min_bits(q, x_range).max()),
        "bias_bits": int(bounds.signed_bits(bias).max()) if bias is not None else 0,
        "min_safe_p_per_channel": safe.pe_bits.tolist(),
        "min_safe_q_per_channel": safe.out_bits.tolist(),
        "a2q_l1_min_bits": int(bounds.a2q_min_bits(q, layer.act_bits, layer.act_signed).max()),
        "datatype_bound_p": bounds.datatype_bound(min(config.rows, k), layer.act_bits,
                                                  layer.weight_bits, layer.act_signed),
        "datatype_bound_q": bounds.datatype_bound(k, layer.act_bits, layer.weight_bits,
                                                  layer.act_signed),
    }
    if not layer.act_signed:
        rep["half_norm_min_bits"] = int(bounds.half_norm_min_bits(q, layer.act_bits).max())
    return rep


def model_report(layers: list[IntLayer], config: ArrayConfig) -> dict[str, Any]:
    """:func:`layer_report` of every layer plus the model's minimum safe P and Q (widest layer)."""
    reps = [layer_report(lay, config) for lay in layers]
    return {"layers": reps, "min_safe_p": max(r["min_safe_p"] for r in reps),
            "min_safe_q": max(r["min_safe_q"] for r in reps)}


def input_code_range(graph: Any, node: Any, config: ArrayConfig) -> tuple[int, int]:
    """The raw code range an array node's input lanes can carry: the codes its input edge is
    typed with (``graph.types``: clamps, ReLUs and narrow ranges included), widened to contain 0
    (SPEC section 5: the exact test then bounds every partial sum); under OverQ the lane range."""
    if config.overq is not None:
        return config.lane_range
    t = graph.types[node.inputs[0]]
    lo, hi = code_range(t.bits, t.signed)
    lo = lo if t.lo is None else t.lo
    hi = hi if t.hi is None else t.hi
    return min(lo, 0), max(hi, 0)


def accumulator_targets(graph: Any) -> dict[str, int]:
    """The accumulator width each layer's weight quantizer targets, where the graph says: a
    Brevitas A2Q / A2Q+ model's ``meta["accumulator_bit_width"]``, or the P of a checkpoint that
    ``accel quantize`` trained with a2q / a2q+ over the whole row (not ``tile``)."""
    meta = graph.meta
    if meta.get("accumulator_bit_width"):
        return {str(k): int(v) for k, v in meta["accumulator_bit_width"].items()}
    if meta.get("quantizer") in ("a2q", "a2q+") and not meta.get("tile") and \
            isinstance(meta.get("config"), dict):
        return {n.name: int(meta["config"]["pe_acc_bits"]) for n in graph.array_nodes}
    return {}


def certify(graph: Any, config: ArrayConfig, measured: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    """The static guarantee of every array layer of ``graph`` on ``config``'s array.

    Per layer: the input code range (:func:`input_code_range`), the smallest safe P (exact range
    test per fold of R rows, no bias) and Q (whole K with the preloaded bias, folded zero-point
    correction included; and without the bias, so that a bias needing more than Q shows), whether
    ``config``'s P and Q are safe, and, where the graph records it (Brevitas A2Q / A2Q+), the
    accumulator width the weight quantizer targets with whether the weights meet it over the
    whole K. ``measured`` (layer name -> :class:`accel.stats.LayerStats` with extremes) adds the
    smallest P and Q that had no event on that data and the events at ``config``'s widths.
    """
    targets = accumulator_targets(graph)
    shift = config.frac_bits if config.overq is not None else 0
    layers = []
    for node in graph.array_nodes:
        lay = node.layer
        bias = None if lay.bias is None else lay.bias << shift
        rep = layer_report(lay, config, input_code_range(graph, node, config), bias)
        rep["safe_p"] = rep["min_safe_p"] <= config.pe_acc_bits
        rep["safe_q"] = rep["min_safe_q"] <= config.out_bits
        target = targets.get(node.name)
        rep["accumulator_bit_width"] = target
        if target is not None:
            rep["meets_accumulator_bit_width"] = rep["min_safe_q_weights"] <= int(target)
        st = (measured or {}).get(node.name)
        if st is not None:
            ext = st.extremes_measured
            rep.update(data_min_p=st.min_pe_bits if ext else None,
                       data_min_q=st.min_out_bits if ext else None,
                       data_pe_events=st.pe_events, data_acc_events=st.acc_events,
                       data_outputs=st.outputs)
        layers.append(rep)
    return {"config": config.to_dict(), "layers": layers,
            "min_safe_p": max(r["min_safe_p"] for r in layers),
            "min_safe_q": max(r["min_safe_q"] for r in layers),
            "safe": all(r["safe_p"] and r["safe_q"] for r in layers)}
