"""What a sweep can run: the built-in ``gemm`` workload, the integer-model checkpoints on disk and
model files named explicitly.

A checkpoint (an integer graph, :meth:`accel.graph.Graph.save`) says in its metadata
which model and quantizer made it and for which N, M and P it was trained; the catalog reads only
that metadata, once, and answers the sweep's questions: which models and quantizers exist, and
which checkpoint serves a configuration (the one trained for its P, or fixed ones).

A model file (:meth:`Catalog.add_file`: any format :func:`accel.frontends.load_model` reads, such
as a quantized ONNX or PyTorch model) joins under its file's stem (or the ``model`` of its meta);
its quantizer is the front end that read it unless its meta names one, and a model not trained
for a P (:data:`~sim.sweep.spec.NO_TARGET_P`) serves every array.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accel.config import ArrayConfig
from accel.operands import DISTRIBUTIONS
from sim.sweep.errors import SweepError, check_table
from sim.sweep.spec import NO_TARGET_P, digest

__all__ = ["GEMM_MODEL", "GEMM_DEFAULTS", "Checkpoint", "Catalog", "gemm_options",
           "default_checkpoint_dir", "checkpoint_info"]

#: Name of the built-in random-GEMM workload.
GEMM_MODEL = "gemm"
#: Parameters of the ``gemm`` workload: shape T x K x O, operand distribution, seed, bias.
GEMM_DEFAULTS: dict[str, Any] = {"t": 64, "k": 128, "o": 32, "dist": "uniform", "seed": 0,
                                 "bias": True}


def gemm_options(d: Any, source: str) -> dict[str, Any]:
    """Check a ``[gemm]`` table and fill defaults (:data:`GEMM_DEFAULTS`)."""
    check_table(d, GEMM_DEFAULTS, f"{source} [gemm]", "a table")
    out = {**GEMM_DEFAULTS, **d}
    for k in ("t", "k", "o"):
        v = out[k]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise SweepError(f"{source} [gemm]: {k} must be a positive integer, not {v!r}")
    if out["dist"] not in DISTRIBUTIONS:
        raise SweepError(f"{source} [gemm]: dist must be one of {', '.join(map(repr, DISTRIBUTIONS))}, "
                         f"not {out['dist']!r}")
    if isinstance(out["seed"], bool) or not isinstance(out["seed"], int):
        raise SweepError(f"{source} [gemm]: seed must be an integer, not {out['seed']!r}")
    if not isinstance(out["bias"], bool):
        raise SweepError(f"{source} [gemm]: bias must be true or false, not {out['bias']!r}")
    return out


def default_checkpoint_dir() -> Path:
    """The shipped checkpoints (``models/checkpoints`` of the installed ``models`` package)."""
    import models  # lazily: accel does not depend on models at import time

    return Path(models.__file__).resolve().parent / "checkpoints"


@dataclass(frozen=True)
class Checkpoint:
    """One integer-model checkpoint file and what its metadata says about it.

    ``target_p`` is the P (bits) the model was trained for (:data:`NO_TARGET_P`: none, it serves
    every P); accuracies are shares in 0..1 as recorded by the recipe (``None`` when absent);
    ``format`` is the front end that reads the file (None: an integer-graph checkpoint);
    ``dataset`` the model's own data as its meta records it (None: not recorded).
    """

    path: Path
    hash: str
    model: str
    quantizer: str
    act_bits: int
    weight_bits: int
    target_p: int
    float_accuracy: float | None = None
    format: str | None = None
    dataset: str | None = None


def checkpoint_info(path: Path) -> Checkpoint | tuple[str, float]:
    """Read a checkpoint's metadata; :class:`SweepError` if it is neither kind.

    Returns a :class:`Checkpoint` for an integer model, or ``(model, accuracy)`` for a float
    checkpoint (``models.recipes.save_float``), whose test accuracy is the float reference.
    """
    import torch

    from accel.graph import graph_from_state
    from accel.layers import LayerError
    from models.recipes import FLOAT_FORMAT

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a corrupt file
        raise SweepError(f"checkpoint {path} cannot be read ({type(e).__name__}); remove it or "
                         "point --checkpoints at a folder of accel checkpoints") from None
    if isinstance(state, dict) and state.get("format") == FLOAT_FORMAT:
        meta = state.get("meta") or {}
        try:
            return str(state["model"]), float(meta["accuracy"])
        except (KeyError, TypeError, ValueError):
            raise SweepError(f"float checkpoint {path} records no test accuracy in its meta") from None
    try:
        graph = graph_from_state(state, f"checkpoint {path}")
    except LayerError as e:
        raise SweepError(str(e)) from None
    meta, layers = graph.meta, graph.layers
    cfg = meta.get("config") or {}
    try:
        model = str(meta["model"])
        quantizer = str(meta["quantizer"])
        act_bits = int(cfg.get("act_bits", layers[0].act_bits))
        weight_bits = int(cfg.get("weight_bits", layers[0].weight_bits))
        target_p = int(cfg["pe_acc_bits"])
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise SweepError(f"checkpoint {path} lacks sweep metadata ({e}): it needs 'model', "
                         "'quantizer' and 'config' (with pe_acc_bits) in its meta") from None
    fa = meta.get("float_accuracy")
    return Checkpoint(path=path, hash=digest(path.read_bytes()), model=model, quantizer=quantizer,
                      act_bits=act_bits, weight_bits=weight_bits, target_p=target_p,
                      float_accuracy=None if fa is None else float(fa),
                      dataset=meta.get("dataset"))


class Catalog:
    """The checkpoints of a folder (scanned on first use), plus the ``gemm`` workload.

    Parameters
    ----------
    directory : str or Path, optional
        Folder searched (recursively) for ``*.pt`` checkpoints; default
        :func:`default_checkpoint_dir`.
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self._dir = None if directory is None else Path(directory)
        self._explicit = directory is not None
        self._items: list[Checkpoint] | None = None
        self._float: dict[str, float] = {}

    @property
    def directory(self) -> Path:
        if self._dir is None:
            self._dir = default_checkpoint_dir()
        return self._dir

    @property
    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint found, sorted by model, quantizer, N, M, target P."""
        if self._items is None:
            if not self.directory.is_dir():
                if self._explicit:
                    raise SweepError(f"checkpoint folder {self.directory} does not exist")
                self._items = []               # no shipped checkpoints: only the gemm workload
                return self._items
            found = []
            for path in sorted(self.directory.rglob("*.pt")):
                info = checkpoint_info(path)
                if isinstance(info, Checkpoint):
                    found.append(info)
                else:
                    self._float.setdefault(*info)
            self._items = sorted(found, key=lambda c: (c.model, c.quantizer, c.act_bits,
                                                       c.weight_bits, c.target_p, str(c.path)))
        return self._items

    def add_file(self, path: str | Path, format: str | None = None) -> Checkpoint:
        """Add one model file (any front end's format) and return its entry.

        Its model name is its meta's ``model``, else the file's stem; its quantizer the meta's
        ``quantizer``, else the format; N and M the widest input codes and weights of its array
        layers; its target P the meta's ``config.pe_acc_bits``, else :data:`NO_TARGET_P`.
        """
        from accel.frontends import detect_format, load_model
        from accel.layers import LayerError

        path = Path(path)
        try:
            fmt = format or detect_format(path)
            graph = load_model(path, fmt).graph
        except LayerError as e:
            raise SweepError(str(e)) from None
        meta, layers = graph.meta, graph.layers
        if not layers:
            raise SweepError(f"model {path} has no conv or linear layer for the array to run")
        cfg = meta.get("config") or {}
        fa = meta.get("float_accuracy")
        item = Checkpoint(path=path, hash=digest(path.read_bytes()),
                          model=str(meta.get("model") or path.stem),
                          quantizer=str(meta.get("quantizer") or fmt),
                          act_bits=max(lay.act_bits for lay in layers),
                          weight_bits=max(lay.weight_bits for lay in layers),
                          target_p=int(cfg.get("pe_acc_bits", NO_TARGET_P)),
                          float_accuracy=None if fa is None else float(fa),
                          format=None if fmt == "graph" else fmt, dataset=meta.get("dataset"))
        items = self.checkpoints
        if not any(c.path == item.path or c.hash == item.hash for c in items):
            items.append(item)
        return next(c for c in items if c.path == item.path or c.hash == item.hash)

    def models(self) -> list[str]:
        """Model names: ``gemm`` and those of the checkpoints."""
        return [GEMM_MODEL] + sorted({c.model for c in self.checkpoints})

    def check_model(self, model: str, source: str) -> None:
        if model != GEMM_MODEL and model not in self.models():
            raise SweepError(f"{source}: unknown model {model!r}; known models are "
                             f"{', '.join(self.models())} (checkpoints in {self.directory}), or "
                             "give a model file's path")

    def quantizers(self, model: str) -> list[str]:
        return sorted({c.quantizer for c in self.checkpoints if c.model == model})

    def select(self, model: str, quantizer: str, config: ArrayConfig, selector: str | list[int],
               source: str, missing: list[tuple[str, str, int, str]] | None = None
               ) -> list[Checkpoint]:
        """The checkpoints of one model and quantizer that serve ``config``.

        ``selector`` is ``"match"`` (the one trained for ``config``'s P), ``"all"``, or a list of
        target Ps. N and M must match the configuration's. With ``"match"`` and a ``missing``
        list, a P without a checkpoint is not an error: ``(model, quantizer, P, Ps available)`` is
        appended to ``missing`` and nothing is returned for it.
        """
        if quantizer not in self.quantizers(model):
            raise SweepError(f"{source}: model {model!r} has no checkpoints for quantizer "
                             f"{quantizer!r}; it has {', '.join(self.quantizers(model)) or 'none'}")
        n, m = config.act_bits, config.weight_bits
        cands = [c for c in self.checkpoints if c.model == model and c.quantizer == quantizer
                 and c.act_bits == n and c.weight_bits == m]
        have = ", ".join(str(c.target_p) for c in cands) or "none"
        if selector == "all":
            wanted = sorted({c.target_p for c in cands})
        elif selector == "match":
            wanted = [config.pe_acc_bits]
        else:
            wanted = list(selector)
        out = []
        fixed = [c for c in cands if c.target_p == NO_TARGET_P]   # serve every P
        if fixed:
            return fixed
        for p in wanted:
            hit = [c for c in cands if c.target_p == p]
            if not hit and selector == "match" and missing is not None:
                missing.append((model, quantizer, p, have))
            elif not hit:
                raise SweepError(f"{source}: {self.missing_text(model, quantizer, n, m, p, have)}")
            else:
                out.append(hit[0])
        return out

    @staticmethod
    def missing_text(model: str, quantizer: str, n: int, m: int, p: int | str, have: str) -> str:
        """The sentence for a P without a checkpoint."""
        return (f"no checkpoint of {model!r} {quantizer!r} with N = {n}, M = {m} trained for "
                f"P = {p}; target Ps available: {have} (checkpoint_p = \"all\" runs every "
                "checkpoint on every array; or choose quantizers; accel sweep --list shows them)")

    def float_accuracy(self, model: str) -> float | None:
        """The float model's test accuracy: from its float checkpoint, else as recorded in its
        integer checkpoints' meta (``float_accuracy``); None when nothing records it."""
        if model in self._float or not self.checkpoints:
            return self._float.get(model)
        vals = [c.float_accuracy for c in self.checkpoints
                if c.model == model and c.float_accuracy is not None]
        return vals[0] if vals else None

    @staticmethod
    def gemm_hash(options: dict[str, Any]) -> str:
        """The ``checkpoint_hash`` of a ``gemm`` workload: a hash of its parameters."""
        return digest({"workload": GEMM_MODEL, **options})
