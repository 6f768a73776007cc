"""Energy model: action counts by hand and against the canonical schedule, the table's lookups,
energies that follow a table exactly, table errors, and the ``accel energy`` verb."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accel.cli import main
from accel.config import ArrayConfig
from sim.energy import (ACC_MEMORIES, CATEGORIES, ActionCounts, GemmShape, action_counts,
                        action_energies, default_table, energy_of_gemms, fifo_bits, load_table,
                        word_bits)
from sim.schedule import steps

#: R = C = 2, N = M = 4, P = Q = 12, 4 accumulator entries (2 address bits).
SMALL = ArrayConfig(rows=2, cols=2, act_bits=4, weight_bits=4, pe_acc_bits=12, acc_depth=4)


def test_action_counts_by_hand():
    """T = 5, K = 3, O = 3 on a 2 x 2 array with 4 accumulator entries, counted by hand:
    F = 2 folds, G = 2 column groups, chunks of 4 and 1 vectors -> 8 tiles."""
    a = action_counts(5, 3, 3, SMALL)
    x_beats = 2 * 2 * 5                            # G * F * T
    assert (a.tiles, a.x_beats, a.w_beats, a.b_beats, a.y_beats) == (8, x_beats, 16, 8, 10)
    assert a.macs == 45 and a.jobs == 1
    assert a.mults == a.pe_adds == x_beats * 4     # all 4 PEs on every x beat
    assert a.acc_adds == x_beats * 2               # one Q-bit add per column per beat
    assert a.acc_reads == 2 * 5                    # fold 1 beats only (fold 0 preloads the bias)
    assert a.acc_writes == x_beats
    assert a.pe_reg_bits == x_beats * 4 * (4 + 12 + 1)          # act + psum + flag per PE
    assert a.skew_reg_bits == x_beats * (4 * (1 + 2) + 13 * 1)  # lanes 1, 2 regs; column 0: 1
    assert a.weight_bits == 16 * 2 * 4 and a.bias_bits == 8 * 2 * 12
    assert fifo_bits(SMALL) == 2 * 12 + 2 + 2 * 2 and word_bits(SMALL) == 2 * 12 + 2 * 2
    assert a.fifo_write_bits == a.fifo_read_bits == 10 * 30
    assert a.cycles > x_beats


@given(r=st.integers(1, 4), c=st.integers(1, 4), depth_log=st.integers(0, 3),
       t=st.integers(1, 20), k=st.integers(1, 12), o=st.integers(1, 12))
def test_action_counts_follow_the_canonical_schedule(r, c, depth_log, t, k, o):
    """Beats, tiles and accumulator accesses equal a walk over the schedule's steps."""
    cfg = ArrayConfig(rows=r, cols=c, act_bits=4, weight_bits=4, pe_acc_bits=12,
                      acc_depth=1 << depth_log)
    a = action_counts(t, k, o, cfg)
    ss = steps(t, k, o, cfg)
    assert a.tiles == len(ss) and a.w_beats == len(ss) * r and a.b_beats == len(ss)
    assert a.x_beats == sum(s.vectors for s in ss)
    assert a.y_beats == sum(s.vectors for s in ss if s.emit)
    assert a.acc_reads == sum(s.vectors for s in ss if not s.init)
    assert a.acc_writes == a.x_beats and a.mults == a.x_beats * r * c
    assert a.weight_bits == len(ss) * r * c * 4


def test_counts_add_and_errors():
    a, b = action_counts(5, 3, 3, SMALL), action_counts(2, 7, 1, SMALL)
    s = a + b
    assert s.jobs == 2 and s.macs == a.macs + b.macs and s.fifo_read_bits == \
        a.fifo_read_bits + b.fifo_read_bits
    assert ActionCounts.zero() + a == a
    with pytest.raises(ValueError, match="GEMM size T must be an integer >= 1, not 0"):
        action_counts(0, 3, 3, SMALL)


def test_default_table_entries_and_lookups():
    t = default_table()
    assert t.node_nm == 45
    assert t.add_pj(8).pj == pytest.approx(0.03) and t.add_pj(32).pj == pytest.approx(0.1)
    assert t.multiply_pj(8, 8).pj == pytest.approx(0.2)
    assert t.multiply_pj(32, 32).pj == pytest.approx(3.1)
    # between the points: the power law through them
    assert t.add_pj(16).pj == pytest.approx(0.03 * 2 ** (math.log(0.1 / 0.03) / math.log(4)))
    assert not t.add_pj(16).extrapolated and t.add_pj(40).extrapolated
    m = t.multiply_pj(4, 8)
    assert m.pj == pytest.approx(0.2 * (32 / 64) ** (math.log(3.1 / 0.2) / math.log(16)))
    assert m.extrapolated and "N*M = 32" in m.rule
    assert t.register_pj_per_bit == pytest.approx(0.009 * 45 / 40)
    assert "Horowitz" in t.add.source and "Aladdin" in t.register_source
    assert "45 / 40" in t.register_scaling and t.accumulator_model == "cacti"


