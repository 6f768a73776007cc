"""TLM against the RTL: cycles measured by the cocotb suite, values of a trained conv layer.

* Closed-form cycles (sim.cycles) == cycles the cocotb testbench measures under the canonical
  stimulus, for three multi-fold GEMM shapes on two array sizes (Verilator; skipped when missing).
* The TLM's results of the second conv layer of the committed A2Q+ digits CNN (real weights,
  real inputs) == the generated top level's ``y`` beats in Amaranth's simulator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from accel.config import ArrayConfig
from accel.golden import GemmResult
from accel.timing import timing
from sim.cycles import gemm_cycles
from sim.schedule import expected_lanes, unpack_lanes
from sim.tlm.layer import array_gemm, run_layer
from accel.lowering import lower

CHECKPOINT = Path(__file__).parent.parent / "models" / "checkpoints" / "cnn_a2qplus_n8_p20_s0.pt"

#: Two array sizes of the cocotb suite's covering set (their builds are shared through the cache).
CYCLE_CONFIGS = [
    ArrayConfig(rows=4, cols=4, act_bits=8, weight_bits=8, pe_acc_bits=16, overflow="saturate",
                acc_depth=8),
    ArrayConfig(rows=3, cols=5, act_bits=6, weight_bits=5, pe_acc_bits=11, acc_depth=2),
]
SHAPES = [(10, 9, 7), (20, 13, 11), (5, 8, 12)]


@pytest.mark.parametrize("config", CYCLE_CONFIGS, ids=lambda c: c.name)
def test_cycles_equal_cocotb_measured(config):
    from sim.runner import measure_cycles, simulator_missing

    why = simulator_missing("verilator")
    if why:
        pytest.skip(why)
    assert all(k > config.rows and o > config.cols for _, k, o in SHAPES)   # multi-fold, both ways
    measured = measure_cycles(config, SHAPES, seed=5)
    assert measured == [gemm_cycles(t, k, o, config).cycles for t, k, o in SHAPES]


def _layer4_inputs():
    from accel.quant.intmodel import load_int_model
    from models.digits import load_split

    model = load_int_model(CHECKPOINT)
    config = ArrayConfig.from_dict(model.meta["config"])
    l0, l4 = model.layer("0"), model.layer("4")
    img = load_split()[2][:1].numpy()                      # one test image, [1, 1, 8, 8]
    acc0, _ = run_layer(l0, l0.quantize_input(img), config, timing(config))
    codes = np.moveaxis(l0.requant.apply(np.moveaxis(acc0, 1, -1)), -1, 1)
    codes = np.maximum(codes, l0.requant.zero_point)      # relu on codes
    codes = F.max_pool2d(torch.from_numpy(codes.astype(np.float64)), 2, 2).numpy().astype(np.int64)
    return l4, codes, config


@pytest.mark.skipif(not CHECKPOINT.exists(), reason="committed digits checkpoint missing")
def test_trained_conv_layer_equals_rtl():
    pytest.importorskip("amaranth")
    from test_rtl_top import simulate        # the RTL helper's cycle-based Amaranth harness

    layer, codes, config = _layer4_inputs()
    (x, w, b), = lower(layer, codes)
    assert x.shape == (16, 144) and w.shape == (144, 32)   # 18 folds x 4 groups on 8x8
    res, _ = array_gemm(x, w, b, config)
    run = simulate(config, x.astype(np.int64), w, b)
    assert not run.violations
    y, pe, acc = expected_lanes(GemmResult(res.y, res.pe_overflow, res.acc_overflow, 0, 0),
                                _y_order(x.shape[0], w.shape[1], config), config)
    got = unpack_lanes(run.y_data, config.cols, config.out_bits)
    assert np.array_equal(got, y)
    bits = unpack_lanes(run.y_pe_ovf, config.cols, 1, signed=False).astype(bool)
    assert np.array_equal(bits, pe)
    bits = unpack_lanes(run.y_acc_ovf, config.cols, 1, signed=False).astype(bool)
    assert np.array_equal(bits, acc)
    assert run.y_edges[-1] + 1 == gemm_cycles(x.shape[0], 144, 32, config).cycles


def _y_order(t, o, config):
    from sim.schedule import beats

    return beats(np.zeros((t, 1), np.int64), np.zeros((1, o), np.int64), None, config).y_order


@pytest.mark.skipif(not CHECKPOINT.exists(), reason="committed digits checkpoint missing")
def test_checkpoint_accuracy_reproduced():
    """The whole A2Q+ digits CNN on the TLM gives the accuracy its checkpoint records."""
    from accel.quant.intmodel import load_int_model
    from models.digits import load_split
    from sim.tlm.model import simulate_model
    from sim.tlm.reference import from_int_model

    model = load_int_model(CHECKPOINT)
    config = ArrayConfig.from_dict(model.meta["config"])
    _, _, x, y = load_split()
    res = simulate_model(from_int_model(model), [(x, y)], config, reference=False)
    assert res.accuracy == pytest.approx(model.meta["accuracy"], abs=1e-12)
    assert all(s.pe_events == s.acc_events == 0 for s in res.layers)
    assert max(s.min_pe_bits for s in res.layers) <= config.pe_acc_bits
