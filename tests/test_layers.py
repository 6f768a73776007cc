"""accel.layers: the integer-layer description and its validation."""

from __future__ import annotations

import numpy as np
import pytest

from accel.layers import IntLayer, LayerError, fold_zero_point


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


def test_derived_properties():
    layer = conv(groups=2, weight=np.ones((4, 1, 3, 3), int))
    assert (layer.in_channels, layer.out_channels, layer.kernel_size) == (2, 4, (3, 3))
    assert layer.padding == (1, 1) and layer.per_channel
    assert np.allclose(layer.acc_scale, 0.1 * 0.01)


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
])
def test_validation_names_layer(kw, msg):
    with pytest.raises(LayerError, match=msg) as e:
        conv(**kw)
    assert "'c0'" in str(e.value)


def test_linear_groups_refused():
    with pytest.raises(LayerError, match="a linear layer has groups = 1"):
        IntLayer(name="l", kind="linear", weight=np.ones((2, 3), int), weight_scale=[1.0],
                 input_scale=1.0, input_zero_point=0, groups=2)
