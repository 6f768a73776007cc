"""The transaction-level model: integer layers lowered to GEMMs on the simulated array.

Values come from :func:`accel.golden.gemm`, cycles from :mod:`sim.cycles`; see
:mod:`sim.tlm.lowering` (SPEC section 1 order), :mod:`sim.tlm.layer` (one layer, statistics),
:mod:`sim.tlm.torch_ao` (PyTorch quantized layers) and :mod:`sim.tlm.model` (whole models).
"""

from sim.tlm.layer import LayerStats, psum_extremes, run_layer
from accel.lowering import gemm_shape, lower
from sim.tlm.model import ArraySimulator, ModelResult, simulate_model

__all__ = ["LayerStats", "psum_extremes", "run_layer", "gemm_shape", "lower", "ArraySimulator",
           "ModelResult", "simulate_model"]
