"""PyTorch eager-mode quantized layers (``torch.ao.nn.quantized``) as integer layers.

The engines differ in where the bias enters (measured on torch 2.13):

``qnnpack``
    int32 bias ``round(b / (s_x * s_w))`` added to the accumulator, then ``fp32(acc) * multiplier``
    rounded half to even. Replicated exactly: the bias (zero-point correction folded in) is the
    accumulator preload.
``fbgemm``
    exact int32 accumulator of ``(x - z_x) * w``, then ``fp32(acc) + fp32(b) / fp32(s_x * s_w)``,
    times the multiplier, rounded half to even. Replicated exactly (``Requant.offset``) while the
    input codes stay <= 127 (``reduce_range``): on CPUs without VNNI fbgemm saturates pairs of
    u8 x s8 products to int16, which out-of-calibration inputs still reach.
``x86`` / ``onednn``
    x86 picks fbgemm or oneDNN by CPU; oneDNN differs by 1 LSB on rare outputs. The fbgemm
    semantics are used and agreement (share within 1 LSB) is reported instead of equality.
"""

from __future__ import annotations

import numpy as np

from accel.layers import IntLayer, LayerError, Requant, fold_zero_point

__all__ = ["ENGINE_SEMANTICS", "EXACT_ENGINES", "is_quantized_layer", "from_quantized"]

#: What the TLM replicates for each engine (printed in reports).
ENGINE_SEMANTICS = {
    "qnnpack": "qnnpack: int32 bias round(b/(s_x*s_w)) in the accumulator, fp32 scale, round half even",
    "fbgemm": "fbgemm: fp32 bias b/(s_x*s_w) added after the accumulator, fp32 scale, round half even",
    "x86": "x86 (fbgemm or oneDNN by CPU): fbgemm semantics replicated; agreement reported",
    "onednn": "onednn: fbgemm semantics replicated; agreement reported (oneDNN may differ by 1 LSB)",
}
#: Engines whose output codes the TLM must equal exactly (P = Q = 32).
EXACT_ENGINES = ("qnnpack", "fbgemm")


def is_quantized_layer(module: object) -> bool:
    """True for ``torch.ao.nn.quantized`` Linear / Conv2d and their fused ReLU variants."""
    import torch.ao.nn.quantized as nnq

    return isinstance(module, (nnq.Linear, nnq.Conv2d))


def _fused_relu(module: object) -> bool:
    import torch.ao.nn.intrinsic.quantized as nniq

    return isinstance(module, (nniq.LinearReLU, nniq.ConvReLU2d))


def from_quantized(module: object, name: str, input_scale: float, input_zero_point: int,
                   engine: str) -> IntLayer:
    """The :class:`IntLayer` of a quantized Linear / Conv2d fed quint8 codes (``input_scale``,
    ``input_zero_point``), with the bias placed as ``engine`` places it."""
    import torch

    if engine not in ENGINE_SEMANTICS:
        raise LayerError(f"layer {name!r}: unknown quantized engine {engine!r}; known engines are "
                         f"{', '.join(ENGINE_SEMANTICS)}")
    wq = module.weight()
    if wq.dtype != torch.qint8:
        raise LayerError(f"layer {name!r}: weights must be qint8, not {wq.dtype}")
    if wq.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        scale, zp = np.array([wq.q_scale()]), np.array([wq.q_zero_point()])
    else:
        scale = wq.q_per_channel_scales().numpy().astype(np.float64)
        zp = wq.q_per_channel_zero_points().numpy()
    w = wq.int_repr().numpy().astype(np.int64)
    o = w.shape[0]
    b = module.bias()
    f32 = np.float32
    acc_scale = f32(input_scale) * np.broadcast_to(scale, (o,)).astype(f32)     # fp32 s_x * s_w
    multiplier = acc_scale / f32(module.scale)
    bias_f = None if b is None else b.detach().numpy().astype(f32)
    if engine == "qnnpack":
        bias_int = None if bias_f is None else np.rint(bias_f / acc_scale).astype(np.int64)
        offset = None
    else:
        bias_int, offset = None, None if bias_f is None else bias_f / acc_scale
    requant = Requant(multiplier=multiplier, scale=float(module.scale),
                      zero_point=int(module.zero_point), out_bits=8, out_signed=False,
                      offset=offset, relu=_fused_relu(module), layer=name)
    common = dict(name=name, weight=w, weight_scale=scale, weight_zero_point=zp,
                  input_scale=float(input_scale), input_zero_point=int(input_zero_point),
                  act_bits=8, act_signed=False, weight_bits=8,
                  bias=fold_zero_point(bias_int, w, int(input_zero_point)), requant=requant)
    if w.ndim == 2:
        return IntLayer(kind="linear", **common)
    if module.padding_mode != "zeros":
        raise LayerError(f"layer {name!r}: padding_mode {module.padding_mode!r} is not supported "
                         "(the array pads with the zero point's code: 'zeros' only)")
    return IntLayer(kind="conv2d", stride=module.stride, padding=module.padding,
                    dilation=module.dilation, groups=module.groups, **common)
