"""accel.graph: validation, checkpoints (narrow integers, round trip), and the version-1 format."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from accel.backends import GoldenBackend
from accel.config import ArrayConfig
from accel.executor import Executor
from accel.graph import Graph, graph_from_state, load_graph
from accel.layers import IntLayer, LayerError
from accel.nodes import (ArrayLayer, Clamp, Concat, Dequantize, Input, MaxPool, Quantize,
                         Requantize, Reshape)


def conv_layer(name="c", c_in=2, c_out=3, zp=0, bits=8):
    w = np.random.default_rng(0).integers(-128, 128, (c_out, c_in, 3, 3))
    return IntLayer(name=name, kind="conv2d", weight=w, weight_scale=np.full(c_out, 0.01),
                    input_scale=0.1, input_zero_point=zp, act_bits=bits, padding=1,
                    bias=np.arange(c_out) * 100)


def small_graph(**meta) -> Graph:
    lay = conv_layer()
    fc = IntLayer(name="fc", kind="linear", weight=np.ones((4, 3 * 2 * 2), np.int64),
                  weight_scale=[0.5], input_scale=0.2, input_zero_point=0)
    return Graph([
        Input(name="x"),
        Quantize(name="q", inputs=("x",), scale=0.1, hi=200),
        ArrayLayer(name="c", inputs=("q",), layer=lay),
        Requantize(name="c.rq", inputs=("c",), multiplier=np.full(3, 0.005, np.float32), scale=0.2,
                   lo=0),
        MaxPool(name="p", inputs=("c.rq",), kernel=2),
        Reshape(name="f", inputs=("p",), shape=(-1,)),
        ArrayLayer(name="fc", inputs=("f",), layer=fc),
        Dequantize(name="out", inputs=("fc",), scale=fc.acc_scale, axis=-1),
    ], meta=meta)


def test_save_load_round_trip_with_narrow_integers(tmp_path):
    g = small_graph(recipe="test", accuracy=0.5)
    path = tmp_path / "g.pt"
    g.save(path)
    state = torch.load(path, weights_only=True)               # plain tensors + JSON-able attributes
    arrays = {k: v for e in state["nodes"] for k, v in e["arrays"].items()}
    assert arrays["layer.weight"].dtype == torch.int8 and arrays["layer.bias"].dtype == torch.int16
    back = load_graph(path)
    assert [n.name for n in back.nodes] == [n.name for n in g.nodes] and back.meta == g.meta
    assert back.types["q"].hi == 200 and back.node("c").layer.weight.dtype == np.int64
    x = np.random.default_rng(1).random((3, 2, 4, 4)).astype(np.float32) * 20
    cfg = ArrayConfig(rows=4, cols=4, pe_acc_bits=24)
    a, b = Executor(g, GoldenBackend(cfg)).run(x), Executor(back, GoldenBackend(cfg)).run(x)
    assert np.array_equal(a.logits, b.logits) and a.logits.shape == (3, 4)


@pytest.mark.parametrize("nodes, msg", [
    ([], "at least one node"),
    ([Input(name="x"), Input(name="x")], "two nodes are named 'x'"),
    ([Input(name="x"), Clamp(name="r", inputs=("y",))], "reads 'y', which no earlier node defines"),
    ([Input(name="x"), Clamp(name="r", inputs=("x",), lo=0)], "needs integers on its input"),
    ([Input(name="x"), Quantize(name="q", inputs=("x",), scale=0.1, zero_point=3),
      ArrayLayer(name="c", inputs=("q",), layer=conv_layer())],
     "takes unsigned 8-bit codes with zero point 0, but its input carries unsigned 8-bit codes, "
     "zero point 3"),
    ([Input(name="x"), Quantize(name="q", inputs=("x",), scale=0.5),
      ArrayLayer(name="c", inputs=("q",), layer=conv_layer())], "has input scale 0.1"),
    ([Input(name="x"), Quantize(name="q", inputs=("x",), scale=0.1),
      Quantize(name="q2", inputs=("x",), scale=0.2), Concat(name="k", inputs=("q", "q2"))],
     "input 1 has other codes"),
])
def test_validation_names_the_node(nodes, msg):
    with pytest.raises(LayerError, match=msg):
        Graph(nodes)


def test_outputs_must_exist_and_one_input():
    with pytest.raises(LayerError, match="graph outputs 'nope' name no node"):
        Graph([Input(name="x")], ["nope"])
    with pytest.raises(LayerError, match="a graph has one input node, not 2"):
        Graph([Input(name="x"), Input(name="y")])


def test_corrupt_files(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("not a torch file\n")
    with pytest.raises(LayerError, match=r"bad.pt cannot be read as a torch.save file"):
        load_graph(bad)
    with pytest.raises(LayerError, match="does not exist"):
        load_graph(tmp_path / "missing.pt")
    with pytest.raises(LayerError, match="is a folder"):
        load_graph(tmp_path)
    with pytest.raises(LayerError, match="is not an accel integer-model checkpoint"):
        graph_from_state({"x": 1})
    state = small_graph().to_state()
    state["version"] = 99
    with pytest.raises(LayerError, match="graph format version 99"):
        graph_from_state(state)
    state = small_graph().to_state()
    del state["nodes"][2]["arrays"]["layer.weight"]
    with pytest.raises(LayerError, match="node entry 2"):
        graph_from_state(state)
    truncated = tmp_path / "t.pt"
    small_graph().save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(LayerError, match="cannot be read"):
        load_graph(truncated)


def test_version_1_checkpoint_converts():
    """The earlier layer-list format: layers with their requantization, a sequential op list and
    OAQ input clamps; the graph computes what that format's evaluator computed."""
    lay = conv_layer(name="0")
    fc = IntLayer(name="3", kind="linear", weight=np.ones((2, 3 * 4 * 4), np.int64),
                  weight_scale=[1.0], input_scale=0.5, input_zero_point=0)
    entries = []
    for layer, rq in ((lay, {"scale": 0.5, "zero_point": 0, "out_bits": 8, "out_signed": False,
                             "relu": True}), (fc, None)):
        st = layer.to_state()
        meta = {**st["meta"], "requant": rq}
        arrays = {k: torch.from_numpy(np.asarray(v)) for k, v in st["arrays"].items()}
        if rq is not None:
            arrays["requant_multiplier"] = torch.full((3,), 0.002)
        entries.append({"meta": meta, "arrays": arrays})
    state = {"format": "accel-int-layers", "version": 1, "layers": entries, "meta": {
        "graph": [{"op": "layer", "name": "0"}, {"op": "relu"}, {"op": "flatten", "start_dim": 1},
                  {"op": "layer", "name": "3"}],
        "input_clamps": {"0": 250, "3": 100}, "accuracy": 0.9}}
    g = graph_from_state(state)
    assert g.meta == {"accuracy": 0.9} and [n.op for n in g.nodes] == [
        "input", "quantize", "array", "requantize", "clamp", "reshape", "array", "dequantize"]
    x = np.random.default_rng(2).random((2, 2, 4, 4)).astype(np.float32) * 30
    run = Executor(g, GoldenBackend(ArrayConfig(rows=4, pe_acc_bits=32))).run(x, keep=True)
    codes = np.clip(np.rint(x.astype(np.float64) / 0.1), 0, 250).astype(np.int64)
    assert np.array_equal(run.values["quantize"], codes)                  # the input clamp
    acc = torch.nn.functional.conv2d(torch.from_numpy(codes).double(),
                                     torch.from_numpy(lay.weight).double(),
                                     torch.from_numpy(lay.bias).double(), padding=1).numpy()
    h = np.clip(np.rint((acc.astype(np.float32) * np.float32(0.002))), 0, 100).astype(np.int64)
    assert np.array_equal(run.values["0.requantize"], h)                  # relu, then clamp 100
    assert np.allclose(run.logits, h.reshape(2, -1).sum(axis=1, keepdims=True) * 0.5)
