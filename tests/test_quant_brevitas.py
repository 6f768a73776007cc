"""Cross-check of A2Q / A2Q+ against Brevitas (skipped where brevitas is not installed).

The same float weights, the same initialisation (g = ‖w‖₁, s = max|w| / (2^(M-1) - 1), both as
log2): Brevitas computes the integers in float32, accel.quant in float64. They must agree, except
by 1 where the two precisions put the real value on opposite sides of an integer — the test
recomputes such a value in both precisions and shows that this is what happened.
"""

import warnings

import numpy as np
import pytest
import torch

from accel.config import ArrayConfig
from accel.quant.weight import A2QPlusWeight, A2QWeight

brevitas = pytest.importorskip("brevitas")

from brevitas.nn import QuantLinear  # noqa: E402
from brevitas.quant.scaled_int import (Int8AccumulatorAwareWeightQuant,  # noqa: E402
                                       Int8AccumulatorAwareZeroCenterWeightQuant)
from brevitas.quant_tensor import IntQuantTensor  # noqa: E402

CASES = [(A2QWeight, Int8AccumulatorAwareWeightQuant),
         (A2QPlusWeight, Int8AccumulatorAwareZeroCenterWeightQuant)]


def _brevitas_ints(weight: torch.Tensor, wq, acc_bits: int, n: int) -> tuple[np.ndarray, torch.nn.Module]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layer = QuantLinear(weight.shape[1], weight.shape[0], bias=False, weight_quant=wq,
                            weight_bit_width=8, weight_accumulator_bit_width=acc_bits)
        with torch.no_grad():
            layer.weight.copy_(weight)
        # re-initialise the tracked statistics from the copied weights (as at construction)
        layer.weight_quant.init_tensor_quant()
        x = IntQuantTensor(torch.zeros(1, weight.shape[1]), torch.tensor(1.0), torch.tensor(0.0),
                           torch.tensor(float(n)), False, False)
        out = layer.weight_quant(layer.weight, x)
    return torch.round(out.value / out.scale).detach().numpy().astype(np.int64), layer


def _brevitas_reals(layer: torch.nn.Module, weight: torch.Tensor, n: int) -> np.ndarray:
    """Brevitas' own real values before rounding (float32): ``w / pre_scale + pre_zero_point``."""
    tq = layer.weight_quant.tensor_quant
    with torch.no_grad():
        _, _, _, _, pre_scale, pre_zp = tq(layer.weight, torch.tensor(float(n)), False)
        return (layer.weight / pre_scale + pre_zp).numpy()


@pytest.mark.parametrize("ours_cls, wq", CASES)
@pytest.mark.parametrize("acc_bits", [16, 18, 20, 32])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_integers_as_brevitas(ours_cls, wq, acc_bits, seed):
    torch.manual_seed(seed)
    weight = torch.randn(16, 72) * torch.rand(16, 1)
    n = 8
    theirs, layer = _brevitas_ints(weight, wq, acc_bits, n)
    ours_q = ours_cls(weight, ArrayConfig(act_bits=n, weight_bits=8, pe_acc_bits=acc_bits))
    # same initialisation: Brevitas' learned log2 g and log2 s equal ours
    g_b = layer.weight_quant.tensor_quant.pre_scaling_impl.value.detach().double().flatten()
    s_b = layer.weight_quant.tensor_quant.scaling_impl.value.detach().double().flatten()
    np.testing.assert_allclose(g_b.numpy(), ours_q.log2_g.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(s_b.numpy(), ours_q.log2_s.detach().numpy(), rtol=1e-6)
    ours = ours_q(weight).q.detach().numpy().astype(np.int64)
    diff = ours != theirs
    assert np.abs(ours - theirs).max(initial=0) <= 1
    if diff.any():
        # every difference is a value that float32 and float64 round to opposite sides of an integer
        u64 = ours_q.normalised(ours_q.centre(weight.double())).detach().numpy()
        u32 = _brevitas_reals(layer, weight, n)
        for o, k in zip(*np.nonzero(diff)):
            near = np.round(u64[o, k])        # the integer both land next to
            assert abs(u64[o, k] - near) < 1e-4 and abs(u32[o, k] - near) < 1e-4
            assert (u64[o, k] - near) * (u32[o, k] - near) < 0 or \
                (u64[o, k] == near) != (u32[o, k] == near), "not on opposite sides"
            assert ours[o, k] == np.trunc(u64[o, k]) and theirs[o, k] == np.trunc(u32[o, k])


def test_a2q_bound_binds_in_the_cross_check():
    """At 16 bits the l1 clamp is active (else the comparison would not test the bound)."""
    torch.manual_seed(0)
    weight = torch.randn(4, 72)
    theirs, _ = _brevitas_ints(weight, Int8AccumulatorAwareWeightQuant, 16, 8)
    assert np.abs(theirs).sum(axis=1).max() <= 127
    assert np.abs(theirs).sum(axis=1).min() > 80   # RTZ loses < 1 per weight
