"""The integer graph: a quantized network as named nodes in topological order (a DAG).

Every front end (the project's own quantizers, torch.ao, checkpoints, ...) builds a
:class:`Graph`; one executor (:mod:`accel.executor`) runs it. Nodes are the operations of
:mod:`accel.nodes`, each naming its inputs; the graph checks on construction that names are
unique, that every input is defined earlier, and that the integer types fit (an array layer's
input codes are what its :class:`~accel.layers.IntLayer` declares, a concat's inputs agree, ...),
with errors that name the node. ``outputs`` names the nodes whose values the model returns (the
first is the logits).

Checkpoints: :meth:`Graph.save` / :func:`load_graph` write and read a ``torch.save`` file of plain
tensors (integers in the narrowest dtype that holds them) and JSON-able attributes, readable with
``torch.load(weights_only=True)``. Checkpoints of the earlier layer-list format (``accel-int-layers``
version 1) load too: :func:`graph_from_layer_list` converts them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from accel.layers import IntLayer, LayerError
from accel.nodes import (REAL, ArrayLayer, Clamp, Dequantize, Input, IntType, MaxPool, Node,
                         Quantize, Requantize, Reshape, node_from_state)

__all__ = ["Graph", "load_graph", "graph_from_state", "graph_from_layer_list", "GRAPH_FORMAT",
           "GRAPH_VERSION"]

#: Identifies a graph checkpoint (and its schema version).
GRAPH_FORMAT = "accel-int-graph"
GRAPH_VERSION = 2
#: The earlier checkpoint format: a list of layers plus a sequential op list in ``meta``.
LAYERS_FORMAT = "accel-int-layers"


class Graph:
    """Nodes in topological order, the names of the outputs, and JSON-able ``meta``.

    Parameters
    ----------
    nodes : sequence of Node
        Topologically ordered; the first :class:`~accel.nodes.Input` is the graph input.
    outputs : sequence of str
        Nodes whose values :meth:`accel.executor.Executor.run` returns (default: the last node).
    meta : dict, optional
        Recipe, accuracy, quantizer, input preprocessing, ... (kept as given).
    """

    def __init__(self, nodes: list[Node] | tuple[Node, ...], outputs: list[str] | None = None,
                 meta: dict[str, Any] | None = None) -> None:
        self.nodes: tuple[Node, ...] = tuple(nodes)
        if not self.nodes:
            raise LayerError("a graph needs at least one node")
        self.outputs: tuple[str, ...] = tuple(outputs) if outputs else (self.nodes[-1].name,)
        self.meta: dict[str, Any] = dict(meta or {})
        self._by_name: dict[str, Node] = {}
        self.types: dict[str, IntType | str] = {}
        for node in self.nodes:
            if not isinstance(node, Node):
                raise LayerError(f"graph nodes must be accel.nodes.Node objects, not "
                                 f"{type(node).__name__}")
            if node.name in self._by_name:
                raise LayerError(f"two nodes are named {node.name!r}; node names must be unique")
            missing = [i for i in node.inputs if i not in self._by_name]
            if missing:
                raise LayerError(f"node {node.name!r} reads {', '.join(map(repr, missing))}, which "
                                 "no earlier node defines (nodes must be in topological order)")
            self.types[node.name] = node.out_type([self.types[i] for i in node.inputs])
            self._by_name[node.name] = node
        inputs = [n for n in self.nodes if isinstance(n, Input)]
        if len(inputs) != 1:
            raise LayerError(f"a graph has one input node, not {len(inputs)}")
        bad = [o for o in self.outputs if o not in self._by_name]
        if bad:
            raise LayerError(f"graph outputs {', '.join(map(repr, bad))} name no node")

    # --- queries -----------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        """The node called ``name`` (KeyError naming the nodes that exist)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no node {name!r}; nodes are {', '.join(self._by_name)}") from None

    @property
    def input(self) -> Input:
        """The input node."""
        return next(n for n in self.nodes if isinstance(n, Input))

    @property
    def array_nodes(self) -> list[ArrayLayer]:
        """The array layers, in execution order."""
        return [n for n in self.nodes if isinstance(n, ArrayLayer)]

    @property
    def layers(self) -> list[IntLayer]:
        """The :class:`IntLayer` of every array layer, in execution order."""
        return [n.layer for n in self.array_nodes]

    def consumers(self, name: str) -> list[Node]:
        """Nodes that read ``name``."""
        return [n for n in self.nodes if name in n.inputs]

    def replace(self, *nodes: Node, meta: dict[str, Any] | None = None) -> "Graph":
        """A copy with the nodes of the same names replaced (re-validated)."""
        new = {n.name: n for n in nodes}
        unknown = sorted(set(new) - set(self._by_name))
        if unknown:
            raise LayerError(f"cannot replace unknown node(s) {', '.join(unknown)}")
        return Graph([new.get(n.name, n) for n in self.nodes], list(self.outputs),
                     self.meta if meta is None else meta)

    def __repr__(self) -> str:
        return f"Graph({len(self.nodes)} nodes, {len(self.array_nodes)} array layers)"

    # --- checkpoints -------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """A checkpoint dict of torch tensors and JSON-able attributes (``torch.load``-safe)."""
        import torch

        json.dumps(self.meta)       # fail now, not at load time, on a non-JSON-able value
        entries = []
        for node in self.nodes:
            attrs, arrays = node.to_state()
            entries.append({"attrs": _plain(attrs),
                            "arrays": {k: torch.from_numpy(_narrow(v)) for k, v in arrays.items()}})
        return {"format": GRAPH_FORMAT, "version": GRAPH_VERSION, "meta": self.meta,
                "outputs": list(self.outputs), "nodes": entries}

    def save(self, path: str | Path) -> None:
        """Write the graph (and its ``meta``) to ``path`` with ``torch.save``."""
        import torch

        torch.save(self.to_state(), Path(path))


