"""The testbench's roles without a simulator: harness layout, sources, checkers, scoreboard,
coverage and scenarios."""

from __future__ import annotations

import json

import numpy as np
import pytest

from accel.config import ArrayConfig
from sim.tb.coverage import overflow_bins, shape_bins
from sim.tb.harness import TbLayout, write_wrapper
from sim.tb.scenarios import _row_with_sum, make_jobs, reachable_bins
from sim.tb.scoreboard import Scoreboard
from sim.tb.streams import ProtocolChecker, ProtocolError, Sink, Source, Stimulus, random_stimulus

CFG = ArrayConfig(rows=2, cols=3, act_bits=4, weight_bits=4, pe_acc_bits=8, acc_depth=2)


def manifest(config: ArrayConfig, **change: tuple[str, int]) -> dict:
    """A manifest port table as rtl_gen writes it (name, direction, width)."""
    r, c = config.rows, config.cols
    ports = {"clk": ("in", 1), "rst": ("in", 1), "w_valid": ("in", 1), "w_ready": ("out", 1),
             "w_data": ("in", c * config.weight_bits), "w_last": ("in", 1),
             "b_valid": ("in", 1), "b_ready": ("out", 1), "b_data": ("in", c * config.out_bits),
             "x_valid": ("in", 1), "x_ready": ("out", 1), "x_data": ("in", r * config.lane_bits),
             "x_addr": ("in", config.addr_bits), "x_first": ("in", 1), "x_init": ("in", 1),
             "x_emit": ("in", 1), "y_valid": ("out", 1), "y_ready": ("in", 1),
             "y_data": ("out", c * config.out_bits), "y_addr": ("out", config.addr_bits),
             "y_pe_ovf": ("out", c), "y_acc_ovf": ("out", c)}
    ports.update(change)
    return {"ports": [{"name": n, "direction": d, "width": w} for n, (d, w) in ports.items()
                      if w is not None]}


def test_layout_fields() -> None:
    lay = TbLayout(manifest(CFG), CFG)
    assert [lay.fout[n].offset for n in ("w_ready", "b_ready", "x_ready", "y_valid")] == [0, 1, 2, 3]
    assert lay.payload_offset == 4
    assert lay.fin["rst"].offset == 0
    assert lay.in_width == 9 + 1 + 12 + 24 + 8
    word = (0b101 << (lay.fout["y_pe_ovf"].offset - 4)) | (1 << 0)
    assert lay.payload(word) == {"y_addr": 1, "y_pe_ovf": 0b101, "y_acc_ovf": 0, "y_data": 0}


