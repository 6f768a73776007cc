"""A thin view of an ONNX model for the ONNX and QONNX front ends (as qonnx's ``ModelWrapper``).

:func:`read_onnx` reads a file with one clear error for a missing, truncated or foreign file;
:class:`OnnxGraph` holds the nodes in topological order as small editable records
(:class:`OnnxNode`), every constant (initializers and ``Constant`` nodes) as a numpy array, the
producer and consumers of each tensor and the static shapes that ONNX shape inference finds.
Passes (the QDQ fusion of :mod:`accel.frontends.onnx`) rewrite the node list; the mappers read
it. Errors name the node, its op type and the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accel.layers import LayerError

__all__ = ["OnnxNode", "OnnxGraph", "read_onnx", "node_label", "unique_name"]

#: What to install when the onnx package is missing.
INSTALL = "install the ONNX extra: pip install 'accel-hw[onnx]'"


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise LayerError(f"reading ONNX models needs the onnx package; {INSTALL}") from None
    return onnx


def read_onnx(path: str | Path) -> Any:
    """The ``onnx.ModelProto`` in ``path`` (external data loaded); a :class:`LayerError` naming
    the file when it is missing, a folder, truncated or not an ONNX model."""
    onnx = _onnx()
    path = Path(path)
    if path.is_dir():
        raise LayerError(f"model {path} is a folder; give the .onnx file")
    if not path.is_file():
        raise LayerError(f"model {path} does not exist")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf and onnx raise many types for a bad file; one meaning here
        first = str(e).splitlines()[0] if str(e) else ""
        raise LayerError(f"model {path} cannot be read as an ONNX model (corrupt, truncated or "
                         f"another kind of file): {type(e).__name__}: {first[:200]}") from None
    if not model.graph.node:
        raise LayerError(f"model {path} is not an ONNX model with a graph (no nodes); a truncated "
                         "or foreign file reads as an empty model")
    return model


@dataclass
class OnnxNode:
    """One ONNX node: ``inputs`` keep ``""`` for an omitted optional input; ``attrs`` are plain
    Python values (ints, floats, lists, strings as ``str``)."""

    name: str
    op_type: str
    domain: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)

    def input(self, i: int) -> str:
        """The name of input ``i`` (``""`` when omitted)."""
        return self.inputs[i] if i < len(self.inputs) else ""


def node_label(node: OnnxNode) -> str:
    """``'name' (OpType)`` with the domain when it is not the default one."""
    dom = f" of domain {node.domain}" if node.domain not in ("", "ai.onnx") else ""
    return f"node {node.name!r} ({node.op_type}{dom})"


def unique_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base_2``, ``base_3``, ... : the first not in ``taken`` (which it joins)."""
    n, i = base, 1
    while n in taken:
        i += 1
        n = f"{base}_{i}"
    taken.add(n)
    return n


def _attrs(onnx: Any, proto: Any) -> dict[str, Any]:
    out = {}
    for a in proto.attribute:
        v = onnx.helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [b.decode("utf-8", "replace") for b in v]
        out[a.name] = v
    return out


class OnnxGraph:
    """The nodes, constants, inputs and outputs of an ONNX model (module docstring).

    Parameters
    ----------
    model : onnx.ModelProto
    source : str
        Where it came from, for messages.
    """

    def __init__(self, model: Any, source: str = "model") -> None:
        onnx = _onnx()
        from onnx import numpy_helper

        self.model, self.source = model, source
        try:
            inferred = onnx.shape_inference.infer_shapes(model)
        except Exception:  # custom domains (qonnx) or odd models: shapes stay unknown
            inferred = model
        g = model.graph
        self.constants: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i)
                                                 for i in g.initializer}
        self.nodes: list[OnnxNode] = []
        names: set[str] = set()
        for i, p in enumerate(g.node):
            attrs = _attrs(onnx, p)
            if p.op_type == "Constant" and p.domain in ("", "ai.onnx"):
                self.constants[p.output[0]] = self._constant(p, attrs)
                continue
            name = p.name or f"{p.op_type}_{i}"
            while name in names:
                name = f"{name}_{i}"
            names.add(name)
            self.nodes.append(OnnxNode(name, p.op_type, p.domain, list(p.input), list(p.output), attrs))
        self.inputs = [v.name for v in g.input if v.name not in self.constants]
        self.outputs = [v.name for v in g.output]
        self.elem_types: dict[str, int] = {}
        self.shapes: dict[str, tuple[int | None, ...] | None] = {}
        for v in list(inferred.graph.value_info) + list(g.input) + list(g.output):
            t = v.type.tensor_type
            self.elem_types[v.name] = t.elem_type
            if t.HasField("shape"):
                self.shapes[v.name] = tuple(d.dim_value if d.HasField("dim_value") else None
                                            for d in t.shape.dim)
            else:
                self.shapes[v.name] = None

    def _constant(self, proto: Any, attrs: dict[str, Any]) -> np.ndarray:
        from onnx import numpy_helper

        if "value" in attrs:
            return numpy_helper.to_array(attrs["value"])
        for key, dt in (("value_float", np.float32), ("value_int", np.int64),
                        ("value_floats", np.float32), ("value_ints", np.int64)):
            if key in attrs:
                return np.asarray(attrs[key], dt)
        raise LayerError(f"{self.source}: Constant node {proto.name!r} has no value this reader "
                         "understands (value, value_float(s), value_int(s))")

    # --- queries ---------------------------------------------------------------------------
    def producer(self, tensor: str) -> OnnxNode | None:
        """The node that writes ``tensor`` (None for graph inputs and constants)."""
        for n in self.nodes:
            if tensor in n.outputs:
                return n
        return None

    def consumers(self, tensor: str) -> list[OnnxNode]:
        """Nodes that read ``tensor``."""
        return [n for n in self.nodes if tensor in n.inputs]

    def is_const(self, tensor: str) -> bool:
        return tensor in self.constants

    def const(self, node: OnnxNode, i: int, what: str, default: Any = None) -> np.ndarray:
        """Input ``i`` of ``node`` as a constant array (``default`` when omitted; an error naming
        the node when it is computed at run time)."""
        name = node.input(i)
        if not name:
            if default is None:
                raise self.error(node, f"needs its {what} (input {i})")
            return np.asarray(default)
        if name not in self.constants:
            raise self.error(node, f"its {what} ({name!r}) must be a constant (an initializer), "
                                   "not computed at run time")
        return self.constants[name]

    def error(self, node: OnnxNode, message: str) -> LayerError:
        """A :class:`LayerError` that names the file, the node and its op type."""
        return LayerError(f"{self.source}: {node_label(node)}: {message}")

    def remove_dead(self) -> None:
        """Drop nodes none of whose outputs is read by another node or is a graph output."""
        while True:
            used = {t for n in self.nodes for t in n.inputs} | set(self.outputs)
            keep = [n for n in self.nodes if any(o in used for o in n.outputs if o)]
            if len(keep) == len(self.nodes):
                return
            self.nodes = keep

    def all_tensors(self) -> set[str]:
        """Every tensor name the original model defines (node outputs and graph inputs)."""
        g = self.model.graph
        return {o for p in g.node for o in p.output} | {v.name for v in g.input}
