"""OverQ encoder and OverQ PE in Amaranth's simulator against the golden encoder and a naive model.

Tiny configurations are checked exhaustively (every fold of raw codes), larger ones on random
folds with planted outliers and zeros.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import random

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from accel.config import ArrayConfig, ConfigError, OverQConfig
from accel.arith import op
from accel.overq import LaneTag, encode, tag_shifts
from rtl_gen.mesh import Mesh
from rtl_gen.overq_encoder import OverQEncoder, lane_tags
from rtl_gen.pe import PE
from sim.schedule import pack_lanes, unpack_lanes


def oq(rows: int, n: int, mode: str, cascade: int, m: int = 3, **kw) -> ArrayConfig:
    """An OverQ configuration with the minimum P (SPEC section 4) unless given."""
    cfg = ArrayConfig(rows=rows, cols=2, act_bits=n, weight_bits=m, pe_acc_bits=64,
                      overq=OverQConfig(mode=mode, cascade=cascade))
    return dataclasses.replace(cfg, pe_acc_bits=kw.pop("pe_acc_bits", cfg.min_pe_acc_bits), **kw)


def run_encoder(config: ArrayConfig, folds: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Encode ``folds[n, R]`` of raw codes in the RTL, one per edge; returns value, tag, bank."""
    dut = OverQEncoder(config)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    words = pack_lanes(folds, config.lane_bits)
    out, banks = [], []

    async def testbench(ctx):
        for i, word in enumerate(words):
            ctx.set(dut.raw.as_value(), word)
            ctx.set(dut.bank_in, i % 3 == 1)
            await ctx.tick()       # registered on this edge, encoded combinationally after it
            out.append(ctx.get(dut.lanes.as_value()))
            banks.append(ctx.get(dut.bank_out))

    sim.add_testbench(testbench)
    sim.run()
    lanes = unpack_lanes(out, config.rows, config.act_bits + 2, signed=False)
    return lanes & ((1 << config.act_bits) - 1), lanes >> config.act_bits, banks


def check_encoder(config: ArrayConfig, folds: np.ndarray) -> None:
    value, tag, banks = run_encoder(config, folds)
    gold = encode(folds, config)   # one vector per fold: [n, 1, R]
    np.testing.assert_array_equal(value, gold.value[:, 0])
    np.testing.assert_array_equal(tag, gold.tag[:, 0])
    assert banks == [int(i % 3 == 1) for i in range(len(folds))]
    assert set(np.unique(tag).tolist()) <= {int(t) for t in lane_tags(config)}


EXHAUSTIVE = [oq(3, 1, "range", 0), oq(4, 1, "range", 1), oq(4, 1, "range", 2),
              oq(4, 1, "precision", 0), oq(3, 1, "both", 1), oq(4, 1, "both", 2)]


@pytest.mark.parametrize("config", EXHAUSTIVE, ids=lambda c: c.name)
def test_encoder_exhaustive(config):
    """Every fold of raw codes of a tiny configuration, bit for bit as accel.overq.encode."""
    codes = range(1 << config.lane_bits)
    folds = np.array(list(itertools.product(codes, repeat=config.rows)), dtype=np.int64)
    check_encoder(config, folds)


def planted_folds(config: ArrayConfig, n: int, seed: int) -> np.ndarray:
    """Random folds: zeros, plain values, outliers (range modes) and fractions, mixed so that
    chains of every length, displaced and unreached outliers and precision slots all occur."""
    rng = np.random.default_rng(seed)
    f, nb, w = config.frac_bits, config.act_bits, config.lane_bits
    kind = rng.choice(3, size=(n, config.rows), p=[0.4, 0.35, 0.25])
    plain = (rng.integers(1, 1 << nb, size=kind.shape) << f
             | rng.integers(0, 1 << f, size=kind.shape))
    if config.overq.has_range:   # outliers: integer part >= 2^N
        kind2 = rng.integers(1 << (nb + f), 1 << w, size=kind.shape)
    else:                        # a fraction only (integer part 0): non-zero, not an outlier
        kind2 = rng.integers(1, 1 << f, size=kind.shape)
    return np.select([kind == 0, kind == 1], [0, plain], kind2).astype(np.int64)


RANDOM = [oq(8, 2, "range", 3), oq(8, 2, "both", 3), oq(6, 3, "precision", 2),
          oq(5, 2, "both", 0), oq(16, 2, "range", 14)]


