"""The executor and its back ends against a slow reference, on random graphs and on real models.

The reference executes a graph node by node with each array layer lowered to its GEMMs
(:func:`accel.lowering.lower`, im2col in PyTorch's weight order) and every GEMM run one Python
integer at a time (:func:`accel.reference.reference_gemm`): nothing of the screen, the lazy
operands or the golden stepping.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from accel.arith import code_range
from accel.backends import ExactBackend, GoldenBackend
from accel.config import ArrayConfig, OverQConfig
from accel.executor import Executor, overq_node, simulate
from accel.graph import Graph
from accel.layers import IntLayer, LayerError
from accel.lowering import gemm_shape, lower, raise_output
from accel.nodes import (Add, ArrayLayer, AvgPool, Clamp, Concat, Dequantize, Input, MaxPool,
                         Quantize, Requantize, Reshape)
from accel.reference import reference_gemm


def reference_run(graph: Graph, x: np.ndarray, config: ArrayConfig) -> tuple[dict, dict]:
    """Every node's value and, per array node, (y, pe flags, acc flags, pe events, acc events)."""
    values, arrays = {}, {}
    ex = Executor(graph, ExactBackend(config))            # only for the OverQ node rewriting
    for node in ex.nodes:
        if isinstance(node, Input):
            values[node.name] = x.astype(np.float32)
        elif isinstance(node, Quantize):
            values[node.name] = ex.run_quantize(node, values[node.inputs[0]])
        elif isinstance(node, ArrayLayer):
            codes = values[node.inputs[0]]
            shape = gemm_shape(node.layer, codes.shape)
            parts = [reference_gemm(xg.astype(np.int64), w, config, b)
                     for xg, w, b in lower(node.layer, codes, config.lane_range)]
            y = raise_output(node.layer, [p.y for p in parts], shape)
            arrays[node.name] = (y, raise_output(node.layer, [p.pe_overflow for p in parts], shape),
                                 raise_output(node.layer, [p.acc_overflow for p in parts], shape),
                                 sum(p.pe_events for p in parts), sum(p.acc_events for p in parts))
            values[node.name] = y
        else:
            values[node.name] = node.apply(*[values[i] for i in node.inputs])
    return values, arrays


