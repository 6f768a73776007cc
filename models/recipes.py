"""Deterministic training recipes: float training and quantization-aware fine-tuning on digits.

Every recipe sets the seed, one intra-op thread and deterministic algorithms, and records them (and
the torch version) in :func:`provenance`, so that a checkpoint says how it was made. Measured on one
idle core: CNN float training about 7 s, a QAT fine-tune 3-10 s, OAQ (golden check every step)
about 20 s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from accel.config import ArrayConfig
from accel.backends import GoldenBackend
from accel.executor import simulate
from accel.graph import Graph
from accel.quant import (OAQController, calibrate, export_graph, quantize_model, regularizer,
                         residual_mismatches)
from models import digits, fashion

__all__ = ["Recipe", "deterministic", "provenance", "train_float", "train_quant",
           "float_accuracy", "int_accuracy", "save_float", "load_float", "resolve_model",
           "QuantResult"]

#: Format tag of a float checkpoint written by :func:`save_float`.
FLOAT_FORMAT = "accel-float-model"


@dataclass(frozen=True)
class Recipe:
    """Hyper-parameters of one recipe (all recorded in checkpoints)."""

    float_epochs: int = 30
    qat_epochs: int = 15
    batch: int = 64
    float_lr: float = 3e-3
    qat_lr: float = 1e-2
    threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@contextlib.contextmanager
def deterministic(seed: int, threads: int = 1) -> Iterator[torch.Generator]:
    """Seed torch and numpy, fix the thread count and force deterministic kernels while training;
    yields a data generator. The process-wide settings are restored on exit, so later code (for
    example torch's quantized kernels, which have no deterministic variant) is not affected."""
    was_deterministic, was_threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield torch.Generator().manual_seed(seed)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(was_threads)


def provenance(seed: int, recipe: Recipe) -> dict[str, Any]:
    """Seed, recipe, thread count and library versions (JSON-able)."""
    import sklearn

    return {"seed": seed, "recipe": recipe.to_dict(), "threads": recipe.threads,
            "torch": str(torch.__version__), "numpy": np.__version__, "sklearn": sklearn.__version__,
            "python": platform.python_version()}


def _batches(x: torch.Tensor, y: torch.Tensor, batch: int, gen: torch.Generator
             ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    order = torch.randperm(x.shape[0], generator=gen)
    for i in range(0, x.shape[0], batch):
        idx = order[i:i + batch]
        yield x[idx], y[idx]


def float_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of a (float or fake-quantized) model, eval mode."""
    was = model.training
    model.eval()
    with torch.no_grad():
        acc = float((model(x).argmax(dim=1) == y).float().mean())
    model.train(was)
    return acc


def int_accuracy(graph: Graph, x: torch.Tensor, y: torch.Tensor, config: ArrayConfig
                 ) -> tuple[float, list[dict[str, Any]]]:
    """Accuracy of an exported integer model under ``config``'s arithmetic and its layer stats
    (name, outputs, PE and accumulator events, outputs affected)."""
    res = simulate(graph, [(x.numpy(), y.numpy())], GoldenBackend(config))
    return float(res.accuracy), [{"name": s.name, "outputs": s.outputs, "pe_events": s.pe_events,
                                  "acc_events": s.acc_events, "affected": s.affected_outputs}
                                 for s in res.layers]


#: What each reference model trains on: its data split and the real value of the top input code.
DATASETS: dict[str, tuple[Callable, float]] = {
    "digits": (digits.load_split, digits.INPUT_RANGE),
    "fashion-mnist": (fashion.load_split, fashion.INPUT_RANGE),
}


def dataset_of(spec: str) -> str:
    """The dataset a reference model (by name) trains on: Fashion-MNIST for ``fashion-*``, else
    digits (user models given as ``module:factory`` train on digits)."""
    return "fashion-mnist" if spec in fashion.MODELS else "digits"


def resolve_model(spec: str) -> nn.Module:
    """A reference model by name (``cnn``, ``mlp``) or ``package.module:factory`` (a zero-argument
    callable returning an ``nn.Module`` that maps ``[B, 1, 8, 8]`` digits to 10 logits)."""
    if ":" not in spec:
        if spec in fashion.MODELS:
            return fashion.MODELS[spec]()
        return digits.build_model(spec)
    mod_name, _, fn_name = spec.partition(":")
    try:
        factory: Callable[[], nn.Module] = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot load model factory {spec!r}: {e}") from None
    model = factory()
    if not isinstance(model, nn.Module):
        raise ValueError(f"model factory {spec!r} returned {type(model).__name__}, not an nn.Module")
    return model


def train_float(model_spec: str, seed: int, recipe: Recipe = Recipe(),
                progress: Callable[[str], None] | None = None, data: str = "digits"
                ) -> tuple[nn.Module, float]:
    """Train a float model from scratch on ``data`` (Adam, cross-entropy); returns it and its
    test accuracy."""
    with deterministic(seed, recipe.threads) as gen:
        xtr, ytr, xte, yte = DATASETS[data][0]()
        model = resolve_model(model_spec)
        opt = torch.optim.Adam(model.parameters(), lr=recipe.float_lr)
        model.train()
        for epoch in range(recipe.float_epochs):
            for xb, yb in _batches(xtr, ytr, recipe.batch, gen):
                opt.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                opt.step()
            if progress:
                progress(f"float epoch {epoch + 1}/{recipe.float_epochs}")
        return model, float_accuracy(model, xte, yte)


@dataclass
class QuantResult:
    """A fine-tuned quantization-aware model, its export and what was measured."""

    qmodel: nn.Module
    #: The exported integer graph.
    graph: Graph
    fake_quant_accuracy: float
    oaq: dict[str, Any] | None


def train_quant(float_model: nn.Module, quantizer: str, config: ArrayConfig, seed: int,
                recipe: Recipe = Recipe(), tile: bool = False, act_mode: str = "calibrated",
                progress: Callable[[str], None] | None = None, data: str = "digits"
                ) -> QuantResult:
    """Quantize ``float_model`` for ``config`` and fine-tune it (QAT), then export.

    Calibration: max of |activation| over the whole training set, in batches (first layer: the
    fixed image range). Loss: cross-entropy plus the quantizers' regulariser. OAQ shrinks its clamps
    after every step and finishes with a frozen pass over the training and test sets.
    """
    with deterministic(seed, recipe.threads) as gen:
        load, input_range = DATASETS[data]
        xtr, ytr, xte, yte = load()
        qmodel = quantize_model(float_model, quantizer, config, input_range=input_range,
                                act_mode=act_mode, tile=tile)
        calibrate(qmodel, [xtr[i:i + 256] for i in range(0, xtr.shape[0], 256)])
        ctl = OAQController(qmodel) if quantizer == "oaq" else None
        opt = torch.optim.Adam(qmodel.parameters(), lr=recipe.qat_lr)
        qmodel.train()
        for epoch in range(recipe.qat_epochs):
            for xb, yb in _batches(xtr, ytr, recipe.batch, gen):
                opt.zero_grad()
                loss = F.cross_entropy(qmodel(xb), yb) + regularizer(qmodel).float()
                loss.backward()
                opt.step()
                if ctl is not None:
                    ctl.step()              # this batch's codes, the updated integer weights
            if progress:
                progress(f"{quantizer} epoch {epoch + 1}/{recipe.qat_epochs}")
        oaq = None
        if ctl is not None:
            ctl.close()
            chunks = lambda x: [x[i:i + 256] for i in range(0, x.shape[0], 256)]  # noqa: E731
            oaq = {"clamps": ctl.clamps(),
                   "residual_train": residual_mismatches(qmodel, chunks(xtr)),
                   "residual_test": residual_mismatches(qmodel, chunks(xte))}
        qmodel.eval()
        graph = export_graph(qmodel, {"dataset": data})
        return QuantResult(qmodel, graph, float_accuracy(qmodel, xte, yte), oaq)


def save_float(path: str | Path, model_spec: str, model: nn.Module, meta: dict[str, Any]) -> None:
    """Write a float checkpoint: model name, state dict and JSON-able meta."""
    torch.save({"format": FLOAT_FORMAT, "model": model_spec, "state_dict": model.state_dict(),
                "meta": meta}, Path(path))


def load_float(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Read a float checkpoint written by :func:`save_float`: ``(model, meta)``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"float checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a corrupt file
        raise ValueError(f"float checkpoint {path} cannot be read: {type(e).__name__}") from None
    if not isinstance(state, dict) or state.get("format") != FLOAT_FORMAT:
        raise ValueError(f"{path} is not a float checkpoint (format {FLOAT_FORMAT!r})")
    model = resolve_model(state["model"])
    model.load_state_dict(state["state_dict"])
    model.eval()
    return model, dict(state["meta"])