SIMPLE = """
[technology]
node_nm = 7
name = "round numbers"
[add]
points = [{ bits = 8, pj = 1.0 }, { bits = 32, pj = 4.0 }]
source = "test"
scaling = "linear"
[multiply]
points = [{ bits = 8, pj = 1.0 }, { bits = 32, pj = 16.0 }]
source = "test"
scaling = "linear in N*M"
[register]
pj_per_bit = 0.5
source = "test"
scaling = "none"
[accumulator]
model = "fixed"
read_pj = 2.0
write_pj = 3.0
source = "test"
"""


@pytest.fixture
def simple(tmp_path):
    path = tmp_path / "simple.toml"
    path.write_text(SIMPLE)
    return load_table(path)


def test_energy_follows_the_table_exactly(simple):
    """Round-number table (add = bits / 8, multiply = N * M / 64, register 0.5 pJ, accumulator
    read 2 / write 3 pJ) on the hand-counted GEMM."""
    rep = energy_of_gemms({"only": [(5, 3, 3)]}, SMALL, simple)
    e = rep.energy_pj
    assert list(e) == list(CATEGORIES)
    assert e["compute"] == pytest.approx(80 * 16 / 64 + 80 * 12 / 8)
    assert e["pe_registers"] == pytest.approx((1360 + 500) * 0.5)
    assert e["accumulator"] == pytest.approx(40 * 12 / 8 + 10 * 2.0 + 20 * 3.0)
    assert e["weight_load"] == pytest.approx((128 + 192) * 0.5)
    assert e["fifo"] == pytest.approx(600 * 0.5)
    assert rep.total_pj == pytest.approx(140 + 930 + 140 + 160 + 300)
    assert rep.pj_per_mac == pytest.approx(rep.total_pj / 45)
    d = rep.to_dict()
    assert d["node_nm"] == 7 and d["layers"]["only"]["gemms"] == [[5, 3, 3]]
    json.dumps(d)


def test_layers_sum_and_shapes(simple):
    rep = energy_of_gemms({"conv": [GemmShape(5, 3, 3), (2, 7, 1)], "fc": [(1, 9, 4)]},
                          SMALL, simple)
    assert rep.counts.jobs == 3 and list(rep.layers) == ["conv", "fc"]
    assert rep.total_pj == pytest.approx(sum(la.total_pj for la in rep.layers.values()))
    single = energy_of_gemms({"a": [(5, 3, 3)]}, SMALL, simple).total_pj
    assert rep.layers["conv"].total_pj > single
    with pytest.raises(ValueError, match="a GEMM shape is GemmShape"):
        energy_of_gemms({"bad": [(1, 2)]}, SMALL, simple)


def test_accumulator_pricing_options(simple):
    regs = action_energies(SMALL, simple, "registers")
    assert regs.acc_read.pj == regs.acc_write.pj == pytest.approx(word_bits(SMALL) * 0.5)

    class Rep:
        def __init__(self, available):
            self.available, self.reason = available, "too small"
            self.read_pj, self.write_pj = 7.0, 9.0
    asked = []

    def fake_sram(words, bits, node):
        asked.append((words, bits, node))
        return Rep(True)
    e = action_energies(SMALL, simple, "sram", sram=fake_sram)
    assert (e.acc_read.pj, e.acc_write.pj) == (7.0, 9.0) and asked == [(4, 28, 7)]
    with pytest.raises(ValueError, match="too small; price it as flip-flops"):
        action_energies(SMALL, simple, "sram", sram=lambda w, b, n: Rep(False))
    with pytest.raises(ValueError, match="acc_memory must be one of table, sram, registers"):
        action_energies(SMALL, simple, "dram")


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.replace('source = "test"\nscaling = "linear"\n', ""),
     r"\[add\] needs source"),
    (lambda s: s.replace("pj_per_bit = 0.5", "pj_per_bit = -1"),
     r"\[register\] pj_per_bit must be a positive number, not -1"),
    (lambda s: s.replace('points = [{ bits = 8, pj = 1.0 }, { bits = 32, pj = 4.0 }]',
                         'points = [{ bits = 8, pj = 1.0 }]'), r"\[add\] points must list at least two"),
    (lambda s: s.replace('model = "fixed"', 'model = "magic"'), r"\[accumulator\] model must be one of"),
    (lambda s: s.replace("[technology]", "[technology"), "is not valid TOML"),
])
def test_table_errors(tmp_path, edit, message):
    path = tmp_path / "bad.toml"
    path.write_text(edit(SIMPLE))
    with pytest.raises(ValueError, match=message):
        load_table(path)


