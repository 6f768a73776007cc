"""cocotb testbench of the generated array, by roles (SPEC sections 3 and 6).

:mod:`harness` (wrapper and port layout), :mod:`streams` (sources, sink, protocol checker),
:mod:`scoreboard` (golden comparison), :mod:`coverage`, :mod:`scenarios` (seeded jobs),
:mod:`testbench` (the per-edge loop and results), :mod:`test_array` (the cocotb entry point).
Build and run it through :mod:`sim.runner`, never directly.
"""
