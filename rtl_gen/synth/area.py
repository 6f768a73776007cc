"""Unit-area table of the generic flow: technology-independent gates in NAND2 equivalents.

The generic flow maps a design to Yosys's internal one-bit gate cells (``$_NAND_``, ``$_AOI3_``,
…) and plain positive-edge flip-flops (``$_DFF_P_``). The area of a cell is its transistor count in
static CMOS divided by the 4 transistors of a two-input NAND. The transistor counts are Yosys's
own CMOS cost model (``CellCosts::cmos_gate_cost`` in ``kernel/cost.h``, 16 for a D flip-flop in
``passes/cmds/stat.cc``), the same numbers ``abc -g cmos`` minimises and ``stat -tech cmos``
sums, so the table can be checked against the tool (``tests/test_synth_parse.py`` does).

It is a relative measure for comparing configurations, not a silicon area: no wiring, no drive
strengths, no scan, and a flip-flop of 16 transistors (4 NAND2-eq) is at the low end of what
standard-cell libraries ship (typically 4.5 to 6 NAND2-eq).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["CMOS_TRANSISTORS", "NAND2_TRANSISTORS", "transistors", "nand2_equivalents"]

#: Transistors of one two-input NAND gate, the unit of area.
NAND2_TRANSISTORS = 4

#: Static-CMOS transistor count per Yosys gate cell (Yosys's ``cmos_gate_cost`` plus its DFF).
CMOS_TRANSISTORS: dict[str, int] = {
    "$_BUF_": 1,
    "$_NOT_": 2,
    "$_NAND_": 4,
    "$_NOR_": 4,
    "$_AND_": 6,
    "$_OR_": 6,
    "$_ANDNOT_": 6,
    "$_ORNOT_": 6,
    "$_XOR_": 12,
    "$_XNOR_": 12,
    "$_AOI3_": 6,
    "$_OAI3_": 6,
    "$_AOI4_": 8,
    "$_OAI4_": 8,
    "$_MUX_": 12,
    "$_NMUX_": 10,
    "$_DFF_P_": 16,
    "$_DFF_N_": 16,
}


def transistors(cells: Mapping[str, int]) -> int:
    """Total static-CMOS transistor count of a cell histogram.

    Parameters
    ----------
    cells : mapping of str to int
        Number of instances per Yosys cell type, as in ``stat -json``'s ``num_cells_by_type``.

    Raises
    ------
    ValueError
        If a cell type has no entry in :data:`CMOS_TRANSISTORS` (the generic flow must map the
        design to table cells only; anything else would be silently mis-counted).
    """
    unknown = sorted(set(cells) - set(CMOS_TRANSISTORS))
    if unknown:
        raise ValueError(f"no unit area for cell type(s) {', '.join(unknown)}; the generic flow "
                         f"must map to {', '.join(CMOS_TRANSISTORS)}")
    return sum(CMOS_TRANSISTORS[t] * n for t, n in cells.items())


def nand2_equivalents(cells: Mapping[str, int]) -> float:
    """Area of a cell histogram in NAND2 equivalents (transistors / 4); see :func:`transistors`."""
    return transistors(cells) / NAND2_TRANSISTORS
