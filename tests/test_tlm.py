"""The TLM: lowering, one layer on the array, statistics, torch.ao equality, model execution."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from accel.config import ArrayConfig
from accel.golden import gemm, reference_gemm
from accel.layers import IntLayer, LayerError, fold_zero_point
from accel.timing import timing
from sim.cycles import gemm_cycles
from sim.tlm.layer import array_gemm, check_layer_fits, psum_extremes, run_layer, signed_bits
from accel.lowering import gemm_shape, lower
from sim.tlm.model import simulate_model
from sim.tlm.reference import ArrayLinear, ArrayConv2d, calibrate

GEOMETRIES = [  # c_in, c_out, kernel, stride, padding, dilation, groups, h, w
    (3, 5, 3, 1, 1, 1, 1, 6, 7), (4, 6, 3, 2, 2, 1, 2, 7, 5), (4, 4, 3, 1, 1, 1, 4, 5, 5),
    (2, 3, (2, 3), (2, 1), (0, 1), (2, 1), 1, 8, 6), (6, 6, 1, 1, 0, 1, 3, 3, 3),
]


def conv_layer(rng, c_in, c_out, kernel, stride, padding, dilation, groups, zp=5, bias=True):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    w = rng.integers(-128, 128, (c_out, c_in // groups, kh, kw))
    raw = rng.integers(-1000, 1000, c_out) if bias else None
    return IntLayer(name="conv", kind="conv2d", weight=w, weight_scale=np.full(c_out, 0.01),
                    input_scale=0.1, input_zero_point=zp, bias=fold_zero_point(raw, w, zp),
                    stride=stride, padding=padding, dilation=dilation, groups=groups), raw


@pytest.mark.parametrize("geo", GEOMETRIES)
def test_conv_lowering_equals_pytorch(geo):
    rng = np.random.default_rng(1)
    c_in, c_out, kernel, stride, padding, dilation, groups, h, w = geo
    layer, raw = conv_layer(rng, c_in, c_out, kernel, stride, padding, dilation, groups)
    codes = rng.integers(0, 256, (2, c_in, h, w))
    config = ArrayConfig(rows=4, cols=3, acc_depth=8)
    acc, stats = run_layer(layer, codes, config, timing(config))
    # real-zero padding: the conv of (codes - zp) with zero padding, plus the raw bias
    ref = F.conv2d(torch.from_numpy(codes - 5.0), torch.from_numpy(layer.weight.astype(float)),
                   torch.from_numpy(raw.astype(float)), stride, padding, dilation, groups)
    assert np.array_equal(acc, ref.numpy().astype(np.int64))
    shape = gemm_shape(layer, codes.shape)
    assert stats.cycles == groups * gemm_cycles(shape.t, shape.k, shape.o, config).cycles
    assert stats.exact_mismatches == 0 and stats.pe_events == 0


def test_linear_lowering_keeps_leading_dims():
    rng = np.random.default_rng(2)
    w = rng.integers(-8, 8, (3, 5))
    layer = IntLayer(name="fc", kind="linear", weight=w, weight_scale=[0.5], input_scale=1.0,
                     input_zero_point=0)
    codes = rng.integers(0, 16, (2, 4, 5))
    config = ArrayConfig(rows=2, cols=2)
    acc, _ = run_layer(layer, codes, config, timing(config))
    assert np.array_equal(acc, codes @ w.T)


def brute_extremes(x, w, b, r):
    pe = [0]
    acc = [int(v) for v in b]
    for t in range(x.shape[0]):
        for o in range(w.shape[1]):
            a = int(b[o])
            for k0 in range(0, x.shape[1], r):
                pref = np.cumsum(x[t, k0:k0 + r] * w[k0:k0 + r, o])
                pe += [int(pref.max()), int(pref.min())]
                a += int(pref[-1])
                acc.append(a)
    return min(pe), max(pe), min(acc), max(acc)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("mode", ["wrap", "saturate"])
def test_array_gemm_equals_golden_and_extremes_exact(seed, mode):
    rng = np.random.default_rng(seed)
    signed = seed % 2 == 1
    config = ArrayConfig(rows=int(rng.integers(1, 6)), cols=3, act_bits=4, act_signed=signed,
                         weight_bits=4, pe_acc_bits=int(rng.integers(8, 12)),
                         out_acc_bits=int(rng.integers(12, 14)), overflow=mode)
    t, k, o = (int(v) for v in rng.integers(1, 12, 3))
    lo, hi = config.act_range
    x = rng.integers(lo, hi + 1, (t, k))
    if seed % 3 == 0:
        x[:, :] = lo if signed else hi      # rails: -8 * -8 and all-ones, overflowing on purpose
    w = rng.integers(-8, 8, (k, o))
    if seed % 3 == 0:
        w[:, :] = -8
    b = rng.integers(-100, 100, o)
    res, ext = array_gemm(x.astype(np.float32), w, b, config)
    ref = reference_gemm(x, w, config, b)
    assert np.array_equal(res.y, ref.y)
    assert np.array_equal(res.pe_overflow, ref.pe_overflow)
    assert np.array_equal(res.acc_overflow, ref.acc_overflow)
    assert (res.pe_events, res.acc_events) == (ref.pe_events, ref.acc_events)
    assert (ext.pe_min, ext.pe_max, ext.acc_min, ext.acc_max) == brute_extremes(x, w, b, config.rows)
    assert np.array_equal(ext.exact, x @ w + b)
    fast, fext = array_gemm(x.astype(np.float32), w, b, config, extremes=False)
    assert np.array_equal(fast.y, ref.y) and np.array_equal(fext.exact, ext.exact)
    assert np.array_equal(fast.pe_overflow | fast.acc_overflow, ref.pe_overflow | ref.acc_overflow)
    assert (fast.pe_events, fast.acc_events) == (ref.pe_events, ref.acc_events)
    # the minimum widths avoid every event, one bit less does not (when it is legal)
    p_need = signed_bits(ext.pe_min, ext.pe_max)
    if p_need >= config.min_pe_acc_bits:
        q = max(p_need, signed_bits(ext.acc_min, ext.acc_max))
        ok = gemm(x, w, ArrayConfig(**{**config.to_dict(), "pe_acc_bits": p_need, "out_acc_bits": q}), b)
        assert ok.pe_events == ok.acc_events == 0
        if p_need - 1 >= config.min_pe_acc_bits:
            bad = gemm(x, w, ArrayConfig(**{**config.to_dict(), "pe_acc_bits": p_need - 1,
                                            "out_acc_bits": max(q, p_need - 1)}), b)
            assert bad.pe_events > 0


def test_signed_bits():
    assert [signed_bits(0, 0), signed_bits(-1, 0), signed_bits(0, 1), signed_bits(-128, 127),
            signed_bits(-129, 0), signed_bits(0, 128)] == [1, 1, 2, 8, 9, 9]


def test_errors_name_layer():
    rng = np.random.default_rng(0)
    layer, _ = conv_layer(rng, 3, 4, 3, 1, 1, 1, 1)
    with pytest.raises(LayerError, match=r"'conv'.*input codes span \[256, 256\]"):
        lower(layer, np.full((1, 3, 4, 4), 256))
    with pytest.raises(LayerError, match=r"conv2d input must be \[N, 3, H, W\]"):
        gemm_shape(layer, (1, 2, 4, 4))
    with pytest.raises(LayerError, match="smaller than the dilated kernel"):
        gemm_shape(IntLayer(**{**layer.__dict__, "padding": 0}), (1, 3, 2, 2))
    with pytest.raises(LayerError, match="do not fit the array's lanes"):
        check_layer_fits(layer, ArrayConfig(act_bits=8, act_signed=True))
    with pytest.raises(LayerError, match="weights do not fit the array's weight_bits = 4"):
        check_layer_fits(layer, ArrayConfig(weight_bits=4, act_bits=8))
    lin = IntLayer(name="fc", kind="linear", weight=np.ones((2, 3), int), weight_scale=[1.0],
                   input_scale=1.0, input_zero_point=0)
    with pytest.raises(LayerError, match="linear input must end in 3 features"):
        gemm_shape(lin, (4, 2))


def test_extremes_float64_path():
    # a fold bound above 2^24 switches to float64, still exact
    config = ArrayConfig(rows=64, cols=4, act_bits=16, weight_bits=16, pe_acc_bits=48)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 1 << 16, (5, 130))
    w = rng.integers(-(1 << 15), 1 << 15, (130, 3))
    ext = psum_extremes(x.astype(np.float32), w, None, config)
    assert np.array_equal(ext.exact, x @ w)
    assert (ext.pe_min, ext.pe_max, ext.acc_min, ext.acc_max) == brute_extremes(x, w, np.zeros(3, int), 64)


# --- model execution ---------------------------------------------------------------------------

class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c = ArrayConv2d(2, 4, 3, padding=1, bias=False)
        self.fc = ArrayLinear(4 * 4 * 4, 3, bias=False)

    def forward(self, x):
        return self.fc(torch.relu(self.c(x)).flatten(1))


@pytest.mark.parametrize("extremes", [True, False])
def test_model_with_int_layers(extremes):
    gen = torch.Generator().manual_seed(0)
    net = _Net().eval()
    for m in (net.c, net.fc):
        m.q_weight = torch.randint(-128, 128, m.weight.shape, generator=gen)
        m.w_scale = torch.full((m.weight.shape[0],), 0.01, dtype=torch.float64)
    x = torch.rand(6, 2, 4, 4, generator=gen)
    calibrate(net, x)
    config = ArrayConfig(rows=4, cols=4, pe_acc_bits=18, overflow="saturate")
    res = simulate_model(net, [(x, torch.zeros(6, dtype=torch.long))], config, reference=False,
                         extremes=extremes)
    # by hand: conv codes -> requant -> dequantise -> relu -> fc
    c, fc = net.c.int_layer, net.fc.int_layer
    acc_c, _ = run_layer(c, c.quantize_input(x.numpy()), config, timing(config))
    h = c.requant.dequantize(np.moveaxis(c.requant.apply(np.moveaxis(acc_c, 1, -1)), -1, 1))
    h = np.maximum(h, 0).reshape(6, -1)
    acc_f, _ = run_layer(fc, fc.quantize_input(h), config, timing(config))
    logits = fc.dequantize_output(acc_f)
    assert res.accuracy == float(np.mean(logits.argmax(1) == 0))
    assert [s.name for s in res.layers] == ["c", "fc"]
    assert res.total_cycles == sum(s.cycles for s in res.layers) > 0
    d = res.to_dict()
    assert d["semantics"].startswith("accel integer layers") and d["samples"] == 6


# --- torch.ao ------------------------------------------------------------------------------------

def _ao_model(engine, seed):
    import torch.ao.quantization as tq

    torch.manual_seed(seed)

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q = tq.QuantStub()
            self.c = torch.nn.Conv2d(3, 8, 3, padding=1, stride=2)
            self.r = torch.nn.ReLU()
            self.d = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.l = torch.nn.Linear(8 * 4 * 4, 10)
            self.dq = tq.DeQuantStub()

        def forward(self, x):
            return self.dq(self.l(self.d(self.r(self.c(self.q(x)))).flatten(1)))

    torch.backends.quantized.engine = engine
    m = M().eval()
    m.qconfig = tq.get_default_qconfig(engine)
    tq.fuse_modules(m, [["c", "r"]], inplace=True)
    tq.prepare(m, inplace=True)
    for _ in range(4):
        m(torch.randn(16, 3, 8, 8))
    tq.convert(m, inplace=True)
    return m


@pytest.fixture
def quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization.*")
        warnings.filterwarnings("ignore", message=".*deprecated.*")
        old = torch.backends.quantized.engine
        yield
        torch.backends.quantized.engine = old


@pytest.mark.parametrize("engine", ["qnnpack", "fbgemm"])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("extremes", [True, False])    # the lowered path, the block screen
def test_torch_ao_exact(engine, seed, extremes, quiet):
    if engine not in torch.backends.quantized.supported_engines:
        pytest.skip(f"{engine} is not built into this torch")
    m = _ao_model(engine, seed)
    gen = torch.Generator().manual_seed(seed)
    data = [(torch.randn(16, 3, 8, 8, generator=gen), torch.randint(0, 10, (16,), generator=gen))]
    res = simulate_model(m, data, ArrayConfig(rows=8, cols=8, pe_acc_bits=32), engine=engine,
                         extremes=extremes)
    assert res.semantics.startswith(engine)
    for s in res.layers:
        assert s.torch["exact_required"]
        assert s.torch["equal"] == s.torch["compared"] > 0, s.name
        assert s.exact_mismatches == 0
    assert res.accuracy == res.to_dict()["reference_accuracy"]


@pytest.mark.parametrize("engine", ["x86", "onednn"])
def test_torch_ao_agreement_reported(engine, quiet):
    if engine not in torch.backends.quantized.supported_engines:
        pytest.skip(f"{engine} is not built into this torch")
    m = _ao_model(engine, 0)
    data = [(torch.randn(8, 3, 8, 8), None)]
    res = simulate_model(m, data, ArrayConfig(rows=8, cols=8, pe_acc_bits=32), engine=engine)
    assert "agreement reported" in res.semantics
    for s in res.layers:
        assert not s.torch["exact_required"]
        assert s.torch["within_1lsb_share"] >= 0.99
    assert res.accuracy is None


def test_no_array_layers():
    with pytest.raises(ValueError, match="the model has no layer the array can run"):
        simulate_model(torch.nn.ReLU(), [], ArrayConfig())


def test_overq_hook_goes_through_golden():
    """With OverQ the TLM hands every vector to accel.golden (which dispatches OverQ itself)."""
    from accel.config import OverQConfig

    config = ArrayConfig(rows=4, cols=4, act_bits=4, weight_bits=4, pe_acc_bits=16,
                         overq=OverQConfig(mode="range", cascade=1))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (9, 10))
    x[x < 128] = 0                         # outliers (>= 16) next to zeros
    w = rng.integers(-8, 8, (10, 5))
    res, _ = array_gemm(x.astype(np.float32), w, None, config)
    ref = gemm(x, w, config)
    assert np.array_equal(res.y, ref.y) and res.pe_events == ref.pe_events
