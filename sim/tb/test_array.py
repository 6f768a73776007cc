"""cocotb entry point: runs the plan named by ``ACCEL_TB_PLAN`` (written by :mod:`sim.runner`)."""

from __future__ import annotations

import os

import cocotb

from sim.tb.testbench import Plan, Testbench

#: Environment variable holding the path of the plan JSON file.
PLAN_ENV = "ACCEL_TB_PLAN"


@cocotb.test()
async def array_test(dut) -> None:  # type: ignore[no-untyped-def]
    """Every job of the plan's scenario: values, protocol, latency, cycles, coverage."""
    path = os.environ.get(PLAN_ENV)
    if not path:
        raise RuntimeError(f"{PLAN_ENV} is not set; run this module through sim.runner")
    results = await Testbench(dut, Plan.load(path)).run()
    dut._log.info("checked %d y beats, %d simulated edges, %.0f cycles/s",
                  results["y_checked"], results["edges"], results["cycles_per_second"])
