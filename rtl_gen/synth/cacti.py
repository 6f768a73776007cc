"""SRAM area, access time and energy from CACTI 7, built from the source that ``zigzag-dse`` bundles.

CACTI is not vendored: :func:`build` copies its source from the installed PyPI package
``zigzag-dse`` (``zigzag/cacti/cacti_master``), compiles it with ``make``/``g++`` into the cache
(entry ``cacti-build/<hash of the source>``, about 15 s once) and :func:`sram` runs it per memory
(entry ``cacti/<words>x<bits>-<node>nm-<key>``, tens of milliseconds), reading the one-line CSV it
appends to ``<config>.out`` (never its log text).

What is modelled: a scratch RAM (``cache type "ram"``, no tags) with one read and one write port,
one bank, ITRS high-performance cells and periphery at 360 K, no ECC, CACTI's template objective
(ED², 20 % delay deviation). CACTI takes sizes in bytes, so a word of ``bits`` bits is rounded up
to ``ceil(bits / 8)`` bytes and the capacity is ``words`` such blocks. CACTI finds no organisation
for fewer than :data:`MIN_WORDS` words (measured at 45 and 90 nm) or less than 64 bytes: such a
memory is reported as not available, never extrapolated.

Every figure carries its technology node: CACTI models 90, 65, 45, 32 and 22 nm (it ships a 180 nm
table but refuses feature sizes above 90 nm), not sky130's 130 nm. :func:`scale_area` states the rule used to set a CACTI area beside sky130
cell areas.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import io
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rtl_gen.synth.cache import SynthCache, cache_key, default_cache_dir
from rtl_gen.synth.parse import ReportFormatError
from rtl_gen.synth.tools import SynthError, Tool, run_tool

__all__ = ["PACKAGE", "PACKAGE_PIN", "NODES_NM", "MIN_WORDS", "MIN_BYTES", "BUILD_TIMEOUT_S",
           "CactiError", "SramReport", "source_dir", "source_fingerprint", "build", "cacti_config",
           "parse_output", "sram", "scale_area"]

#: PyPI package whose wheel holds CACTI's source.
PACKAGE = "zigzag-dse"
#: The version range known to bundle CACTI 7 with its ``tech_params`` tables.
PACKAGE_PIN = "zigzag-dse>=3.9,<3.10"
#: Technology nodes CACTI models, in nm.
NODES_NM = (90, 65, 45, 32, 22)
#: Fewest words (rows) for which CACTI finds an organisation.
MIN_WORDS = 32
#: Smallest capacity CACTI accepts, in bytes.
MIN_BYTES = 64
#: Wall-clock limit for building CACTI, in seconds.
BUILD_TIMEOUT_S = 1800.0
#: Wall-clock limit for one CACTI run, in seconds.
RUN_TIMEOUT_S = 600.0

#: Bumped when the configuration or the parsing changes in a way the config text does not show.
MODEL_VERSION = 1

#: The source files that make the build (hashed for the build's cache key).
_SOURCE_GLOBS = ("*.cc", "*.h", "makefile", "cacti.mk", "tech_params/*.dat")

Progress = Callable[[str], None]


class CactiError(SynthError):
    """Building or running CACTI failed; the message names the step and quotes the tool."""


@dataclass(frozen=True)
class SramReport:
    """One SRAM as CACTI models it, at one technology node.

    Attributes
    ----------
    words, bits : int
        The memory asked for: ``words`` entries of ``bits`` bits.
    node_nm : int
        Technology node of every figure below, in nm.
    block_bytes, capacity_bytes : int
        What CACTI was given: ``ceil(bits / 8)`` bytes per word, ``words`` words.
    available : bool
        False when CACTI has no model for this size (``reason`` says why); the figures are None.
    reason : str or None
        Why not available.
    access_ns, cycle_ns : float or None
        Access time and random cycle time, in ns.
    read_pj, write_pj : float or None
        Dynamic energy of one read / one write of a whole word, in pJ.
    leakage_mw : float or None
        Standby leakage of the bank, in mW.
    area_um2 : float or None
        Area of the bank, in µm².
    organisation : dict of str to float
        CACTI's chosen partitioning (Ndwl, Ndbl, Nspd, Ndcm, Ndsam, area efficiency %).
    cacti : str
        Which CACTI: the package version and source hash it was built from.
    cached : bool
        Read from the cache.
    """

    words: int
    bits: int
    node_nm: int
    block_bytes: int
    capacity_bytes: int
    available: bool
    reason: str | None
    access_ns: float | None
    cycle_ns: float | None
    read_pj: float | None
    write_pj: float | None
    leakage_mw: float | None
    area_um2: float | None
    organisation: dict[str, float]
    cacti: str
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], cached: bool = False) -> "SramReport":
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names} | {"cached": cached})

    def summary(self) -> str:
        """One human-readable line."""
        head = f"SRAM {self.words} x {self.bits} bit @ {self.node_nm} nm (CACTI)"
        if not self.available:
            return f"{head}: not available: {self.reason}"
        return (f"{head}: {self.area_um2:,.1f} µm², access {self.access_ns:.3f} ns, "
                f"read {self.read_pj:.3f} pJ, write {self.write_pj:.3f} pJ, "
                f"leakage {self.leakage_mw:.3f} mW")


def scale_area(area_um2: float, from_nm: float, to_nm: float) -> float:
    """Area moved between technology nodes by ideal scaling, ``area * (to_nm / from_nm) ** 2``.

    It is a first-order rule (every dimension scales with the feature size); real bit cells and
    periphery scale less well, so a scaled area is an estimate, labelled as such wherever shown.
    """
    return area_um2 * (to_nm / from_nm) ** 2


def _package_version() -> str:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise CactiError(f"CACTI (step: find source) comes from the PyPI package {PACKAGE!r}, "
                         f"which is not installed; install it with: "
                         f"pip install --no-deps '{PACKAGE_PIN}'") from None


def source_dir() -> Path:
    """CACTI's source folder inside the installed ``zigzag-dse`` (found without importing it)."""
    version = _package_version()
    folder = Path(importlib.metadata.distribution(PACKAGE).locate_file("zigzag")) / "cacti" / "cacti_master"
    if not (folder / "makefile").is_file() or not (folder / "tech_params").is_dir():
        raise CactiError(f"CACTI (step: find source): {PACKAGE} {version} has no CACTI source "
                         f"with tech_params at {folder}; install '{PACKAGE_PIN}'")
    return folder


