"""Faults injected into the generated Verilog must show up as mismatches in the co-simulation.

The faults are the formal mutation tests' (``tests/rtl_faults.py``), built into the whole top
level: ``Top(config)`` elaborated (under a ``monkeypatch`` of the generator for a saturation
rail), one assignment of its accumulator memory rewritten, and the result compiled by
:func:`sim.runner.build_harness`'s ``dut`` hook into its own harness folder. The job is what
``accel cosim`` runs (:func:`sim.cosim.run.cosim`): the 4-bit digits CNN on a 2x2 array with
P = 8, Q = 9, saturating, acc_depth 2, whose accumulators overflow and saturate, so both faults
are reached. The clean design gives 0 mismatches on the same job.

The accumulator's forwarding path (an update that follows an update of the same entry on the
edge before) is not reached by any job of the canonical schedule: two updates of one entry are
always a tile switch apart, and a tile switch takes ``wfree_after_first + first_after_wlast`` >= 2
edges even for a one-vector chunk on one row. The slow test states that with the faulty build.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from accel.config import ArrayConfig
from accel.graph import load_graph
from accel.operands import random_operands
from accel.timing import timing
from rtl_gen import accmem as accmem_mod
from sim.runner import simulator_missing

from rtl_faults import acc_flag_not_ored, no_forwarding, off_rail, top_fragment

MODEL = Path(__file__).parent.parent / "models" / "checkpoints" / "cnn_baseline_n4_p32_s0.pt"
#: The formal mutation tests' saturating array; the model overflows its accumulators.
SAT = ArrayConfig(rows=2, cols=2, act_bits=4, weight_bits=4, pe_acc_bits=8, out_acc_bits=9,
                  overflow="saturate", acc_depth=2)
IMAGES = 3          # T = 3 in the classifier: its last chunk is one vector

pytestmark = pytest.mark.skipif(simulator_missing("verilator") is not None,
                                reason=str(simulator_missing("verilator")))


def _cosim(build, out_dir):
    """``accel cosim``'s run of the model on ``IMAGES`` test images, on harness ``build``."""
    from accel.data import load_data
    from sim.cosim.run import cosim

    if not MODEL.exists():
        pytest.skip(f"{MODEL} is missing")
    d = load_data("digits", split="test")
    x, y = d.x[:IMAGES], d.y[:IMAGES]

    def blocks(block):
        return ([(x[i:i + block], y[i:i + block]) for i in range(0, IMAGES, block)], IMAGES)

    return cosim(load_graph(MODEL), blocks, SAT, batch=IMAGES, build=build, out_dir=out_dir)


def _faulty(variant, accmem_fault=None):
    from sim.runner import build_harness

    return build_harness(SAT, dut=top_fragment(SAT, accmem_fault), variant=variant)


def _assert_caught(res, field):
    """Mismatches > 0 in ``field``, reported with layer, GEMM, (t, o), both values, a rerun."""
    total = sum(s.mismatches for s in res.layers)
    assert not res.ok and total > 0 and res.failures
    text = res.table()
    assert f"FAILED: {sum(s.y_beats for s in res.layers):,} y beats checked" in text
    assert f"{total} mismatching" in text
    first = res.failures[0].text
    for part in ("co-simulation FAILED: layer ", "first mismatch at (t=", f"{field}[lane ",
                 "from the RTL", "from the golden model", "rerun under cocotb with waves"):
        assert part in first, (part, first)
    assert res.model.samples == IMAGES


def test_clean_design_passes_the_fault_job(tmp_path):
    """The job the fault tests run: 0 mismatches on the generated design, with the
    accumulators overflowing (so the faults below are reached) and one-vector chunks."""
    from sim.runner import build_harness

    res = _cosim(build_harness(SAT), tmp_path)
    assert res.ok and all(s.mismatches == 0 for s in res.layers), res.table()
    assert sum(s.acc_overflow_outputs for s in res.model.layers) > 0
    assert IMAGES % SAT.acc_depth == 1


def test_accumulator_flag_set_instead_of_ored(tmp_path):
    """Lane 0's acc_ovf keeps only the last update's overflow: flags of earlier folds lost."""
    from sim.runner import build_harness

    build = _faulty("acc-flag-not-ored", lambda f: acc_flag_not_ored(f, SAT))
    clean = build_harness(SAT)
    # its own folder and stamp: its GEMM outcomes are cached apart from the clean design's
    assert build.dir != clean.dir and build.stamp != clean.stamp and clean.variant is None
    res = _cosim(build, tmp_path)
    _assert_caught(res, "y_acc_ovf")
    assert "y_acc_ovf[lane 0]" in res.failures[0].text
    assert not (build.dir / "generator.key").exists()   # never reused on the sources' word


def test_accumulator_saturation_rail_off_by_one(monkeypatch, tmp_path):
    """The accumulator saturates to 2^(Q-1) - 2: every saturated sum comes out one low."""
    monkeypatch.setattr(accmem_mod, "op_bits", off_rail(accmem_mod.op_bits))
    build = _faulty("acc-rail-off-by-one")
    monkeypatch.undo()
    res = _cosim(build, tmp_path)
    _assert_caught(res, "y_data")


@pytest.mark.slow
def test_forwarding_off_is_not_reached_by_the_schedule(tmp_path):
    """Without forwarding the design still passes every canonical job (module docstring): the
    fault is only reachable by a stream that updates one entry on consecutive edges, which
    the formal proof of the accumulator (free inputs) finds and the schedule never sends."""
    from sim.cosim.gemm import GemmJob, StimulusSpec, run_gemm

    t = timing(SAT)
    assert t.wfree_after_first + t.first_after_wlast >= 2
    build = _faulty("no-forwarding", no_forwarding)
    bad = jobs = 0
    for seed in range(8):
        for shape in [(1, 6, 2), (3, 8, 3), (1, 2, 1)]:
            x, w, b = random_operands(SAT, *shape, "extreme", seed, True)
            for stim in (StimulusSpec(), StimulusSpec(0.3, 3, 0.3, 4)):
                out = run_gemm(GemmJob(build, x, w, b, "g", seed, 0, seed=seed, stimulus=stim))
                assert out.status == "ok", out.message
                bad += out.bad_beats
                jobs += 1
    assert bad == 0 and jobs == 48
    assert _cosim(build, tmp_path).ok


@pytest.mark.slow
def test_pe_saturation_rail_off_by_one(monkeypatch, tmp_path):
    """The PEs saturate to 2^(P-1) - 2: a saturated partial sum moves every later sum."""
    from rtl_gen import pe as pe_mod

    monkeypatch.setattr(pe_mod, "op_bits", off_rail(pe_mod.op_bits))
    build = _faulty("pe-rail-off-by-one")
    monkeypatch.undo()
    res = _cosim(build, tmp_path)
    assert sum(s.pe_overflow_outputs for s in res.model.layers) > 0
    _assert_caught(res, "y_data")