def test_cli_energy(tmp_path, capsys):
    out = tmp_path / "e.json"
    argv = ["energy", "-T", "5", "-K", "3", "-O", "3", "--rows", "2", "--cols", "2",
            "--act-bits", "4", "--weight-bits", "4", "--pe-acc-bits", "12", "--acc-depth", "4",
            "--acc-memory", "registers", "--json", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "compute" in text and "pJ per MAC" in text and "no leakage" in text
    data = json.loads(out.read_text())
    assert data["counts"] == action_counts(5, 3, 3, SMALL).to_dict() and data["node_nm"] == 45
    assert main(["energy", "-T", "0", "-K", "3", "-O", "3"]) == 2
    assert "-T must be a positive integer, not 0" in capsys.readouterr().err
    assert main(["energy", "-T", "5", "-K", "3", "-O", "3", "--acc-depth", "4",
                 "--acc-memory", "sram"]) == 2
    assert "fewer than 32 words" in capsys.readouterr().err


def test_cli_choice_lists_match_the_modules():
    from accel.cli.energy import ACC_MEMORY_NAMES
    from accel.cli.synth import SRAM_NODES_NM
    from rtl_gen.synth.cacti import NODES_NM
    assert ACC_MEMORY_NAMES == ACC_MEMORIES and SRAM_NODES_NM == NODES_NM


def _conv_out(size, k, stride, pad, dil):
    return (size + 2 * pad - dil * (k - 1) - 1) // stride + 1


def _layer_gemms(graph, h, w):
    """Slow reference: each layer's GEMMs from the geometry of a chain of nodes (conv: T = output
    pixels, K = C_in/g x kernel, O = C_out/g, one job per group; max pooling shrinks the image;
    linear: T = 1)."""
    out = {}
    for node in graph.nodes:
        if node.op == "maxpool":
            h = _conv_out(h, node.kernel[0], node.stride[0], node.padding[0], 1)
            w = _conv_out(w, node.kernel[1], node.stride[1], node.padding[1], 1)
        if node.op != "array":
            continue
        lay = node.layer
        if lay.kind == "conv2d":
            kh, kw = lay.kernel_size
            h = _conv_out(h, kh, lay.stride[0], lay.padding[0], lay.dilation[0])
            w = _conv_out(w, kw, lay.stride[1], lay.padding[1], lay.dilation[1])
            g = lay.groups
            out[lay.name] = [(h * w, lay.in_channels // g * kh * kw, lay.out_channels // g)] * g
        else:
            out[lay.name] = [(1, lay.in_channels, lay.out_channels)]
    return out


def test_cli_energy_of_a_model_is_its_layers_gemms(tmp_path, capsys, simple):
    """``accel energy MODEL``: one inference = the sum of each layer's GEMM jobs, the shapes as
    the nodes' geometry gives them."""
    from accel.graph import load_graph
    from sim.sweep.catalog import default_checkpoint_dir

    ckpt = default_checkpoint_dir() / "cnn_a2q_n8_p16_s0.pt"
    table = tmp_path / "simple.toml"
    table.write_text(SIMPLE)
    out = tmp_path / "e.json"
    assert main(["energy", str(ckpt), "--pe-acc-bits", "16", "--table", str(table),
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "per layer: conv2" in text and "conv1" in text and "fc" in text   # largest first
    data = json.loads(out.read_text())
    want = _layer_gemms(load_graph(ckpt), 8, 8)
    assert {n: la["gemms"] for n, la in data["layers"].items()} == {
        n: [list(s) for s in v] for n, v in want.items()}
    cfg = ArrayConfig(pe_acc_bits=16)
    expect = energy_of_gemms(want, cfg, simple)
    assert data["total_pj"] == pytest.approx(expect.total_pj)
    assert data["total_pj"] == pytest.approx(sum(
        energy_of_gemms({"one": [s]}, cfg, simple).total_pj for v in want.values() for s in v))
    assert main(["energy", str(ckpt), "-T", "4"]) == 2
    assert "give a MODEL or -T, -K and -O, not both" in capsys.readouterr().err


def test_sweep_energy_column_equals_the_verb(tmp_path, capsys):
    table = tmp_path / "simple.toml"
    table.write_text(SIMPLE)
    rows = tmp_path / "rows.json"
    assert main(["sweep", "--model", "cnn", "--quantizer", "a2q", "--grid", "pe_acc_bits=16",
                 "--energy", str(table), "--no-adversarial", "--workers", "1",
                 "--db", str(tmp_path / "r.db"), "--export-json", str(rows)]) == 0
    capsys.readouterr()
    (row,) = json.loads(rows.read_text())
    assert main(["energy", row["checkpoint"], "--pe-acc-bits", "16", "--table", str(table),
                 "--json", str(tmp_path / "e.json")]) == 0
    verb = json.loads((tmp_path / "e.json").read_text())
    assert row["energy_pj"] == pytest.approx(verb["total_pj"]) and row["extra"]["energy_table"]["node_nm"] == 7
    assert row["extra"]["energy_pj"] == pytest.approx(verb["energy_pj"])
    assert main(["sweep", "--model", "gemm", "--energy", str(tmp_path / "none.toml"),
                 "--db", str(tmp_path / "x.db")]) == 2
    assert "energy table" in capsys.readouterr().err and not (tmp_path / "x.db").exists()