def _source_files(src: Path) -> list[Path]:
    return sorted({p for g in _SOURCE_GLOBS for p in src.glob(g) if p.is_file()})


def source_fingerprint(src: Path | None = None) -> str:
    """16 hex digits of SHA-256 over CACTI's source files (the build's cache key)."""
    src = source_dir() if src is None else src
    h = hashlib.sha256()
    for p in _source_files(src):
        h.update(p.relative_to(src).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _quiet(_: str) -> None:
    pass


def build(cache: SynthCache | None = None, progress: Progress | None = None,
          timeout: float = BUILD_TIMEOUT_S) -> Path:
    """The CACTI binary, compiled into the cache on first use.

    Returns
    -------
    Path
        Folder of the build (``cacti`` and its ``tech_params`` tables).

    Raises
    ------
    CactiError
        The source is missing, ``make`` or ``g++`` is not installed, or the build fails (its last
        lines are quoted).
    """
    cache = cache if cache is not None else SynthCache(default_cache_dir())
    say = progress or _quiet
    src = source_dir()
    entry = source_fingerprint(src)
    final = cache.path("cacti-build", entry)
    if (final / "cacti").is_file() and (final / "report.json").is_file():
        return final
    missing = [t for t in ("make", "g++") if shutil.which(t) is None]
    if missing:
        raise CactiError(f"CACTI (step: build) needs {' and '.join(missing)} on PATH to compile "
                         f"its source (Debian: apt-get install make g++)")
    say(f"cacti: building CACTI from {PACKAGE} {_package_version()} (once, about 15 s)")
    with cache.staging("cacti-build", entry) as tmp:
        for p in _source_files(src):
            dest = tmp / p.relative_to(src)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dest)
        make = Tool("make", ("make",), "make")
        try:
            seconds = run_tool(make, ["opt", f"-j{min(4, os.cpu_count() or 1)}"], tmp, timeout)
        except SynthError as e:
            raise CactiError(f"CACTI (step: build) failed: {e}") from None
        if not (tmp / "cacti").is_file():
            raise CactiError(f"CACTI (step: build): make finished without producing {tmp}/cacti")
        shutil.rmtree(tmp / "obj_opt", ignore_errors=True)
        (tmp / "report.json").write_text(
            f'{{"package": "{PACKAGE} {_package_version()}", "source": "{entry}", '
            f'"seconds": {seconds:.1f}}}\n')
        say(f"cacti: built in {seconds:.1f} s")
    return final


