"""Silicon benchmark: sky130 µm² of the PE and the 8 x 8 array over the P grids, with the
accumulator memory as flip-flops and as SRAM (CACTI), next to the generic NAND2 equivalents.

Run by hand (about 20 minutes on 2 cores, each Yosys run single-threaded; cached afterwards)::

    python benchmarks/bench_silicon.py                 # 8 x 8 array, acc_depth 64
    python benchmarks/bench_silicon.py --size 4 --sram-node 45

Prints the markdown tables of the README section "Synthesis reports": per configuration the PE
(generic NAND2-eq, sky130 µm²), the array on sky130 with the accumulator memory in flip-flops and
with it as SRAM (sky130 logic + CACTI area scaled to 130 nm by (130 / node)²), and the Yosys
and CACTI times of the runs that were not cached.
"""

from __future__ import annotations

import argparse
import sys
import time

from accel.config import ArrayConfig
from rtl_gen.synth import SynthCache, accmem_as_sram, default_cache_dir, synthesize

GRIDS = {8: (16, 20, 24, 32), 4: (10, 12, 16, 20)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=8, help="array rows = cols (default 8)")
    ap.add_argument("--acc-depth", type=int, default=64, help="accumulator entries (default 64)")
    ap.add_argument("--sram-node", type=int, default=90, help="CACTI node (default 90)")
    ap.add_argument("--cache-dir", default=None, help="cache (default the usual one)")
    args = ap.parse_args()
    options = dict(cache=SynthCache(args.cache_dir or default_cache_dir()),
                   progress=lambda line: print(f"  {line}", file=sys.stderr, flush=True))
    n = args.size
    print(f"| operands | P | PE NAND2-eq | PE sky130 µm² | {n}x{n} array µm² (flip-flop acc) "
          f"| accmem (flip-flops) µm² | array µm² (SRAM acc) | SRAM share | with / without SRAM |")
    print("|---|---|---|---|---|---|---|---|---|")
    for bits, ps in GRIDS.items():
        for p in ps:
            cfg = ArrayConfig(rows=n, cols=n, act_bits=bits, weight_bits=bits, pe_acc_bits=p,
                              acc_depth=args.acc_depth)
            start = time.monotonic()
            pe_g = synthesize(cfg, "pe", "generic", **options)
            pe_s = synthesize(cfg, "pe", "sky130", **options)
            cmp_ = accmem_as_sram(cfg, "array", args.sram_node, **options)
            acc = synthesize(cfg, "accmem", "sky130", **options)
            d = cmp_.to_dict()
            with_sram = d["sram_version_um2"]
            print(f"| {bits}x{bits} bit | {p} | {pe_g.area:,.1f} | {pe_s.area:,.1f} "
                  f"| {cmp_.ff.area_um2:,.0f} | {acc.area_um2:,.0f} "
                  + (f"| {with_sram:,.0f} | {100 * d['sram_um2_at_130nm'] / with_sram:.1f} % "
                     f"| {d['ratio']:.3f} |" if with_sram else "| n/a | n/a | n/a |"), flush=True)
            print(f"  ({time.monotonic() - start:.1f} s)", file=sys.stderr, flush=True)
    print(f"\nSRAM: CACTI at {args.sram_node} nm, scaled to 130 nm by (130/{args.sram_node})²; "
          "cell areas before placement (no utilisation, routing or timing).")


if __name__ == "__main__":
    main()
