"""Weight quantizers: the bounds they promise hold on the integers, and rounding matters."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from accel import bounds
from accel.config import ArrayConfig
from accel.quant.weight import (A2QPlusWeight, A2QWeight, BaselineWeight, OAQWeight,
                                make_weight_quantizer, project_l1_ball)


def _force_bound(q: A2QWeight) -> None:
    """Make g large so that min(g/s, T) = T: the bound is active on every channel."""
    with torch.no_grad():
        q.log2_g.fill_(60.0)


def test_round_to_nearest_breaks_the_l1_bound_round_toward_zero_does_not():
    # N = 8 unsigned, P = 16: T = 32767 / 256 = 127.996; three equal weights -> u = 42.665 each
    cfg = ArrayConfig(act_bits=8, weight_bits=8, pe_acc_bits=16)
    w = torch.tensor([[1.0, 1.0, 1.0]])
    quant = A2QWeight(w, cfg)
    _force_bound(quant)
    u = quant.normalised(w.double())
    assert u.abs().sum().item() == pytest.approx(bounds.a2q_l1_limit(16, 8, False))
    rtn = torch.round(u).to(torch.int64).T.numpy()
    rtz = quant(w).q.detach().to(torch.int64).T.numpy()
    assert rtn.tolist() == [[43]] * 3 and rtz.tolist() == [[42]] * 3
    assert bounds.a2q_min_bits(rtn, 8, False)[0] == 17          # RTN: needs a 17-bit accumulator
    assert bounds.a2q_min_bits(rtz, 8, False)[0] == 16          # RTZ: fits the 16 it targets
    assert not bounds.exact_range_ok(rtn, 16, (0, 255))[0]      # 129 * 255 = 32895 > 32767
    assert bounds.exact_range_ok(rtz, 16, (0, 255))[0]


@st.composite
def quant_case(draw):
    n = draw(st.integers(1, 8))
    m = draw(st.integers(2, 8))
    p = draw(st.integers(n + m, n + m + 10))
    r = draw(st.integers(1, 16))
    o, k = draw(st.integers(1, 6)), draw(st.integers(1, 80))
    seed = draw(st.integers(0, 2 ** 31 - 1))
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(o, k, generator=gen) * torch.rand(o, 1, generator=gen) * 3
    if draw(st.booleans()):
        w[0] = 0.0                                               # an all-zero channel
    return n, m, p, r, w, draw(st.booleans()), draw(st.booleans())


@settings(max_examples=120)
@given(quant_case(), st.booleans())
def test_a2q_integers_always_meet_their_bound(case, signed):
    n, m, p, r, w, force, tile = case
    q_bits = p + (3 if tile else 0)
    cfg = ArrayConfig(rows=r, act_bits=n, act_signed=signed, weight_bits=m, pe_acc_bits=p,
                      out_acc_bits=q_bits)
    quant = A2QWeight(w, cfg, tile=tile)
    if force:
        _force_bound(quant)
    q = quant(w).q.detach()
    assert torch.equal(q, torch.trunc(q)) and q.abs().max() <= (1 << (m - 1)) - 1
    qk = q.to(torch.int64).T.numpy()
    assert bounds.a2q_min_bits(qk, n, signed).max() <= q_bits
    safe = bounds.min_safe_widths(qk, cfg.act_range, r)
    assert safe.q <= q_bits
    if tile:
        assert safe.p <= p
        for f in bounds.fold_sums(qk, r):
            assert bounds.a2q_min_bits(f, n, signed).max() <= p
    quant.check(q, "layer")
    if (w[0] == 0).all():
        assert (q[0] == 0).all()


@settings(max_examples=120)
@given(quant_case())
def test_a2qplus_integers_meet_the_half_norm_bound(case):
    n, m, p, r, w, force, tile = case
    q_bits = p + (3 if tile else 0)
    cfg = ArrayConfig(rows=r, act_bits=n, weight_bits=m, pe_acc_bits=p, out_acc_bits=q_bits)
    quant = A2QPlusWeight(w, cfg, tile=tile)
    if force:
        _force_bound(quant)
    w = quant.init_weight(w)
    q = quant(w).q.detach()
    qk = q.to(torch.int64).T.numpy()
    assert bounds.half_norm_min_bits(qk, n).max() <= q_bits
    assert bounds.min_safe_widths(qk, cfg.act_range, r).q <= q_bits
    if tile:
        assert bounds.min_safe_widths(qk, cfg.act_range, r).p <= p
    quant.check(q, "layer")


def test_a2qplus_budget_is_about_twice_a2q():
    cfg = ArrayConfig(act_bits=8, weight_bits=8, pe_acc_bits=16)
    w = torch.randn(8, 500, generator=torch.Generator().manual_seed(1))
    a, b = A2QWeight(w, cfg), A2QPlusWeight(w, cfg)
    _force_bound(a), _force_bound(b)
    l1a = a(w).q.abs().sum(dim=1)
    l1b = b(w).q.abs().sum(dim=1)
    assert (l1a <= 127).all() and (l1b <= 256).all()
    assert l1b.mean() > 1.8 * l1a.mean()


def test_a2qplus_is_zero_centred_and_mean_not_added_back():
    cfg = ArrayConfig(act_bits=8, weight_bits=8, pe_acc_bits=32)
    w = torch.full((1, 8), 2.0) + torch.arange(8.0)            # mean 5.5
    quant = A2QPlusWeight(w, cfg)
    with torch.no_grad():
        quant.log2_g.fill_(4.0)                                 # g = ‖v‖₁ = 16: q s = v
    qw = quant(w)
    deq = qw.q * qw.scale[:, None]
    assert deq.sum().abs() < qw.scale.item() * 8               # centred, mean 5.5 not added back
    assert torch.allclose(deq, (w - 5.5).double(), atol=qw.scale.item())


def _project_reference(w: np.ndarray, radius: float) -> np.ndarray:
    """Bisection on the soft threshold (slow reference)."""
    if np.abs(w).sum() <= radius:
        return w
    lo, hi = 0.0, np.abs(w).max()
    for _ in range(200):
        mid = (lo + hi) / 2
        if np.clip(np.abs(w) - mid, 0, None).sum() > radius:
            lo = mid
        else:
            hi = mid
    return np.sign(w) * np.clip(np.abs(w) - hi, 0, None)


@settings(max_examples=100)
@given(st.integers(0, 2 ** 31 - 1), st.integers(1, 40), st.floats(0.01, 50))
def test_projection_matches_reference(seed, k, radius):
    w = torch.randn(3, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    r = torch.tensor([radius, radius * 2, 1e6], dtype=torch.float64)
    got = project_l1_ball(w, r).numpy()
    for i in range(3):
        np.testing.assert_allclose(got[i], _project_reference(w[i].numpy(), float(r[i])), atol=1e-9)
    assert np.array_equal(got[2], w[2].numpy())                # inside: unchanged


def test_a2qplus_projection_init_sets_g():
    cfg = ArrayConfig(act_bits=8, weight_bits=8, pe_acc_bits=16)
    w = torch.randn(4, 300, generator=torch.Generator().manual_seed(0))
    quant = A2QPlusWeight(w, cfg)
    s = torch.exp2(quant.log2_s).detach()
    radius = s * quant.row_limit
    w2 = quant.init_weight(w)
    assert torch.all(w2.double().abs().sum(dim=1) <= radius * (1 + 1e-6))
    assert torch.allclose(torch.exp2(quant.log2_g).detach(), torch.minimum(w.abs().sum(1).double(), radius))


def test_regulariser():
    cfg = ArrayConfig(act_bits=8, weight_bits=8, pe_acc_bits=16)
    w = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    quant = A2QWeight(w, cfg)
    s, g = torch.exp2(quant.log2_s), torch.exp2(quant.log2_g)
    want = 1e-3 * torch.relu(g - quant.row_limit * s).sum()
    assert torch.allclose(quant.regularizer(), want) and quant.regularizer() > 0
    assert BaselineWeight(w, cfg).regularizer() == 0


def test_baseline_is_per_channel_round_to_nearest():
    cfg = ArrayConfig(weight_bits=4)
    w = torch.tensor([[0.7, -0.35, 0.1], [7.0, 1.5, -2.5]])
    q = BaselineWeight(w, cfg)(w)
    assert q.q.tolist() == [[7.0, -4.0, 1.0], [7.0, 2.0, -2.0]]  # -3.5 -> -4, 1.5 -> 2, -2.5 -> -2
    assert q.scale.tolist() == pytest.approx([0.1, 1.0])


def test_oaq_clamp_and_scale():
    cfg = ArrayConfig(weight_bits=8)
    w = torch.tensor([[1.0, -0.5, 0.26]])
    quant = OAQWeight(w, cfg)
    quant.clamp.fill_(4)
    q = quant(w)
    assert q.q.tolist() == [[4.0, -2.0, 1.0]] and q.scale.item() == pytest.approx(0.25)


@pytest.mark.parametrize("call, msg", [
    (lambda: make_weight_quantizer("a2z", torch.ones(1, 2), ArrayConfig()), r"unknown weight quantizer 'a2z'; valid: baseline, a2q, a2q\+, oaq"),
    (lambda: make_weight_quantizer("oaq", torch.ones(1, 2), ArrayConfig(), tile=True), r"tile applies to .* not 'oaq'"),
    (lambda: A2QPlusWeight(torch.ones(1, 2), ArrayConfig(act_signed=True)), r"a2q\+ assumes unsigned inputs"),
])
def test_errors(call, msg):
    with pytest.raises(ValueError, match=msg):
        call()


def test_export_check_fails_loudly():
    cfg = ArrayConfig(act_bits=8, weight_bits=8, pe_acc_bits=16)
    quant = A2QWeight(torch.ones(1, 4), cfg)
    bad = torch.tensor([[64.0, 64.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"layer 'fc': a2q integer weights of channel 0 \(whole row\) "
                                         r"need 17 accumulator bits"):
        quant.check(bad, "fc")


def test_light_quantizer_names_list_every_weight_quantizer():
    from accel.quant.names import QUANTIZERS
    from accel.quant.weight import WEIGHT_QUANTIZERS

    assert tuple(WEIGHT_QUANTIZERS) == QUANTIZERS
