"""Synthesis flow on real tools (YoWASP Yosys and nextpnr): a small design of the tests' own, then
the generated PE, accumulator memory and a 2x2 array. Everything runs by default on small configurations (a 2x2 array, single PEs), as CI must see
each target, place and route and the P grids; each Yosys run takes seconds.
"""

from __future__ import annotations

import dataclasses

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from accel.config import ArrayConfig, OverQConfig
from rtl_gen.synth import (BLOCKS, OverQUnavailable, SynthCache, SynthError, flow, overq_overhead,
                           synthesize, synthesize_blocks, synthesize_verilog)
from rtl_gen.synth.blocks import check_overq_rtl
from rtl_gen.synth.parse import parse_yosys_stat

SMALL = ArrayConfig(rows=2, cols=2, act_bits=4, weight_bits=4, pe_acc_bits=12, acc_depth=16)


class Mac(wiring.Component):
    """``acc <= acc + a * b`` in ``width`` bits: a design small enough to synthesise in a second."""

    def __init__(self, width: int):
        self.width = width
        super().__init__({"a": In(width), "b": In(width), "y": Out(width)})

    def elaborate(self, platform):
        m = Module()
        acc = Signal(self.width)
        m.d.sync += acc.eq(acc + self.a * self.b)
        m.d.comb += self.y.eq(acc)
        return m


def mac_verilog(width: int = 8) -> str:
    return verilog.convert(Mac(width), name="mac", emit_src=False)


@pytest.fixture
def cache(tmp_path):
    return SynthCache(tmp_path / "cache")


def entries(cache: SynthCache) -> list:
    return sorted(cache.root.glob("*/*/report.json")) if cache.root.exists() else []


@pytest.mark.parametrize("target", ["generic", "ice40", "ecp5", "xilinx"])
def test_small_design_on_each_target(target, cache):
    lines = []
    r = synthesize_verilog(mac_verilog(8), "mac", target, cache=cache, progress=lines.append)
    assert r.resources["ffs"] == 8  # the accumulator register, nothing else
    assert not r.cached and r.seconds["yosys"] > 0
    assert any("yosys" in line for line in lines) and any("cells" in line for line in lines)
    if target == "generic":
        # the unit-area table agrees with Yosys's own CMOS transistor estimate
        (entry,) = entries(cache)
        stat = parse_yosys_stat((entry.parent / "stat.json").read_text())
        assert stat.transistors == r.transistors == 4 * r.nand2_eq > 0
    else:
        assert r.resources["luts"] + r.resources["carry"] + r.resources["dsp"] > 0


def test_wider_design_is_larger(cache):
    small = synthesize_verilog(mac_verilog(6), "mac", "generic", cache=cache)
    large = synthesize_verilog(mac_verilog(12), "mac", "generic", cache=cache)
    assert large.nand2_eq > small.nand2_eq


def test_cached_report_is_reused_without_running_yosys(cache, monkeypatch):
    first = synthesize_verilog(mac_verilog(), "mac", "ice40", cache=cache)

    def no_tools(*args, **kwargs):
        raise AssertionError("a tool was run although the report is cached")

    monkeypatch.setattr(flow, "run_tool", no_tools)
    lines = []
    again = synthesize_verilog(mac_verilog(), "mac", "ice40", cache=cache, progress=lines.append)
    assert again.cached and again.resources == first.resources and again.key == first.key
    assert list(again.resources) == list(first.resources)  # report order kept
    assert lines == [f"custom/ice40: cached report {entries(cache)[0].parent}"]
    with pytest.raises(AssertionError, match="a tool was run"):
        synthesize_verilog(mac_verilog(), "mac", "ice40", cache=cache, use_cache=False)


def test_failing_yosys_leaves_no_cache_entry(cache):
    with pytest.raises(SynthError, match=r"yosys failed with exit status 1; its last lines:\n"
                                         r"(.|\n)*ERROR"):
        synthesize_verilog("module mac(input a, output y); assign y = ; endmodule", "mac",
                           "generic", cache=cache)
    assert entries(cache) == []
    assert not cache.root.exists() or not any(cache.root.rglob("*.json"))


@pytest.mark.parametrize("target", ["ice40", "ecp5"])
def test_place_and_route_reports_fmax(target, cache):
    r = synthesize_verilog(mac_verilog(8), "mac", target, pnr=True, cache=cache)
    assert r.pnr is not None and r.pnr_skipped is None
    assert 1 < r.fmax_mhz < 1000 and r.seconds["nextpnr"] > 0
    assert r.pnr.device == r.device


