"""``accel synth``: help, argument errors, a cached run with --json, tool failure, OverQ."""

from __future__ import annotations

import json
import stat
import sys

import pytest

from accel.cli import main
from accel.config import ArrayConfig

SMALL = ["--rows", "2", "--cols", "2", "--act-bits", "4", "--weight-bits", "4",
         "--pe-acc-bits", "12", "--acc-depth", "16"]


def test_help_shows_examples_and_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "accel synth -t ice40 -t ecp5 --pnr" in out
    assert "(default 100)" in out and "(default 3600)" in out and "NAND2" in out


@pytest.mark.parametrize("argv, message", [
    (["-t", "generic", "--pnr"], "--pnr needs an ice40 or ecp5 target (-t ice40 / -t ecp5), "
                                 "not only generic"),
    (["-t", "ice40", "--device", "hx1k"], "unknown ice40 device 'hx1k'; valid devices are hx8k, up5k"),
    (["-t", "generic", "-t", "xilinx", "--device", "hx8k"],
     "--device 'hx8k' needs an ice40 or ecp5 target, not only generic, xilinx"),
    (["-t", "generic", "--timeout", "0"], "timeout must be a positive number of seconds, not 0"),
    (["-t", "ice40", "--pnr", "--freq", "-5"], "--freq must be a positive number of MHz, not -5"),
    (["-t", "ice40", "--pnr", "--freq", "0"], "--freq must be a positive number of MHz, not 0"),
])
def test_argument_errors(argv, message, capsys, tmp_path):
    assert main(["synth", *SMALL, "--cache-dir", str(tmp_path), "-b", "pe", *argv]) == 2
    assert f"accel synth: error: {message}" in capsys.readouterr().err


def test_run_writes_json_and_reuses_the_cache(capsys, tmp_path):
    argv = ["synth", *SMALL, "-b", "pe", "-t", "generic", "-t", "ice40",
            "--cache-dir", str(tmp_path / "c"), "--json", str(tmp_path / "out.json")]
    assert main(argv) == 0
    first = capsys.readouterr()
    assert "pe/generic: yosys synth -flatten" in first.err and "pe/ice40: yosys synth_ice40" in first.err
    assert "NAND2-eq" in first.out and "LUTs" in first.out
    data = json.loads((tmp_path / "out.json").read_text())
    pe = data["targets"]["generic"]["reports"]["pe"]
    assert pe["area_unit"] == "NAND2-eq" and pe["area"] == pe["nand2_eq"] > 0 and not pe["cached"]
    assert data["targets"]["ice40"]["reports"]["pe"]["resources"]["luts"] > 0
    assert data["config_hash"] == ArrayConfig(**data["config"]).hash == \
        ArrayConfig.from_dict(pe["config"]).hash
    assert main(argv) == 0
    second = capsys.readouterr()
    assert "yosys synth" not in second.err and second.err.count("cached report") == 2
    again = json.loads((tmp_path / "out.json").read_text())["targets"]["generic"]["reports"]["pe"]
    assert again["cached"] and again["area"] == pe["area"]


def test_tool_failure_is_a_clear_error(capsys, tmp_path, monkeypatch):
    fake = tmp_path / "yosys"
    fake.write_text(f"#!{sys.executable}\nimport sys\nif sys.argv[1:] == ['-V']: print('Fake 2')\n"
                    "else: print('ERROR: out of cheese'); sys.exit(4)\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("ACCEL_YOSYS", str(fake))
    assert main(["synth", *SMALL, "-b", "pe", "--cache-dir", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert "accel synth: error: yosys failed with exit status 4; its last lines:\n  | ERROR: out " \
           "of cheese" in err
    assert not any((tmp_path / "c").rglob("report.json"))


def test_overq_overhead_reports_unavailable_or_ratio(capsys, tmp_path):
    argv = ["synth", *SMALL, "--pe-acc-bits", "12", "-b", "pe", "--overq-overhead",
            "--cache-dir", str(tmp_path), "--json", "-"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    oh = data["targets"]["generic"]
    assert data["overq_overhead"] and oh["base"]["reports"]["pe"]["area"] > 0
    if oh["available"]:
        assert oh["ratios"]["pe"] > 1
    else:
        assert oh["unavailable"].startswith("OverQ RTL is not available yet")


def test_overq_config_without_overq_rtl_is_a_clear_error(capsys, tmp_path, monkeypatch):
    import rtl_gen.interfaces
    from accel.config import ConfigError

    def refuse(config):
        raise ConfigError("the RTL generator does not support OverQ yet")

    # a generator without OverQ support, as before OverQ RTL existed
    monkeypatch.setattr(rtl_gen.interfaces, "check_rtl_config", refuse)
    assert main(["synth", *SMALL, "--overq-mode", "range", "-b", "pe",
                 "--cache-dir", str(tmp_path)]) == 1
    assert ("accel synth: error: OverQ RTL is not available yet, so OverQ area cannot be "
            "synthesised (the generator says: the RTL generator does not support OverQ yet)"
            in capsys.readouterr().err)
    assert main(["synth", *SMALL, "-b", "pe", "--overq-overhead", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "OverQ range, cascade 0: unavailable: OverQ RTL is not available yet" in out
