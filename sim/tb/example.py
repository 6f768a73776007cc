"""A self-checking example testbench in plain Verilog-2005, for engineers taking the array into
their own flow: it drives one GEMM from hex files with any simulator and checks every ``y`` beat
and the cycle count.

Nothing here is a second description of the protocol: the beats come from the canonical schedule
(:func:`sim.schedule.beats`, the same words the cocotb driver sends), the expected results from
:func:`accel.golden.gemm` (:func:`sim.schedule.expected_lanes`), the cycles from
:func:`sim.cycles.gemm_cycles`, and the port widths from the manifest.

Hex files, one beat per line (``$readmemh``), each line one beat record of
:mod:`sim.records` (the encoding the compiled co-simulation harness reads in binary), MSB first:

* ``<name>_w.hex``: ``{w_last, w_data}``
* ``<name>_b.hex``: ``{b_data}``
* ``<name>_x.hex``: ``{x_emit, x_init, x_first, x_addr, x_data}``
* ``<name>_y.hex``: expected ``{y_acc_ovf, y_pe_ovf, y_addr, y_data}``, in order

The testbench holds ``rst`` for :data:`RESET_EDGES` edges, presents every stream's beats back to
back (the canonical stimulus of SPEC section 6) with ``y_ready = 1``, compares each ``y`` beat,
and prints ``PASSED`` or ``FAILED`` with the measured and expected cycles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from accel.config import ArrayConfig
from accel.golden import gemm
from accel.operands import random_operands
from sim.cycles import gemm_cycles
from sim.records import RECORD_FIELDS, RecordField, RecordLayout
from sim.schedule import beats, expected_lanes

__all__ = ["ExamplePaths", "write_example", "RESET_EDGES"]

#: Edges the example holds ``rst`` high.
RESET_EDGES = 2


@dataclass(frozen=True)
class ExamplePaths:
    """Files written by :func:`write_example` and the GEMM they check."""

    testbench: Path
    hex: dict[str, Path]
    shape: tuple[int, int, int]
    cycles: int
    command: str


def write_example(config: ArrayConfig, manifest_path: str | Path, shape: tuple[int, int, int],
                  seed: int = 0, dist: str = "uniform") -> ExamplePaths:
    """Write ``tb_<name>.v`` and its four hex files next to the manifest.

    Parameters
    ----------
    config : ArrayConfig
        The configuration the Verilog was generated from.
    manifest_path : path
        ``<name>.json`` written by :func:`rtl_gen.export.export` (module name and port widths).
    shape : (T, K, O)
        The GEMM: T vectors, reduction length K, O output channels.
    seed, dist : int, str
        Random operands (:func:`accel.operands.random_operands`, with a bias).
    """
    manifest_path = Path(manifest_path)
    man = json.loads(manifest_path.read_text())
    name = man["module"]
    layout = RecordLayout(man)
    t, k, o = shape
    x, w, bias = random_operands(config, t, k, o, dist, seed, True)
    bt = beats(x, w, bias, config)
    y, pe, acc = expected_lanes(gemm(x, w, config, bias), bt.y_order, config)
    records = {**layout.beat_records(bt), "y": layout.y_records(y, bt.x_addr[bt.x_emit], pe, acc)}
    out = manifest_path.parent
    files = {s: out / f"{name}_{s}.hex" for s in ("w", "b", "x", "y")}
    for s, path in files.items():
        path.write_text(layout.hex_text(s, records[s]))
    cycles = gemm_cycles(t, k, o, config).cycles
    tb = out / f"tb_{name}.v"
    tb.write_text(_verilog(name, layout, {s: len(r) for s, r in records.items()}, cycles,
                           (t, k, o)))
    cmd = f"iverilog -g2005 -o tb_{name}.vvp tb_{name}.v {name}.v && vvp -n tb_{name}.vvp"
    return ExamplePaths(tb, files, (t, k, o), cycles, cmd)


def _slice(f: RecordField) -> str:
    """``[msb:lsb]`` of a field in its record (``[bit]`` for one bit)."""
    hi = f.offset + f.width - 1
    return f"[{hi}:{f.offset}]" if f.width > 1 else f"[{f.offset}]"


def _verilog(name: str, layout: RecordLayout, count: dict[str, int], cycles: int,
             shape: tuple[int, int, int]) -> str:
    bits = layout.bits
    f = {fd.name: fd for fds in layout.fields.values() for fd in fds}
    c = f["y_pe_ovf"].width
    t, k, o = shape
    limit = 4 * cycles + 100

    y_rec = "{" + ", ".join(reversed(RECORD_FIELDS["y"])) + "}"

    def port(n: str, vec: str) -> str:
        return f".{n}({vec}{_slice(f[n])})"

    return f"""// tb_{name}: example self-checking testbench for {name}.v (accel-hw, generated).
