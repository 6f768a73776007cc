"""OverQ on an integer model: raw wide codes between layers, encoder statistics, the CNN study."""

import dataclasses

import numpy as np
import pytest

from accel.backends import GoldenBackend
from accel.config import ArrayConfig, OverQConfig
from accel.executor import Executor
from accel.graph import Graph, load_graph
from accel.nodes import Requantize
from models.digits import load_split
from models.overq_study import CHECKPOINT, study, table


@pytest.fixture(scope="module")
def model_and_data():
    _, _, xte, yte = load_split()
    return load_graph(CHECKPOINT), xte.numpy()[:120], yte.numpy()[:120]


def wide(model: Graph, bits: int) -> Graph:
    """The same model with unclamped ``bits``-bit activations between layers (no OverQ)."""
    new = [dataclasses.replace(n, bits=bits, hi=None) for n in model.nodes if isinstance(n, Requantize)]
    new += [dataclasses.replace(n, layer=dataclasses.replace(n.layer, act_bits=bits))
            for n in model.array_nodes[1:]]
    return model.replace(*new)


def run(model: Graph, x, config: ArrayConfig):
    return Executor(model, GoldenBackend(config)).run(x)


def test_handled_outliers_give_the_unclamped_result(model_and_data):
    """An image whose outliers are all handled computes exactly what 2N-bit activations give."""
    model, x, _ = model_and_data
    oq = ArrayConfig(rows=8, act_bits=4, weight_bits=4, pe_acc_bits=32,
                     overq=OverQConfig(mode="range", cascade=6))
    ref = wide(model, 8)
    plain8 = ArrayConfig(rows=8, act_bits=8, weight_bits=4, pe_acc_bits=32)
    checked = 0
    for i in range(x.shape[0]):
        got = run(model, x[i:i + 1], oq)
        stats = [s.overq for s in got.layers.values()]
        if sum(s.outliers for s in stats) and all(s.displaced == s.unreached == 0 for s in stats):
            np.testing.assert_array_equal(got.logits, run(ref, x[i:i + 1], plain8).logits)
            checked += 1
    assert checked >= 5


def test_study_rows_and_overq_helps_a_tight_calibration(model_and_data):
    model, x, y = model_and_data
    base = ArrayConfig(rows=8, act_bits=4, weight_bits=4, pe_acc_bits=32)
    rows = study(model, x, y, base, cascades=range(3), tightenings=(1, 4))
    assert len(rows) == 2 * (1 + 3 + 2)           # clamp, range c = 0..2, precision, both
    by = {(r["tighten"], r["overq"]): r for r in rows}
    conv2 = model.array_nodes[1].name
    seen = by[(4, "range c=2")]["layers"][conv2]
    assert seen["outliers"] > by[(1, "range c=2")]["layers"][conv2]["outliers"] > 0
    handled = [by[(4, f"range c={c}")]["layers"][conv2]["handled_total"] for c in range(3)]
    assert handled == sorted(handled) and handled[0] > 0       # deeper cascades reach more zeros
    assert by[(4, "range c=2")]["accuracy"] > by[(4, "clamp")]["accuracy"]
    assert "| calibrated / 4 | range c=2 |" in table(rows)


@pytest.mark.parametrize("mode", ["precision", "both"])
def test_precision_lanes_carry_fractions_between_layers(model_and_data, mode):
    """Fractions reach the zeros below them (slots used on every layer), the network still
    classifies as the clamped one does, and the logits move (fraction bits are really used)."""
    model, x, y = model_and_data
    base = ArrayConfig(rows=8, act_bits=4, weight_bits=4, pe_acc_bits=32)
    plain = run(model, x, base)
    got = run(model, x, dataclasses.replace(base, overq=OverQConfig(mode=mode, cascade=2)))
    assert all(st.overq.precision_slots > 0 for st in got.layers.values())
    assert not np.array_equal(got.logits, plain.logits)
    acc = lambda r: (r.logits.argmax(1) == y).mean()  # noqa: E731
    assert abs(acc(got) - acc(plain)) <= 0.02