def _geometry(words: int, bits: int) -> tuple[int, int]:
    for name, v in (("words", words), ("bits", bits)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"SRAM {name} must be a positive integer, not {v!r}")
    block = math.ceil(bits / 8)
    return block, block * words


def _check_node(node_nm: int) -> None:
    if node_nm not in NODES_NM:
        raise ValueError(f"CACTI models {', '.join(map(str, NODES_NM))} nm, not "
                         f"{node_nm!r} nm (sky130's 130 nm is not one: pick a node and scale "
                         f"with a stated rule)")


def cacti_config(words: int, bits: int, node_nm: int) -> str:
    """CACTI input for a ``words`` x ``bits`` scratch RAM with one read and one write port."""
    _check_node(node_nm)
    block, capacity = _geometry(words, bits)
    lines = [
        f"-size (bytes) {capacity}",
        f"-block size (bytes) {block}",
        f"-output/input bus width {8 * block}",
        f"-technology (u) {node_nm / 1000:g}",
        "-associativity 1", "-read-write port 0", "-exclusive read port 1",
        "-exclusive write port 1", "-single ended read ports 0", "-UCA bank count 1",
        '-cache type "ram"', '-tag size (b) "default"', '-Add ECC - "false"',
        '-Data array cell type - "itrs-hp"', '-Data array peripheral type - "itrs-hp"',
        '-Tag array cell type - "itrs-hp"', '-Tag array peripheral type - "itrs-hp"',
        "-operating temperature (K) 360",
        '-access mode (normal, sequential, fast) - "normal"',
        "-design objective (weight delay, dynamic power, leakage power, cycle time, area) 0:0:0:100:0",
        "-deviate (delay, dynamic power, leakage power, cycle time, area) 20:100000:100000:100000:100000",
        "-NUCAdesign objective (weight delay, dynamic power, leakage power, cycle time, area) 100:100:0:0:100",
        "-NUCAdeviate (delay, dynamic power, leakage power, cycle time, area) 10:10000:10000:10000:10000",
        '-Optimize ED or ED^2 (ED, ED^2, NONE): "ED^2"', '-Cache model (NUCA, UCA)  - "UCA"',
        "-NUCA bank count 0", '-Wire signaling (fullswing, lowswing, default) - "Global_30"',
        '-Wire inside mat - "semi-global"', '-Wire outside mat - "semi-global"',
        '-Interconnect projection - "conservative"', "-Core count 8",
        '-Cache level (L2/L3) - "L3"', '-Print level (DETAILED, CONCISE) - "CONCISE"',
        '-Print input parameters - "false"', '-Force cache config - "false"',
        '-Array Power Gating - "false"', '-WL Power Gating - "false"',
        '-CL Power Gating - "false"', '-Bitline floating - "false"',
        '-Interconnect Power Gating - "false"', "-Power Gating Performance Loss 0.01",
        "-page size (bits) 8192", "-burst length 8", "-internal prefetch width 8",
        "-Ndwl 1", "-Ndbl 1", "-Nspd 0", "-Ndcm 1", "-Ndsam1 0", "-Ndsam2 0",
        # CACTI-IO fields: unused for an on-chip RAM, but CACTI divides by some of them
        '-dram_type "DDR3"', '-io state "WRITE"', "-addr_timing 1.0", "-mem_density 4 Gb",
        "-bus_freq 800 MHz", "-duty_cycle 1.0", "-activity_dq 1.0", "-activity_ca 0.5",
        "-num_dq 72", "-num_dqs 18", "-num_ca 25", "-num_clk  2", "-num_mem_dq 2",
        "-mem_data_width 8", "-rtt_value 10000", "-ron_value 34", "-tflight_value",
        "-num_bobs 1", "-capacity 80", "-num_channels_per_bob 1", '-first metric "Cost"',
        '-second metric "Bandwidth"', '-third metric "Energy"', '-DIMM model "ALL"',
        '-mirror_in_bob "F"',
    ]
    return "\n".join(lines) + "\n"