// One GEMM T = {t}, K = {k}, O = {o} (random operands with a bias) under the canonical stimulus:
// every stream presents its beats back to back, y_ready = 1. Beats from the canonical schedule,
// expected y from the golden model, expected cycles from the cycle model.
// Run in this folder with any Verilog-2005 simulator, e.g.
//   iverilog -g2005 -o tb_{name}.vvp tb_{name}.v {name}.v && vvp -n tb_{name}.vvp
// Hex files (one beat a line, MSB first): {name}_w.hex {{w_last, w_data}}, {name}_b.hex {{b_data}},
// {name}_x.hex {{x_emit, x_init, x_first, x_addr, x_data}},
// {name}_y.hex {{y_acc_ovf, y_pe_ovf, y_addr, y_data}} (expected, in order).
`timescale 1ns/1ps
module tb_{name};
  localparam NW = {count["w"]}, NB = {count["b"]}, NX = {count["x"]}, NY = {count["y"]};
  localparam EXPECTED_CYCLES = {cycles}, LIMIT = {limit}, RESET_EDGES = {RESET_EDGES};
  reg clk = 1'b0;
  always #5 clk = ~clk;
  reg rst = 1'b1;
  reg [{bits["w"] - 1}:0] wmem [0:NW-1];
  reg [{bits["b"] - 1}:0] bmem [0:NB-1];
  reg [{bits["x"] - 1}:0] xmem [0:NX-1];
  reg [{bits["y"] - 1}:0] ymem [0:NY-1];
  integer wi = 0, bi = 0, xi = 0, yi = 0, errors = 0, edge_n = -1, last_y = -1;

  wire w_ready, b_ready, x_ready, y_valid;
  wire [{f["y_data"].width - 1}:0] y_data;
  wire [{f["y_addr"].width - 1}:0] y_addr;
  wire [{c - 1}:0] y_pe_ovf, y_acc_ovf;
  wire w_valid = !rst && wi < NW;
  wire b_valid = !rst && bi < NB;
  wire x_valid = !rst && xi < NX;
  wire [{bits["w"] - 1}:0] wbeat = wmem[wi < NW ? wi : 0];
  wire [{bits["b"] - 1}:0] bbeat = bmem[bi < NB ? bi : 0];
  wire [{bits["x"] - 1}:0] xbeat = xmem[xi < NX ? xi : 0];

  {name} dut (
    .clk(clk), .rst(rst),
    .w_valid(w_valid), .w_ready(w_ready), {port("w_data", "wbeat")}, {port("w_last", "wbeat")},
    .b_valid(b_valid), .b_ready(b_ready), {port("b_data", "bbeat")},
    .x_valid(x_valid), .x_ready(x_ready), {port("x_data", "xbeat")},
    {port("x_addr", "xbeat")}, {port("x_first", "xbeat")}, {port("x_init", "xbeat")},
    {port("x_emit", "xbeat")},
    .y_valid(y_valid), .y_ready(1'b1), .y_data(y_data), .y_addr(y_addr),
    .y_pe_ovf(y_pe_ovf), .y_acc_ovf(y_acc_ovf));

  initial begin
    $readmemh("{name}_w.hex", wmem);
    $readmemh("{name}_b.hex", bmem);
    $readmemh("{name}_x.hex", xmem);
    $readmemh("{name}_y.hex", ymem);
    repeat (RESET_EDGES) @(posedge clk);
    rst <= 1'b0;                      // edge 0 is the next rising edge
  end

  always @(posedge clk) if (!rst) begin
    edge_n = edge_n + 1;
    if (w_valid && w_ready) wi <= wi + 1;
    if (b_valid && b_ready) bi <= bi + 1;
    if (x_valid && x_ready) xi <= xi + 1;
    if (y_valid) begin
      if (yi >= NY) begin
        errors = errors + 1;
        $display("FAILED: y beat %0d beyond the %0d expected", yi, NY);
      end else if ({y_rec} !== ymem[yi]) begin
        errors = errors + 1;
        if (errors <= 10)
          $display("mismatch at y beat %0d (edge %0d): got %h, expected %h", yi, edge_n,
                   {y_rec}, ymem[yi]);
      end
      yi <= yi + 1;
      last_y = edge_n;
    end
    if (yi + (y_valid ? 1 : 0) == NY && y_valid) begin
      if (last_y + 1 != EXPECTED_CYCLES) begin
        errors = errors + 1;
        $display("cycles: %0d measured, %0d expected by the cycle model", last_y + 1,
                 EXPECTED_CYCLES);
      end
      if (errors == 0)
        $display("PASSED: %0d y beats checked, %0d cycles (as the cycle model)", NY, last_y + 1);
      else
        $display("FAILED: %0d errors in %0d y beats", errors, NY);
      $finish;
    end
    if (edge_n > LIMIT) begin
      $display("FAILED: timeout after %0d edges, %0d of %0d y beats seen", edge_n, yi, NY);
      $finish;
    end
  end
endmodule
"""
