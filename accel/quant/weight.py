"""Weight quantizers, selected by name (:data:`WEIGHT_QUANTIZERS`), all per output channel.

Every quantizer maps float weights ``w[O, ...]`` to integers ``q[O, K]`` (signed M-bit, zero point
0) and a per-channel scale ``s[O]`` with ``w ≈ q s``, in float64, with straight-through gradients.

``baseline``
    Symmetric, ``s = max|w| / (2^(M-1) - 1)`` from the current weights, round half to even.
``a2q``
    Brevitas' A2Q: ``q = clamp(RTZ(v min(g/s, T) / ‖v‖₁), ±(2^(M-1) - 1))`` with ``v = w``,
    learned ``log2 g`` and ``log2 s`` (initialised ``g = ‖w‖₁``, ``s = max|w| / (2^(M-1) - 1)``),
    ``T = a2q_l1_limit(P, N, signed)`` in integer steps, regulariser ``1e-3 Σ relu(g - T s)``.
``a2q+``
    A2Q+: the same with zero-centred ``v = w - mean(w)`` (the mean is not added back),
    ``T = a2qplus_real_l1_limit(P, N)`` (unsigned inputs), and Euclidean-projection initialisation
    (``w`` projected onto the l1 ball of radius ``s T``, ``g <- min(g, s T)``).
``oaq``
    Overflow-aware: symmetric round to nearest inside an integer clamp ``±c_w`` with
    ``s = max|w| / c_w``; :class:`accel.quant.oaq.OAQController` shrinks ``c_w`` (and the input
    clamp) while the layer's golden result differs from the exact one.

``tile=True`` (A2Q, A2Q+; Brevitas' AXE-style tiling) constrains each R-row fold to P and the
whole row to Q: ``T_row`` is taken at Q, then each fold of the normalised row is scaled down to its
own ``T`` at P (A2Q+ zero-centres each fold, so every fold and the row stay zero-mean). Rounding
toward zero keeps both.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from accel import bounds
from accel.arith import signed_range
from accel.config import ArrayConfig
from accel.quant.ste import round_ste, rtz_ste

__all__ = ["QuantizedWeight", "WeightQuantizer", "BaselineWeight", "A2QWeight", "A2QPlusWeight",
           "OAQWeight", "WEIGHT_QUANTIZERS", "make_weight_quantizer", "project_l1_ball",
           "REGULARISER_WEIGHT", "MIN_SCALE"]

#: Factor of the A2Q regulariser ``Σ relu(g - T s)`` (SPEC section 5).
REGULARISER_WEIGHT = 1e-3
#: Lower bound on scales and norms (as Brevitas' scaling_min_val), so log2 stays finite.
MIN_SCALE = 1e-10


class QuantizedWeight(NamedTuple):
    """Integer weights ``q[O, K]`` (float64 holding integers, straight-through gradients) and
    per-channel scales ``scale[O]`` (float64): the dequantised weight is ``q * scale[:, None]``."""

    q: torch.Tensor
    scale: torch.Tensor


def _rows(w: torch.Tensor) -> torch.Tensor:
    return w.reshape(w.shape[0], -1).double()


class WeightQuantizer(nn.Module):
    """Base class: ``forward(w) -> QuantizedWeight``; subclasses set :attr:`name`."""

    name = ""
    #: True when the quantizer guarantees an accumulator bound (checked on export).
    accumulator_aware = False

    def __init__(self, weight: torch.Tensor, config: ArrayConfig) -> None:
        super().__init__()
        self.config = config
        self.qmax = signed_range(config.weight_bits)[1]

    def init_weight(self, weight: torch.Tensor) -> torch.Tensor:
        """The float weights to train from (A2Q+ projects them); default unchanged."""
        return weight

    def regularizer(self) -> torch.Tensor:
        """Training penalty added to the loss (0 unless the quantizer defines one)."""
        return torch.zeros((), dtype=torch.float64)

    def forward(self, weight: torch.Tensor) -> QuantizedWeight:
        raise NotImplementedError


class BaselineWeight(WeightQuantizer):
    """Per-channel symmetric, round half to even, scale from the current ``max|w|``."""

    name = "baseline"

    def forward(self, weight: torch.Tensor) -> QuantizedWeight:
        w = _rows(weight)
        s = torch.clamp(w.detach().abs().amax(dim=1) / self.qmax, min=MIN_SCALE)
        q = torch.clamp(round_ste(w / s[:, None]), -self.qmax, self.qmax)
        return QuantizedWeight(q, s)


class OAQWeight(WeightQuantizer):
    """Symmetric round to nearest inside ``±c_w`` (buffer ``clamp``), ``s = max|w| / c_w``."""

    name = "oaq"

    def __init__(self, weight: torch.Tensor, config: ArrayConfig) -> None:
        super().__init__(weight, config)
        self.register_buffer("clamp", torch.tensor(self.qmax, dtype=torch.int64))

    def forward(self, weight: torch.Tensor) -> QuantizedWeight:
        w = _rows(weight)
        c = int(self.clamp)
        s = torch.clamp(w.detach().abs().amax(dim=1) / c, min=MIN_SCALE)
        q = torch.clamp(round_ste(w / s[:, None]), -c, c)
        return QuantizedWeight(q, s)


def project_l1_ball(w: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Euclidean projection of each row of ``w[O, K]`` onto the l1 ball of ``radius[O]``.

    Rows already inside are unchanged; others are soft-thresholded, ``sign(w) max(|w| - θ, 0)``,
    with θ found from the sorted magnitudes (Duchi et al., 2008), vectorised over rows.
    """
    a = w.abs()
    inside = a.sum(dim=1) <= radius
    u, _ = torch.sort(a, dim=1, descending=True)
    css = torch.cumsum(u, dim=1) - radius[:, None]
    j = torch.arange(1, w.shape[1] + 1, dtype=w.dtype)
    cond = u - css / j > 0
    rho = torch.clamp(cond.sum(dim=1) - 1, min=0)   # cond holds on a prefix of the sorted row
    theta = css.gather(1, rho[:, None])[:, 0] / (rho + 1).to(w.dtype)
    proj = torch.sign(w) * torch.clamp(a - theta[:, None], min=0)
    return torch.where(inside[:, None], w, proj)


