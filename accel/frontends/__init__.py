"""Front ends: build the integer graph (:mod:`accel.graph`) from models made elsewhere.

* :mod:`accel.frontends.torch_ao` - PyTorch eager-mode quantized models (``torch.ao``), traced
  with ``torch.fx``, with the engine's requantization (qnnpack or fbgemm) replicated;
* :mod:`accel.frontends.ptq` - float PyTorch models quantized here (post-training, max
  calibration), including the built-in random-weight reference networks;
* :mod:`accel.frontends.pt2e` - torchao pt2e programs (``convert_pt2e``; files saved with
  ``torch.export.save``, ``.pt2``);
* :mod:`accel.frontends.brevitas` - Brevitas models (QuantConv2d / QuantLinear / QuantReLU /
  QuantIdentity, A2Q and A2Q+ weight quantizers), in Python;
* :mod:`accel.frontends.onnx` - ONNX models quantized elsewhere, QDQ and QOperator (what
  ``onnxruntime.quantization`` writes), with onnxruntime's CPU arithmetic replicated;
* :mod:`accel.frontends.qonnx` - QONNX models (``Quant`` nodes of any bit width, as Brevitas'
  ``export_qonnx`` and FINN write them), with qonnx's executor as the reference.

The project's own quantization-aware models export with :func:`accel.quant.export.export_graph`.

Files are loaded through :func:`load_model`, which picks the front end from the file
(:func:`detect_format`) or from ``format``; each front end registers one loader in
:data:`FORMATS` (``"module:function"``, imported on first use) that returns a
:class:`LoadedModel`: the graph and, where the source runtime can run here, a *reference* that
computes what that runtime computes on a batch (``{"logits": ..., node name: codes}``, compared
output for output by :func:`accel.executor.simulate`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accel.layers import LayerError

__all__ = ["LoadedModel", "FORMATS", "detect_format", "load_model"]


@dataclass
class LoadedModel:
    """A model as the executor runs it, and what its source says about it.

    Attributes
    ----------
    graph : accel.graph.Graph
    format : str
        The front end that built it (a key of :data:`FORMATS`).
    source : str
        Where it came from (a path).
    reference : callable or None
        ``inputs -> {"logits": array, node name: codes, ...}``: the source runtime on the same
        batch, for output-for-output agreement.
    semantics : str
        What the graph replicates of that runtime (one line, printed in reports).
    """

    graph: Any
    format: str
    source: str
    reference: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None
    semantics: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _load_graph(path: Path, **_: Any) -> LoadedModel:
    from accel.graph import load_graph

    g = load_graph(path)
    return LoadedModel(g, "graph", str(path), semantics=str(g.meta.get("semantics", "")))


#: Loaders by format name: ``"module:function"`` taking ``(path, **options)``.
FORMATS: dict[str, str] = {
    "graph": "accel.frontends:_load_graph",
    "pt2e": "accel.frontends.pt2e:load",
    "onnx": "accel.frontends.onnx:load_onnx",
    "qonnx": "accel.frontends.qonnx:load_qonnx",
}
#: File suffixes and the format each means (an ``.onnx`` file is looked into).
SUFFIXES: dict[str, str] = {".pt": "graph", ".pth": "graph", ".pt2": "pt2e", ".onnx": "onnx"}
#: Domains of QONNX's ``Quant`` node (qonnx's own and FINN's older names).
QONNX_DOMAINS = ("qonnx.custom_op.general", "finn", "finn.custom_op.general")


def detect_format(path: str | Path) -> str:
    """The format of a model file, from its suffix (and, for ONNX, its operators: a ``Quant``
    node of a QONNX domain means QONNX)."""
    path = Path(path)
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(f"{s} ({f})" for s, f in SUFFIXES.items())
        raise LayerError(f"cannot tell the format of {path} from its suffix {path.suffix!r}; "
                         f"known: {known}; or give --format ({', '.join(FORMATS)})")
    if fmt == "onnx" and path.is_file():
        from accel.frontends.onnx_graph import read_onnx

        model = read_onnx(path)
        if any(n.op_type in ("Quant", "BipolarQuant") and n.domain in QONNX_DOMAINS
               for n in model.graph.node):
            return "qonnx"
    return fmt


def load_model(path: str | Path, format: str | None = None, **options: Any) -> LoadedModel:
    """Load a model file with its front end; errors name the file and what is supported."""
    path = Path(path)
    if path.is_dir():
        raise LayerError(f"model {path} is a folder; give a model file")
    if not path.is_file():
        raise LayerError(f"model {path} does not exist")
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise LayerError(f"unknown model format {fmt!r}; known formats are {', '.join(FORMATS)}")
    module, func = FORMATS[fmt].split(":")
    return getattr(importlib.import_module(module), func)(path, **options)
