"""PE against a naive model: exact product, P-bit wrap/saturate, sticky flag, shadow bank."""

from __future__ import annotations

import gc
import random

import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from accel.config import ArrayConfig, ConfigError, OverQConfig
from accel.arith import op
from rtl_gen.mesh import Mesh
from rtl_gen.pe import PE

CONFIGS = [
    ArrayConfig(rows=2, cols=2, act_bits=4, weight_bits=4, pe_acc_bits=8),
    ArrayConfig(rows=2, cols=2, act_bits=4, act_signed=True, weight_bits=3, pe_acc_bits=7,
                overflow="saturate"),
    ArrayConfig(rows=2, cols=2, act_bits=8, act_signed=True, weight_bits=8, pe_acc_bits=16,
                overflow="wrap"),
    ArrayConfig(rows=2, cols=2, act_bits=1, weight_bits=2, pe_acc_bits=3, overflow="saturate"),
]


def pick(rng: random.Random, lo: int, hi: int) -> int:
    """A value of [lo, hi], the range ends (and 0) a third of the time."""
    return rng.choice((lo, hi, 0)) if rng.random() < 0.33 else rng.randint(lo, hi)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_pe_matches_model(config):
    dut = PE(config)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    rng = random.Random(config.hash)
    xlo, xhi = config.act_range
    wlo, whi = config.weight_range
    plo, phi = config.pe_range
    counts = {"ovf": 0, "steps": 0}

    async def testbench(ctx):
        weights = [None, None]
        for _ in range(600):
            a, bank = pick(rng, xlo, xhi), rng.randint(0, 1)
            psum, ovf_in = pick(rng, plo, phi), rng.random() < 0.2
            en, lbank, lw = rng.random() < 0.3, rng.randint(0, 1), pick(rng, wlo, whi)
            ctx.set(dut.act_in.value, a)
            ctx.set(dut.act_in.bank, bank)
            ctx.set(dut.psum_in.value, psum)
            ctx.set(dut.psum_in.ovf, ovf_in)
            ctx.set(dut.load.en, en)
            ctx.set(dut.load.bank, lbank)
            ctx.set(dut.load.weight, lw)
            await ctx.tick()
            if weights[bank] is not None:  # the bank was loaded before this edge
                exact = psum + a * weights[bank]
                overflow = not plo <= exact <= phi
                assert ctx.get(dut.psum_out.value) == op(exact, config.pe_acc_bits, config.overflow)
                assert ctx.get(dut.psum_out.ovf) == (ovf_in or overflow)
                assert ctx.get(dut.act_out.value) == a and ctx.get(dut.act_out.bank) == bank
                counts["ovf"] += overflow
                counts["steps"] += 1
            if en:  # the write lands on this edge, after the read above
                weights[lbank] = lw

    sim.add_testbench(testbench)
    sim.run()
    assert counts["steps"] > 400 and counts["ovf"] > 20


def test_pe_min_times_min_is_exact():
    """-2^(N-1) * -2^(M-1) = 2^(N+M-2) fits P = N + M bits: no overflow, exact."""
    config = ArrayConfig(rows=1, cols=1, act_bits=8, act_signed=True, weight_bits=8,
                         pe_acc_bits=16, overflow="saturate")
    dut = PE(config)
    sim = Simulator(dut)
    sim.add_clock(1e-6)

    async def testbench(ctx):
        ctx.set(dut.load.en, 1)
        ctx.set(dut.load.weight, -128)
        await ctx.tick()
        ctx.set(dut.load.en, 0)
        ctx.set(dut.act_in.value, -128)
        ctx.set(dut.psum_in.value, 0)
        await ctx.tick()
        assert ctx.get(dut.psum_out.value) == 16384 and ctx.get(dut.psum_out.ovf) == 0
        ctx.set(dut.psum_in.value, 32767 - 16384 + 1)  # just overflowing: clamps, flags
        await ctx.tick()
        assert ctx.get(dut.psum_out.value) == 32767 and ctx.get(dut.psum_out.ovf) == 1

    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("block", [PE, Mesh])
def test_elaborates(block):
    Fragment.get(block(ArrayConfig(rows=3, cols=2)), None)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("block", [PE, Mesh])
def test_rejects_a_non_config(block):
    with pytest.raises(ConfigError, match=r"^config must be an accel.ArrayConfig, not dict$"):
        block({"rows": 2})
    gc.collect()


@pytest.mark.parametrize("block", [PE, Mesh])
def test_elaborates_with_overq(block):
    Fragment.get(block(ArrayConfig(rows=2, cols=2, pe_acc_bits=24, overq=OverQConfig())), None)
