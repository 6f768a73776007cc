"""Accumulator memory against a naive model: full throughput, forwarding, bias banks, flags."""

from __future__ import annotations

import gc
import random

import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from accel.config import ArrayConfig, ConfigError, OverQConfig
from accel.arith import op
from rtl_gen.accmem import AccMem
from rtl_gen.outq import OutputQueue
from rtl_gen.tiles import TileControl

CONFIGS = [
    ArrayConfig(rows=2, cols=3, act_bits=4, weight_bits=4, pe_acc_bits=8, out_acc_bits=10,
                acc_depth=4),
    ArrayConfig(rows=2, cols=2, act_bits=4, weight_bits=4, pe_acc_bits=8, acc_depth=2,
                overflow="saturate"),
    ArrayConfig(rows=2, cols=1, act_bits=4, weight_bits=4, pe_acc_bits=8, out_acc_bits=9,
                acc_depth=1, overflow="saturate"),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_accmem_matches_model(config):
    """Random beats one per edge (idle edges too), addresses from a tiny set so that the same
    address often comes on consecutive beats; the first beat per address is an init beat."""
    dut = AccMem(config)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    rng = random.Random(config.hash)
    cols, q, mode = config.cols, config.out_bits, config.overflow
    qlo, qhi = config.out_range
    plo, phi = config.pe_range
    counts = {"emits": 0, "same_addr": 0, "acc_ovf": 0}

    async def testbench(ctx):
        acc: dict[int, tuple[list[int], list[int], list[int]]] = {}
        bias = [[0] * cols, [0] * cols]
        pending = None          # the beat in the update stage during the coming cycle
        for _ in range(500):
            # a new beat in the read stage
            valid = rng.random() < 0.85
            addr = rng.randrange(config.acc_depth)
            init = addr not in acc or rng.random() < 0.2
            beat = dict(valid=valid, addr=addr, init=init, emit=rng.random() < 0.5,
                        bank=rng.randint(0, 1),
                        psum=[rng.choice((plo, phi)) if rng.random() < 0.3 else
                              rng.randint(plo, phi) for _ in range(cols)],
                        ovf=rng.getrandbits(cols))
            if valid:
                acc.setdefault(addr, None)
            ctx.set(dut.rd_valid, valid)
            ctx.set(dut.rd_ctrl.addr, addr)
            ctx.set(dut.rd_ctrl.init, init)
            ctx.set(dut.rd_ctrl.emit, beat["emit"])
            ctx.set(dut.rd_ctrl.bank, beat["bank"])
            # the previous beat's fold results, in its update stage
            if pending is not None:
                for c in range(cols):
                    ctx.set(dut.psum[c], pending["psum"][c])
                ctx.set(dut.ovf, pending["ovf"])
                if pending["valid"]:
                    if pending["init"]:
                        base = (list(pending["bias"]), [0] * cols, [0] * cols)
                    else:
                        base = acc[pending["addr"]]
                    data, pe, ov = [], [], []
                    for c in range(cols):
                        exact = base[0][c] + pending["psum"][c]
                        data.append(op(exact, q, mode))
                        pe.append(base[1][c] | (pending["ovf"] >> c) & 1)
                        ov.append(base[2][c] | int(not qlo <= exact <= qhi))
                        counts["acc_ovf"] += not qlo <= exact <= qhi
                    acc[pending["addr"]] = (data, pe, ov)
                    assert ctx.get(dut.result.valid) == pending["emit"]
                    if pending["emit"]:
                        counts["emits"] += 1
                        got = ctx.get(dut.result.payload)
                        assert [got.data[c] for c in range(cols)] == data
                        assert got.addr == pending["addr"]
                        assert got.pe_ovf == sum(b << c for c, b in enumerate(pe))
                        assert got.acc_ovf == sum(b << c for c, b in enumerate(ov))
                    counts["same_addr"] += valid and addr == pending["addr"]
                else:
                    assert ctx.get(dut.result.valid) == 0
            # a bias write into a random bank on the same edge; the read stage's bias is taken
            # before the write lands
            beat["bias"] = list(bias[beat["bank"]])
            if rng.random() < 0.3:
                bank = rng.randint(0, 1)
                new = [rng.choice((qlo, qhi)) if rng.random() < 0.5 else rng.randint(qlo, qhi)
                       for _ in range(cols)]
                for c in range(cols):
                    ctx.set(dut.bias[c], new[c])
                ctx.set(dut.bias_bank, bank)
                ctx.set(dut.bias_en, 1)
                bias[bank] = new
            else:
                ctx.set(dut.bias_en, 0)
            await ctx.tick()
            pending = beat

    sim.add_testbench(testbench)
    sim.run()
    assert counts["emits"] > 100 and counts["same_addr"] > 50 and counts["acc_ovf"] > 20


@pytest.mark.parametrize("block", [AccMem, OutputQueue, TileControl])
def test_elaborates(block):
    Fragment.get(block(ArrayConfig(rows=3, cols=2, acc_depth=8)), None)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("block", [AccMem, OutputQueue, TileControl])
def test_rejects_a_non_config(block):
    with pytest.raises(ConfigError, match=r"^config must be an accel.ArrayConfig, not dict$"):
        block({"rows": 2})
    gc.collect()


@pytest.mark.parametrize("block", [AccMem, OutputQueue, TileControl])
def test_elaborates_with_overq(block):
    Fragment.get(block(ArrayConfig(rows=2, cols=2, pe_acc_bits=24, overq=OverQConfig())), None)
