"""Area and timing reports of generated blocks with open tools (Yosys, nextpnr; YoWASP builds).

``synthesize(config, block, target)`` synthesises a PE, the output accumulator memory or the whole
array and returns a :class:`SynthReport` (generic gates and NAND2 equivalents, sky130 standard-cell
area in µm², or FPGA LUTs, flip-flops, carry cells, DSP blocks and block RAM; Fmax with
``pnr=True`` on ice40 and ecp5), cached on disk by configuration hash, generator source, flow and
tool versions. :func:`accmem_as_sram` sets the array with its accumulator memory as an SRAM (CACTI,
:func:`sram`) beside the flip-flop version.
"""

from rtl_gen.synth.area import nand2_equivalents
from rtl_gen.synth.blocks import BLOCKS, OverQUnavailable
from rtl_gen.synth.cache import SynthCache, default_cache_dir
from rtl_gen.synth.cacti import CactiError, SramReport, sram
from rtl_gen.synth.flow import (DEFAULT_FREQ_MHZ, DEFAULT_TIMEOUT_S, accumulator_geometry,
                                overq_overhead, synthesize, synthesize_blocks, synthesize_verilog)
from rtl_gen.synth.parse import PnrResult, ReportFormatError
from rtl_gen.synth.report import Breakdown, OverQOverhead, SynthReport
from rtl_gen.synth.sky130 import Sky130Unavailable
from rtl_gen.synth.memory import MemoryComparison, accmem_as_sram
from rtl_gen.synth.targets import TARGETS
from rtl_gen.synth.tools import SynthError

__all__ = ["BLOCKS", "TARGETS", "DEFAULT_FREQ_MHZ", "DEFAULT_TIMEOUT_S", "Breakdown",
           "CactiError", "MemoryComparison", "OverQOverhead", "OverQUnavailable", "PnrResult",
           "ReportFormatError", "Sky130Unavailable", "SramReport", "SynthCache", "SynthError",
           "SynthReport", "accmem_as_sram", "accumulator_geometry", "default_cache_dir",
           "nand2_equivalents", "overq_overhead", "sram", "synthesize", "synthesize_blocks",
           "synthesize_verilog"]
