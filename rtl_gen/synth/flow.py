"""The synthesis flow: Verilog -> Yosys (-> nextpnr) -> parsed report, with the on-disk cache.

One run works in a temporary folder: it writes the design and a Yosys script, runs Yosys, reads
``stat -json`` and, with place and route, runs nextpnr and reads its ``--report`` JSON. The report
is stored in the cache only after every step succeeded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from accel.config import ArrayConfig, OverQConfig
from rtl_gen.synth.area import nand2_equivalents, transistors
from rtl_gen.synth.blocks import (BLOCKS, OverQUnavailable, block_verilog, check_overq_rtl,
                                  generator_fingerprint, module_name)
from rtl_gen.synth.cache import SynthCache, cache_key, default_cache_dir
from rtl_gen.synth.parse import parse_nextpnr_report, parse_yosys_stat
from rtl_gen.synth.report import Breakdown, OverQOverhead, SynthReport
from rtl_gen.synth.targets import SRAM_CELL, Device, get_target, sram_memlib
from rtl_gen.synth.tools import SynthError, find_tool, run_tool

__all__ = ["FLOW_VERSION", "DEFAULT_TIMEOUT_S", "DEFAULT_FREQ_MHZ", "synthesize",
           "synthesize_verilog", "synthesize_blocks", "overq_overhead", "fit_problem"]

#: Bumped when the flow changes in a way its script text does not show; part of the cache key.
FLOW_VERSION = 2
#: Default wall-clock limit per tool run, in seconds.
DEFAULT_TIMEOUT_S = 3600.0
#: Default nextpnr target frequency in MHz (Fmax is reported whether or not it is met).
DEFAULT_FREQ_MHZ = 100.0

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def synthesize(config: ArrayConfig, block: str, target: str = "generic", *, memory: str = "ff",
               **options: Any) -> SynthReport:
    """Synthesise one block of the array generated for ``config``.

    Parameters
    ----------
    config : ArrayConfig
        The configuration; its hash groups the cache entries.
    block : {"pe", "accmem", "array"}
        A PE, the output accumulator memory, or the whole array (top module).
    target : str
        ``generic``, ``sky130``, ``ice40``, ``ecp5`` or ``xilinx``.
    memory : {"ff", "sram"}
        ``ff`` maps the accumulator memory to flip-flops and multiplexers like all other logic;
        ``sram`` (sky130 only) keeps it as one SRAM macro of ``max(2, acc_depth)`` words x
        (C * Q + 2C) bits without area, so that the report holds the logic around it
        (:attr:`SynthReport.sram_macros`; :mod:`rtl_gen.synth.memory` adds CACTI's SRAM area).
    **options
        As :func:`synthesize_verilog`: ``device``, ``pnr``, ``freq_mhz``, ``seed``, ``timeout``,
        ``cache``, ``use_cache``, ``progress``.

    Raises
    ------
    OverQUnavailable
        For an OverQ configuration while the generator cannot build OverQ RTL.
    SynthError
        A tool is missing, failed or timed out.
    """
    if block not in BLOCKS:
        raise ValueError(f"unknown block {block!r}; valid blocks are {', '.join(BLOCKS)}")
    if config.overq is not None:
        check_overq_rtl(config)
    if memory not in ("ff", "sram"):
        raise ValueError(f"memory must be 'ff' or 'sram', not {memory!r}")
    design = {"config": config.hash, "block": block, "generator": generator_fingerprint()}
    sram = None
    if memory == "sram" and block != "pe":
        sram = {"accmem.memory": accumulator_geometry(config)}
    return _run(lambda: block_verilog(config, block), design, config.hash, module_name(config, block),
                block, target, config=config.to_dict(), memory=memory, sram=sram, **options)


def accumulator_geometry(config: ArrayConfig) -> dict[str, int]:
    """Words and bits of the accumulator memory as built: ``max(2, acc_depth)`` entries (SPEC
    section 3: a one-entry memory is built with two) of C x Q data bits plus 2C flag bits."""
    return {"words": max(2, config.acc_depth), "bits": config.acc_word_bits}


def synthesize_verilog(verilog: str, top: str, target: str = "generic", **options: Any) -> SynthReport:
    """Synthesise a design given as Verilog text (cached by the text's hash).

    Parameters
    ----------
    verilog : str
        Verilog source holding module ``top``.
    top : str
        Top module name.
    target : str
        ``generic``, ``sky130``, ``ice40``, ``ecp5`` or ``xilinx``.
    device : str, optional
        Device of an FPGA target (default: the target's first, e.g. ``hx8k``, ``85k``).
    pnr : bool
        Also place and route with nextpnr (ice40, ecp5) and report Fmax, if the design fits.
    freq_mhz : float
        nextpnr target frequency in MHz.
    seed : int
        nextpnr placement seed.
    timeout : float
        Wall-clock limit per tool run in seconds.
    cache : SynthCache, optional
        Where reports are cached (default: :func:`default_cache_dir`).
    use_cache : bool
        False neither reads nor writes the cache.
    progress : callable, optional
        Called with one line per step.
    """
    design = {"verilog": hashlib.sha256(verilog.encode()).hexdigest()}
    return _run(lambda: verilog, design, "verilog", top, "custom", target, config=None, **options)


def _run(make_verilog: Callable[[], str], design: dict[str, str], group: str, top: str, block: str,
         target: str, *, config: dict | None, memory: str = "ff",
         sram: dict[str, dict[str, int]] | None = None, device: str | None = None, pnr: bool = False,
         freq_mhz: float = DEFAULT_FREQ_MHZ, seed: int = 1, timeout: float = DEFAULT_TIMEOUT_S,
         cache: SynthCache | None = None, use_cache: bool = True,
         progress: Progress | None = None) -> SynthReport:
    tgt = get_target(target)
    dev = tgt.device(device)
    if pnr and tgt.pnr_tool is None:
        raise ValueError(f"target {target!r} has no open place and route; --pnr works with "
                         f"ice40 and ecp5")
    if timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout}")
    say = progress or _quiet
    cache = cache if cache is not None else SynthCache(default_cache_dir())
    yosys = find_tool("yosys")
    nextpnr = find_tool(tgt.pnr_tool) if pnr else None
    tools = {"yosys": yosys.version} | ({nextpnr.name: nextpnr.version} if nextpnr else {})
    if memory == "sram" and config is None:
        raise ValueError("memory='sram' needs a generated block (it knows the accumulator memory)")
    script = tgt.script(top, dev, memory if sram else "ff").replace("{sram_lib}", "sram.memlib")
    files: dict[str, str] = {}
    areas: dict[str, float] | None = None
    if tgt.library == "sky130":
        from rtl_gen.synth.sky130 import liberty
        lib_path, areas = liberty(cache)
        files["cells.lib"] = lib_path.read_text()
    if sram:
        (geometry,) = sram.values()
        files["sram.memlib"] = sram_memlib(geometry["words"], geometry["bits"])
    key = cache_key({"flow": FLOW_VERSION, "design": design, "target": target,
                     "device": dev.name if dev else None, "script": script,
                     "stat": tgt.stat_args, "tools": tools,
                     "files": {n: hashlib.sha256(t.encode()).hexdigest() for n, t in files.items()},
                     "pnr": {"freq_mhz": freq_mhz, "seed": seed} if pnr else None})
    entry = f"{block}-{target}-{key}"
    label = f"{block}/{target}"
    if use_cache:
        stored = cache.load(group, entry)
        if stored is not None:
            say(f"{label}: cached report {cache.path(group, entry)}")
            return SynthReport.from_dict(stored, cached=True)

    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="accel-synth-") as tmp:
        work = Path(tmp)
        say(f"{label}: elaborating {top}")
        start = time.monotonic()
        (work / "design.v").write_text(make_verilog())
        seconds["elaborate"] = time.monotonic() - start
        for name, text in files.items():
            (work / name).write_text(text)
        lines = ["read_verilog design.v", f"hierarchy -check -top {top}", script,
                 "delete t:$scopeinfo",  # hierarchy bookkeeping left by flattening, not logic
                 f"tee -q -o stat.json stat -json {tgt.stat_args}".rstrip()]
        if pnr:
            lines.append("write_json netlist.json")
        (work / "synth.ys").write_text("\n".join(lines) + "\n")
        say(f"{label}: yosys " + next(ln for ln in script.splitlines() if not ln.startswith("read_")))
        seconds["yosys"] = run_tool(yosys, ["-s", "synth.ys"], work, timeout)
        stat_text = _output(work / "stat.json", "yosys")
        stat = parse_yosys_stat(stat_text)
        resources = tgt.classify(stat.cells)
        generic = target == "generic"
        nand2 = nand2_equivalents(stat.cells) if generic else None
        um2 = None
        if areas is not None:
            um2 = _cell_area(stat.cells, areas, sram)
        headline = (f"{nand2:,.1f} NAND2-eq" if generic else
                    f"{um2:,.1f} µm²" if um2 is not None else f"{resources['luts']} LUTs")
        say(f"{label}: {stat.num_cells} cells, {headline} ({seconds['yosys']:.1f} s)")

        result = skipped = None
        if pnr:
            skipped = fit_problem(resources, stat.port_bits, dev)
            if skipped:
                say(f"{label}: no place and route: {skipped}")
            else:
                say(f"{label}: {nextpnr.name} on {dev.name}")
                seconds["nextpnr"] = run_tool(nextpnr, [
                    *dev.pnr_args, "--json", "netlist.json", "--report", "pnr.json",
                    "--freq", f"{freq_mhz:g}", "--timing-allow-fail", "--seed", str(seed)],
                    work, timeout)
                result = parse_nextpnr_report(_output(work / "pnr.json", nextpnr.name), dev.name)
                fmax = "no clock" if result.fmax is None else f"Fmax {result.fmax:.1f} MHz"
                say(f"{label}: {fmax} ({seconds['nextpnr']:.1f} s)")

        report = SynthReport(
            top=top, block=block, target=target, device=dev.name if dev else None,
            cells=stat.cells, resources=resources, nand2_eq=nand2,
            transistors=transistors(stat.cells) if generic else None, pnr=result,
            pnr_skipped=skipped, seconds=seconds, tools=tools, config=config, key=key,
            area_um2=um2, memory=memory if sram else "ff", sram_macros=sram)
        if use_cache:
            cache.store(group, entry, report.to_dict(), {"stat.json": stat_text})
    return report


def _cell_area(cells: dict[str, int], areas: dict[str, float],
               sram: dict[str, dict[str, int]] | None) -> float:
    """Cell area in µm² of a mapped histogram (SRAM macros excluded: they have no cell area)."""
    from rtl_gen.synth.sky130 import check_cells
    macros = cells.get(SRAM_CELL, 0)
    if macros != (len(sram) if sram else 0):
        raise SynthError(f"expected {len(sram) if sram else 0} accumulator SRAM macro(s) after "
                         f"memory_libmap, found {macros}: the memory was not mapped as asked")
    logic = {c: n for c, n in cells.items() if c != SRAM_CELL}
    check_cells(logic, areas)
    return sum(areas[c] * n for c, n in logic.items())


def _output(path: Path, tool: str) -> str:
    try:
        return path.read_text()
    except OSError:
        raise SynthError(f"{tool} finished but did not write {path.name}") from None


def fit_problem(resources: dict[str, int], port_bits: int, device: Device) -> str | None:
    """Why a design with these resources does not fit ``device``, or None when it fits.

    Parameters
    ----------
    resources : dict of str to int
        Resource counts from synthesis (``luts``, ``ffs``, ``bram``, ``dsp``).
    port_bits : int
        Bits of the top module's ports; each needs a pin unless the device is placed out of
        context (its capacity has no ``io``).
    device : Device
        The device to place on.
    """
    need = {k: resources.get(k, 0) for k in ("luts", "ffs", "bram", "dsp")}
    if "io" in device.capacity:
        need["io"] = port_bits
    over = [f"{n} {k} > {device.capacity[k]} available" for k, n in need.items()
            if n > device.capacity.get(k, 0)]
    return f"does not fit {device.name}: {', '.join(over)}" if over else None


def synthesize_blocks(config: ArrayConfig, target: str = "generic", blocks: Iterable[str] = BLOCKS,
                      **options: Any) -> Breakdown:
    """Synthesise several blocks of one configuration (see :func:`synthesize`)."""
    return Breakdown(config.rows, config.cols,
                     {b: synthesize(config, b, target, **options) for b in blocks})


def overq_overhead(config: ArrayConfig, overq: OverQConfig, target: str = "generic",
                   blocks: Iterable[str] = ("pe", "array"), **options: Any) -> OverQOverhead:
    """The same blocks without and with OverQ, so that OverQ's area overhead is visible.

    Parameters
    ----------
    config : ArrayConfig
        The base configuration (its own ``overq`` is ignored: the base side has none).
    overq : OverQConfig
        The OverQ settings of the other side; its P must allow OverQ (a ConfigError says so).

    Returns
    -------
    OverQOverhead
        With ``overq=None`` and the reason in ``unavailable`` while OverQ RTL does not exist;
        the base side is synthesised either way.
    """
    blocks = tuple(blocks)
    base_cfg = dataclasses.replace(config, overq=None)
    oq_cfg = dataclasses.replace(config, overq=overq)
    try:
        check_overq_rtl(oq_cfg)
        unavailable = None
    except OverQUnavailable as e:
        unavailable = str(e)
    base = synthesize_blocks(base_cfg, target, blocks, **options)
    if unavailable is not None:
        return OverQOverhead(base, None, unavailable)
    return OverQOverhead(base, synthesize_blocks(oq_cfg, target, blocks, **options), None)
