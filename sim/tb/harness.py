"""The test harness: a thin Verilog wrapper that packs the DUT's ports into two vectors.

Python pays per signal access and per trigger, so the testbench talks to the design through one
input vector ``tb_in`` (every input port, written once per cycle) and one output vector
``tb_out``: the DUT's outputs registered at each rising edge, i.e. exactly the values the design
sampled on that edge. Reading ``tb_out`` half a cycle later (at the falling edge) is race-free on
every simulator. The ``y`` payload is forced to 0 while ``y_valid`` is 0, so any X left in
``tb_out`` is a protocol error (X on a ready, on ``y_valid``, or on a valid payload).

Widths come from the manifest written next to the Verilog, never from a second formula.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accel.config import ArrayConfig

__all__ = ["Field", "TbLayout", "port_widths", "write_wrapper"]

#: Input ports packed into ``tb_in``, LSB first (single-bit controls first, payloads last).
IN_PORTS = ("rst", "w_valid", "w_last", "b_valid", "x_valid", "x_first", "x_init", "x_emit",
            "y_ready", "x_addr", "w_data", "b_data", "x_data")
#: Output ports registered into ``tb_out``, LSB first; everything from ``y_addr`` on is payload.
OUT_PORTS = ("w_ready", "b_ready", "x_ready", "y_valid", "y_addr", "y_pe_ovf", "y_acc_ovf",
             "y_data")
Y_PAYLOAD = OUT_PORTS[4:]


@dataclass(frozen=True)
class Field:
    """One port inside a packed vector: bits ``[offset, offset + width)``."""

    name: str
    offset: int
    width: int

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1

    def put(self, value: int) -> int:
        """``value`` placed at this field's bits (must fit ``width`` bits, unsigned)."""
        return (value & self.mask) << self.offset

    def get(self, word: int) -> int:
        """This field's bits of ``word``."""
        return (word >> self.offset) & self.mask