def conv(rng, name, c_in, c_out, k, stride, pad, groups, n_bits, m_bits, bias_bits, s_x):
    w = rng.integers(*code_range(m_bits, True), (c_out, c_in // groups, k, k), endpoint=True)
    bias = None if bias_bits is None else rng.integers(-(1 << bias_bits), 1 << bias_bits, c_out)
    return IntLayer(name=name, kind="conv2d", weight=w, weight_scale=np.full(c_out, 0.05),
                    input_scale=s_x, input_zero_point=0, act_bits=n_bits, weight_bits=m_bits,
                    bias=bias, stride=stride, padding=pad, groups=groups)


def requant(name, src, layer, s_y, bits, relu, rng):
    mult = (layer.acc_scale / s_y * rng.uniform(0.5, 2.0)).astype(np.float32)
    return Requantize(name=name, inputs=(src,), multiplier=mult, scale=s_y, bits=bits,
                      lo=0 if relu else None, axis=1)


@st.composite
def graphs(draw):
    """A conv stem, a residual block (identity or 1x1 projection), a pool, a two-branch concat,
    flatten and a linear head, with random widths, geometry, biases and scales."""
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    n_bits, m_bits = draw(st.integers(2, 6)), draw(st.integers(2, 6))
    p_bits = n_bits + m_bits + draw(st.integers(0, 4))
    c = draw(st.integers(1, 3))
    h = draw(st.integers(4, 6))
    bias_bits = draw(st.one_of(st.none(), st.integers(0, p_bits - 2)))
    s = 0.1
    nodes = [Input(name="x"), Quantize(name="q", inputs=("x",), scale=s, bits=n_bits)]
    stem = conv(rng, "stem", 1, c, 3, 1, 1, 1, n_bits, m_bits, bias_bits, s)
    nodes += [ArrayLayer(name="stem", inputs=("q",), layer=stem),
              requant("stem.rq", "stem", stem, 0.2, n_bits, True, rng)]
    a = conv(rng, "a", c, c, 3, 1, 1, draw(st.sampled_from([1, c])), n_bits, m_bits, bias_bits, 0.2)
    nodes += [ArrayLayer(name="a", inputs=("stem.rq",), layer=a), requant("a.rq", "a", a, 0.3, n_bits, False, rng)]
    skip = "stem.rq"
    if draw(st.booleans()):
        p = conv(rng, "proj", c, c, 1, 1, 0, 1, n_bits, m_bits, None, 0.2)
        nodes += [ArrayLayer(name="proj", inputs=("stem.rq",), layer=p),
                  requant("proj.rq", "proj", p, 0.25, n_bits, False, rng)]
        skip = "proj.rq"
    s_skip = 0.25 if skip == "proj.rq" else 0.2
    nodes.append(Add(name="add", inputs=("a.rq", skip), multipliers=(0.3 / 0.4, s_skip / 0.4),
                     scale=0.4, bits=n_bits, lo=0))
    if draw(st.booleans()):
        nodes.append(MaxPool(name="pool", inputs=("add",), kernel=2, stride=draw(st.sampled_from([1, 2])),
                             padding=draw(st.sampled_from([0, 1]))))
    else:
        nodes.append(AvgPool(name="pool", inputs=("add",), kernel=2, stride=2, multiplier=1.0,
                             scale=0.4, bits=n_bits, count_include_pad=draw(st.booleans())))
    nodes.append(Clamp(name="cl", inputs=("pool",), hi=(1 << n_bits) - 2))
    nodes.append(Concat(name="cat", inputs=("pool", "cl"), axis=1))
    nodes.append(Reshape(name="flat", inputs=("cat",), shape=(-1,)))
    probe = Graph(nodes)
    feat = int(np.prod(Executor(probe, ExactBackend(ArrayConfig(rows=2, act_bits=n_bits,
                                                                weight_bits=m_bits))).run(
        np.zeros((1, 1, h, h), np.float32)).logits.shape[1:]))
    fc = IntLayer(name="fc", kind="linear",
                  weight=rng.integers(*code_range(m_bits, True), (3, feat), endpoint=True),
                  weight_scale=[0.1], input_scale=0.4, input_zero_point=0, act_bits=n_bits,
                  weight_bits=m_bits)
    nodes += [ArrayLayer(name="fc", inputs=("flat",), layer=fc),
              Dequantize(name="out", inputs=("fc",), scale=fc.acc_scale, axis=-1)]
    config = ArrayConfig(rows=draw(st.integers(1, 5)), cols=2, act_bits=n_bits, weight_bits=m_bits,
                         pe_acc_bits=p_bits, out_acc_bits=p_bits + draw(st.integers(0, 3)),
                         overflow=draw(st.sampled_from(["wrap", "saturate"])))
    x = rng.random((draw(st.integers(1, 2)), 1, h, h)).astype(np.float32) * draw(
        st.sampled_from([1.0, 10.0, 100.0]))
    return Graph(nodes), config, x


@pytest.mark.parametrize("extremes", [False, True])
@settings(max_examples=40, deadline=None)
@given(graphs())
def test_golden_backend_equals_the_per_gemm_reference_on_random_graphs(extremes, case):
    graph, config, x = case
    run = Executor(graph, GoldenBackend(config, extremes=extremes)).run(x, keep=True)
    values, arrays = reference_run(graph, x, config)
    for name, (y, pe, acc, pe_ev, acc_ev) in arrays.items():
        assert np.array_equal(run.values[name], y), name
        st = run.layers[name]
        assert (st.pe_events, st.acc_events) == (pe_ev, acc_ev), name
        assert (st.pe_overflow_outputs, st.acc_overflow_outputs) == (int(pe.sum()), int(acc.sum()))
        assert st.affected_outputs == int((pe | acc).sum())
    assert np.array_equal(run.logits, values["out"])


def test_exact_backend_is_the_exact_sum():
    rng = np.random.default_rng(0)
    layer = conv(rng, "c", 3, 4, 3, 2, 1, 1, 8, 8, 10, 0.1)
    codes = rng.integers(0, 256, (2, 3, 7, 7))
    run = ExactBackend(ArrayConfig(pe_acc_bits=16)).run(layer, codes)
    ref = torch.nn.functional.conv2d(torch.from_numpy(codes).double(),
                                     torch.tensor(layer.weight, dtype=torch.float64),
                                     torch.tensor(layer.bias, dtype=torch.float64), stride=2, padding=1)
    assert np.array_equal(run.acc, ref.numpy().astype(np.int64)) and run.pe_overflow is None


def two_layer(rng, zp=0):
    lay = conv(rng, "c", 1, 3, 3, 1, 1, 1, 4, 4, 6, 0.1)
    fc = IntLayer(name="fc", kind="linear", weight=rng.integers(-8, 8, (2, 3 * 16)),
                  weight_scale=[0.1], input_scale=0.2, input_zero_point=0, act_bits=4, weight_bits=4)
    return Graph([Input(name="x"), Quantize(name="q", inputs=("x",), scale=0.1, bits=4),
                  ArrayLayer(name="c", inputs=("q",), layer=lay),
                  Requantize(name="c.rq", inputs=("c",), multiplier=(lay.acc_scale / 0.2).astype(np.float32),
                             scale=0.2, bits=4, lo=zp),
                  Reshape(name="f", inputs=("c.rq",), shape=(-1,)),
                  ArrayLayer(name="fc", inputs=("f",), layer=fc),
                  Dequantize(name="out", inputs=("fc",), scale=fc.acc_scale, axis=-1)])


@pytest.mark.parametrize("mode", ["range", "precision", "both"])
def test_overq_between_layers(mode):
    """With OverQ the codes between layers are raw lane codes in 2^-F steps: the requantization
    keeps what N bits would clip (and, in precision modes, F fraction bits), the next layer
    counts in 2^-F steps, and the input enters as code << F."""
    rng = np.random.default_rng(3)
    g = two_layer(rng)
    cfg = ArrayConfig(rows=4, cols=2, act_bits=4, weight_bits=4, pe_acc_bits=24,
                      overq=OverQConfig(mode=mode, cascade=1))
    x = rng.random((3, 1, 4, 4)).astype(np.float32) * 3
    run = Executor(g, GoldenBackend(cfg)).run(x, keep=True)
    f = cfg.frac_bits
    assert np.array_equal(run.values["q"], g.node("q").apply(x) << f)
    rq = g.node("c.rq")
    v = run.values["c"].astype(np.float32) * rq.multiplier.reshape(1, -1, 1, 1)
    want = np.clip(np.rint(v), 0, cfg.lane_range[1]).astype(np.int64)
    assert np.array_equal(run.values["c.rq"], want)
    assert run.layers["c"].overq is not None and run.layers["c"].overq.lanes > 0
    assert np.allclose(run.logits, run.values["fc"] * g.layers[1].acc_scale / (1 << f))
    widened = overq_node(rq, cfg)
    assert widened.hi == cfg.lane_range[1] and widened.bits == cfg.lane_bits


def test_overq_needs_zero_point_zero_and_unsigned():
    rng = np.random.default_rng(4)
    lay = dataclasses.replace(conv(rng, "c", 1, 2, 3, 1, 1, 1, 4, 4, None, 0.1), input_zero_point=2)
    cfg = ArrayConfig(rows=4, act_bits=4, weight_bits=4, pe_acc_bits=24, overq=OverQConfig())
    with pytest.raises(LayerError, match="OverQ lanes need input zero point 0"):
        overq_node(ArrayLayer(name="c", inputs=("q",), layer=lay), cfg)
    signed_in = dataclasses.replace(lay, input_zero_point=0, act_signed=True)
    with pytest.raises(LayerError, match="OverQ lanes take unsigned codes"):
        overq_node(ArrayLayer(name="c", inputs=("q",), layer=signed_in), cfg)
    # signed codes only host operations read (a residual branch) keep their range, in 2^-F units
    signed = Requantize(name="r", inputs=("a",), multiplier=[1.0], scale=1.0, signed=True)
    f = cfg.frac_bits
    branch = overq_node(signed, cfg)
    assert (branch.lo, branch.hi, branch.bits) == (signed.lo << f, signed.hi << f, signed.bits + f)


def test_simulate_accuracy_reference_and_agreement():
    rng = np.random.default_rng(5)
    g = two_layer(rng)
    cfg = ArrayConfig(rows=4, cols=2, act_bits=4, weight_bits=4, pe_acc_bits=32)
    x = rng.random((6, 1, 4, 4)).astype(np.float32) * 3
    truth = Executor(g, ExactBackend(cfg)).run(x, keep=True)
    labels = truth.logits.argmax(1)
    wrong = truth.values["c.rq"].copy()
    wrong[0, 0, 0, 0] += 1                                   # one code off by one LSB

    def reference(xb):
        return {"logits": truth.logits, "c.rq": wrong}

    res = simulate(g, [(x, labels)], GoldenBackend(cfg), reference=reference)
    assert res.accuracy == 1.0 and res.reference_accuracy == 1.0 and res.samples == 6
    a = res.layers[0].agreement
    assert a["compared"] == wrong.size and a["equal"] == wrong.size - 1
    assert a["within_1lsb"] == wrong.size
    assert [s.name for s in res.layers] == ["c", "fc"] and res.to_dict()["samples"] == 6
    json.dumps(res.to_dict())              # counts are plain ints (results stores, --json)


def test_stats_merge_over_batches():
    rng = np.random.default_rng(6)
    g = two_layer(rng)
    cfg = ArrayConfig(rows=4, cols=2, act_bits=4, weight_bits=4, pe_acc_bits=8, overflow="saturate")
    x = rng.random((8, 1, 4, 4)).astype(np.float32) * 10
    whole = simulate(g, [(x, None)], GoldenBackend(cfg))
    split = simulate(g, [(x[:3], None), (x[3:], None)], GoldenBackend(cfg))
    for a, b in zip(whole.layers, split.layers):
        assert (a.pe_events, a.acc_events, a.outputs, a.affected_outputs, a.t) == \
            (b.pe_events, b.acc_events, b.outputs, b.affected_outputs, b.t)
        assert b.input_shape[0] == 8
    assert sum(s.pe_events for s in split.layers) > 0
    assert sum(s.affected_outputs for s in split.layers) > 0
    json.dumps(split.to_dict())            # overflow counts too
