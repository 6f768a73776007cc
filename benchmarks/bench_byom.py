"""A user's model on real data: the Fashion-MNIST test set (10,000 images) through `accel simulate`
against onnxruntime's own CPU inference of the same ONNX QDQ file.

Run by hand: ``python benchmarks/bench_byom.py [--model FILE.onnx] [--repeat N] [--threads T]``.
Without ``--model`` the QDQ twin of the shipped Fashion-MNIST float checkpoint is built first
(``models.onnx_twin``). Reports (best of N, the machine being shared):

* onnxruntime: the file as shipped, default session options (ORT_ENABLE_ALL), T intra-op threads,
  batches of 256;
* the executor on the golden back end at P = Q = 32 on an 8x8 array (values, overflow events,
  cycles), without the reference and with it (onnxruntime run again with every observed code as
  an output, compared code for code), with torch on T threads;
* the ratio of each to onnxruntime (target: the executor without the reference within 5x).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from walltime import best_of

#: Target: the executor's wall time over onnxruntime's on the same file and data.
TARGET_X = 5.0
BATCH = 256


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="a QDQ .onnx file (default: the Fashion-MNIST twin)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="threads of onnxruntime and torch")
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    from accel.backends import GoldenBackend
    from accel.config import ArrayConfig
    from accel.data import load_data
    from accel.executor import simulate
    from accel.frontends import load_model
    from sim.cycles import CycleMeter

    torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory()
    path = args.model
    if path is None:
        from models.onnx_twin import export_qdq
        from sim.sweep.catalog import default_checkpoint_dir

        t = time.perf_counter()
        path = export_qdq(default_checkpoint_dir() / "fashion_float_s0.pt",
                          Path(tmp.name) / "fashion_qdq.onnx")
        print(f"built the QDQ twin in {time.perf_counter() - t:.1f} s")
    test = load_data("fashion-mnist", split="test")
    batches = [(test.x[i:i + BATCH], test.y[i:i + BATCH]) for i in range(0, len(test.x), BATCH)]

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name

    def ort_logits() -> np.ndarray:
        return np.concatenate([sess.run(None, {name: x})[0] for x, _ in batches])

    t_ort = best_of(ort_logits, args.repeat)
    ort_acc = float((ort_logits().argmax(1) == test.y).mean())

    lm = load_model(path)
    cfg = ArrayConfig(rows=8, cols=8, pe_acc_bits=32)
    res = {}

    def run(reference):
        res["r"] = simulate(lm.graph, batches, GoldenBackend(cfg), [CycleMeter(cfg)],
                            reference=reference)

    t_sim = best_of(lambda: run(None), args.repeat)
    acc = res["r"].accuracy
    t_ref = best_of(lambda: run(lm.reference), args.repeat)
    agree = [s.agreement for s in res["r"].layers if s.agreement]
    equal = sum(a["equal"] for a in agree) == sum(a["compared"] for a in agree)
    print(f"{len(test.x)} images, batches of {BATCH}, {args.threads} thread(s)")
    print(f"onnxruntime            {t_ort:7.2f} s   accuracy {100 * ort_acc:.2f} %")
    print(f"executor (golden, P=32) {t_sim:6.2f} s   accuracy {100 * acc:.2f} %   "
          f"{t_sim / t_ort:5.1f}x onnxruntime (target <= {TARGET_X:.0f}x)")
    print(f"  with the reference   {t_ref:7.2f} s   every code equal: {equal}   "
          f"{t_ref / t_ort:5.1f}x")


if __name__ == "__main__":
    main()
