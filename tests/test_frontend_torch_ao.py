"""torch.ao eager-mode quantized models through the torch.fx front end: the engine's codes exactly."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch

from accel.backends import GoldenBackend
from accel.config import ArrayConfig
from accel.executor import simulate
from accel.frontends.torch_ao import EXACT_ENGINES, from_torch_ao, reference
from accel.layers import LayerError


def _ao_model(engine, seed):
    import torch.ao.quantization as tq

    torch.manual_seed(seed)

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q = tq.QuantStub()
            self.c = torch.nn.Conv2d(3, 8, 3, padding=1, stride=2)
            self.r = torch.nn.ReLU()
            self.p = torch.nn.MaxPool2d(2, 1)
            self.d = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.l = torch.nn.Linear(8 * 3 * 3, 10)
            self.dq = tq.DeQuantStub()

        def forward(self, x):
            return self.dq(self.l(self.d(self.p(self.r(self.c(self.q(x))))).flatten(1)))

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


def _run(engine, seed, batch=16):
    m = _ao_model(engine, seed)
    graph = from_torch_ao(m, engine)
    gen = torch.Generator().manual_seed(seed)
    data = [(torch.randn(batch, 3, 8, 8, generator=gen), torch.randint(0, 10, (batch,), generator=gen))]
    return graph, simulate(graph, data, GoldenBackend(ArrayConfig(rows=8, cols=8, pe_acc_bits=32)),
                           reference=reference(m, graph))


@pytest.mark.parametrize("engine", ["qnnpack", "fbgemm"])
@pytest.mark.parametrize("seed", [0, 1])
def test_torch_ao_exact(engine, seed, quiet):
    if engine not in torch.backends.quantized.supported_engines:
        pytest.skip(f"{engine} is not built into this torch")
    graph, res = _run(engine, seed)
    assert graph.meta["semantics"].startswith(engine) and engine in EXACT_ENGINES
    assert [n.name for n in graph.array_nodes] == ["c", "d", "l"]
    for s in res.layers:
        assert s.agreement["equal"] == s.agreement["compared"] > 0, s.name
        assert s.exact_mismatches == 0
    assert res.accuracy == res.reference_accuracy


@pytest.mark.parametrize("engine", ["x86", "onednn"])
def test_torch_ao_agreement_reported(engine, quiet):
    if engine not in torch.backends.quantized.supported_engines:
        pytest.skip(f"{engine} is not built into this torch")
    graph, res = _run(engine, 0, batch=8)
    assert "agreement reported" in graph.meta["semantics"]
    for s in res.layers:
        assert s.agreement["within_1lsb_share"] >= 0.99


def test_unsupported_node_is_named(quiet):
    import torch.ao.quantization as tq

    class T(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.dq = tq.QuantStub(), tq.DeQuantStub()

        def forward(self, x):
            return self.dq(torch.sigmoid(self.q(x)))

    with pytest.raises(LayerError, match=r"node 'sigmoid' \(call_function .*sigmoid.*\) cannot be "
                                         r"mapped to the integer graph; supported: QuantStub"):
        from_torch_ao(T().eval(), "qnnpack")


class _Block(torch.nn.Module):
    """conv-ReLU, depthwise conv-ReLU, and a fused add-ReLU back onto the block's input."""

    def __init__(self, c):
        super().__init__()
        self.c1, self.r1 = torch.nn.Conv2d(c, c, 3, padding=1), torch.nn.ReLU()
        self.dw, self.r2 = torch.nn.Conv2d(c, c, 3, padding=1, groups=c), torch.nn.ReLU()
        self.skip = torch.nn.quantized.FloatFunctional()

    def forward(self, x):
        return self.skip.add_relu(self.r2(self.dw(self.r1(self.c1(x)))), x)


class _ResNet(torch.nn.Module):
    def __init__(self):
        import torch.ao.quantization as tq

        super().__init__()
        self.q, self.dq = tq.QuantStub(), tq.DeQuantStub()
        self.stem, self.r = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU()
        self.b1 = _Block(8)
        self.add = torch.nn.quantized.FloatFunctional()
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        x = self.r(self.stem(self.q(x)))
        y = self.add.add(self.b1(x), x)
        return self.dq(self.fc(self.pool(y).flatten(1)))


_RESNETS = {}