def test_place_and_route_skipped_when_the_design_does_not_fit(cache):
    # 3 x 24 port bits + clk + rst need more than the 39 pins of an up5k in sg48
    r = synthesize_verilog(mac_verilog(24), "mac", "ice40", device="up5k", pnr=True, cache=cache)
    assert r.pnr is None and r.pnr_skipped.startswith("does not fit up5k: ")
    assert "74 io > 39 available" in r.pnr_skipped and "nextpnr" not in r.seconds


def test_flow_argument_errors(cache):
    with pytest.raises(ValueError, match="target 'xilinx' has no open place and route; --pnr works "
                                         "with ice40 and ecp5"):
        synthesize_verilog(mac_verilog(), "mac", "xilinx", pnr=True, cache=cache)
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds, not 0"):
        synthesize_verilog(mac_verilog(), "mac", "generic", timeout=0, cache=cache)
    with pytest.raises(ValueError, match="unknown block 'mesh'; valid blocks are pe, accmem, array"):
        synthesize(SMALL, "mesh", cache=cache)


# --- the generated blocks -------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["generic", "ice40", "ecp5", "xilinx"])
def test_generated_pe_on_each_target(target, cache):
    r = synthesize(SMALL, "pe", target, cache=cache)
    assert r.top == f"{SMALL.name}_pe" and r.config == SMALL.to_dict() and r.block == "pe"
    assert r.area > 0 and r.resources["ffs"] > 0


@pytest.mark.parametrize("target", ["generic", "ice40", "ecp5", "xilinx"])
def test_generated_blocks_on_each_target(target, cache):
    blocks = BLOCKS if target != "xilinx" else ("pe", "accmem")  # xilinx is the slowest flow
    b = synthesize_blocks(SMALL, target, blocks, cache=cache)
    pe, accmem = b.reports["pe"], b.reports["accmem"]
    assert pe.top == f"{SMALL.name}_pe" and pe.config == SMALL.to_dict()
    assert pe.area > 0 and accmem.area > 0
    if target in ("ice40", "ecp5", "xilinx"):
        assert accmem.resources["bram"] >= 1  # the accumulator memory is in block RAM
    if "array" in b.reports:
        array = b.reports["array"]
        assert array.top == SMALL.name
        assert array.area > SMALL.rows * SMALL.cols * pe.area * 0.5
        assert set(b.shares) == {"mesh", "accmem"} and 0 < sum(b.shares.values()) <= 1.05


@pytest.mark.parametrize("target", ["ice40", "ecp5"])
def test_generated_pe_place_and_route(target, cache):
    r = synthesize(SMALL, "pe", target, pnr=True, cache=cache)
    assert r.pnr is not None and r.fmax_mhz > 1


@pytest.mark.parametrize("bits, grid", [(8, (16, 20, 24, 32)), (4, (10, 12, 16, 20))])
@pytest.mark.parametrize("target", ["generic", "ice40"])
def test_pe_area_is_non_decreasing_in_p(bits, grid, target, cache):
    areas = [synthesize(ArrayConfig(act_bits=bits, weight_bits=bits, pe_acc_bits=p), "pe", target,
                        cache=cache).area for p in grid]
    assert areas == sorted(areas), dict(zip(grid, areas))
    assert areas[-1] > areas[0]


def test_overq_is_reported_unavailable_or_synthesised(cache):
    overq = OverQConfig(mode="range", cascade=0)
    oq_config = dataclasses.replace(SMALL, pe_acc_bits=12, overq=overq)
    try:
        check_overq_rtl(oq_config)
        available = True
    except OverQUnavailable:
        available = False
    result = overq_overhead(SMALL, overq, "generic", ("pe",), cache=cache)
    assert result.base.reports["pe"].area > 0
    if available:
        assert result.unavailable is None and result.ratios["pe"] > 1
    else:
        assert result.overq is None and result.ratios == {}
        assert result.unavailable.startswith("OverQ RTL is not available yet, so OverQ area "
                                             "cannot be synthesised (the generator says: ")
        with pytest.raises(OverQUnavailable, match="OverQ RTL is not available yet"):
            synthesize(oq_config, "pe", cache=cache)
        assert result.to_dict()["available"] is False
