"""torch.ao eager-mode quantized models through the torch.fx front end: the engine's codes exactly."""

from __future__ import annotations

import warnings

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
