"""Quantization-aware layers: :class:`QuantLinear` and :class:`QuantConv2d`.

A layer owns its input quantizer (:class:`~accel.quant.act.ActQuant`), a weight quantizer chosen by
name (:mod:`accel.quant.weight`) and the :class:`~accel.config.ArrayConfig` of the array it targets
(N, sign, M, R, P, Q). The forward pass is fake-quantized in float64 arithmetic for the codes and
float32 for the matmul; :meth:`to_int_layer` exports exactly the integers the forward pass used.

Bias: in accumulator units ``b_int = round(b / (s_x s_w))``, then clamped per channel to what the
accumulator can still hold. The accumulator-aware quantizers budget it: with ``lo, hi`` the exact
range of the integer weights over the input codes, the bias is kept in
``[-2^(Q-1) - lo, 2^(Q-1) - 1 - hi]`` so that the exact range test passes at Q *with* the bias.
Baseline and OAQ only clamp it to the Q-bit range (the golden model refuses a wider bias).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from accel.config import ArrayConfig
from accel.layers import IntLayer, fold_zero_point
from accel.quant.act import ActQuant
from accel.quant.ste import round_ste
from accel.quant.weight import QuantizedWeight, make_weight_quantizer

__all__ = ["QuantLayer", "QuantLinear", "QuantConv2d", "QuantAdd"]


class QuantLayer(nn.Module):
    """Common part of the quantized conv/linear layers (see the module docstring).

    Parameters
    ----------
    weight, bias : Tensor
        Float weights in PyTorch layout and optional bias (copied).
    quantizer : str
        Weight quantizer name (``baseline``, ``a2q``, ``a2q+``, ``oaq``).
    config : ArrayConfig
        The target array: ``act_bits``/``act_signed`` (N) of this layer's input codes,
        ``weight_bits`` (M), ``rows`` (R), ``pe_acc_bits`` (P), ``out_bits`` (Q).
    act_mode : str
        Input scale mode (``fixed``, ``calibrated``, ``learned``).
    range_max : float, optional
        Real input range for ``act_mode="fixed"``.
    tile : bool
        Fold-wise bound at P and row bound at Q (a2q, a2q+ only).
    """

    kind = ""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, quantizer: str,
                 config: ArrayConfig, act_mode: str = "calibrated", range_max: float | None = None,
                 tile: bool = False) -> None:
        super().__init__()
        self.config = config
        self.weight = nn.Parameter(weight.detach().clone().float())
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone().float())
        self.act_quant = ActQuant(config.act_bits, config.act_signed, act_mode, range_max)
        self.weight_quant = make_weight_quantizer(quantizer, self.weight, config, tile)
        with torch.no_grad():
            self.weight.copy_(self.weight_quant.init_weight(self.weight))
        #: When true, :attr:`last_codes` keeps the input codes of the latest forward (OAQ).
        self.record = False
        self.last_codes: torch.Tensor | None = None

    # --- the integer view ---------------------------------------------------------------------
    @property
    def quantizer(self) -> str:
        return self.weight_quant.name

    def quantized_weight(self) -> QuantizedWeight:
        """Integer weights ``q[O, K]`` and scales ``s[O]`` (float64, straight-through)."""
        return self.weight_quant(self.weight)

    def bias_limits(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel range ``(lo, hi)`` (float64) allowed for the integer bias (module docstring)."""
        qlo, qhi = self.config.out_range
        o = q.shape[0]
        lo = torch.full((o,), float(qlo), dtype=torch.float64)
        hi = torch.full((o,), float(qhi), dtype=torch.float64)
        if self.weight_quant.accumulator_aware:
            qd = q.detach()
            p = torch.clamp(qd, min=0).sum(dim=1)
            n = torch.clamp(qd, max=0).sum(dim=1)
            x_min, x_max = self.act_quant.code_min, int(self.act_quant.code_max)
            lo = lo - (x_min * p + x_max * n)
            hi = hi - (x_max * p + x_min * n)
        return lo, hi

    def quantized_bias(self, qw: QuantizedWeight, x_scale: torch.Tensor) -> torch.Tensor | None:
        """Integer bias in accumulator units (float64 holding integers, straight-through), or None."""
        if self.bias is None:
            return None
        acc_scale = x_scale * qw.scale
        lo, hi = self.bias_limits(qw.q)
        return torch.clamp(round_ste(self.bias.double() / acc_scale), lo, hi)

    # --- forward ------------------------------------------------------------------------------
    def _op(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act_quant.calibrating:      # record the input range, run in float
            return self._op(self.act_quant(x), self.weight, self.bias)
        if self.record:
            self.last_codes = self.act_quant.codes(x)
        xq = self.act_quant(x)
        qw = self.quantized_weight()
        s_x = self.act_quant.scale()
        w = (qw.q * qw.scale[:, None]).reshape(self.weight.shape).float()
        bq = self.quantized_bias(qw, s_x)
        b = None if bq is None else (bq * s_x * qw.scale).float()
        return self._op(xq, w, b)

    def regularizer(self) -> torch.Tensor:
        return self.weight_quant.regularizer()

    # --- export -------------------------------------------------------------------------------
    def _geometry(self) -> dict:
        return {}

    def to_int_layer(self, name: str) -> IntLayer:
        """The :class:`~accel.layers.IntLayer` of this layer, named ``name``.

        The integers are those of the forward pass (float64, same code); accumulator-aware
        quantizers re-check their bound on them and raise ``ValueError`` if it broke.
        """
        with torch.no_grad():
            qw = self.quantized_weight()
            q = torch.round(qw.q)
            if self.weight_quant.accumulator_aware:
                self.weight_quant.check(q, name)
            s_x = self.act_quant.scale().detach()
            bq = self.quantized_bias(qw, s_x)
        w_int = q.to(torch.int64).reshape(self.weight.shape).numpy()
        bias = None if bq is None else torch.round(bq).to(torch.int64).numpy()
        bias = fold_zero_point(bias, w_int, 0) if bias is not None else None
        return IntLayer(name=name, kind=self.kind, weight=w_int,
                        weight_scale=qw.scale.detach().numpy(), input_scale=float(s_x),
                        input_zero_point=0, act_bits=self.config.act_bits,
                        act_signed=self.config.act_signed, weight_bits=self.config.weight_bits,
                        bias=bias, **self._geometry())


class QuantLinear(QuantLayer):
    """Quantization-aware ``nn.Linear`` (see :class:`QuantLayer`)."""

    kind = "linear"

    @classmethod
    def from_float(cls, layer: nn.Linear, quantizer: str, config: ArrayConfig, **kw) -> "QuantLinear":
        """Build from a float ``nn.Linear`` (weights and bias copied)."""
        return cls(layer.weight, layer.bias, quantizer, config, **kw)

    def _op(self, x, w, b):
        return F.linear(x, w, b)


class QuantConv2d(QuantLayer):
    """Quantization-aware ``nn.Conv2d`` (zero padding only; see :class:`QuantLayer`)."""

    kind = "conv2d"

    def __init__(self, weight, bias, quantizer, config, *, stride=(1, 1), padding=(0, 0),
                 dilation=(1, 1), groups=1, **kw) -> None:
        super().__init__(weight, bias, quantizer, config, **kw)
        self.stride, self.padding = tuple(stride), tuple(padding)
        self.dilation, self.groups = tuple(dilation), int(groups)

    @classmethod
    def from_float(cls, layer: nn.Conv2d, quantizer: str, config: ArrayConfig, **kw) -> "QuantConv2d":
        """Build from a float ``nn.Conv2d`` (zero padding mode; weights and bias copied)."""
        if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            raise ValueError(f"QuantConv2d supports explicit zero padding, not padding="
                             f"{layer.padding!r} with padding_mode={layer.padding_mode!r}")
        return cls(layer.weight, layer.bias, quantizer, config, stride=layer.stride,
                   padding=layer.padding, dilation=layer.dilation, groups=layer.groups, **kw)

    def _op(self, x, w, b):
        return F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups)

    def _geometry(self) -> dict:
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation,
                "groups": self.groups}


class QuantAdd(nn.Module):
    """A residual addition of two quantized tensors: ``act_a(a) + act_b(b)``.

    Each input has an activation quantizer, shared with every other reader of the same tensor
    (:func:`accel.quant.convert.quantize_model` shares them), so that the integer graph carries one
    code tensor per real tensor; the sum is real, and whatever reads it quantizes it (its own
    input quantizer). Exported as :class:`accel.nodes.Add` with multipliers ``s_a / s_y`` and
    ``s_b / s_y``.
    """

    def __init__(self, act_a: ActQuant, act_b: ActQuant) -> None:
        super().__init__()
        self.act_a, self.act_b = act_a, act_b

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.act_a(a) + self.act_b(b)
