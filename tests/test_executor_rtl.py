"""The executor against the RTL: cycles measured by the cocotb suite, values of a trained layer.

* Closed-form cycles (sim.cycles) == cycles the cocotb testbench measures under the canonical
  stimulus, for three multi-fold GEMM shapes on two array sizes (Verilator; skipped when missing).
* The golden results of the second conv layer of the committed A2Q+ digits CNN (real weights,
  real inputs, as the executor computes them) == the generated top level's ``y`` beats in
  Amaranth's simulator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accel.backends import GoldenBackend
from accel.config import ArrayConfig
from accel.executor import Executor, simulate
from accel.golden import gemm
from accel.graph import load_graph
from accel.lowering import lower
from sim.cycles import CycleMeter, gemm_cycles
from sim.schedule import expected_lanes, unpack_lanes

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
    """The second conv layer of the checkpoint and its input codes on one test image."""
    from models.digits import load_split

    graph = load_graph(CHECKPOINT)
    config = ArrayConfig.from_dict(graph.meta["config"])
    node = graph.array_nodes[1]
    img = load_split()[2][:1].numpy()                      # one test image, [1, 1, 8, 8]
    run = Executor(graph, GoldenBackend(config)).run(img, keep=True)
    return node.layer, run.values[node.inputs[0]], config


@pytest.mark.skipif(not CHECKPOINT.exists(), reason="committed digits checkpoint missing")
def test_trained_conv_layer_equals_rtl():
    pytest.importorskip("amaranth")
    from test_rtl_top import simulate as rtl_simulate   # the cycle-based Amaranth harness

    layer, codes, config = _layer4_inputs()
    (x, w, b), = lower(layer, codes)
    assert x.shape == (16, 144) and w.shape == (144, 32)   # 18 folds x 4 groups on 8x8
    res = gemm(x, w, config, b)
    run = rtl_simulate(config, x.astype(np.int64), w, b)
    assert not run.violations
    y, pe, acc = expected_lanes(res, _y_order(x.shape[0], w.shape[1], config), config)
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
    """The whole A2Q+ digits CNN on the executor gives the accuracy its checkpoint records."""
    from models.digits import load_split

    graph = load_graph(CHECKPOINT)
    config = ArrayConfig.from_dict(graph.meta["config"])
    _, _, x, y = load_split()
    res = simulate(graph, [(x, y)], GoldenBackend(config, extremes=True), [CycleMeter(config)])
    assert res.accuracy == pytest.approx(graph.meta["accuracy"], abs=1e-12)
    assert all(s.pe_events == s.acc_events == 0 for s in res.layers)
    assert max(s.min_pe_bits for s in res.layers) <= config.pe_acc_bits
    assert res.total_cycles > 0