@pytest.mark.parametrize("config", RANDOM, ids=lambda c: c.name)
def test_encoder_random_planted(config):
    folds = planted_folds(config, 400, seed=config.rows)
    stats = encode(folds, config).stats
    if config.overq.has_range:   # chains of lengths 1 .. 4 (all, for c <= 3) and both clamps
        assert all(stats.handled[:4]) and stats.unreached
        assert stats.displaced or not config.overq.cascade
    if config.overq.has_precision:
        assert stats.precision_slots
    check_encoder(config, folds)


def test_lane_tags():
    assert lane_tags(oq(4, 2, "range", 0)) == (LaneTag.OWN, LaneTag.UP_HIGH)
    assert lane_tags(oq(4, 2, "range", 1)) == (LaneTag.OWN, LaneTag.UP, LaneTag.UP_HIGH)
    assert lane_tags(oq(4, 2, "precision", 2)) == (LaneTag.OWN, LaneTag.FRAC)
    assert lane_tags(oq(4, 2, "both", 2)) == tuple(LaneTag)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_encoder_errors():
    with pytest.raises(ConfigError, match=r"^OverQEncoder needs an OverQ configuration, but "
                                          r"config\.overq is None$"):
        OverQEncoder(ArrayConfig(rows=2, cols=2))
    with pytest.raises(ConfigError, match=r"^lane_tags needs an OverQ configuration, but "
                                          r"config\.overq is None$"):
        lane_tags(ArrayConfig(rows=2, cols=2))
    with pytest.raises(ConfigError, match=r"^config must be an accel.ArrayConfig, not dict$"):
        OverQEncoder({"rows": 2})
    gc.collect()


# --- the OverQ PE -------------------------------------------------------------------------------

PE_CONFIGS = [oq(2, 3, "range", 0, m=4), oq(2, 3, "precision", 0, m=4, overflow="saturate"),
              oq(3, 2, "both", 1, m=3),
              oq(3, 2, "both", 1, m=3, pe_acc_bits=12, overflow="saturate")]


@pytest.mark.parametrize("config", PE_CONFIGS, ids=lambda c: c.name)
def test_overq_pe_matches_model(config):
    """Term = (value * (own or upstream weight of the activation's bank)) << tag shift, P bits."""
    dut = PE(config)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    rng = random.Random(config.hash)
    wlo, whi = config.weight_range
    plo, phi = config.pe_range
    shifts = tag_shifts(config)
    tags = lane_tags(config)
    counts = {"ovf": 0, "steps": 0, "tags": set()}

    def pick(lo: int, hi: int) -> int:
        return rng.choice((lo, hi)) if rng.random() < 0.3 else rng.randint(lo, hi)

    async def testbench(ctx):
        own = [None, None]
        for _ in range(500):
            value, tag = pick(0, (1 << config.act_bits) - 1), rng.choice(tags)
            bank = rng.randint(0, 1)
            up = [pick(wlo, whi), pick(wlo, whi)]
            psum = pick(plo, phi)
            en, lbank, lw = rng.random() < 0.3, rng.randint(0, 1), pick(wlo, whi)
            ctx.set(dut.act_in.value, value)
            ctx.set(dut.act_in.tag, tag)
            ctx.set(dut.act_in.bank, bank)
            ctx.set(dut.psum_in.value, psum)
            ctx.set(dut.psum_in.ovf, 0)
            for i in (0, 1):
                ctx.set(dut.up_weights[i], up[i])
            ctx.set(dut.load.en, en)
            ctx.set(dut.load.bank, lbank)
            ctx.set(dut.load.weight, lw)
            await ctx.tick()
            if own[bank] is not None:
                weight = own[bank] if tag == LaneTag.OWN else up[bank]
                exact = psum + (value * weight << int(shifts[tag]))
                assert ctx.get(dut.psum_out.value) == op(exact, config.pe_acc_bits, config.overflow)
                assert ctx.get(dut.psum_out.ovf) == (not plo <= exact <= phi)
                assert ctx.get(dut.act_out.tag) == tag
                counts["ovf"] += not plo <= exact <= phi
                counts["steps"] += 1
                counts["tags"].add(tag)
            if en:  # the write lands on this edge, after the read above
                own[lbank] = lw
            if None not in own:  # the banks, as the PE below sees them
                assert [ctx.get(dut.weights[i]) for i in (0, 1)] == own

    sim.add_testbench(testbench)
    sim.run()
    assert counts["steps"] > 300 and counts["ovf"] > 10 and counts["tags"] == set(tags)


@pytest.mark.parametrize("block", [PE, Mesh, OverQEncoder])
def test_overq_blocks_elaborate(block):
    Fragment.get(block(oq(4, 2, "both", 2)), None)