def _plain(v: Any) -> Any:
    """Attributes as plain JSON types (numpy scalars and tuples converted)."""
    return json.loads(json.dumps(v, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _narrow(a: np.ndarray) -> np.ndarray:
    """Integers in the narrowest signed dtype that holds them (floats as they are), a copy."""
    a = np.array(a)
    if a.dtype.kind not in "iub" or a.size == 0:
        return a
    lo, hi = int(a.min()), int(a.max())
    for dt in (np.int8, np.int16, np.int32, np.int64):
        if np.iinfo(dt).min <= lo and hi <= np.iinfo(dt).max:
            return a.astype(dt)
    return a


def graph_from_state(state: Any, source: str = "checkpoint") -> Graph:
    """Inverse of :meth:`Graph.to_state` (and conversion of the layer-list format, version 1)."""
    if isinstance(state, dict) and state.get("format") == LAYERS_FORMAT:
        return graph_from_layer_list(*_layer_list(state, source), source)
    if not isinstance(state, dict) or state.get("format") != GRAPH_FORMAT:
        raise LayerError(f"{source} is not an accel integer-model checkpoint (expected a dict with "
                         f"format {GRAPH_FORMAT!r} or {LAYERS_FORMAT!r})")
    if state.get("version") != GRAPH_VERSION:
        raise LayerError(f"{source} has graph format version {state.get('version')!r}; this "
                         f"accel-hw reads version {GRAPH_VERSION}")
    entries = state.get("nodes")
    if not isinstance(entries, list):
        raise LayerError(f"{source}: 'nodes' must be a list of node entries")
    nodes = []
    for i, entry in enumerate(entries):
        try:
            arrays = {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v)
                      for k, v in entry["arrays"].items()}
            nodes.append(node_from_state(entry["attrs"], arrays))
        except LayerError as e:
            raise LayerError(f"{source}, node entry {i}: {e}") from None
        except (KeyError, TypeError, AttributeError) as e:
            raise LayerError(f"{source}, node entry {i}: malformed ({e})") from None
    try:
        return Graph(nodes, state.get("outputs"), state.get("meta") or {})
    except LayerError as e:
        raise LayerError(f"{source}: {e}") from None


def load_graph(path: str | Path) -> Graph:
    """Read a checkpoint written by :meth:`Graph.save` (or the earlier layer-list format).

    Raises :class:`LayerError` naming the file when it is missing, a folder, not a torch file,
    truncated, or holds anything but a valid integer model.
    """
    import torch

    path = Path(path)
    if path.is_dir():
        raise LayerError(f"checkpoint {path} is a folder; give the .pt file of an integer model")
    if not path.is_file():
        raise LayerError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a corrupt file; all mean the same here
        first = str(e).splitlines()[0] if str(e) else ""
        raise LayerError(f"checkpoint {path} cannot be read as a torch.save file of an integer "
                         f"model (corrupt, truncated or another kind of file): "
                         f"{type(e).__name__}: {first[:200]}") from None
    return graph_from_state(state, source=f"checkpoint {path}")


def _layer_list(state: dict[str, Any], source: str
                ) -> tuple[list[IntLayer], dict[str, dict[str, Any]], dict[str, Any]]:
    """Layers, their requantizations (by layer name) and meta of a version-1 checkpoint."""
    if state.get("version") != 1 or not isinstance(state.get("layers"), list):
        raise LayerError(f"{source} has integer-layer format version {state.get('version')!r}; "
                         "this accel-hw reads version 1 of that format")
    layers, requants = [], {}
    for i, entry in enumerate(state["layers"]):
        try:
            meta = dict(entry["meta"])
            arrays = {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v)
                      for k, v in entry["arrays"].items()}
            rq = meta.pop("requant", None)
            if rq is not None:
                requants[meta["name"]] = {**rq, "multiplier": arrays.pop("requant_multiplier"),
                                          "offset": arrays.pop("requant_offset", None)}
            layers.append(IntLayer.from_state({"meta": meta, "arrays": arrays}))
        except LayerError as e:
            raise LayerError(f"{source}, layer entry {i}: {e}") from None
        except (KeyError, TypeError, AttributeError) as e:
            raise LayerError(f"{source}, layer entry {i}: malformed ({e})") from None
    return layers, requants, dict(state.get("meta") or {})


