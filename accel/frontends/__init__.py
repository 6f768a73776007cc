"""Front ends: build the integer graph (:mod:`accel.graph`) from models made elsewhere.

* :mod:`accel.frontends.torch_ao` - PyTorch eager-mode quantized models (``torch.ao``), traced
  with ``torch.fx``, with the engine's requantization (qnnpack or fbgemm) replicated;
* :mod:`accel.frontends.ptq` - float PyTorch models quantized here (post-training, max
  calibration), including the built-in random-weight reference networks.

The project's own quantization-aware models export with :func:`accel.quant.export.export_graph`.
"""
