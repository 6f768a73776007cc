"""cocotb suite on OverQ RTL: one small configuration per mode on Verilator (kept apart from the
plain covering set of tests/test_cocotb.py, through the same runner API).

N = 1 makes the scenarios' uniformly random raw codes a useful OverQ mix: a range lane code is
2 bits (zero 1/4, plain 1/4, outlier 1/2), so chains of every length, displaced and unreached
outliers and precision slots all occur; the test checks that on the scenarios' own operands
before it simulates. Values bit for bit against accel.golden (which dispatches OverQ), protocol,
coverage targets and the manifest's latency are the testbench's checks.
"""

from __future__ import annotations

import pytest

from accel.config import ArrayConfig, OverQConfig
from accel.overq import encode
from accel.timing import timing
from sim.runner import run, simulator_missing
from sim.tb.scenarios import make_jobs

SEED = 1

OVERQ_SET = [
    ArrayConfig(rows=4, cols=3, act_bits=1, weight_bits=3, pe_acc_bits=5, out_acc_bits=8,
                acc_depth=8, overq=OverQConfig(mode="range", cascade=1)),
    ArrayConfig(rows=4, cols=2, act_bits=1, weight_bits=2, pe_acc_bits=5, out_acc_bits=7,
                acc_depth=4, overq=OverQConfig(mode="both", cascade=2)),
    ArrayConfig(rows=3, cols=3, act_bits=1, weight_bits=4, pe_acc_bits=6, acc_depth=4,
                overflow="saturate", overq=OverQConfig(mode="precision", cascade=0)),
]


@pytest.mark.parametrize("config", OVERQ_SET, ids=lambda c: c.name)
def test_verilator_overq(config: ArrayConfig) -> None:
    jobs = make_jobs(config, "all", SEED)
    stats = sum((encode(j.x, config).stats for j in jobs[1:]), encode(jobs[0].x, config).stats)
    if config.overq.has_range:
        assert all(stats.handled) and stats.unreached
        assert stats.displaced or config.overq.cascade == 0
    if config.overq.has_precision:
        assert stats.precision_slots
    why = simulator_missing("verilator")
    if why:
        pytest.skip(why)
    res = run(config, "all", SEED, "verilator")
    assert res["error"] is None and res["mismatches"] == []
    assert res["coverage"]["missing"] == []
    assert res["y_checked"] == res["transfers"]["y"] > 0
    assert res["timing"]["latency"] == timing(config).latency   # the encoder stage included
    canonical = [j for j in res["jobs"] if j["canonical"]]
    assert canonical and all(j["latency_seen"] == [res["timing"]["latency"]] for j in canonical)
