"""``accel gemm``: run the golden model on random or ``.npy`` operands and report overflow."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from accel.cli.base import Verb, add_json_argument, emit, output_path
from accel.config import add_config_arguments, config_from_args

def load_operand(path: str, flag: str, what: str, ndim: int) -> Any:
    """An integer operand from a ``.npy`` file, or a one-line error naming the file.

    Parameters
    ----------
    path : str
        The file.
    flag : str
        The option that gave it (``--x``).
    what : str
        What it must hold, for the message (``"activation codes x[T, K]"``).
    ndim : int
        Its number of dimensions.
    """
    import numpy as np

    expected = f"{flag} expects {what} as a NumPy .npy file of integers (written by numpy.save)"
    if not Path(path).is_file():
        raise ValueError(f"{flag} {path}: no such file; {expected}")
    with open(path, "rb") as f:
        head = f.read(6)
    if head != b"\x93NUMPY":
        kind = "a text file" if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head) \
            else "not .npy data"
        raise ValueError(f"{flag} {path}: {kind}, not a .npy array (no .npy header); {expected}")
    try:
        a = np.load(path, allow_pickle=False)
    except Exception as e:   # text, pickles, truncated files: numpy raises many kinds
        raise ValueError(f"{flag} {path}: not a readable .npy array ({type(e).__name__}: "
                         f"{str(e)[:80]}); {expected}") from None
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{flag} {path}: holds an .npz archive, not one array; {expected}")
    if a.ndim != ndim or not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise ValueError(f"{flag} {path}: holds a {a.dtype} array of shape {a.shape}; {expected}"
                         f" with {ndim} dimension{'s' if ndim > 1 else ''}")
    return a


class Gemm(Verb):
    help = "run one GEMM Y = X.W (+bias) through the bit-exact golden model"
    examples = """examples:
  accel gemm -T 256 -K 300 -O 40 --pe-acc-bits 20 --overflow saturate
  accel gemm --dist extreme --act-signed --pe-acc-bits 18 --json gemm.json
  accel gemm --x x.npy --w w.npy --bias b.npy --config array.toml --save-y y.npy
"""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from accel.operands import DISTRIBUTIONS

        ops = parser.add_argument_group("operands (random unless .npy files are given)")
        ops.add_argument("-T", type=int, default=64, help="vectors streamed (default 64)")
        ops.add_argument("-K", type=int, default=128, help="reduction length (default 128)")
        ops.add_argument("-O", type=int, default=32, help="output channels (default 32)")
        ops.add_argument("--dist", choices=DISTRIBUTIONS, default="uniform",
                         help="random operand distribution (default uniform)")
        ops.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        ops.add_argument("--no-bias", action="store_true", help="random operands without a bias")
        ops.add_argument("--x", metavar="NPY", help="activation codes x[T, K] (.npy)")
        ops.add_argument("--w", metavar="NPY", help="weights w[K, O] (.npy)")
        ops.add_argument("--bias", metavar="NPY", help="bias[O] (.npy)")
        output_path(ops, "--save-y", metavar="NPY", help="write the results y[T, O] as .npy")
        add_config_arguments(parser)
        add_json_argument(parser)

    def run(self, args: argparse.Namespace) -> int:
        import numpy as np

        from accel.arith import fold_count, group_count
        from accel.golden import gemm
        from accel.operands import random_operands

        config = config_from_args(args)
        if (args.x is None) != (args.w is None):
            raise ValueError("--x and --w must be given together (or neither, for random operands)")
        if args.x is not None:
            x = load_operand(args.x, "--x", "activation codes x[T, K]", 2)
            w = load_operand(args.w, "--w", "weights w[K, O]", 2)
            bias = load_operand(args.bias, "--bias", "a bias[O]", 1) if args.bias else None
            for name, n in (("T", x.shape[0]), ("K", x.shape[1]), ("O", w.shape[1])):
                if n < 1:
                    raise ValueError(f"{args.x if name != 'O' else args.w} has {name} = 0 (shape "
                                     f"{(x if name != 'O' else w).shape}); {name} must be a "
                                     "positive integer")
            source = f"{args.x}, {args.w}" + (f", {args.bias}" if args.bias else "")
        else:
            for name in ("T", "K", "O"):
                if getattr(args, name) < 1:
                    raise ValueError(f"-{name} must be a positive integer, not {getattr(args, name)}")
            x, w, bias = random_operands(config, args.T, args.K, args.O, args.dist, args.seed,
                                         not args.no_bias)
            source = f"random {args.dist}, seed {args.seed}"
        start = time.perf_counter()
        result = gemm(x, w, config, bias)
        seconds = time.perf_counter() - start
        t, k = np.shape(x)
        o = np.shape(w)[1]
        folds = fold_count(k, config.rows)
        if args.save_y:
            Path(args.save_y).parent.mkdir(parents=True, exist_ok=True)
            np.save(args.save_y, result.y)
        stats = result.summary()
        data = {"config": config.to_dict(), "config_hash": config.hash, "operands": source,
                "T": t, "K": k, "O": o, "row_folds": folds, "col_groups": group_count(o, config.cols),
                "macs": t * k * o, "seconds": seconds, **stats,
                "y_min": int(result.y.min()) if result.y.size else None,
                "y_max": int(result.y.max()) if result.y.size else None}
        summary = "\n".join([
            f"array {config.name} (hash {config.hash})",
            f"GEMM T={t} K={k} O={o} ({source}): {folds} row folds of R={config.rows}",
            f"PE events (P={config.pe_acc_bits}): {stats['pe_events']} in "
            f"{stats['pe_overflow_outputs']} outputs",
            f"accumulator events (Q={config.out_bits}): {stats['acc_events']} in "
            f"{stats['acc_overflow_outputs']} outputs",
            f"outputs affected: {100 * stats['affected_share']:.2f} % of {stats['outputs']}; "
            f"y in [{data['y_min']}, {data['y_max']}]",
            f"golden model: {seconds * 1e3:.1f} ms ({t * k * o / max(seconds, 1e-9) / 1e6:.1f} MMAC/s)",
        ])
        emit(args, summary, data)
        return 0
