"""Speed of the front-end and certification paths of issue 14.

* ``certify`` of the built-in ``resnet18-random`` graph (11 M weights, exact range test per fold
  and over K, with and without the bias): target under 15 s of CPU on one core;
* fbgemm's depthwise pair saturation (``ArrayLayer.pair_correction``) on a MobileNet-sized layer
  (32 channels, 3x3, 56x56, batch 8): target at least 20 M taps per second.

Run: ``python benchmarks/bench_certify.py``.
"""

from __future__ import annotations

import time

import numpy as np

TARGET_CERTIFY_S = 15.0
TARGET_TAPS_PER_S = 20e6


def bench_certify() -> float:
    from accel.config import ArrayConfig
    from accel.quant.report import certify
    from models.random_nets import reference_graph

    graph, _ = reference_graph("resnet18-random", seed=0)
    start = time.process_time()
    certify(graph, ArrayConfig(rows=32, cols=32, pe_acc_bits=24))
    return time.process_time() - start


def bench_pairs() -> float:
    from accel.layers import IntLayer
    from accel.nodes import ArrayLayer

    rng = np.random.default_rng(0)
    c, h, n = 32, 56, 8
    lay = IntLayer(name="dw", kind="conv2d", weight=rng.integers(-127, 128, (c, 1, 3, 3)),
                   weight_scale=[0.01], input_scale=0.02, input_zero_point=3, groups=c,
                   padding=(1, 1))
    node = ArrayLayer(name="dw", inputs=("x",), layer=lay, pair_bits=16)
    x = rng.integers(0, 256, (n, c, h, h))
    start = time.perf_counter()
    node.pair_correction(x)
    return n * c * h * h * 9 / (time.perf_counter() - start)


def main() -> None:
    t = bench_certify()
    print(f"certify resnet18-random (R=32)  {t:7.2f} s CPU   (target < {TARGET_CERTIFY_S} s)")
    r = bench_pairs()
    print(f"fbgemm pair saturation          {r / 1e6:7.1f} M taps/s (target > {TARGET_TAPS_PER_S / 1e6:.0f})")


if __name__ == "__main__":
    main()
