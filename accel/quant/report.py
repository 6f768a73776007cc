"""Per-layer quantization report: l1 norms, sparsity and the minimum safe P and Q (JSON-ready)."""

from __future__ import annotations

from typing import Any

import numpy as np

from accel import bounds
from accel.arith import fold_count
from accel.config import ArrayConfig
from accel.layers import IntLayer

__all__ = ["layer_report", "model_report"]


def layer_report(layer: IntLayer, config: ArrayConfig) -> dict[str, Any]:
    """Bounds of one integer layer on ``config``'s array (fold height R).

    Every width is for inputs anywhere in the layer's declared N-bit code range (OAQ's narrower
    clamp is not assumed). ``min_safe_p`` / ``min_safe_q`` come from the exact range test (per fold;
    whole K plus the bias actually preloaded); the others are the closed forms for comparison.
    """
    o = layer.out_channels
    q = layer.weight.reshape(o, -1).T          # [K, O]
    k = q.shape[0]
    safe = bounds.min_safe_widths(q, layer.input_range, config.rows, layer.bias)
    l1 = np.abs(q).sum(axis=0)
    rep: dict[str, Any] = {
        "name": layer.name, "kind": layer.kind, "K": int(k), "O": int(o),
        "folds": fold_count(k, config.rows),
        "l1_max": int(l1.max()), "l1_mean": float(l1.mean()), "l1_per_channel": l1.tolist(),
        "sparsity": float((q == 0).mean()),
        "bias_abs_max": int(np.abs(layer.bias).max()) if layer.bias is not None else 0,
        "min_safe_p": safe.p, "min_safe_q": safe.q,
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
