"""QAT layers, activation quantizer, batch-norm folding, lowering, export and OAQ."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from accel import bounds
from accel.config import ArrayConfig
from accel.layers import IntLayer
from accel.quant import (ActQuant, OAQController, OAQError, QuantConv2d, QuantLinear, calibrate,
                         export_graph, fold_batch_norm, fold_batch_norms, quantize_model,
                         set_array_config)
from accel.backends import ExactBackend, GoldenBackend
from accel.executor import Executor


# --- activation quantizer ------------------------------------------------------------------------

def test_act_quant_fixed_unsigned_codes():
    aq = ActQuant(4, False, "fixed", range_max=15.0)
    x = torch.tensor([-1.0, 0.4, 0.5, 1.5, 7.49, 20.0])
    assert aq.codes(x).tolist() == [0, 0, 0, 2, 7, 15]           # half to even, clamped
    assert aq(x).tolist() == [0.0, 0.0, 0.0, 2.0, 7.0, 15.0]


def test_act_quant_signed_and_shrunk_clamp():
    aq = ActQuant(4, True, "fixed", range_max=7.0)
    assert aq.codes(torch.tensor([-100.0, 100.0])).tolist() == [-8, 7]
    aq.code_max.fill_(3)                                          # OAQ shrank it: step 7/3
    assert aq.code_min == -4 and aq.codes(torch.tensor([-100.0, 100.0])).tolist() == [-4, 3]


def test_act_quant_calibration_and_learned_scale():
    aq = ActQuant(8, False, "learned")
    aq.calibrating = True
    aq(torch.tensor([0.5, -2.0])), aq(torch.tensor([1.0]))
    aq.finish_calibration()
    assert aq.scale().item() == pytest.approx(2.0 / 255)
    y = aq(torch.tensor([1.0], requires_grad=True))
    y.sum().backward()
    assert aq.log2_scale.grad is not None


@pytest.mark.parametrize("call, msg", [
    (lambda: ActQuant(8, False, "minmax"), r"scale mode must be one of fixed, calibrated, learned"),
    (lambda: ActQuant(0, False), r"activation bits must be an integer between 1 and 16"),
    (lambda: ActQuant(8, False, "fixed"), r"fixed activation scale needs range_max > 0"),
    (lambda: ActQuant(8, False).scale(), r"not calibrated"),
    (lambda: ActQuant(8, False).finish_calibration(), r"saw no non-zero input"),
])
def test_act_quant_errors(call, msg):
    with pytest.raises(ValueError, match=msg):
        call()


# --- batch norm -----------------------------------------------------------------------------------

def _trained_bn(c: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(c)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(-1, 1)
    return bn.eval()


def test_fold_batch_norm_equals_conv_then_bn():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 5, 3, padding=1), _trained_bn(5)
    x = torch.randn(2, 3, 6, 6)
    folded = fold_batch_norm(conv, bn)
    assert torch.allclose(folded(x), bn(conv(x)), atol=1e-5)


def test_fold_batch_norms_errors():
    with pytest.raises(ValueError, match=r"batch norm '0' does not directly follow"):
        fold_batch_norms(nn.Sequential(nn.BatchNorm2d(1), nn.Conv2d(1, 2, 1)))
    with pytest.raises(ValueError, match=r"batch norm has 3 features but the layer before it has 2"):
        fold_batch_norm(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(3))


# --- lowering (im2col, SPEC section 1 order) --------------------------------------------------------

@settings(max_examples=40)
@given(st.integers(1, 3), st.integers(0, 2), st.integers(1, 2), st.sampled_from([1, 2]),
       st.integers(0, 15), st.integers(0, 2 ** 31 - 1))
def test_lowering_equals_integer_conv(stride, pad, dil, groups, zp, seed):
    gen = torch.Generator().manual_seed(seed)
    cin, cout = 2 * groups, 2 * groups
    w = torch.randint(-8, 8, (cout, cin // groups, 3, 2), generator=gen)
    x = torch.randint(0, 16, (2, cin, 7, 6), generator=gen)
    bias = torch.randint(-50, 50, (cout,), generator=gen)
    lay = IntLayer(name="c", kind="conv2d", weight=w.numpy(), weight_scale=[1.0], input_scale=1.0,
                   input_zero_point=zp, act_bits=4, weight_bits=4, bias=bias.numpy(),
                   stride=stride, padding=pad, dilation=dil, groups=groups)
    xp = F.pad(x.double(), (pad, pad, pad, pad), value=float(zp))
    want = F.conv2d(xp, w.double(), bias.double(), stride, 0, dil, groups).round().long().numpy()
    got = GoldenBackend(ArrayConfig(act_bits=4, weight_bits=4, rows=3)).run(lay, x.numpy()).acc
    np.testing.assert_array_equal(got, want)


def test_backend_checks_codes_against_the_lanes():
    lin = IntLayer(name="fc", kind="linear", weight=np.ones((2, 3), int), weight_scale=[1.0],
                   input_scale=1.0, input_zero_point=0, act_bits=4, weight_bits=4)
    with pytest.raises(ValueError, match=r"layer 'fc': input codes span \[0, 16\], outside the "
                                         r"layer's lane range \[0, 15\]"):
        GoldenBackend(ArrayConfig(act_bits=4, weight_bits=4)).run(lin, np.array([[16, 0, 0]]))
    with pytest.raises(ValueError, match=r"layer 'fc': linear input must end in 3 features"):
        GoldenBackend(ArrayConfig(act_bits=4, weight_bits=4)).run(lin, np.zeros((1, 4), int))


# --- QAT layers and export --------------------------------------------------------------------------

def _small_cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), _trained_bn(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 3 * 3, 5))


@pytest.mark.parametrize("quantizer", ["baseline", "a2q", "a2q+", "oaq"])
def test_fake_quant_forward_equals_exported_integers(quantizer):
    cfg = ArrayConfig(act_bits=6, weight_bits=5, pe_acc_bits=14)
    q = quantize_model(_small_cnn(), quantizer, cfg, input_range=4.0)
    x = torch.rand(8, 1, 6, 6) * 4
    calibrate(q, [x])
    q.eval()
    g = export_graph(q)
    with torch.no_grad():
        fake = q(x).numpy()
    exact = Executor(g, ExactBackend(cfg)).run(x.numpy()).logits
    np.testing.assert_allclose(exact, fake, rtol=1e-4, atol=1e-4)
    assert [n.op for n in g.nodes] == ["input", "quantize", "array", "requantize", "clamp",
                                       "maxpool", "reshape", "array", "dequantize"]


def test_accumulator_aware_bias_is_budgeted_at_q():
    cfg = ArrayConfig(act_bits=8, weight_bits=8, pe_acc_bits=16)
    layer = nn.Linear(20, 3)
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([1e6, -1e6, 0.0]))          # far beyond the accumulator
    q = QuantLinear.from_float(layer, "a2q+", cfg, act_mode="fixed", range_max=1.0)
    il = q.to_int_layer("fc")
    wk = il.weight.T
    assert bounds.exact_min_bits(wk, il.input_range, il.bias).max() <= 16
    assert il.bias[0] > 0 and il.bias[1] < 0                       # clamped, not dropped
    qb = QuantLinear.from_float(layer, "baseline", cfg, act_mode="fixed", range_max=1.0)
    assert qb.to_int_layer("fc").bias.tolist()[:2] == [32767, -32768]  # only clamped to Q bits


def test_set_array_config_and_errors():
    cfg = ArrayConfig(act_bits=8, weight_bits=8, pe_acc_bits=32)
    q = quantize_model(nn.Sequential(nn.Linear(4, 2)), "baseline", cfg, input_range=1.0)
    set_array_config(q, pe_acc_bits=18, out_acc_bits=20)
    assert q[0].config.pe_acc_bits == 18 and q[0].config.out_bits == 20
    with pytest.raises(ValueError, match=r"cannot retarget act_bits of a trained model"):
        set_array_config(q, act_bits=4)
    with pytest.raises(ValueError, match=r"no nn.Conv2d or nn.Linear layer to quantize"):
        quantize_model(nn.Sequential(nn.ReLU()), "baseline", cfg)
    with pytest.raises(ValueError, match=r"QuantConv2d supports explicit zero padding"):
        QuantConv2d.from_float(nn.Conv2d(1, 1, 3, padding="same"), "baseline", cfg)


def test_export_errors():
    cfg = ArrayConfig()
    q = quantize_model(nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2)), "baseline", cfg,
                       input_range=1.0)
    calibrate(q, [torch.rand(3, 4)])
    with pytest.raises(ValueError, match=r"node '1' \(call_module Tanh\) cannot be exported to an "
                                         r"integer graph; supported: quantized layers"):
        export_graph(q)
    branchy = quantize_model(nn.Sequential(nn.Linear(4, 4)), "baseline", cfg, input_range=1.0)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.l = branchy

        def forward(self, x):
            y = self.l(x)
            return y + y

    with pytest.raises(ValueError, match=r"cannot be exported"):
        export_graph(Twice())


# --- OAQ ------------------------------------------------------------------------------------------------

def test_oaq_shrinks_clamps_until_exact():
    torch.manual_seed(0)
    cfg = ArrayConfig(act_bits=4, weight_bits=4, pe_acc_bits=9, rows=16)
    q = quantize_model(nn.Sequential(nn.Linear(16, 3)), "oaq", cfg, input_range=1.0)
    ctl = OAQController(q)
    x = torch.ones(4, 16)
    for _ in range(30):
        q(x)
        ctl.step()
    c = ctl.clamps()["0"]
    assert c["c_w"] < 7 and c["c_x"] < 15 and c["shrinks"] == 7 - c["c_w"] == 15 - c["c_x"]
    il = q[0].to_int_layer("0")
    codes = q[0].act_quant.codes(x).numpy().astype(np.int64)
    run = GoldenBackend(cfg).run(il, codes)
    assert (run.acc == run.exact).all()


def test_oaq_error_names_the_layer():
    cfg = ArrayConfig(act_bits=2, weight_bits=2, pe_acc_bits=4, rows=64)
    lin = nn.Linear(64, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    q = quantize_model(nn.Sequential(lin), "oaq", cfg, input_range=1.0)
    ctl = OAQController(q)
    q(torch.ones(1, 64))
    with pytest.raises(OAQError, match=r"OAQ layer '0': golden result still differs .* c_w = 1"):
        ctl.step()


class _Residual(nn.Module):
    """conv -> relu -> (conv -> bn) + skip -> relu -> global average pool -> flatten -> linear."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.body = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), _trained_bn(4))
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h = self.relu(self.stem(x))
        return self.fc(self.pool(self.relu2(self.body(h) + h)).flatten(1))


