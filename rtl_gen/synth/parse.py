"""Parsers of the tools' machine-readable reports: Yosys ``stat -json`` and nextpnr ``--report``.

Both read JSON only; nothing here scrapes log text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["ReportFormatError", "YosysStat", "PnrResult", "parse_yosys_stat", "parse_nextpnr_report"]


class ReportFormatError(ValueError):
    """A tool report that is not the JSON this module expects; the message says what is missing."""


@dataclass(frozen=True)
class YosysStat:
    """The whole-design statistics of one ``stat -json`` run.

    Attributes
    ----------
    cells : dict of str to int
        Instances per cell type (``num_cells_by_type`` of the ``design`` section).
    num_cells : int
        Total number of cells.
    memory_bits : int
        Bits in memories still unmapped (0 once memories are mapped to cells).
    port_bits : int
        Bits in the top module's ports (pins needed when placed with I/O buffers).
    transistors : int or None
        Yosys's own CMOS transistor estimate (``stat -tech cmos``), None when not asked for or
        when Yosys marks it inexact (cells outside its cost table).
    """

    cells: dict[str, int]
    num_cells: int
    memory_bits: int
    port_bits: int
    transistors: int | None


@dataclass(frozen=True)
class PnrResult:
    """Place-and-route results from a nextpnr JSON report.

    Attributes
    ----------
    fmax_mhz : dict of str to float
        Achieved maximum frequency per clock domain, in MHz.
    constraint_mhz : dict of str to float
        The target frequency nextpnr was given per clock, in MHz.
    utilization : dict of str to tuple of (int, int)
        (used, available) per device resource type as nextpnr names them (``ICESTORM_LC``, …).
    device : str
        The device placed on.
    """

    fmax_mhz: dict[str, float]
    constraint_mhz: dict[str, float]
    utilization: dict[str, tuple[int, int]]
    device: str

    @property
    def fmax(self) -> float | None:
        """The slowest clock domain's achieved Fmax in MHz (None for a design without clocks)."""
        return min(self.fmax_mhz.values()) if self.fmax_mhz else None

    def to_dict(self) -> dict:
        return {"device": self.device, "fmax_mhz": self.fmax_mhz,
                "constraint_mhz": self.constraint_mhz,
                "utilization": {k: {"used": u, "available": a}
                                for k, (u, a) in self.utilization.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "PnrResult":
        return cls(fmax_mhz=dict(d["fmax_mhz"]), constraint_mhz=dict(d["constraint_mhz"]),
                   utilization={k: (v["used"], v["available"]) for k, v in d["utilization"].items()},
                   device=d["device"])


def _load(text: str, what: str) -> dict:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ReportFormatError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ReportFormatError(f"{what} must be a JSON object, not {type(data).__name__}")
    return data


def parse_yosys_stat(text: str) -> YosysStat:
    """Parse the output of Yosys ``stat -json`` (the ``design`` section, i.e. the whole hierarchy).

    Raises
    ------
    ReportFormatError
        If the text is not JSON or lacks the ``design`` section or its cell histogram.
    """
    data = _load(text, "Yosys stat output")
    design = data.get("design")
    if not isinstance(design, dict) or "num_cells_by_type" not in design:
        raise ReportFormatError("Yosys stat output has no 'design' section with 'num_cells_by_type' "
                                "(was it written by 'stat -json' on a design with a top module?)")
    cells = {str(k): int(v) for k, v in design["num_cells_by_type"].items()}
    est = str(design.get("estimated_num_transistors", ""))
    return YosysStat(cells=cells, num_cells=int(design.get("num_cells", sum(cells.values()))),
                     memory_bits=int(design.get("num_memory_bits", 0)),
                     port_bits=int(design.get("num_port_bits", 0)),
                     transistors=int(est) if est.isdigit() else None)


def parse_nextpnr_report(text: str, device: str) -> PnrResult:
    """Parse a nextpnr ``--report`` JSON file (``fmax`` and ``utilization`` sections).

    Parameters
    ----------
    text : str
        The report's content.
    device : str
        The device it was placed on, recorded in the result.

    Raises
    ------
    ReportFormatError
        If the text is not JSON or lacks the ``fmax`` or ``utilization`` section.
    """
    data = _load(text, "nextpnr report")
    missing = [k for k in ("fmax", "utilization") if not isinstance(data.get(k), dict)]
    if missing:
        raise ReportFormatError(f"nextpnr report has no {' or '.join(map(repr, missing))} section")
    return PnrResult(
        fmax_mhz={clk: float(v["achieved"]) for clk, v in data["fmax"].items()},
        constraint_mhz={clk: float(v["constraint"]) for clk, v in data["fmax"].items()},
        utilization={k: (int(v["used"]), int(v["available"])) for k, v in data["utilization"].items()},
        device=device)
