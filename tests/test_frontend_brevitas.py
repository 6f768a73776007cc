"""Brevitas models through accel.frontends.brevitas: Brevitas' own integers at every quant node and
accumulator, A2Q / A2Q+ layers certified at their accumulator_bit_width (no event there on data
nor on adversarial inputs), a baseline that shows the events it has."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from accel.backends import GoldenBackend
from accel.cli import main
from accel.config import ArrayConfig
from accel.executor import Executor, simulate
from accel.golden import gemm
from accel.layers import LayerError
from accel.nodes import Add, ArrayLayer, Quantize, Requantize
from accel.quant.report import certify, input_code_range

brevitas = pytest.importorskip("brevitas")

import brevitas.nn as qnn  # noqa: E402
from brevitas.quant.scaled_int import (Int8AccumulatorAwareWeightQuant,  # noqa: E402
                                       Int8AccumulatorAwareZeroCenterWeightQuant, Int32Bias,
                                       Uint8ActPerTensorFloat)

from accel.frontends.brevitas import from_brevitas, reference  # noqa: E402
from sim.sweep.adversarial import adversarial_codes  # noqa: E402
from tests.frontend_checks import forced  # noqa: E402
from tests.test_executor import reference_run  # noqa: E402

P_A2Q = 16
QUANTS = {"baseline": None, "a2q": Int8AccumulatorAwareWeightQuant,
          "a2q+": Int8AccumulatorAwareZeroCenterWeightQuant}


class Net(torch.nn.Module):
    """Unsigned 8-bit input codes, a conv stem, a residual block whose two branches share one
    quantizer (as Brevitas' ResNets do), max pooling and a linear head with a float output."""

    def __init__(self, wq, bias_quant) -> None:
        super().__init__()
        kw = {} if wq is None else dict(weight_quant=wq, weight_accumulator_bit_width=P_A2Q)
        kw.update(bias=True, bias_quant=bias_quant, return_quant_tensor=True)
        self.inp = qnn.QuantIdentity(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True)
        self.stem = qnn.QuantConv2d(1, 8, 3, padding=1, **kw)
        self.r0 = qnn.QuantReLU(return_quant_tensor=True)
        self.c1 = qnn.QuantConv2d(8, 8, 3, padding=1, **kw)
        self.r1 = qnn.QuantReLU(act_quant=self.r0.act_quant, return_quant_tensor=True)
        self.r2 = qnn.QuantReLU(return_quant_tensor=True)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = qnn.QuantLinear(8 * 4 * 4, 10, **{**kw, "return_quant_tensor": False})

    def forward(self, x):
        x = self.r0(self.stem(self.inp(x)))
        y = self.r2(self.r1(self.c1(x)) + x)
        return self.fc(self.pool(y).flatten(1))


def _images(seed, n):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2


def _model(kind, bias_quant):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = Net(QUANTS[kind], bias_quant)
        m.train()
        with torch.no_grad():
            for i in range(8):                       # activation statistics
                m(_images(100 + i, 64))
        m.eval()
        return m, from_brevitas(m, _images(0, 2))


@pytest.fixture(scope="session")
def models():
    """Each kind with an integer bias (Int32Bias) and the baseline with a float bias, once."""
    out = {(k, "int"): _model(k, Int32Bias) for k in QUANTS}
    out[("baseline", "float")] = _model("baseline", None)
    return out


CONFIG32 = ArrayConfig(rows=8, cols=8, pe_acc_bits=32)


@pytest.mark.parametrize("key", [("baseline", "int"), ("a2q", "int"), ("a2q+", "int"),
                                 ("baseline", "float")])
def test_brevitas_integers_at_every_node(models, key):
    model, graph = models[key]
    assert [n.name for n in graph.array_nodes] == ["stem", "c1", "fc"]
    assert {type(graph.node(n)) for n in ("inp", "r0", "add")} == {Quantize, Requantize, Add}
    x = _images(1, 128).numpy()
    nodes, ref, logits = forced(graph, reference(model, graph), x, CONFIG32)
    accs = [n for n in nodes if isinstance(graph.node(n), ArrayLayer)]
    assert accs == (["stem", "c1"] if key[1] == "int" else [])     # a float bias: no int acc
    flips = 0
    for name, (equal, near, n, kind) in nodes.items():
        if kind is Requantize and isinstance(graph.node(graph.node(name).inputs[0]), ArrayLayer):
            flips += n - equal             # Brevitas' fp32 conv vs the exact accumulator: ties
            assert near == n and equal >= n * (1 - 1e-4), name
        else:                              # weights, biases, input and add codes, accumulators
            assert equal == n, (name, kind)
    assert flips <= 3
    lsb = graph.node(graph.outputs[0]).scale.max()
    assert np.all(np.abs(logits - ref["logits"]) <= lsb)
    # end to end (flips propagate), the graph's run agrees with Brevitas' codes almost everywhere
    res = simulate(graph, [(x, None)], GoldenBackend(CONFIG32), reference=reference(model, graph))
    for s in res.layers:                   # fc: its float output, in steps of its scale
        share = s.agreement["within_1lsb_share" if s.name == "fc" else "equal_share"]
        assert share >= 0.99 and s.exact_mismatches == 0, s.name


def test_a2q_widths_recorded(models):
    for kind in ("a2q", "a2q+"):
        assert models[(kind, "int")][1].meta["accumulator_bit_width"] == \
            {"stem": P_A2Q, "c1": P_A2Q, "fc": P_A2Q}
    assert models[("baseline", "int")][1].meta["accumulator_bit_width"] == {}


def _layer_events(graph, config, with_bias):
    """PE / accumulator events of every layer on its adversarial inputs (SPEC section 5)."""
    out = {}
    for node in graph.array_nodes:
        lay = node.layer
        w = lay.weight.reshape(lay.out_channels, -1).T
        x = adversarial_codes(w, input_code_range(graph, node, config))
        r = gemm(x, w, config, lay.bias if with_bias else None)
        out[node.name] = (r.pe_events, r.acc_events)
    return out


@pytest.mark.parametrize("kind", ["a2q", "a2q+"])
def test_a2q_certified_at_its_accumulator_width(models, kind):
    _, graph = models[(kind, "int")]
    config = ArrayConfig(rows=8, cols=8, pe_acc_bits=P_A2Q)
    cert = certify(graph, config)
    for r in cert["layers"]:
        assert r["accumulator_bit_width"] == P_A2Q and r["meets_accumulator_bit_width"]
        assert r["safe_p"] and r["min_safe_q_weights"] <= P_A2Q
    # A2Q bounds the weights only: Int32Bias biases need more than P here, and the report says so
    assert any(not r["safe_q"] and r["bias_bits"] > P_A2Q for r in cert["layers"])
    # the weights alone never overflow P = Q = accumulator_bit_width; with the bias, Q as certified
    assert all(e == (0, 0) for e in _layer_events(graph, config, False).values())
    wide = ArrayConfig(rows=8, cols=8, pe_acc_bits=P_A2Q, out_acc_bits=cert["min_safe_q"])
    assert all(e == (0, 0) for e in _layer_events(graph, wide, True).values())
    res = simulate(graph, [(_images(2, 256).numpy(), None)], GoldenBackend(wide))
    assert all(s.pe_events == s.acc_events == 0 for s in res.layers)


def test_baseline_shows_its_events(models):
    _, graph = models[("baseline", "int")]
    config = ArrayConfig(rows=8, cols=8, pe_acc_bits=P_A2Q)
    cert = certify(graph, config)
    assert not cert["safe"] and cert["min_safe_p"] > P_A2Q
    unsafe = [r["name"] for r in cert["layers"] if not r["safe_p"]]
    adv = _layer_events(graph, config, False)
    assert unsafe and all(adv[n][0] > 0 for n in unsafe)       # the bound is reached
    assert all(adv[r["name"]] == (0, 0) for r in cert["layers"] if r["safe_p"] and
               r["min_safe_q_weights"] <= P_A2Q)
    res = simulate(graph, [(_images(3, 256).numpy(), None)], GoldenBackend(config, extremes=True))
    assert sum(s.pe_events + s.acc_events for s in res.layers) > 0
    for s, r in zip(res.layers, cert["layers"]):             # data never needs more than the bound
        assert s.min_pe_bits <= max(r["min_safe_p"], config.min_pe_acc_bits)


def test_narrow_accumulator_equals_per_gemm_reference(models):
    _, graph = models[("baseline", "int")]
    config = ArrayConfig(rows=4, cols=4, pe_acc_bits=16, out_acc_bits=20, overflow="saturate")
    x = _images(4, 4).numpy()
    run = Executor(graph, GoldenBackend(config)).run(x, keep=True)
    values, arrays = reference_run(graph, x, config)
    assert sum(a[3] + a[4] for a in arrays.values()) > 0          # not vacuous
    for node in graph.nodes:
        np.testing.assert_array_equal(run.values[node.name], values[node.name], err_msg=node.name)
        if isinstance(node, ArrayLayer):
            assert (run.layers[node.name].pe_events, run.layers[node.name].acc_events) == \
                arrays[node.name][3:]


def test_certify_cli_on_a_saved_brevitas_graph(models, tmp_path, capsys):
    _, graph = models[("a2q+", "int")]
    path = tmp_path / "a2qplus.pt"
    graph.save(path)
    out = tmp_path / "cert.json"
    assert main(["certify", str(path), "--rows", "8", "--pe-acc-bits", str(P_A2Q),
                 "--out-acc-bits", "24", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "SAFE" in text and "NOT SAFE" not in text and "A2Q P" in text
    cert = json.loads(out.read_text())
    assert [r["accumulator_bit_width"] for r in cert["layers"]] == [P_A2Q] * 3
    assert cert["format"] == "graph" and cert["safe"]


def test_unsupported_op_is_named():
    class T(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(return_quant_tensor=True)

        def forward(self, x):
            return torch.sigmoid(self.inp(x))

    with pytest.raises(LayerError, match=r"node 'sigmoid' \(call_function .*sigmoid.*\) cannot "
                                         r"be mapped to the integer graph; supported: QuantIdentity"):
        from_brevitas(T().eval(), torch.rand(1, 4))


def test_add_of_two_scales_is_refused():
    class T(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = qnn.QuantIdentity(return_quant_tensor=True)
            self.b = qnn.QuantIdentity(return_quant_tensor=True)

        def forward(self, x):
            return self.a(x) + self.b(2 * x)

    m = T()
    m.train()
    m(torch.randn(8, 4))
    with pytest.raises(LayerError, match=r"fails on the example input \(RuntimeError: Scaling "
                                         r"factors are different"):
        from_brevitas(m.eval(), torch.randn(2, 4))