def _resnet(engine):
    """A converted residual network per engine, built once per session."""
    import torch.ao.quantization as tq

    if engine not in _RESNETS:
        torch.backends.quantized.engine = engine
        torch.manual_seed(0)
        m = _ResNet().eval()
        m.qconfig = tq.get_default_qconfig(engine)
        tq.fuse_modules(m, [["stem", "r"], ["b1.c1", "b1.r1"], ["b1.dw", "b1.r2"]], inplace=True)
        tq.prepare(m, inplace=True)
        for _ in range(4):
            m(torch.randn(16, 3, 8, 8))
        tq.convert(m, inplace=True)
        _RESNETS[engine] = m
    torch.backends.quantized.engine = engine
    return _RESNETS[engine]


def _wide_inputs(seed, n=64):
    # out-of-calibration inputs: activation codes above 127 (fbgemm calibrates to 7 bits)
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed)) * 3


@pytest.mark.parametrize("engine", ["qnnpack", "fbgemm"])
def test_residual_and_depthwise_codes_exact(engine, quiet):
    if engine not in torch.backends.quantized.supported_engines:
        pytest.skip(f"{engine} is not built into this torch")
    from accel.backends import ExactBackend
    from accel.executor import Executor

    m = _resnet(engine)
    graph = from_torch_ao(m, engine)
    adds = {n.name: n for n in graph.nodes if n.op == "add"}
    assert set(adds) == {"add_relu", "add"}
    assert {n.mode for n in adds.values()} == {"fixed" if engine == "qnnpack" else "dequant_fma"}
    assert adds["add_relu"].lo == adds["add_relu"].zero_point
    dw = graph.node("b1.dw")
    assert dw.pair_bits == (16 if engine == "fbgemm" else None)
    x = _wide_inputs(1)
    ref = reference(m, graph)(x.numpy())
    assert {"q", "stem.requantize", "b1.dw.requantize", "add_relu", "add", "fc.requantize"} <= set(ref)
    run = Executor(graph, ExactBackend(ArrayConfig())).run(x.numpy(), keep=True)
    for name, want in ref.items():
        if name != "logits":
            np.testing.assert_array_equal(run.values[name], want, err_msg=name)
    codes = run.values[dw.inputs[0]]
    assert codes.max() > 127
    if engine == "fbgemm":                      # the saturation is real here, and modelled
        assert np.count_nonzero(dw.pair_correction(codes)) > 0
        exact = dataclasses.replace(dw, pair_bits=None)
        plain = Executor(graph.replace(exact), ExactBackend(ArrayConfig())).run(x.numpy(), keep=True)
        assert np.any(plain.values["b1.dw.requantize"] != ref["b1.dw.requantize"])
    res = simulate(graph, [(x, None)], GoldenBackend(ArrayConfig(pe_acc_bits=32)),
                   reference=reference(m, graph))
    assert all(s.agreement["equal"] == s.agreement["compared"] > 0 for s in res.layers)


def test_qnnpack_multiplier_flips_where_division_would_not(quiet):
    """Scales where QNNPACK's (s_w * s_x) * (1 / s_y) and (s_x * s_w) / s_y differ by an ulp and
    one accumulator rounds differently: the graph follows the engine."""
    if "qnnpack" not in torch.backends.quantized.supported_engines:
        pytest.skip("qnnpack is not built into this torch")
    import torch.ao.nn.quantized as nnq

    torch.backends.quantized.engine = "qnnpack"
    f32, rng = np.float32, np.random.default_rng(0)
    codes, weights = np.arange(256), np.arange(-127, 128)
    for _ in range(5000):
        sx, sw, sy = (f32(v) for v in rng.uniform(0.001, 0.05, 3))
        m_mul, m_div = (sw * sx) * (f32(1) / sy), (sx * sw) / sy
        acc = (codes[:, None] * weights[None, :]).astype(f32)
        flip = np.argwhere((np.rint(acc * m_mul) != np.rint(acc * m_div)) &
                           (np.abs(np.rint(acc * m_mul)) < 120))
        if m_mul != m_div and len(flip):
            break
    c, w = int(codes[flip[0][0]]), int(weights[flip[0][1]])
    lin = nnq.Linear(1, 1)
    lin.set_weight_bias(torch.quantize_per_tensor(torch.tensor([[w * float(sw)]]), float(sw), 0,
                                                  torch.qint8), None)
    lin.scale, lin.zero_point = float(sy), 128
    model = torch.nn.Sequential(nnq.Quantize(float(sx), 0, torch.quint8), lin, nnq.DeQuantize())
    graph = from_torch_ao(model, "qnnpack")
    x = np.array([[c * float(sx)]], np.float32)
    ref = reference(model, graph)(x)
    from accel.backends import ExactBackend
    from accel.executor import Executor

    got = Executor(graph, ExactBackend(ArrayConfig())).run(x, keep=True).values["1.requantize"]
    assert ref["0"].item() == c and got.item() == ref["1.requantize"].item()
    assert got.item() - 128 == np.rint(f32(c * w) * m_mul) != np.rint(f32(c * w) * m_div)