@pytest.mark.parametrize("change, msg", [
    ({"x_emit": ("in", None)}, "design has no port 'x_emit'; SPEC section 3 requires clk, rst"),
    ({"y_valid": ("in", 1)}, "port y_valid is an input, expected output"),
    ({"w_data": ("in", 11)}, "port w_data is 11 bits wide; the configuration says 12"),
])
def test_layout_rejects_wrong_design(change: dict, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        TbLayout(manifest(CFG, **change), CFG)


def test_layout_needs_ports() -> None:
    with pytest.raises(ValueError, match="manifest has no 'ports' table"):
        TbLayout({}, CFG)


def test_wrapper_text(tmp_path) -> None:  # type: ignore[no-untyped-def]
    lay = TbLayout(manifest(CFG), CFG)
    top = write_wrapper(tmp_path / "w.v", "dut_x", lay, flip_y_bit=3)
    text = (tmp_path / "w.v").read_text()
    assert top == "tb_dut_x" and "module tb_dut_x (" in text and "dut_x dut (" in text
    assert ".x_addr(tb_in[9])" in text and ".rst(tb_in[0])" in text
    assert "y_valid ? {y_data_seen, y_acc_ovf, y_pe_ovf, y_addr} : 31'd0" in text
    assert "y_data ^ (24'd1 << 3)" in text


def test_source_canonical_and_gaps() -> None:
    s = Source("w", [5, 6])
    assert s.valid and s.word == 5
    s.advance(False)
    assert s.word == 5
    s.advance(True)
    assert s.word == 6
    s.advance(True)
    assert s.done and not s.valid and s.word == 0
    g = Source("x", [7, 8], gaps=np.array([1, 2]))
    seen = []
    for fire in [False, True, False, False, True]:
        seen.append(g.word)
        g.advance(fire and g.valid)
    assert seen == [0, 7, 0, 0, 8]


def test_sink_drops_are_bounded() -> None:
    s = Sink(np.random.default_rng(0), 0.5, 3, 3)
    pattern = []
    for _ in range(200):
        s.advance()
        pattern.append(s.ready)
    runs = [len(r) for r in "".join("1" if p else "0" for p in pattern).split("1") if r]
    assert runs and all(r % 3 == 0 for r in runs)   # drops of exactly 3 edges, maybe back to back
    assert Sink().ready


def test_sink_follows_a_pattern() -> None:
    s = Sink(pattern=np.array([True, False, False, True]))
    seen = [s.ready]
    for _ in range(5):
        s.advance()
        seen.append(s.ready)
    assert seen == [True, False, False, True, True, True]     # 1 once the pattern ends


def test_random_stimulus() -> None:
    counts = {"w": 40, "b": 5, "x": 300}
    a = random_stimulus(counts, 1000, 7, 0.3, 4, 0.1, 6)
    b = random_stimulus(counts, 1000, 7, 0.3, 4, 0.1, 6)
    assert all(np.array_equal(a.gaps[k], b.gaps[k]) for k in counts)   # deterministic
    assert np.array_equal(a.y_ready, b.y_ready) and not a.canonical
    assert {k: len(v) for k, v in a.gaps.items()} == counts
    assert 1 <= a.max_gap <= 4 and a.gaps["x"].min() == 0
    assert 1 <= a.max_stall and a.y_ready.size == 1000 and a.y_ready.mean() > 0.3
    assert random_stimulus(counts, 100, 7).canonical
    assert Stimulus().canonical and Stimulus().max_gap == Stimulus().max_stall == 0
    with pytest.raises(ValueError, match=r"gap_prob must be a probability in \[0, 1\), not 1.5"):
        random_stimulus(counts, 10, 0, gap_prob=1.5, max_gap=2)
    with pytest.raises(ValueError, match="max_stall must be a positive number of edges"):
        random_stimulus(counts, 10, 0, stall_prob=0.1, max_stall=0)


def test_stimulus_save_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    st = random_stimulus({"w": 3, "b": 1, "x": 9}, 50, 3, 0.5, 2, 0.5, 3)
    st.save(tmp_path / "s.npz")
    back = Stimulus.load(tmp_path / "s.npz")
    assert back.seed == 3 and np.array_equal(back.y_ready, st.y_ready)
    assert all(np.array_equal(back.gaps[k], st.gaps[k]) for k in "wbx")
    Stimulus().save(tmp_path / "c.npz")
    assert Stimulus.load(tmp_path / "c.npz").canonical


def test_replay_folder_roundtrip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sim.tb.scenarios import replay_job, save_replay

    st = random_stimulus({"w": 8, "b": 2, "x": 6}, 40, 1, 0.5, 2, 0.0, 0)
    x, w = np.arange(6).reshape(3, 2), -np.ones((2, 4), np.int64)
    save_replay(tmp_path / "j", x, w, None, st)
    job = replay_job(tmp_path / "j")
    assert np.array_equal(job.x, x) and np.array_equal(job.w, w) and job.bias is None
    assert not job.canonical and np.array_equal(job.stimulus.gaps["w"], st.gaps["w"])
    assert make_jobs(CFG, "replay", 0, replay=str(tmp_path / "j"))[0].shape == (3, 2, 4)
    with pytest.raises(ValueError, match="replay folder .* has no x.npy; it must hold x.npy"):
        replay_job(tmp_path)
    with pytest.raises(ValueError, match="scenario 'replay' needs the folder of a saved GEMM"):
        make_jobs(CFG, "replay", 0)


def test_checker_rules() -> None:
    c = ProtocolChecker("y")
    assert not c.edge(0, True, False, 1, False, True)     # presented on edge 0, no transfer
    assert c.edge(1, True, True, 1, False, False)
    assert not c.edge(2, True, False, 2, False, False)
    with pytest.raises(ProtocolError, match="y payload changed at edge 3 while valid"):
        c.edge(3, True, True, 3, False, False)
    c = ProtocolChecker("x")
    c.edge(0, True, False, 1, False, False)
    with pytest.raises(ProtocolError, match="x_valid dropped at edge 1 before the transfer"):
        c.edge(1, False, False, 0, False, False)
    with pytest.raises(ProtocolError, match="w: a beat transferred during reset"):
        ProtocolChecker("w").edge(0, True, True, 1, True, False)
    with pytest.raises(ProtocolError, match="b: a beat transferred on the first edge after reset"):
        ProtocolChecker("b").edge(0, True, True, 1, False, True)


def test_scoreboard_reports_first_mismatch() -> None:
    lay = TbLayout(manifest(CFG), CFG)
    sb = Scoreboard(CFG, lay)
    rng = np.random.default_rng(1)
    x, w = rng.integers(0, 16, (3, 3)), rng.integers(-8, 8, (3, 4))
    exp = sb.expect(x, w, None)
    y_off = lay.fout["y_data"].offset - lay.payload_offset
    from sim.schedule import pack_lanes

    def payload(i: int) -> int:
        return ((int(exp.y_addr[i]) | (pack_lanes(exp.pe_ovf[i:i + 1].astype(int), 1)[0] << 1)
                 | (pack_lanes(exp.acc_ovf[i:i + 1].astype(int), 1)[0] << 4))
                | (pack_lanes(exp.y[i:i + 1], 8)[0] << y_off))

    good = [payload(i) for i in range(len(exp.y))]
    assert sb.check("j", exp, good, True) == len(good) and not sb.mismatches
    bad = list(good)
    bad[4] ^= 1 << (y_off + 8)          # beat 4, lane 1
    sb.check("j", exp, bad, True)
    m = sb.mismatches[0]
    t, g = exp.beats.y_order[4]
    assert (m.beat, m.t, m.o, m.field) == (4, t, g * 3 + 1, "y_data[lane 1]")
    assert str(m).startswith(f"job j: y beat 4 (t={t}, o={g * 3 + 1}): y_data[lane 1] = ")
    sb.check("short", exp, good[:2], True)
    assert str(sb.mismatches[-1]) == (f"job short: y beat 2 (t=-1, o=-1): y beat count = 2, "
                                      f"expected {len(good)}")
    n = len(sb.mismatches)
    sb.check("prefix", exp, good[:2], False)           # a job cut by reset: prefix is fine
    assert len(sb.mismatches) == n


def test_row_with_sum_hits_targets_exactly() -> None:
    for cfg in (CFG, ArrayConfig(rows=4, cols=2, act_bits=8, act_signed=True, weight_bits=8,
                                 pe_acc_bits=16)):
        lo, hi = cfg.pe_range
        for target in (hi + 1, lo - 1, hi):
            x, w = _row_with_sum(target, cfg.rows, cfg)
            assert int(x @ w) == target
            assert x.min() >= 0 and x.max() <= cfg.lane_range[1]
            assert w.min() >= cfg.weight_range[0] and w.max() <= cfg.weight_range[1]


def test_extreme_job_crosses_every_reachable_rail() -> None:
    for mode in ("wrap", "saturate"):
        cfg = ArrayConfig(rows=3, cols=3, act_bits=4, act_signed=True, weight_bits=4,
                          pe_acc_bits=8, overflow=mode)   # 3 x (-8 * 7) < -128: both PE rails
        (job,) = make_jobs(cfg, "extreme", 3)
        want = reachable_bins(cfg)
        assert want == {f"{k}_ovf_{d}_{mode}" for k in ("pe", "acc") for d in ("high", "low")}
        assert want <= overflow_bins(job.x, job.w, job.bias, cfg)


def test_reachable_bins() -> None:
    cfg = ArrayConfig(rows=2, cols=2, pe_acc_bits=32)
    assert reachable_bins(cfg) == {"acc_ovf_high_wrap", "acc_ovf_low_wrap"}
    # signed 4 x 4 bits, P = 8: two products reach +128 (-8 * -8 * 2) but not -129 (2 x -56)
    cfg = ArrayConfig(rows=2, cols=2, act_bits=4, act_signed=True, weight_bits=4, pe_acc_bits=8)
    assert reachable_bins(cfg) == {"acc_ovf_high_wrap", "acc_ovf_low_wrap", "pe_ovf_high_wrap"}


def test_shape_bins() -> None:
    assert shape_bins(3, 5, 4, CFG) == {"multi_fold", "multi_group", "padded_last_fold",
                                        "padded_last_group", "t_gt_acc_depth"}
    assert shape_bins(2, 2, 3, CFG) == set()


def test_scenarios_are_seeded() -> None:
    a, b = make_jobs(CFG, "all", 5), make_jobs(CFG, "all", 5)
    assert [j.name for j in a] == [j.name for j in b]
    assert all(np.array_equal(p.x, q.x) and np.array_equal(p.w, q.w) for p, q in zip(a, b))
    assert not np.array_equal(make_jobs(CFG, "random", 6)[0].x, make_jobs(CFG, "random", 5)[0].x)
    assert json.dumps(sorted({t for j in a for t in j.targets}))


@pytest.mark.parametrize("args, msg", [
    (("nope", 1), "unknown scenario 'nope'; valid scenarios are all, cycles, replay, canonical"),
    (("cycles", 1), "scenario 'cycles' needs GEMM shapes"),
])
def test_scenario_errors(args: tuple, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        make_jobs(CFG, *args)