class A2QWeight(WeightQuantizer):
    """A2Q weight normalisation with the l1 bound and rounding toward zero (module docstring)."""

    name = "a2q"
    accumulator_aware = True
    zero_centre = False

    def __init__(self, weight: torch.Tensor, config: ArrayConfig, tile: bool = False) -> None:
        super().__init__(weight, config)
        self.tile = bool(tile)
        w = _rows(weight.detach())
        s = torch.clamp(w.abs().amax(dim=1) / self.qmax, min=MIN_SCALE)
        g = torch.clamp(w.abs().sum(dim=1), min=MIN_SCALE)
        self.log2_s = nn.Parameter(torch.log2(s))
        self.log2_g = nn.Parameter(torch.log2(g))

    # --- the bounds, in integer steps ----------------------------------------------------------
    def limit(self, bits: int) -> float:
        """Largest l1 norm (integer steps) allowed for a ``bits``-wide accumulator."""
        c = self.config
        return bounds.a2q_l1_limit(bits, c.act_bits, c.act_signed)

    @property
    def row_limit(self) -> float:
        """T of the whole row: at P, or at Q with ``tile``."""
        return self.limit(self.config.out_bits if self.tile else self.config.pe_acc_bits)

    def centre(self, w: torch.Tensor) -> torch.Tensor:
        """``v`` from ``w[O, K]``: unchanged for A2Q."""
        return w

    def normalised(self, v: torch.Tensor) -> torch.Tensor:
        """Real values in integer steps before rounding: ``v / (‖v‖₁ / min(g/s, T))`` per channel."""
        s, g = torch.exp2(self.log2_s), torch.exp2(self.log2_g)
        c = torch.clamp(g / s, max=self.row_limit)
        l1 = v.abs().sum(dim=1)
        safe = torch.where(l1 > 0, l1, torch.ones_like(l1))
        u = v / (safe / c)[:, None]
        u = torch.where((l1 > 0)[:, None], u, torch.zeros_like(u))
        if self.tile:
            u = self._limit_folds(u)
        return u

    def _limit_folds(self, u: torch.Tensor) -> torch.Tensor:
        r, t = self.config.rows, self.limit(self.config.pe_acc_bits)
        parts = []
        for k0 in range(0, u.shape[1], r):
            f = u[:, k0:k0 + r]
            l1 = f.abs().sum(dim=1)
            factor = torch.where(l1 > t, t / torch.where(l1 > 0, l1, torch.ones_like(l1)),
                                 torch.ones_like(l1))
            parts.append(f * factor[:, None])
        return torch.cat(parts, dim=1)

    def forward(self, weight: torch.Tensor) -> QuantizedWeight:
        v = self.centre(_rows(weight))
        q = torch.clamp(rtz_ste(self.normalised(v)), -self.qmax, self.qmax)
        return QuantizedWeight(q, torch.exp2(self.log2_s))

    def regularizer(self) -> torch.Tensor:
        """``1e-3 Σ relu(g - T s)`` over channels (T of the whole row)."""
        s, g = torch.exp2(self.log2_s), torch.exp2(self.log2_g)
        return REGULARISER_WEIGHT * torch.relu(g - self.row_limit * s).sum()

    def check(self, q: torch.Tensor, layer: str) -> None:
        """Raise ``ValueError`` if the integers ``q[O, K]`` break the bound they were built for.

        The float64 arithmetic with rounding toward zero should make this impossible; it is the
        export's loud check that no float rounding broke it.
        """
        c = self.config
        qk = q.detach().round().to(torch.int64).T.numpy()   # [K, O]
        checks = [("whole row", qk, c.out_bits if self.tile else c.pe_acc_bits)]
        if self.tile:
            checks += [(f"fold {i}", f, c.pe_acc_bits)
                       for i, f in enumerate(bounds.fold_sums(qk, c.rows))]
        for what, part, bits in checks:
            need = self.min_bits(part)
            bad = need > bits
            if bad.any():
                ch = int(bad.argmax())
                raise ValueError(f"layer {layer!r}: {self.name} integer weights of channel {ch} "
                                 f"({what}) need {int(need[ch])} accumulator bits by the "
                                 f"{self.name} bound, more than the {bits} they were trained for; "
                                 "float rounding broke the bound")

    def min_bits(self, q_k_o: object) -> object:
        """Accumulator bits the integers need by this quantizer's own bound (A2Q: l1 test)."""
        c = self.config
        return bounds.a2q_min_bits(q_k_o, c.act_bits, c.act_signed)


