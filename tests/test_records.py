"""Beat records (sim.records): one bit layout from the manifest, binary and hex carriers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from accel.config import ArrayConfig, OverQConfig
from rtl_gen.export import manifest
from sim.records import RECORD_FIELDS, RecordLayout
from sim.schedule import beats, pack_lanes

CONFIGS = [
    ArrayConfig(rows=3, cols=5, act_bits=6, weight_bits=5, pe_acc_bits=11, acc_depth=2),
    ArrayConfig(rows=4, cols=4, act_bits=8, act_signed=True, weight_bits=8, pe_acc_bits=20,
                out_acc_bits=40, acc_depth=1),
    ArrayConfig(rows=4, cols=3, act_bits=4, weight_bits=4, pe_acc_bits=16, acc_depth=4,
                overq=OverQConfig(mode="both", cascade=1)),
]


def _layout(cfg: ArrayConfig) -> RecordLayout:
    return RecordLayout(manifest(cfg, "arr"))


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_layout_follows_the_ports(cfg: ArrayConfig) -> None:
    lay = _layout(cfg)
    x = {f.name: f for f in lay.fields["x"]}
    assert [f.name for f in lay.fields["x"]] == list(RECORD_FIELDS["x"])
    assert (x["x_data"].offset, x["x_data"].lanes, x["x_data"].lane_bits) == (0, cfg.rows,
                                                                             cfg.lane_bits)
    assert x["x_addr"].offset == cfg.rows * cfg.lane_bits
    assert lay.bits["x"] == cfg.rows * cfg.lane_bits + cfg.addr_bits + 3
    assert lay.bits["y"] == cfg.cols * cfg.out_bits + cfg.addr_bits + 2 * cfg.cols
    assert lay.words["y"] == -(-lay.bits["y"] // 32)
    assert lay.field("y_data").signed and not lay.field("y_pe_ovf").signed


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_records_are_the_port_words(cfg: ArrayConfig) -> None:
    """Each record, read as one integer, is {w_last, w_data} etc. of the schedule's port words."""
    rng = np.random.default_rng(3)
    x = rng.integers(*cfg.lane_range, size=(7, 2 * cfg.rows + 1), endpoint=True)
    w = rng.integers(*cfg.weight_range, size=(2 * cfg.rows + 1, cfg.cols + 2), endpoint=True)
    bt = beats(x, w, rng.integers(-50, 50, cfg.cols + 2), cfg)
    lay = _layout(cfg)
    rec = lay.beat_records(bt)
    as_int = {s: [int.from_bytes(r.tobytes(), "little") for r in rec[s]] for s in rec}
    wd, xd, ad = cfg.cols * cfg.weight_bits, cfg.rows * cfg.lane_bits, cfg.addr_bits
    assert as_int["w"] == [d | int(last) << wd for d, last in zip(bt.w_data, bt.w_last)]
    assert as_int["b"] == bt.b_data
    assert as_int["x"] == [d | int(a) << xd | int(f) << (xd + ad) | int(i) << (xd + ad + 1)
                           | int(e) << (xd + ad + 2)
                           for d, a, f, i, e in zip(bt.x_data, bt.x_addr, bt.x_first, bt.x_init,
                                                    bt.x_emit)]
    text = lay.hex_text("x", rec["x"]).split()
    assert [int(h, 16) for h in text] == as_int["x"]
    assert all(len(h) == -(-lay.bits["x"] // 4) for h in text)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, len(CONFIGS) - 1), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_y_roundtrip(i: int, n: int, seed: int) -> None:
    cfg = CONFIGS[i]
    lay = _layout(cfg)
    rng = np.random.default_rng(seed)
    lo, hi = cfg.out_range
    y = rng.integers(lo, hi, size=(n, cfg.cols), endpoint=True)
    addr = rng.integers(0, 1 << cfg.addr_bits, size=n)
    pe, acc = rng.random((n, cfg.cols)) < 0.5, rng.random((n, cfg.cols)) < 0.5
    back = lay.unpack("y", lay.y_records(y, addr, pe, acc))
    np.testing.assert_array_equal(back["y_data"], y)
    np.testing.assert_array_equal(back["y_addr"][:, 0], addr)
    np.testing.assert_array_equal(back["y_pe_ovf"], pe)
    np.testing.assert_array_equal(back["y_acc_ovf"], acc)
    # y_data occupies the low bits exactly as the port word
    ints = [int.from_bytes(r.tobytes(), "little") for r in lay.y_records(y, addr, pe, acc)]
    mask = (1 << (cfg.cols * cfg.out_bits)) - 1
    assert [v & mask for v in ints] == pack_lanes(y, cfg.out_bits)


def test_layout_errors() -> None:
    man = manifest(CONFIGS[0], "arr")
    man["ports"] = [p for p in man["ports"] if p["name"] != "x_emit"]
    with pytest.raises(ValueError, match="design has no port 'x_emit'; the x record needs"):
        RecordLayout(man)
    lay = _layout(CONFIGS[0])
    with pytest.raises(ValueError, match="b_data: 2 lanes given, the port has 5"):
        lay.pack("b", {"b_data": np.zeros((3, 2), np.int64)})
