"""Rounding with straight-through gradients (float64 in, float64 out).

Quantizers here compute integer codes in float64 so that training (the fake-quantized forward) and
export (:meth:`to_int_layer`) round the same values the same way.
"""

from __future__ import annotations

import torch

__all__ = ["round_ste", "rtz_ste"]


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round half to even (``torch.round``); the gradient passes through unchanged."""
    return x + (torch.round(x) - x).detach()


def rtz_ste(x: torch.Tensor) -> torch.Tensor:
    """Round toward zero (``torch.trunc``); the gradient passes through unchanged.

    Rounding toward zero never increases a magnitude, so every l1 or half-norm bound met by the
    real values is met by the integers (rounding to nearest can break it).
    """
    return x + (torch.trunc(x) - x).detach()