class A2QPlusWeight(A2QWeight):
    """A2Q+: zero-centred weights, the A2Q+ bound, Euclidean-projection initialisation."""

    name = "a2q+"
    zero_centre = True

    def __init__(self, weight: torch.Tensor, config: ArrayConfig, tile: bool = False) -> None:
        if config.act_signed:
            raise ValueError("a2q+ assumes unsigned inputs (its bound uses the code range "
                             "[0, 2^N - 1]); use a2q for signed activations")
        super().__init__(weight, config, tile)

    def limit(self, bits: int) -> float:
        return bounds.a2qplus_real_l1_limit(bits, self.config.act_bits)

    def centre(self, w: torch.Tensor) -> torch.Tensor:
        """``v = w - mean(w)`` per channel (per fold with ``tile``)."""
        if not self.tile:
            return w - w.mean(dim=1, keepdim=True)
        r = self.config.rows
        return torch.cat([f - f.mean(dim=1, keepdim=True)
                          for f in torch.split(w, r, dim=1)], dim=1)

    def init_weight(self, weight: torch.Tensor) -> torch.Tensor:
        """Project each channel onto the l1 ball of radius ``s T``; set ``g <- min(g, s T)``."""
        with torch.no_grad():
            radius = torch.exp2(self.log2_s) * self.row_limit
            w = project_l1_ball(_rows(weight.detach()), radius)
            self.log2_g.copy_(torch.log2(torch.clamp(torch.minimum(torch.exp2(self.log2_g), radius),
                                                     min=MIN_SCALE)))
        return w.reshape(weight.shape).to(weight.dtype)

    def min_bits(self, q_k_o: object) -> object:
        """Accumulator bits by the A2Q+ half-norm test (never the l1 form on integers)."""
        return bounds.half_norm_min_bits(q_k_o, self.config.act_bits)


#: Weight quantizers by name, in the order of :data:`accel.quant.names.QUANTIZERS`.
WEIGHT_QUANTIZERS: dict[str, type[WeightQuantizer]] = {
    cls.name: cls for cls in (BaselineWeight, A2QWeight, A2QPlusWeight, OAQWeight)}


def make_weight_quantizer(name: str, weight: torch.Tensor, config: ArrayConfig,
                          tile: bool = False) -> WeightQuantizer:
    """Build the quantizer called ``name`` for ``weight`` on ``config``'s array.

    ``tile`` (fold-wise bound at P, row at Q) is accepted by ``a2q`` and ``a2q+`` only.
    """
    if name not in WEIGHT_QUANTIZERS:
        raise ValueError(f"unknown weight quantizer {name!r}; valid: "
                         f"{', '.join(WEIGHT_QUANTIZERS)}")
    cls = WEIGHT_QUANTIZERS[name]
    if issubclass(cls, A2QWeight):
        return cls(weight, config, tile=tile)
    if tile:
        raise ValueError(f"tile applies to the accumulator-aware quantizers (a2q, a2q+), "
                         f"not {name!r}")
    return cls(weight, config)