def graph_from_layer_list(layers: list[IntLayer], requants: dict[str, dict[str, Any]],
                          meta: dict[str, Any], source: str = "checkpoint") -> Graph:
    """The graph of a version-1 checkpoint: ``meta["graph"]`` lists ``layer``, ``relu``,
    ``maxpool2d`` and ``flatten`` in execution order, ``meta["input_clamps"]`` the highest input
    code of each layer, and ``requants`` the requantization of each layer to the next one's codes
    (the last layer has none: it is dequantised)."""
    meta = dict(meta)
    try:
        ops = meta.pop("graph")
        clamps = {str(k): int(v) for k, v in meta.pop("input_clamps").items()}
    except (KeyError, AttributeError, TypeError, ValueError):
        raise LayerError(f"{source} holds integer layers but no integer-model graph (graph and "
                         "input_clamps in meta)") from None
    by_name = {lay.name: lay for lay in layers}
    first = by_name[ops[[o["op"] for o in ops].index("layer")]["name"]]
    nodes: list[Node] = [Input(name="input")]
    lo0 = -(clamps.get(first.name, first.input_range[1]) + 1) if first.act_signed else 0
    nodes.append(Quantize(name="quantize", inputs=("input",), scale=first.input_scale,
                          zero_point=first.input_zero_point, bits=first.act_bits,
                          signed=first.act_signed, lo=max(lo0, first.input_range[0]),
                          hi=clamps.get(first.name, first.input_range[1])))
    names = [o["name"] for o in ops if o["op"] == "layer"]
    prev = "quantize"
    for i, o in enumerate(ops):
        op = o["op"]
        if op == "layer":
            lay = by_name[o["name"]]
            nodes.append(ArrayLayer(name=lay.name, inputs=(prev,), layer=lay))
            prev = lay.name
            rq = requants.get(lay.name)
            j = names.index(lay.name)
            if rq is None:
                nodes.append(Dequantize(name=f"{lay.name}.dequantize", inputs=(prev,),
                                        scale=lay.acc_scale, axis=1 if lay.kind == "conv2d" else -1))
            else:
                nxt = by_name[names[j + 1]]
                hi = clamps.get(nxt.name, nxt.input_range[1])
                if rq.get("offset") is not None:
                    raise LayerError(f"{source}: layer {lay.name!r} has a float requant offset, "
                                     "which version-1 checkpoints of accel models never hold")
                nodes.append(Requantize(
                    name=f"{lay.name}.requantize", inputs=(prev,),
                    multiplier=np.asarray(rq["multiplier"], np.float32), scale=rq["scale"],
                    zero_point=rq["zero_point"], bits=rq["out_bits"], signed=rq["out_signed"],
                    lo=rq["zero_point"] if rq["relu"] else (-(hi + 1) if rq["out_signed"] else 0),
                    hi=hi, axis=1 if lay.kind == "conv2d" else -1))
            prev = nodes[-1].name
        elif op == "relu":
            nodes.append(Clamp(name=f"relu{i}", inputs=(prev,), lo=0))   # codes, zero point 0
            prev = nodes[-1].name
        elif op == "maxpool2d":
            nodes.append(MaxPool(name=f"maxpool{i}", inputs=(prev,), kernel=o["kernel"],
                                 stride=o["stride"]))
            prev = nodes[-1].name
        elif op == "flatten":
            if o.get("start_dim", 1) != 1:
                raise LayerError(f"{source}: flatten from dimension {o['start_dim']} is not "
                                 "supported (only 1: keep the batch)")
            nodes.append(Reshape(name=f"flatten{i}", inputs=(prev,), shape=(-1,)))
            prev = nodes[-1].name
        else:
            raise LayerError(f"{source}: unknown integer-model op {op!r}; known: layer, relu, "
                             "maxpool2d, flatten")
    return Graph(nodes, [prev], meta)
