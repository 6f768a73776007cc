"""Executor speed: ResNet-18 (CIFAR-size input, random int8 weights, batch 32) on a 32x32 array.

Run by hand: ``python benchmarks/bench_tlm.py [--repeat N] [--batch B] [--pe-acc-bits P]``.
Reports, in one run (best of N for each timing, the three timed in turn each round: the machine
is shared):
* wall time of the integer graph on the golden back end (every conv/linear on the simulated
  array, wrap mode, P = Q = 20 by default: values, overflow events and cycles) next to the same
  network's plain float forward (target: <= 5x float), the same with the exact partial-sum
  extremes (minimum P and Q; target <= 10x), and peak memory (target: < 8 GB);
* time of the cycle model alone over the full ImageNet ResNet-18 layer table (target: < 0.1 s).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from accel.backends import GoldenBackend
from accel.config import ArrayConfig
from accel.executor import simulate
from accel.lowering import conv_output_size
from accel.timing import timing
from models.random_nets import reference_graph
from sim.cycles import CycleMeter, gemm_cycles

from walltime import best_of_each

#: Targets: the executor's wall time over the float forward, without and with the extremes.
TARGET_VALUES_X = 5.0
TARGET_EXTREMES_X = 10.0

#: ImageNet ResNet-18 conv/fc layers: (name, H, W, kernel, stride, padding, C_in, C_out, repeats)
IMAGENET_RESNET18 = [
    ("conv1", 224, 224, 7, 2, 3, 3, 64, 1),
    ("layer1", 56, 56, 3, 1, 1, 64, 64, 4),
    ("layer2.0.conv1", 56, 56, 3, 2, 1, 64, 128, 1), ("layer2.0.down", 56, 56, 1, 2, 0, 64, 128, 1),
    ("layer2", 28, 28, 3, 1, 1, 128, 128, 3),
    ("layer3.0.conv1", 28, 28, 3, 2, 1, 128, 256, 1), ("layer3.0.down", 28, 28, 1, 2, 0, 128, 256, 1),
    ("layer3", 14, 14, 3, 1, 1, 256, 256, 3),
    ("layer4.0.conv1", 14, 14, 3, 2, 1, 256, 512, 1), ("layer4.0.down", 14, 14, 1, 2, 0, 256, 512, 1),
    ("layer4", 7, 7, 3, 1, 1, 512, 512, 3),
    ("fc", 1, 1, 1, 1, 0, 512, 1000, 1),
]


def imagenet_cycles(config: ArrayConfig) -> int:
    tm = timing(config)
    total = 0
    for _, h, w, k, s, p, c_in, c_out, rep in IMAGENET_RESNET18:
        ho, wo = conv_output_size(h, k, s, p, 1), conv_output_size(w, k, s, p, 1)
        total += rep * gemm_cycles(ho * wo, c_in * k * k, c_out, config, tm).cycles
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs of each")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--pe-acc-bits", type=int, default=20,
                    help="P (and Q): 20 overflows in the deep layers (the target's case); 32 does not")
    args = ap.parse_args()
    torch.set_num_threads(2)
    config = ArrayConfig(rows=32, cols=32, act_bits=8, weight_bits=8,
                         pe_acc_bits=args.pe_acc_bits, overflow="wrap")
    graph, model = reference_graph("resnet18-random", seed=0)
    x = torch.rand(args.batch, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    xn = x.numpy()
    runs: dict[bool, object] = {}
    backends = {e: GoldenBackend(config, extremes=e) for e in (False, True)}

    def golden(extremes: bool) -> None:
        runs[extremes] = simulate(graph, [(xn, None)], backends[extremes], [CycleMeter(config)])

    def float_forward() -> None:
        with torch.no_grad():
            model(x)

    float_forward()                                  # warm-up
    t = best_of_each({"float": float_forward, "values": lambda: golden(False),
                      "extremes": lambda: golden(True)}, args.repeat)
    print(f"ResNet-18 CIFAR batch {args.batch} on {config.name}")
    print(f"  float forward   {t['float']:8.3f} s (best of {args.repeat}, in turn with the runs below)")
    for extremes in (False, True):
        res = runs[extremes]
        t_tlm = t["extremes" if extremes else "values"]
        events = sum(s.pe_events + s.acc_events for s in res.layers)
        what = (f"with the exact psum extremes; target <= {TARGET_EXTREMES_X:g}x" if extremes
                else f"values, events, cycles; target <= {TARGET_VALUES_X:g}x")
        print(f"  golden forward  {t_tlm:8.3f} s  ({t_tlm / t['float']:.1f}x float) "
              f"[{what}]; cycles {res.total_cycles:,}, overflow events {events:,}", flush=True)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"  peak RSS        {peak_gb:8.2f} GB (target < 8 GB)")
    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        cyc = imagenet_cycles(config)
    t_cyc = (time.perf_counter() - t0) / reps
    print(f"ImageNet ResNet-18 cycles alone: {cyc:,} cycles in {t_cyc * 1e3:.2f} ms (target < 100 ms)")


if __name__ == "__main__":
    main()