#: CSV columns of CACTI's ``.out`` file read here -> (field, factor to the report's unit).
_COLUMNS = {
    "Access time (ns)": ("access_ns", 1.0),
    "Random cycle time (ns)": ("cycle_ns", 1.0),
    "Dynamic read energy (nJ)": ("read_pj", 1000.0),
    "Dynamic write energy (nJ)": ("write_pj", 1000.0),
    "Standby leakage per bank(mW)": ("leakage_mw", 1.0),
    "Area (mm2)": ("area_um2", 1e6),
}
_ORGANISATION = ("Ndwl", "Ndbl", "Nspd", "Ndcm", "Ndsam_level_1", "Ndsam_level_2",
                 "Data arrary area efficiency %")


def parse_output(text: str) -> dict[str, Any]:
    """Figures of the last result row of a CACTI ``.out`` CSV file, in the report's units.

    Returns
    -------
    dict
        ``node_nm``, ``capacity_bytes``, ``output_bits``, the :data:`_COLUMNS` fields (ns, pJ,
        mW, µm²) and ``organisation``.

    Raises
    ------
    ReportFormatError
        If the text has no header with the expected columns or no result row.
    """
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if not rows:
        raise ReportFormatError("CACTI output is empty (no CSV header)")
    header = [c.strip() for c in rows[0]]
    need = ["Tech node (nm)", "Capacity (bytes)", "Output width (bits)", *_COLUMNS, *_ORGANISATION]
    missing = [c for c in need if c not in header]
    if missing:
        raise ReportFormatError(f"CACTI output has no column(s) {', '.join(map(repr, missing))}")
    if len(rows) < 2:
        raise ReportFormatError("CACTI output has a header but no result row")
    row = dict(zip(header, (c.strip() for c in rows[-1])))
    try:
        out: dict[str, Any] = {"node_nm": int(float(row["Tech node (nm)"])),
                               "capacity_bytes": int(row["Capacity (bytes)"]),
                               "output_bits": int(row["Output width (bits)"])}
        for column, (name, factor) in _COLUMNS.items():
            out[name] = float(row[column]) * factor
        out["organisation"] = {c.rstrip(" %").replace("Data arrary ", "data array "): float(row[c])
                               for c in _ORGANISATION}
    except ValueError as e:
        raise ReportFormatError(f"CACTI output row is not numeric where expected: {e}") from None
    return out


def _tail(text: str, n: int = 12) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return "\n".join("  | " + ln for ln in lines[-n:]) or "  | (no output)"


#: CACTI's own messages for sizes it has no organisation for (it may still exit with status 0).
_NO_MODEL = ("no valid data array organizations found", "Number of sets is too small",
             "Cache size must >=64")