@pytest.mark.parametrize("quantizer", ["baseline", "a2q+"])
def test_residual_model_exports_with_shared_quantizers(quantizer):
    """The skip tensor is read by the block's conv and by the addition: one quantizer, one code
    tensor; the exported integers compute the fake-quantized forward (up to rounding ties)."""
    cfg = ArrayConfig(act_bits=6, weight_bits=5, pe_acc_bits=16)
    q = quantize_model(_Residual(), quantizer, cfg, input_range=4.0)
    x = torch.rand(64, 1, 6, 6, generator=torch.Generator().manual_seed(1)) * 4
    calibrate(q, [x])
    q.eval()
    body = q.get_submodule("body.0")
    add = q.get_submodule("add0")
    assert add.act_b is body.act_quant and add.act_a.signed             # skip shared; sum signed
    g = export_graph(q)
    assert [n.op for n in g.nodes].count("add") == 1 and [n.op for n in g.nodes].count("quantize") == 1
    with torch.no_grad():
        fake = q(x).numpy()
    exact = Executor(g, ExactBackend(cfg)).run(x.numpy()).logits
    assert np.mean(np.isclose(exact, fake, rtol=1e-4, atol=1e-4)) > 0.9    # rare rounding ties
    assert (exact.argmax(1) == fake.argmax(1)).mean() >= 0.9
