"""Accumulator-aware quantization (SPEC section 5): QAT layers, weight and activation quantizers,
batch-norm folding, export to the integer-layer description and the reference-model evaluation.

Typical use::

    qmodel = quantize_model(float_model, "a2q+", config, input_range=16.0)
    calibrate(qmodel, batches)                 # max calibration of the input scales
    ... train with loss + regularizer(qmodel) (and OAQController(qmodel).step() for OAQ) ...
    int_model = export_int_model(qmodel)       # IntLayers + requant + graph
    run = int_model.run(x, config)             # golden arithmetic, overflow events per layer
"""

from accel.quant.act import ActQuant
from accel.quant.convert import (calibrate, fold_batch_norm, fold_batch_norms, quant_layers,
                                 quantize_model, regularizer, set_array_config)
from accel.quant.intmodel import IntModel, export_int_model, load_int_model
from accel.quant.modules import QuantConv2d, QuantLayer, QuantLinear
from accel.quant.oaq import OAQController, OAQError, residual_mismatches
from accel.quant.report import layer_report, model_report
from accel.quant.weight import WEIGHT_QUANTIZERS, make_weight_quantizer

__all__ = ["ActQuant", "QuantLayer", "QuantLinear", "QuantConv2d", "WEIGHT_QUANTIZERS",
           "make_weight_quantizer", "quantize_model", "calibrate", "fold_batch_norm",
           "fold_batch_norms", "quant_layers", "regularizer", "set_array_config", "IntModel",
           "export_int_model", "load_int_model", "OAQController", "OAQError",
           "residual_mismatches", "layer_report", "model_report"]