def sram(words: int, bits: int, node_nm: int = 45, *, cache: SynthCache | None = None,
         use_cache: bool = True, progress: Progress | None = None,
         timeout: float = RUN_TIMEOUT_S) -> SramReport:
    """Area, access time and per-access energy of a ``words`` x ``bits`` SRAM at ``node_nm``.

    Parameters
    ----------
    words, bits : int
        Entries and bits per entry.
    node_nm : int
        One of :data:`NODES_NM`.
    cache : SynthCache, optional
        Where the CACTI build and results are cached (default: the synthesis cache).
    use_cache : bool
        False runs CACTI again (the build stays cached).
    progress : callable, optional
        Called with one line per step.

    Returns
    -------
    SramReport
        ``available=False`` with the reason for a size below CACTI's minimum.

    Raises
    ------
    CactiError
        CACTI cannot be built, fails, or writes no result for a size it should model.
    ValueError
        For a node without a CACTI table or a non-positive size.
    """
    _check_node(node_nm)
    block, capacity = _geometry(words, bits)
    cache = cache if cache is not None else SynthCache(default_cache_dir())
    say = progress or _quiet
    label = f"SRAM {words}x{bits} @ {node_nm} nm"
    base = dict(words=words, bits=bits, node_nm=node_nm, block_bytes=block,
                capacity_bytes=capacity, organisation={})
    if words < MIN_WORDS or capacity < MIN_BYTES:
        return SramReport(**base, available=False,
                          reason=f"CACTI models no SRAM of fewer than {MIN_WORDS} words or "
                                 f"{MIN_BYTES} bytes ({words} words, {capacity} bytes asked)",
                          access_ns=None, cycle_ns=None, read_pj=None, write_pj=None,
                          leakage_mw=None, area_um2=None, cacti="not run")
    fingerprint = source_fingerprint()
    cacti = f"{PACKAGE} {_package_version()} source {fingerprint}"
    config = cacti_config(words, bits, node_nm)
    entry = f"{words}x{bits}-{node_nm}nm-" + cache_key(
        {"model": MODEL_VERSION, "cacti": fingerprint, "config": config})
    if use_cache:
        stored = cache.load("cacti", entry)
        if stored is not None:
            say(f"cacti: {label}: cached {cache.path('cacti', entry)}")
            return SramReport.from_dict(stored, cached=True)
    binary = build(cache, progress)
    with tempfile.TemporaryDirectory(prefix="accel-cacti-") as tmp:
        work = Path(tmp)
        (work / "tech_params").symlink_to(binary / "tech_params")
        (work / "sram.cfg").write_text(config)
        say(f"cacti: {label}")
        start = time.monotonic()
        tool = Tool("cacti", (str(binary / "cacti"),), cacti)
        try:
            run_tool(tool, ["-infile", "sram.cfg"], work, timeout)
        except SynthError as e:
            raise CactiError(f"CACTI (step: run, {label}) failed: {e}") from None
        log = (work / "cacti.log").read_text(errors="replace")
        out_file = work / "sram.cfg.out"
        if not out_file.is_file():
            reason = next((m for m in _NO_MODEL if m in log), None)
            if reason is not None:
                report = SramReport(**base, available=False, reason=f"CACTI: {reason}",
                                    access_ns=None, cycle_ns=None, read_pj=None, write_pj=None,
                                    leakage_mw=None, area_um2=None, cacti=cacti)
            else:
                raise CactiError(f"CACTI (step: run, {label}) wrote no result; its last lines:\n"
                                 f"{_tail(log)}")
        else:
            text = out_file.read_text()
            try:
                figures = parse_output(text)
            except ReportFormatError as e:
                raise CactiError(f"CACTI (step: parse, {label}): {e}") from None
            if (figures["node_nm"], figures["capacity_bytes"]) != (node_nm, capacity):
                raise CactiError(f"CACTI (step: parse, {label}) reported node "
                                 f"{figures['node_nm']} nm, {figures['capacity_bytes']} bytes "
                                 f"for a request of {node_nm} nm, {capacity} bytes")
            report = SramReport(**(base | {"organisation": figures["organisation"]}),
                                available=True, reason=None,
                                **{k: figures[k] for k, _ in _COLUMNS.values()}, cacti=cacti)
        say(f"cacti: {label}: {time.monotonic() - start:.2f} s")
        if use_cache:
            cache.store("cacti", entry, report.to_dict(),
                        {"sram.cfg": config, "cacti.log": log}
                        | ({"sram.cfg.out": out_file.read_text()} if out_file.is_file() else {}))
    return report