def test_residual_narrow_accumulator_equals_per_gemm_reference(quiet):
    from accel.executor import Executor
    from tests.test_executor import reference_run

    graph = from_torch_ao(_resnet("qnnpack"), "qnnpack")
    config = ArrayConfig(rows=4, cols=4, pe_acc_bits=16, out_acc_bits=20, overflow="saturate")
    x = _wide_inputs(2, 4).numpy()
    run = Executor(graph, GoldenBackend(config)).run(x, keep=True)
    values, arrays = reference_run(graph, x, config)
    assert sum(a[3] + a[4] for a in arrays.values()) > 0
    for node in graph.nodes:
        np.testing.assert_array_equal(run.values[node.name], values[node.name], err_msg=node.name)


def test_fbgemm_graph_saves_and_loads(tmp_path, quiet):
    from accel.graph import load_graph

    graph = from_torch_ao(_resnet("fbgemm"), "fbgemm")
    graph.save(tmp_path / "g.pt")
    back = load_graph(tmp_path / "g.pt")
    assert back.node("b1.dw").pair_bits == 16 and back.node("add").mode == "dequant_fma"
    x = _wide_inputs(3, 8).numpy()
    from accel.backends import ExactBackend
    from accel.executor import Executor

    a = Executor(graph, ExactBackend(ArrayConfig())).run(x).logits
    b = Executor(back, ExactBackend(ArrayConfig())).run(x).logits
    np.testing.assert_array_equal(a, b)


class _FxNet(torch.nn.Module):
    """A float model for FX-mode quantization: ReLU modules (fused by prepare_fx), a residual add
    + ReLU (quantized.add_relu), pooling, flatten, a linear head."""

    def __init__(self):
        super().__init__()
        self.stem, self.r0 = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU()
        self.c1, self.r1 = torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU()
        self.dw, self.r2 = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8), torch.nn.ReLU()
        self.r3, self.pool = torch.nn.ReLU(), torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        x = self.r0(self.stem(x))
        y = self.r3(self.r2(self.dw(self.r1(self.c1(x)))) + x)
        return self.fc(self.pool(y).flatten(1))


@pytest.mark.parametrize("engine", ["qnnpack", "fbgemm"])
def test_fx_mode_exact(engine, quiet):
    if engine not in torch.backends.quantized.supported_engines:
        pytest.skip(f"{engine} is not built into this torch")
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    from accel.backends import ExactBackend
    from accel.executor import Executor

    torch.backends.quantized.engine = engine
    torch.manual_seed(0)
    prepared = prepare_fx(_FxNet().eval(), get_default_qconfig_mapping(engine),
                          (torch.randn(4, 3, 8, 8),))
    for _ in range(4):
        prepared(torch.randn(16, 3, 8, 8))
    model = convert_fx(prepared)
    graph = from_torch_ao(model, engine)
    assert graph.node("add_relu").op == "add" and (graph.node("dw").pair_bits is not None) == \
        (engine == "fbgemm")
    x = _wide_inputs(5).numpy()
    ref = reference(model, graph)(x)
    assert {"quantize_per_tensor", "stem.requantize", "dw.requantize", "add_relu"} <= set(ref)
    run = Executor(graph, ExactBackend(ArrayConfig())).run(x, keep=True)
    for name, want in ref.items():
        if name != "logits":
            np.testing.assert_array_equal(run.values[name], want, err_msg=name)


def test_fx_float_op_between_dequantize_and_quantize_is_named(quiet):
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    class F(torch.nn.Module):                 # a functional ReLU stays a float op in FX mode
        def __init__(self):
            super().__init__()
            self.c = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return torch.relu(self.c(x))

    torch.backends.quantized.engine = "qnnpack"
    prepared = prepare_fx(F().eval(), get_default_qconfig_mapping("qnnpack"),
                          (torch.randn(2, 3, 6, 6),))
    prepared(torch.randn(4, 3, 6, 6))
    with pytest.raises(LayerError, match=r"node 'relu' \(call_function .*relu.*\) on real values"):
        from_torch_ao(convert_fx(prepared), "qnnpack")
