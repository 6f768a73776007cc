"""Accumulator-aware quantization (SPEC section 5): QAT layers, weight and activation quantizers,
batch-norm folding, export to the integer-layer description and the reference-model evaluation.

Typical use::

    qmodel = quantize_model(float_model, "a2q+", config, input_range=16.0)
    calibrate(qmodel, batches)                 # max calibration of the input scales
    ... train with loss + regularizer(qmodel) (and OAQController(qmodel).step() for OAQ) ...
    graph = export_graph(qmodel)               # the integer graph (accel.graph)
    run = Executor(graph, GoldenBackend(config)).run(x)   # golden arithmetic, events per layer
"""

import importlib

#: Public names and the module that defines each (imported on first use: torch loads only then,
#: so that ``accel.quant.names`` stays light for the command line).
_LAZY = {
    "ActQuant": "accel.quant.act",
    "calibrate": "accel.quant.convert",
    "fold_batch_norm": "accel.quant.convert",
    "fold_batch_norms": "accel.quant.convert",
    "quant_layers": "accel.quant.convert",
    "quantize_model": "accel.quant.convert",
    "regularizer": "accel.quant.convert",
    "set_array_config": "accel.quant.convert",
    "export_graph": "accel.quant.export",
    "QuantConv2d": "accel.quant.modules",
    "QuantLayer": "accel.quant.modules",
    "QuantLinear": "accel.quant.modules",
    "OAQController": "accel.quant.oaq",
    "OAQError": "accel.quant.oaq",
    "residual_mismatches": "accel.quant.oaq",
    "layer_report": "accel.quant.report",
    "model_report": "accel.quant.report",
    "WEIGHT_QUANTIZERS": "accel.quant.weight",
    "make_weight_quantizer": "accel.quant.weight",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'accel.quant' has no attribute {name!r}")
