"""Synthesis targets: the Yosys script of each, how its cells count as resources, its devices.

A target is a technology: ``generic`` (Yosys's technology-independent gates, area from
:mod:`rtl_gen.synth.area`), ``sky130`` (SkyWater's sky130_fd_sc_hd standard cells through the
area-only Liberty of :mod:`rtl_gen.synth.sky130`, area in µm² before placement), or an FPGA family (``ice40``, ``ecp5``, ``xilinx``) whose cells are
counted as LUTs, flip-flops, carry cells, DSP blocks and block RAM. Families with an open
place-and-route tool (ice40, ecp5) also name devices with their capacity, used to decide whether a
design fits before nextpnr is started.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Device", "Target", "TARGETS", "RESOURCE_KINDS", "SRAM_CELL", "get_target", "sram_memlib"]

#: Resource kinds reported for FPGA targets, in report order.
RESOURCE_KINDS = ("luts", "ffs", "carry", "dsp", "bram", "lutram", "io", "other")
#: Cell type of the accumulator memory kept as an SRAM macro (a black box without area).
SRAM_CELL = "$__ACCEL_SRAM_"


def sram_memlib(words: int, bits: int) -> str:
    """Yosys ``memory_libmap`` description of the accumulator's SRAM macro: ``words`` x ``bits``,
    one synchronous read port and one write port on one clock; a read of the word being written
    returns the old word, as the RTL expects (SPEC section 3), so no bypass logic is added.
    Contents have no initial value in silicon; ``init any`` only lets the simulation init pass."""
    abits = max(1, (words - 1).bit_length())
    return (f"ram block {SRAM_CELL} {{\n"
            f"    abits {abits};\n    width {bits};\n    cost 1;\n    init any;\n"
            f'    port sr "R" {{\n        clock posedge "C";\n    }}\n'
            f'    port sw "W" {{\n        clock posedge "C";\n        wrtrans all old;\n    }}\n'
            f"}}\n")


@dataclass(frozen=True)
class Device:
    """One FPGA device for place and route.

    Attributes
    ----------
    name : str
        Short name used on the command line (``hx8k``, ``85k``).
    pnr_args : tuple of str
        nextpnr arguments selecting the device and package.
    capacity : dict of str to int
        Available resources by kind (``luts``, ``ffs``, ``bram``, ``dsp``, ``io`` pins; ``io``
        absent when the design is placed out of context, without pins).
    synth_args : tuple of str
        Extra arguments for the family's ``synth_*`` command (e.g. ``-dsp`` on a part with DSPs).
    """

    name: str
    pnr_args: tuple[str, ...]
    capacity: dict[str, int]
    synth_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Target:
    """A synthesis target: its Yosys commands, cell classes and (optionally) nextpnr devices.

    Attributes
    ----------
    name : str
        ``generic``, ``ice40``, ``ecp5`` or ``xilinx``.
    synth : str
        The Yosys synthesis commands, with ``{top}`` for the top module and ``{args}`` for the
        device's extra arguments; the netlist is written by the flow.
    classes : tuple of (str, str)
        (resource kind, regular expression on the cell type); the first match wins, cells
        matching none count as ``other``.
    pnr_tool : str or None
        Base name of the nextpnr binary (``nextpnr-ice40``), None where there is no open one.
    devices : dict of str to Device
        Devices for place and route; the first is the default.
    stat_args : str
        Extra arguments for ``stat -json`` (``-tech cmos`` on the generic target).
    kinds : tuple of str
        Resource kinds this target reports, in order.
    default_kind : str
        The kind of a cell that matches no class.
    library : str or None
        Standard-cell library the script maps to (``sky130``): the flow puts its Liberty next to
        the design as ``cells.lib``; None for targets with built-in cells.
    memory_script : str
        Commands that map the accumulator memory to an SRAM macro (``{sram_lib}`` is its
        ``memory_libmap`` description), inserted as ``{memory}`` when the flow is asked for
        ``memory="sram"``; empty where the target cannot keep memories as macros.
    """

    name: str
    synth: str
    classes: tuple[tuple[str, str], ...]
    pnr_tool: str | None = None
    devices: dict[str, Device] = field(default_factory=dict)
    stat_args: str = ""
    kinds: tuple[str, ...] = RESOURCE_KINDS
    default_kind: str = "other"
    library: str | None = None
    memory_script: str = ""

    @property
    def default_device(self) -> str | None:
        """Name of the default device (the first listed), None without place and route."""
        return next(iter(self.devices), None)

    def device(self, name: str | None) -> Device | None:
        """The device called ``name`` (the default one for None); error naming the valid ones."""
        if not self.devices:
            if name is not None:
                raise ValueError(f"target {self.name!r} has no devices (no open place and route), "
                                 f"so --device {name!r} is not valid")
            return None
        name = self.default_device if name is None else name
        if name not in self.devices:
            raise ValueError(f"unknown {self.name} device {name!r}; valid devices are "
                             f"{', '.join(self.devices)}")
        return self.devices[name]

    def script(self, top: str, device: Device | None, memory: str = "ff") -> str:
        """The synthesis commands for top module ``top`` (without reading and writing files).

        ``memory="sram"`` keeps the accumulator memory as an SRAM macro (``memory_script``);
        a ValueError says when the target cannot.
        """
        if memory not in ("ff", "sram"):
            raise ValueError(f"memory must be 'ff' or 'sram', not {memory!r}")
        if memory == "sram" and not self.memory_script:
            raise ValueError(f"target {self.name!r} cannot keep the accumulator memory as SRAM; "
                             f"use the sky130 target")
        args = " ".join(device.synth_args) if device is not None else ""
        text = self.synth.format(top=top, args=args,
                                 memory=self.memory_script if memory == "sram" else "")
        return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())

    def classify(self, cells: Mapping[str, int]) -> dict[str, int]:
        """Count a cell histogram as resources: every kind of :attr:`kinds`, zeros included."""
        counts = dict.fromkeys(self.kinds, 0)
        for cell, n in cells.items():
            kind = next((k for k, rx in self.classes if re.search(rx, cell)), self.default_kind)
            counts[kind] += n
        return counts


TARGETS: dict[str, Target] = {
    "generic": Target(
        name="generic",
        # Enables and synchronous resets become gates, so that every cell is in the unit-area table;
        # one abc run (not synth's own as well) maps to the full CMOS gate set minimising Yosys's
        # transistor cost.
        synth="synth -flatten -noabc -top {top}\n"
              "dfflegalize -cell $_DFF_P_ 01\n"
              "abc -g cmos\n"
              "opt_clean -purge",
        classes=(("ffs", r"^\$_DFF_"),),
        stat_args="-tech cmos",
        kinds=("gates", "ffs"),
        default_kind="gates",
    ),
    "sky130": Target(
        name="sky130",
        # One synth run split at "fine" so that the accumulator memory can be kept as an SRAM macro
        # (memory_libmap on that memory only) before the rest becomes gates. dfflibmap legalises
        # enables and synchronous resets into logic before the D pins (the library's flip-flops
        # have neither); abc maps the logic onto the single-output cells by area (no timing).
        synth="read_liberty -lib cells.lib\n"
              "synth -flatten -noabc -top {top} -run :fine\n"
              "{memory}\n"
              "synth -flatten -noabc -top {top} -run fine:check\n"
              "dfflibmap -liberty cells.lib\n"
              "abc -liberty cells.lib\n"
              "opt_clean -purge",
        memory_script="memory_libmap -lib {sram_lib} */memory */accmem.memory",
        classes=(("ffs", r"^sky130_fd_sc_hd__df"), ("sram", r"^\$__ACCEL_SRAM_$")),
        stat_args="-liberty cells.lib",
        kinds=("logic", "ffs", "sram"),
        default_kind="logic",
        library="sky130",
    ),
    "ice40": Target(
        name="ice40",
        synth="synth_ice40 -top {top} {args}",
        classes=(("luts", r"^SB_LUT4$"), ("ffs", r"^SB_DFF"), ("carry", r"^SB_CARRY$"),
                 ("dsp", r"^SB_MAC16$"), ("bram", r"^SB_RAM40_4K"), ("io", r"^SB_(IO|GB)")),
        pnr_tool="nextpnr-ice40",
        devices={
            "hx8k": Device("hx8k", ("--hx8k", "--package", "ct256"),
                           {"luts": 7680, "ffs": 7680, "bram": 32, "dsp": 0, "io": 206}),
            "up5k": Device("up5k", ("--up5k", "--package", "sg48"),
                           {"luts": 5280, "ffs": 5280, "bram": 30, "dsp": 8, "io": 39},
                           synth_args=("-dsp",)),
        },
    ),
    "ecp5": Target(
        name="ecp5",
        # -nolutram: memories go to block RAM (DP16KD), as the accumulator memory is meant to.
        synth="synth_ecp5 -top {top} -nolutram {args}",
        classes=(("luts", r"^LUT4$"), ("ffs", r"^TRELLIS_FF$"), ("carry", r"^CCU2"),
                 ("dsp", r"^(MULT18X18D|ALU54B)$"), ("bram", r"^(DP16KD|PDPW16KD)$"),
                 ("lutram", r"^TRELLIS_DPR16X4$"), ("io", r"^TRELLIS_IO$")),
        pnr_tool="nextpnr-ecp5",
        # Placed out of context (no I/O buffers): a block's ports need no package pins.
        devices={
            "85k": Device("85k", ("--85k", "--package", "CABGA381", "--out-of-context"),
                          {"luts": 83640, "ffs": 83640, "bram": 208, "dsp": 156}),
            "25k": Device("25k", ("--25k", "--package", "CABGA381", "--out-of-context"),
                          {"luts": 24288, "ffs": 24288, "bram": 56, "dsp": 28}),
        },
    ),
    "xilinx": Target(
        name="xilinx",
        synth="synth_xilinx -flatten -noiopad -nolutram -top {top} {args}",
        classes=(("luts", r"^LUT[1-6]$"), ("ffs", r"^FD[RSCP]E"), ("carry", r"^CARRY[48]$"),
                 ("dsp", r"^DSP48"), ("bram", r"^RAMB(18|36)"),
                 ("lutram", r"^(RAM\d+[MX]|RAM[SD]\d+|SRL)"), ("io", r"^(I|O|IO)BUF|^BUFG")),
    ),
}


def get_target(name: str) -> Target:
    """The target called ``name``; a ValueError names the valid ones."""
    if name not in TARGETS:
        raise ValueError(f"unknown synthesis target {name!r}; valid targets are {', '.join(TARGETS)}")
    return TARGETS[name]
