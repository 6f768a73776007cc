"""accel.layers: the integer-layer description, its validation and checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from accel.layers import (IntLayer, LayerError, Requant, fold_zero_point, layers_from_state,
                          layers_to_state, load_layers, save_layers)


def conv(**kw):
    rng = np.random.default_rng(0)
    args = dict(name="c0", kind="conv2d", weight=rng.integers(-128, 128, (4, 2, 3, 3)),
                weight_scale=np.full(4, 0.01), input_scale=0.1, input_zero_point=3, padding=1,
                groups=1)
    args.update(kw)
    return IntLayer(**args)


def test_fold_zero_point_exact():
    w = np.array([[1, -2, 3], [-128, -128, -128]])
    assert fold_zero_point(np.array([5, 0]), w, 200).tolist() == [5 - 200 * 2, 200 * 384]
    assert fold_zero_point(None, w, 0).tolist() == [0, 0]


@settings(max_examples=300, deadline=None)
@given(bits=st.integers(1, 32), signed=st.booleans(), relu=st.booleans(), offset=st.booleans(),
       seed=st.integers(0, 2**31))
def test_requant_and_quantize_equal_their_formulas(bits, signed, relu, offset, seed):
    """apply() and quantize_input() against the documented formulas, step by step (float64
    clamps), on accumulators from 0 to the rails of 40 bits and codes up to 32 bits."""
    rng = np.random.default_rng(seed)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    zp = int(rng.integers(lo, hi + 1))
    mult = rng.uniform(1e-6, 4.0, 3).astype(np.float32)
    off = rng.uniform(-1e3, 1e3, 3).astype(np.float32) if offset else None
    rq = Requant(multiplier=mult, scale=0.5, zero_point=zp, out_bits=bits, out_signed=signed,
                 offset=off, relu=relu)
    acc = np.concatenate([rng.integers(-(1 << 40), 1 << 40, (5, 3)), rng.integers(-300, 300, (5, 3)),
                          np.array([[-(1 << 40)] * 3, [(1 << 40) - 1] * 3, [0] * 3])])
    v = acc.astype(np.float32)
    if off is not None:
        v = (v + off).astype(np.float32)
    v = (v * mult).astype(np.float32)
    want = np.clip(np.rint(v).astype(np.float64) + zp, max(lo, zp) if relu else lo, hi)
    assert np.array_equal(rq.apply(acc), want.astype(np.int64))
    layer = conv(act_bits=min(bits, 16), act_signed=signed, input_zero_point=0)
    x = rng.normal(0, 50, 20) * rng.choice([1e-3, 1, 1e3], 20)
    ilo, ihi = layer.input_range
    want = np.clip(np.rint(x / layer.input_scale) + 0, ilo, ihi).astype(np.int64)
    assert np.array_equal(layer.quantize_input(x), want)


def test_requant_round_half_even_clamp_relu():
    rq = Requant(multiplier=[0.5], scale=1.0, zero_point=10, out_bits=8, out_signed=False)
    # 1 * 0.5 = 0.5 -> 0 ; 3 * 0.5 = 1.5 -> 2 ; 5 * 0.5 = 2.5 -> 2 (half to even)
    assert rq.apply(np.array([1, 3, 5, 1000, -1000])).tolist() == [10, 12, 12, 255, 0]
    relu = Requant(multiplier=[0.5], scale=1.0, zero_point=10, relu=True)
    assert relu.apply(np.array([-100])).tolist() == [10]
    off = Requant(multiplier=[1.0], scale=1.0, zero_point=0, offset=[0.25])
    assert off.apply(np.array([2])).tolist() == [2]
    assert rq.dequantize(np.array([12])).tolist() == [2.0]


def test_derived_properties():
    layer = conv(groups=2, weight=np.ones((4, 1, 3, 3), int))
    assert (layer.in_channels, layer.out_channels, layer.kernel_size) == (2, 4, (3, 3))
    assert layer.padding == (1, 1) and layer.per_channel
    assert layer.quantize_input(np.array([0.25, -10.0, 100.0])).tolist() == [5, 0, 255]


@pytest.mark.parametrize("kw, msg", [
    (dict(kind="conv3d"), "kind must be one of"),
    (dict(weight=np.zeros((4, 2))), "weight must have 4 dimension"),
    (dict(weight=np.full((1, 1, 1, 1), 128)), "outside the signed 8-bit range"),
    (dict(weight=np.full((1, 1, 1, 1), 0.5)), "weight must hold integers"),
    (dict(weight_zero_point=np.array([0, 1, 0, 0])), "weight zero point must be 0"),
    (dict(weight_scale=np.full(3, 0.1)), "weight_scale must have shape"),
    (dict(weight_scale=np.array([0.1, -1, 1, 1])), r"weight_scale\[1\] = -1.0 must be positive"),
    (dict(input_scale=0.0), "input_scale must be positive"),
    (dict(input_zero_point=256), "input_zero_point must be an integer in the unsigned 8-bit"),
    (dict(act_bits=0), "act_bits must be an integer between 1 and 16"),
    (dict(bias=np.zeros(3, int)), r"bias must have shape \(4,\)"),
    (dict(groups=3), "groups must be a positive divisor of the 4 output channels"),
    (dict(stride=0), "stride must be an integer >= 1"),
    (dict(padding=(1, -1)), "padding must be an integer >= 0"),
    (dict(requant="x"), "requant must be a Requant"),
    (dict(requant=Requant(multiplier=[1, 1], scale=1.0, zero_point=0)),
     r"requant multiplier must have shape \(1,\) or \(4,\)"),
])
def test_validation_names_layer(kw, msg):
    with pytest.raises(LayerError, match=msg) as e:
        conv(**kw)
    assert "'c0'" in str(e.value)


def test_linear_groups_refused():
    with pytest.raises(LayerError, match="a linear layer has groups = 1"):
        IntLayer(name="l", kind="linear", weight=np.ones((2, 3), int), weight_scale=[1.0],
                 input_scale=1.0, input_zero_point=0, groups=2)


@pytest.mark.parametrize("kw, msg", [
    (dict(scale=-1.0), "scale must be positive"),
    (dict(zero_point=300), "zero_point must be an integer in the output code range"),
    (dict(out_bits=40), "out_bits must be an integer between 1 and 32"),
    (dict(multiplier=[0.0]), "must be positive"),
    (dict(offset=[np.inf]), "offset must be a finite 1-D array"),
])
def test_requant_validation(kw, msg):
    args = dict(multiplier=[1.0], scale=1.0, zero_point=0, layer="l7")
    args.update(kw)
    with pytest.raises(LayerError, match=msg):
        Requant(**args)


def test_checkpoint_round_trip(tmp_path):
    rq = Requant(multiplier=np.array([0.1, 0.2, 0.3, 0.4], np.float32), scale=0.5, zero_point=7,
                 offset=np.arange(4, dtype=np.float32), relu=True)
    layer = conv(bias=np.arange(4), requant=rq, stride=(2, 1), dilation=2, groups=2,
                 weight=np.arange(-36, 36).reshape(4, 1, 3, 6)[:, :, :, :3])
    path = tmp_path / "l.pt"
    save_layers(path, [layer], {"acc": 0.9})
    (back,), meta = load_layers(path)
    assert meta == {"acc": 0.9}
    assert np.array_equal(back.weight, layer.weight) and np.array_equal(back.bias, layer.bias)
    assert (back.stride, back.dilation, back.groups) == ((2, 1), (2, 2), 2)
    assert np.array_equal(back.requant.multiplier, rq.multiplier)
    assert np.array_equal(back.requant.offset, rq.offset) and back.requant.relu
    state = torch.load(path, weights_only=True)           # plain tensors + JSON-able metadata
    assert state["format"] == "accel-int-layers"


def test_corrupt_checkpoints(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(LayerError, match="cannot be read"):
        load_layers(bad)
    with pytest.raises(LayerError, match="does not exist"):
        load_layers(tmp_path / "missing.pt")
    with pytest.raises(LayerError, match="is not an integer-layer checkpoint"):
        layers_from_state({"x": 1})
    state = layers_to_state([conv()])
    state["version"] = 99
    with pytest.raises(LayerError, match="format version 99"):
        layers_from_state(state)
    state = layers_to_state([conv()])
    del state["layers"][0]["arrays"]["weight"]
    with pytest.raises(LayerError, match="layer entry 0: malformed"):
        layers_from_state(state)
    with pytest.raises(TypeError):
        layers_to_state([conv()], meta={"bad": object()})
