"""Compiled co-simulation: whole models on the generated RTL, every GEMM on a Verilator harness.

* :mod:`sim.cosim.driver` - the C++ driver compiled with the design (generated from the beat
  records of :mod:`sim.records`; built and cached by :func:`sim.runner.build_harness`);
* :mod:`sim.cosim.harness` - one GEMM job on the harness: beats in bulk, ``y`` beats and the edges
  they transferred on back, no Python per clock edge;
* :mod:`sim.cosim.gemm` - a job checked against the golden model beat for beat and against the
  closed-form cycles, with a one-line cocotb replay of a failure;
* :mod:`sim.cosim.backend` - :class:`RtlBackend`, the executor's ``rtl`` array back end (GEMMs in
  parallel on local processes or Dask, results cached by content hash).
"""
