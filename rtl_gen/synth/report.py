"""Synthesis report records: one block on one target, an array breakdown, an OverQ comparison."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rtl_gen.synth.parse import PnrResult

__all__ = ["SynthReport", "Breakdown", "OverQOverhead"]


@dataclass(frozen=True)
class SynthReport:
    """Area (and optionally timing) of one design on one target.

    Attributes
    ----------
    top : str
        Top module name.
    block : str
        ``pe``, ``accmem``, ``array`` or ``custom`` (a design given as Verilog text).
    target : str
        Synthesis target name (:data:`rtl_gen.synth.targets.TARGETS`).
    device : str or None
        FPGA device synthesised for (affects e.g. DSP use) and placed on.
    cells : dict of str to int
        Instances per cell type after synthesis.
    resources : dict of str to int
        Cells counted by kind: ``gates``/``ffs`` (generic) or ``luts``, ``ffs``, ``carry``,
        ``dsp``, ``bram``, ``lutram``, ``io``, ``other`` (FPGA).
    nand2_eq : float or None
        Generic target: area in NAND2 equivalents (:mod:`rtl_gen.synth.area`).
    transistors : int or None
        Generic target: static-CMOS transistor count.
    pnr : PnrResult or None
        Place-and-route result when asked for and the design fits.
    pnr_skipped : str or None
        Why place and route was asked for but not run (the design does not fit the device).
    seconds : dict of str to float
        Wall-clock time per step (``elaborate``, ``yosys``, ``nextpnr``) of the run that made it.
    tools : dict of str to str
        Tool versions.
    config : dict or None
        The array configuration (``ArrayConfig.to_dict``) of a generated block.
    key : str
        Cache key.
    cached : bool
        True when this report was read from the cache (not stored).
    area_um2 : float or None
        sky130 target: the sum of the mapped cells' areas in µm² (LEF sizes of sky130_fd_sc_hd),
        before placement: no utilisation, no routing, no timing.
    memory : str
        ``ff`` (every memory in flip-flops) or ``sram`` (the accumulator memory kept as a macro,
        not counted in the area).
    sram_macros : dict or None
        With ``memory="sram"``: the macros left out of the area, name -> ``words`` and ``bits``.
    """

    top: str
    block: str
    target: str
    device: str | None
    cells: dict[str, int]
    resources: dict[str, int]
    nand2_eq: float | None
    transistors: int | None
    pnr: PnrResult | None
    pnr_skipped: str | None
    seconds: dict[str, float]
    tools: dict[str, str]
    config: dict[str, Any] | None
    key: str
    cached: bool = False
    area_um2: float | None = None
    memory: str = "ff"
    sram_macros: dict[str, dict[str, int]] | None = None

    @property
    def area(self) -> float:
        """The headline area: NAND2 equivalents (generic), µm² (sky130) or LUTs (FPGA).

        FPGA LUTs are the LUT cells Yosys reports; on ECP5 the two LUT4s inside each ``CCU2C``
        carry cell are counted under ``carry``, not here.
        """
        if self.nand2_eq is not None:
            return self.nand2_eq
        if self.area_um2 is not None:
            return self.area_um2
        return float(self.resources["luts"])

    @property
    def area_unit(self) -> str:
        """Unit of :attr:`area`."""
        return ("NAND2-eq" if self.nand2_eq is not None else
                "µm²" if self.area_um2 is not None else "LUTs")

    @property
    def fmax_mhz(self) -> float | None:
        """Achieved Fmax of the slowest clock in MHz, None without place and route."""
        return self.pnr.fmax if self.pnr is not None else None

    def summary(self) -> str:
        """One human-readable line."""
        parts = [f"{self.block:<7} {self.target:<7} {self.area:>12,.1f} {self.area_unit}"]
        if self.sram_macros:
            parts.append("+ SRAM " + ", ".join(f"{g['words']}x{g['bits']}"
                                               for g in self.sram_macros.values()))
        parts.append(", ".join(f"{n} {k}" for k, n in self.resources.items() if n))
        if self.fmax_mhz is not None:
            parts.append(f"Fmax {self.fmax_mhz:.1f} MHz on {self.pnr.device}")
        elif self.pnr_skipped:
            parts.append(f"no place and route: {self.pnr_skipped}")
        parts.append("(cached)" if self.cached else
                     f"({sum(self.seconds.values()):.1f} s)")
        return "  ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``cached`` included, ``area`` and its unit added)."""
        d = asdict(self)
        d["pnr"] = self.pnr.to_dict() if self.pnr is not None else None
        d["area"], d["area_unit"], d["fmax_mhz"] = self.area, self.area_unit, self.fmax_mhz
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], cached: bool = False) -> "SynthReport":
        """Inverse of :meth:`to_dict`; ``cached`` marks a report read back from disk."""
        names = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in d.items() if k in names}
        kw["pnr"] = PnrResult.from_dict(d["pnr"]) if d.get("pnr") else None
        kw["cached"] = cached
        return cls(**kw)


@dataclass(frozen=True)
class Breakdown:
    """Reports of the PE, the accumulator memory and the whole array on one target.

    Attributes
    ----------
    rows, cols : int
        Array size R x C (the array holds R * C PEs).
    reports : dict of str to SynthReport
        By block name; any of ``pe``, ``accmem``, ``array``.
    """

    rows: int
    cols: int
    reports: dict[str, SynthReport] = field(default_factory=dict)

    @property
    def shares(self) -> dict[str, float]:
        """Fractions of the array's area: ``mesh`` (R * C PEs) and ``accmem``; only the blocks
        that were synthesised alongside ``array``."""
        array = self.reports.get("array")
        if array is None or array.area == 0:
            return {}
        out = {}
        if "pe" in self.reports:
            out["mesh"] = self.rows * self.cols * self.reports["pe"].area / array.area
        if "accmem" in self.reports:
            out["accmem"] = self.reports["accmem"].area / array.area
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "cols": self.cols,
                "reports": {k: r.to_dict() for k, r in self.reports.items()},
                "shares": self.shares}


@dataclass(frozen=True)
class OverQOverhead:
    """The same blocks synthesised without and with OverQ.

    Attributes
    ----------
    base : Breakdown
        Without OverQ.
    overq : Breakdown or None
        With OverQ; None when OverQ RTL is unavailable.
    unavailable : str or None
        Why the OverQ side could not be synthesised.
    """

    base: Breakdown
    overq: Breakdown | None
    unavailable: str | None

    @property
    def ratios(self) -> dict[str, float]:
        """Area with OverQ / area without, per block (empty when unavailable)."""
        if self.overq is None:
            return {}
        return {b: self.overq.reports[b].area / r.area
                for b, r in self.base.reports.items() if b in self.overq.reports and r.area}

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base.to_dict(),
                "overq": self.overq.to_dict() if self.overq is not None else None,
                "available": self.overq is not None, "unavailable": self.unavailable,
                "ratios": self.ratios}
