"""Mutation check: faults injected into the generated blocks must make their proofs fail.

Each fault is injected in the test only: a generator function replaced with pytest's
``monkeypatch`` (a saturation rail), a block built for a neighbouring configuration (the
encoder's reach), or one assignment of the elaborated block rewritten (a flag no longer OR-ed,
the forwarding path removed, a ready that listens to ``y_ready``); the fault-injection hook of a
harness is its ``dut`` argument. The faults themselves live in ``tests/rtl_faults.py``, shared
with the co-simulation fault tests (``tests/test_cosim_faults.py``). Every failure must come
with a readable counterexample: the failed property and the inputs in decimal.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from amaranth.hdl import Fragment

from accel.config import ArrayConfig, OverQConfig
from rtl_gen import accmem as accmem_mod
from rtl_gen import pe as pe_mod
from rtl_gen.accmem import AccMem
from rtl_gen.formal import runner
from rtl_gen.formal.accmem import update_harness
from rtl_gen.formal.mesh import fold_harness
from rtl_gen.formal.overq_encoder import encode_harness
from rtl_gen.formal.pe import step_harness
from rtl_gen.formal.top import protocol_harness, ready_path_harness
from rtl_gen.mesh import Mesh
from rtl_gen.overq_encoder import OverQEncoder
from rtl_gen.pe import PE
from rtl_gen.top import Top

from rtl_faults import acc_flag_not_ored, no_forwarding, off_rail, operand, rewrite

SAT = ArrayConfig(rows=2, cols=2, act_bits=4, weight_bits=4, pe_acc_bits=8, out_acc_bits=9,
                  overflow="saturate", acc_depth=2)
OVERQ = ArrayConfig(rows=4, cols=2, act_bits=3, weight_bits=3, pe_acc_bits=9,
                    overq=OverQConfig(mode="range", cascade=1))


@pytest.fixture(autouse=True)
def _tools():
    why = runner.tools_missing()
    if why:
        pytest.skip(why)


def fails(harness, tmp_path: Path, *props: str) -> runner.ProofResult:
    """Prove ``harness``; it must fail on one of ``props``, with a counterexample read back."""
    res = runner.prove(harness, root=tmp_path, timeout=600)
    assert res.status == "FAIL", (res.status, res.log)
    cex = res.counterexample
    failed = [p for p in props if cex is not None and p in cex["failed"]]
    assert failed, cex
    assert f"FAILED {failed[0]}:" in cex["text"] and Path(res.vcd).is_file()
    assert [p["status"] for p in res.properties if p["name"] == failed[0]] == ["FAIL"]
    assert all(v is not None for step in cex["steps"] for v in step.values()), cex["steps"]
    return res


def test_wrong_saturation_rail_in_the_pe(monkeypatch, tmp_path):
    monkeypatch.setattr(pe_mod, "op_bits", off_rail(pe_mod.op_bits))
    res = fails(step_harness(SAT), tmp_path, "psum")
    text = res.counterexample["text"]
    assert "expected psum out = 127" in text and "psum out = 126" in text


def test_wrong_saturation_rail_in_the_accumulator(monkeypatch, tmp_path):
    monkeypatch.setattr(accmem_mod, "op_bits", off_rail(accmem_mod.op_bits))
    res = fails(update_harness(SAT), tmp_path, "entry")
    assert "expected written lane" in res.counterexample["text"]


def test_pe_flag_not_ored_down_the_column(tmp_path):
    def pe_fault(cfg):
        frag = Fragment.get(PE(cfg), None)
        p = cfg.pe_acc_bits
        return rewrite(frag, f"(slice (sig psum_reg) {p}:{p + 1})", operand(1))  # drop ovf_in

    fails(step_harness(SAT, dut=pe_fault(SAT)), tmp_path / "pe", "ovf")
    # the same fault in every PE of a mesh: a column flag misses an event of an earlier row
    # (with P = N + M only the second step can overflow, so that takes a third row)
    cfg = dataclasses.replace(SAT, rows=3, cols=1)
    mesh = Fragment.get(Mesh(cfg), None)
    p = cfg.pe_acc_bits
    for sub, name, _ in mesh.subfragments:
        if name.startswith("pe_"):
            rewrite(sub, f"(slice (sig psum_reg) {p}:{p + 1})", operand(1))
    fails(fold_harness(cfg, dut=mesh), tmp_path / "mesh", "ovf")


def test_accumulator_flag_not_ored(tmp_path):
    frag = acc_flag_not_ored(Fragment.get(AccMem(SAT), None), SAT)
    fails(update_harness(SAT, dut=frag), tmp_path, "entry_flags")


def test_forwarding_removed(tmp_path):
    frag = no_forwarding(Fragment.get(AccMem(SAT), None))  # the back-to-back path is gone
    res = fails(update_harness(SAT, dut=frag), tmp_path, "entry")
    steps = res.counterexample["steps"]
    # the failing beat follows a beat to the same address on the edge before
    addrs = [s["its address"] for s in steps if s["read-stage beat"] == 1]
    assert len(addrs) >= 2


@pytest.mark.parametrize("delta", [1, -1])
def test_encoder_reach_off_by_one(delta, tmp_path):
    built = dataclasses.replace(OVERQ, overq=OverQConfig(mode="range", cascade=1 + delta))
    fails(encode_harness(OVERQ, dut=OverQEncoder(built)), tmp_path, "lanes")


def test_ready_listening_to_y_ready(tmp_path):
    def faulty():
        top = Top(SAT)
        frag = Fragment.get(top, None)
        return rewrite(frag, "(sig x_ready)", lambda rhs: rhs & top.y_ready)

    fails(ready_path_harness(SAT, dut=faulty), tmp_path, "ready_path")


def test_y_valid_during_reset(tmp_path):
    frag = Fragment.get(Top(SAT), None)
    rewrite(frag, "(sig y_valid)", operand(0))  # no longer masked by rst
    fails(protocol_harness(SAT, dut=frag), tmp_path, "reset")


def test_credits_ignored(tmp_path):
    frag = Fragment.get(Top(SAT), None)
    rewrite(frag, "(sig x_ready)", operand(0))  # an emit beat no longer needs a credit
    res = fails(protocol_harness(SAT, dut=frag), tmp_path, "credits", "fifo")
    assert "results outstanding = 8" in res.counterexample["text"]  # fifo_depth 7, one more
