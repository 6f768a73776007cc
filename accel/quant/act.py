"""Activation quantizer: the input codes of one quantized layer (N bits, zero point 0).

Codes are ``clamp(round_half_even(x / s), lo, code_max)`` with ``lo = 0`` (unsigned) or
``-(code_max + 1)`` (signed) and ``code_max = 2^N - 1`` or ``2^(N-1) - 1`` unless OAQ lowered it. The
zero point is 0 in both cases (unsigned codes start at real 0, signed ones are symmetric), so no
zero-point correction reaches the bias of this project's own layers.

Scale modes
-----------
``fixed``
    ``s = range_max / code_max`` with a known ``range_max`` (the digits image: 16).
``calibrated``
    ``range_max`` is the largest ``|x|`` seen while :attr:`calibrating` is true (max calibration,
    over every calibration batch); then ``s = range_max / code_max``. OAQ shrinking ``code_max``
    therefore keeps the real range and coarsens the step.
``learned``
    ``log2 s`` is a parameter initialised by max calibration and trained with a straight-through
    rounding gradient.
"""

from __future__ import annotations

import torch
from torch import nn

from accel.layers import code_range
from accel.quant.names import SCALE_MODES
from accel.quant.ste import round_ste

__all__ = ["ActQuant", "SCALE_MODES"]


class ActQuant(nn.Module):
    """Fake-quantize activations to N-bit codes with zero point 0.

    Parameters
    ----------
    bits : int
        N, 1..16.
    signed : bool
        Signed symmetric codes, else unsigned codes from real 0.
    mode : {"fixed", "calibrated", "learned"}
        How the scale is set (module docstring).
    range_max : float, optional
        The real value of the top code's range for ``mode="fixed"`` (required there).
    """

    def __init__(self, bits: int, signed: bool, mode: str = "calibrated",
                 range_max: float | None = None) -> None:
        super().__init__()
        if mode not in SCALE_MODES:
            raise ValueError(f"activation scale mode must be one of {', '.join(SCALE_MODES)}, "
                             f"not {mode!r}")
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
            raise ValueError(f"activation bits must be an integer between 1 and 16, not {bits!r}")
        if mode == "fixed" and (range_max is None or not range_max > 0):
            raise ValueError(f"a fixed activation scale needs range_max > 0, not {range_max!r}")
        self.bits, self.signed, self.mode = bits, bool(signed), mode
        hi = code_range(bits, signed)[1]
        self.register_buffer("code_max", torch.tensor(hi, dtype=torch.int64))
        self.register_buffer("range_max", torch.tensor(float(range_max or 0.0), dtype=torch.float64))
        self.log2_scale = nn.Parameter(torch.zeros((), dtype=torch.float64)) if mode == "learned" else None
        self.calibrating = False

    @property
    def code_min(self) -> int:
        """Lowest code: 0 unsigned, ``-(code_max + 1)`` signed (``-2^(N-1)`` until OAQ shrinks it)."""
        return -(int(self.code_max) + 1) if self.signed else 0

    @property
    def ready(self) -> bool:
        """True once the scale is known (fixed, or calibrated on at least one non-zero batch)."""
        return bool(self.range_max > 0)

    def finish_calibration(self) -> None:
        """Stop calibrating; a learned scale starts from the calibrated one."""
        if not self.ready:
            raise ValueError("activation quantizer saw no non-zero input during calibration; "
                             "run calibration batches through the model first")
        self.calibrating = False
        if self.log2_scale is not None:
            with torch.no_grad():
                self.log2_scale.copy_(torch.log2(self.range_max / self.code_max.double()))

    def scale(self) -> torch.Tensor:
        """The real value of one code step, float64 scalar (differentiable when learned)."""
        if self.log2_scale is not None:
            return torch.exp2(self.log2_scale)
        if not self.ready:
            raise ValueError("activation quantizer is not calibrated: run calibration batches "
                             "(calibrating = True) or give a fixed range_max")
        return self.range_max / self.code_max.double()

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Integer codes of ``x`` (float64 tensor holding integers; no gradient)."""
        with torch.no_grad():
            return torch.clamp(torch.round(x.double() / self.scale()), self.code_min,
                               int(self.code_max))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrating:
            with torch.no_grad():
                self.range_max.copy_(torch.maximum(self.range_max, x.detach().abs().max().double()))
            return x
        s = self.scale()
        c = torch.clamp(round_ste(x.double() / s), self.code_min, int(self.code_max))
        return (c * s).to(x.dtype)

    def extra_repr(self) -> str:
        return (f"bits={self.bits}, signed={self.signed}, mode={self.mode}, "
                f"code_max={int(self.code_max)}")