def port_widths(manifest: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """``{port: (direction, width)}`` from a manifest's ``ports`` (a list or a dict of records)."""
    ports = manifest.get("ports")
    if isinstance(ports, dict):
        items = [{"name": k, **v} for k, v in ports.items()]
    elif isinstance(ports, list):
        items = ports
    else:
        raise ValueError("manifest has no 'ports' table (expected a list or dict of ports with "
                         "direction and width)")
    out = {}
    for p in items:
        direction = str(p.get("direction", p.get("dir", ""))).lower()
        out[p["name"]] = ("in" if direction.startswith("i") else "out", int(p["width"]))
    return out


class TbLayout:
    """Bit layout of ``tb_in`` and ``tb_out`` for one design, built from its manifest.

    Attributes
    ----------
    fin, fout : dict of str to Field
        Input and output fields by port name (``fout`` offsets are into ``tb_out``).
    in_width, out_width : int
        Widths of ``tb_in`` and ``tb_out`` in bits.
    payload_offset : int
        Offset of the first ``y`` payload bit in ``tb_out`` (``y_addr``).
    """

    def __init__(self, manifest: dict[str, Any], config: ArrayConfig):
        widths = port_widths(manifest)
        expected = {  # cross-check of the manifest against the configuration (SPEC section 3)
            "w_data": config.cols * config.weight_bits, "b_data": config.cols * config.out_bits,
            "x_data": config.rows * config.lane_bits, "x_addr": config.addr_bits,
            "y_data": config.cols * config.out_bits, "y_addr": config.addr_bits,
            "y_pe_ovf": config.cols, "y_acc_ovf": config.cols,
        }
        for name in IN_PORTS + OUT_PORTS + ("clk",):
            if name not in widths:
                raise ValueError(f"design has no port {name!r}; SPEC section 3 requires "
                                 f"{', '.join(('clk',) + IN_PORTS + OUT_PORTS)}")
            want_dir = "out" if name in OUT_PORTS else "in"
            if widths[name][0] != want_dir:
                raise ValueError(f"port {name} is an {widths[name][0]}put, expected {want_dir}put")
            want = expected.get(name, 1)
            if widths[name][1] != want:
                raise ValueError(f"port {name} is {widths[name][1]} bits wide; the configuration "
                                 f"says {want}")
        self.fin = self._fields(IN_PORTS, widths)
        self.fout = self._fields(OUT_PORTS, widths)
        self.in_width = sum(f.width for f in self.fin.values())
        self.out_width = sum(f.width for f in self.fout.values())
        self.payload_offset = self.fout["y_addr"].offset

    @staticmethod
    def _fields(names: tuple[str, ...], widths: dict[str, tuple[str, int]]) -> dict[str, Field]:
        fields, off = {}, 0
        for n in names:
            fields[n] = Field(n, off, widths[n][1])
            off += widths[n][1]
        return fields

    def payload(self, word: int) -> dict[str, int]:
        """Split a ``y`` payload word (``tb_out >> payload_offset``) into its ports."""
        return {n: (word >> (self.fout[n].offset - self.payload_offset)) & self.fout[n].mask
                for n in Y_PAYLOAD}

    def describe_x(self, bits_msb_first: str) -> list[str]:
        """Names of the ``tb_out`` fields holding X/Z, from a binary string (MSB first)."""
        lsb = bits_msb_first[::-1]
        return [f.name for f in self.fout.values()
                if any(ch not in "01" for ch in lsb[f.offset:f.offset + f.width])]


def write_wrapper(path: Path, dut_name: str, layout: TbLayout, flip_y_bit: int | None = None
                  ) -> str:
    """Write the wrapper module ``tb_<dut_name>`` to ``path``; returns the module name.

    ``flip_y_bit`` (testing the testbench itself): invert that bit of ``y_data`` on its way to
    the testbench, a fault the scoreboard must report.
    """
    top = f"tb_{dut_name}"
    fin, fout = layout.fin, layout.fout
    pw = layout.out_width - layout.payload_offset

    def rng(f: Field) -> str:
        return f"[{f.offset + f.width - 1}:{f.offset}]" if f.width > 1 else f"[{f.offset}]"

    lines = [
        "// Generated by sim.tb.harness: test wrapper, not part of the design.",
        "`default_nettype none",
        f"module {top} (",
        # the only signals the testbench touches; public for Verilator's VPI (built without
        # --public-flat-rw, see sim.runner)
        "    input wire clk /*verilator public_flat_rw*/,",
        f"    input wire [{layout.in_width - 1}:0] tb_in /*verilator public_flat_rw*/,",
        f"    output reg [{layout.out_width - 1}:0] tb_out /*verilator public_flat_rw*/",
        ");",
    ]
    lines += [f"    wire [{f.width - 1}:0] {f.name};" for f in fout.values()]
    conns = [".clk(clk)"] + [f".{n}(tb_in{rng(f)})" for n, f in fin.items()] + \
            [f".{n}({n})" for n in fout]
    lines.append(f"    {dut_name} dut (")
    lines.append(",\n".join(f"        {c}" for c in conns))
    lines.append("    );")
    ports = list(Y_PAYLOAD)
    if flip_y_bit is not None:
        lines.append(f"    wire [{fout['y_data'].width - 1}:0] y_data_seen = y_data ^ "
                     f"({fout['y_data'].width}'d1 << {flip_y_bit});")
        ports[ports.index("y_data")] = "y_data_seen"
    payload = "{" + ", ".join(reversed(ports)) + "}"
    ctrl = "{" + ", ".join(reversed(OUT_PORTS[:4])) + "}"
    lines += [
        "    // the DUT's outputs as sampled on this edge; the y payload only while y_valid",
        "    always @(posedge clk)",
        f"        tb_out <= {{y_valid ? {payload} : {pw}'d0, {ctrl}}};",
        "endmodule",
        "`default_nettype wire",
        "",
    ]
    path.write_text("\n".join(lines))
    return top


def load_manifest(path: Path) -> dict[str, Any]:
    """Read a manifest JSON file."""
    return json.loads(Path(path).read_text())
