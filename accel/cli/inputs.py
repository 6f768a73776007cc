"""The model and data arguments every verb that runs a model shares (simulate, cosim, certify).

``MODEL`` is a file any front end reads (:func:`accel.frontends.load_model`: integer-graph
checkpoints, and the imported formats) or a built-in random-weight network; ``--data`` a built-in
dataset or a file (:func:`accel.data.load_data`), with explicit preprocessing. Defaults come from
the model's metadata (``meta["dataset"]``, ``meta["input"]``: scale, mean, std, layout).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["BUILTIN_MODELS", "add_model_arguments", "add_data_arguments", "model_from_args",
           "data_from_args", "batches"]

#: Built-in random-weight networks (``models.random_nets``).
BUILTIN_MODELS = ("digits-cnn-random", "resnet18-random")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``MODEL`` and ``--format``."""
    parser.add_argument("model", metavar="MODEL", nargs="?", default="digits-cnn-random",
                        help="model file (integer-graph checkpoint such as models/checkpoints/"
                             "*.pt, or an imported format) or a built-in random-weight network: "
                             f"{', '.join(BUILTIN_MODELS)} (default digits-cnn-random)")
    parser.add_argument("--format", default=None,
                        help="model format (default: from the file); see accel.frontends.FORMATS")


def add_data_arguments(parser: argparse.ArgumentParser, batch: int = 256,
                       batch_help: str = "images per batch, one GEMM stream per layer") -> None:
    """``--data`` and its preprocessing, ``--split``, ``--batch`` (default ``batch``),
    ``--limit``, ``--seed``."""
    from accel.data import BUILTIN

    g = parser.add_argument_group("data")
    g.add_argument("--data", default=None, metavar="DATA",
                   help=f"built-in dataset ({', '.join(BUILTIN)}) or a file: .npz, .npy, IDX, or a "
                        "folder of class folders of images (default: the model's dataset)")
    g.add_argument("--labels", metavar="FILE", help="labels of a .npy or IDX --data (.npy or IDX)")
    g.add_argument("--split", choices=("train", "test"), default="test",
                   help="split of a built-in dataset (default test)")
    g.add_argument("--scale", type=float, default=None,
                   help="multiply the inputs by this first (default: the model's, else 1)")
    g.add_argument("--mean", type=float, nargs="+", default=None, metavar="M",
                   help="then subtract this mean (one value, or one per channel)")
    g.add_argument("--std", type=float, nargs="+", default=None, metavar="S",
                   help="then divide by this standard deviation (one, or one per channel)")
    g.add_argument("--layout", choices=("nchw", "nhwc"), default=None,
                   help="layout of image files (default nchw; nhwc is moved to NCHW)")
    g.add_argument("--batch", type=int, default=batch, help=f"{batch_help} (default {batch})")
    g.add_argument("--limit", type=int, default=None, help="first N samples only")
    g.add_argument("--seed", type=int, default=0, help="seed of built-in models and data (default 0)")


def model_from_args(args: argparse.Namespace) -> Any:
    """The :class:`accel.frontends.LoadedModel` of ``MODEL`` (a built-in network's reference is
    its own float forward)."""
    if args.model in BUILTIN_MODELS:
        import torch

        from accel.frontends import LoadedModel
        from models.random_nets import MODEL_DATASETS, reference_graph

        graph, module = reference_graph(args.model, seed=args.seed)
        graph.meta.setdefault("dataset", MODEL_DATASETS[args.model])

        def reference(x: Any) -> dict[str, Any]:
            with torch.no_grad():
                return {"logits": module(torch.from_numpy(x)).numpy()}

        return LoadedModel(graph, "builtin", args.model, reference,
                           "float PyTorch model quantized after training (max calibration)")
    from accel.frontends import load_model

    return load_model(args.model, args.format)


def data_from_args(args: argparse.Namespace, model: Any) -> Any:
    """The :class:`accel.data.Dataset` of ``--data`` (default: the model's dataset), preprocessed
    as the flags say, else as the model's metadata says."""
    from accel.data import PREPROCESSING, model_data

    for name in ("batch", "limit"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise ValueError(f"--{name} must be at least 1, not {v}")
    return model_data(model.graph.meta, args.data, split=args.split, seed=args.seed,
                      labels=args.labels, **{k: getattr(args, k) for k in PREPROCESSING})


def batches(data: Any, batch: int, limit: int | None) -> tuple[Any, int]:
    """``(iterator of (inputs, labels), samples)`` over the first ``limit`` samples."""
    n = len(data) if limit is None else min(limit, len(data))
    y = data.y
    return (((data.x[i:min(i + batch, n)], None if y is None else y[i:min(i + batch, n)])
             for i in range(0, n, batch)), n)
