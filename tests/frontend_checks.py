"""Front-end agreement checks shared by the front-end tests: every node a source runtime names,
computed from that runtime's own input codes, against its own codes."""

from __future__ import annotations

import numpy as np

from accel.backends import ExactBackend
from accel.executor import Executor
from accel.nodes import ArrayLayer, Input, MaxPool, Reshape


def forced(g, reference, x, config):
    """Per graph node the runtime (``reference(x)``) names: its output computed from the *program's own* input
    codes (so that one flip upstream does not count again downstream) against the program's
    codes: ``name -> (equal, within one code, compared, node type)``."""
    ref = reference(x)
    ex = Executor(g, ExactBackend(config))

    def value(name):
        node = g.node(name)
        if isinstance(node, Input):
            return x
        if name in ref:
            return ref[name]
        if isinstance(node, ArrayLayer):
            return ex.run_array(node, value(node.inputs[0]))[0]
        return ex.run_node(node, [value(i) for i in node.inputs])   # not named by the program

    out = {}
    for name, want in ref.items():
        if name == "logits" or name == g.outputs[0]:
            continue
        node = g.node(name)
        args = [value(i) for i in node.inputs]
        got = ex.run_array(node, *args)[0] if isinstance(node, ArrayLayer) else ex.run_node(node, args)
        d = np.abs(got - want)
        out[name] = (int((d == 0).sum()), int((d <= 1).sum()), int(d.size), source(g, name, ref))
    last = g.node(g.outputs[0])
    return out, ref, ex.run_node(last, [value(i) for i in last.inputs])


def source(g, name, ref):
    """The node type that computes ``name``'s codes: through the pooling / reshape nodes that
    the program applies before its quantize (X86: max_pool2d, flatten), a layer's Requantize."""
    node = g.node(name)
    while type(node) in (MaxPool, Reshape) and node.inputs[0] not in ref:
        node = g.node(node.inputs[0])
    return type(node)
