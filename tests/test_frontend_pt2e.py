"""torchao pt2e programs through accel.frontends.pt2e: the program's own codes at every quantize
node, from a .pt2 file saved with torch.export.save and read back with load_model."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from accel.backends import GoldenBackend
from accel.config import ArrayConfig
from accel.executor import Executor, simulate
from accel.frontends import load_model
from accel.layers import LayerError
from accel.nodes import Add, ArrayLayer, MaxPool, Quantize, Requantize, Reshape

torchao = pytest.importorskip("torchao")

from tests.frontend_checks import forced  # noqa: E402
from tests.test_executor import reference_run  # noqa: E402


class Net(torch.nn.Module):
    """A stem, a conv + depthwise residual block, max pooling, a linear head."""

    def __init__(self, residual: bool) -> None:
        super().__init__()
        self.residual = residual
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.c1 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.fc = torch.nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        y = torch.relu(self.dw(torch.relu(self.c1(x))))
        if self.residual:
            y = torch.relu(y + x)
        return self.fc(torch.nn.functional.max_pool2d(y, 2).flatten(1))


def _quantizer(which: str):
    if which == "x86":
        from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
            X86InductorQuantizer, get_default_x86_inductor_quantization_config)
        return X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config())
    from torchao.testing.pt2e._xnnpack_quantizer import (XNNPACKQuantizer,
                                                        get_symmetric_quantization_config)
    return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))


def _program(which: str, residual: bool):
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    torch.manual_seed(0)
    ex = (torch.randn(4, 3, 8, 8),)
    dyn = ({0: torch.export.Dim("batch")},)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = torch.export.export(Net(residual).eval(), ex, dynamic_shapes=dyn).module()
        prepared = prepare_pt2e(gm, _quantizer(which))
        for _ in range(4):
            prepared(torch.randn(16, 3, 8, 8))
        return torch.export.export(convert_pt2e(prepared), ex, dynamic_shapes=dyn)


@pytest.fixture(scope="session")
def saved(tmp_path_factory):
    """The .pt2 files of the XNNPACK (residual) and X86 programs, built once per session."""
    folder = tmp_path_factory.mktemp("pt2e")
    paths = {}
    for which, residual in (("xnnpack", True), ("x86", False)):
        paths[which] = folder / f"{which}.pt2"
        torch.export.save(_program(which, residual), str(paths[which]))
    return paths


def _inputs(seed: int, n: int = 256) -> np.ndarray:
    return (torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2).numpy()


@pytest.mark.parametrize("which, signed", [("xnnpack", True), ("x86", False)])
def test_codes_at_every_quantize_node(saved, which, signed):
    model = load_model(saved[which])
    assert model.format == "pt2e" and "decomposed" in model.semantics
    g = model.graph
    assert [n.name for n in g.array_nodes] == ["stem", "c1", "dw", "fc"]
    assert (type(g.node("quantize_per_tensor")), g.types["quantize_per_tensor"].signed) == \
        (Quantize, signed)
    nodes, ref, logits = forced(model.graph, model.reference, _inputs(1), ArrayConfig(act_signed=signed))
    kinds = {k for *_, k in nodes.values()}
    assert {Quantize, Requantize} <= kinds
    assert {type(n) for n in g.nodes} >= {MaxPool, Reshape}
    assert ({Add, MaxPool, Reshape} <= kinds) == (which == "xnnpack")   # X86: pool before its q
    flips = 0
    for name, (equal, near, n, kind) in nodes.items():
        assert near == n, name
        if kind is Requantize:   # a float conv rounds its fp32 sum: rare near ties flip by one
            flips += n - equal
            assert equal >= n * (1 - 1e-4), (name, equal, n)
        else:                    # input quantize, add, pooling, reshape: the program's codes
            assert equal == n, (name, kind)
    assert flips <= 20
    # the float output (from the program's own input codes): within one step of its scale
    lsb = g.node(g.outputs[0]).scale.max()
    assert np.all(np.abs(logits - ref["logits"]) <= lsb)


def test_simulate_records_agreement_for_float_outputs(saved):
    model = load_model(saved["xnnpack"])
    res = simulate(model.graph, [(_inputs(2, 64), None)],
                   GoldenBackend(ArrayConfig(rows=8, cols=8, act_signed=True, pe_acc_bits=32)),
                   reference=model.reference)
    fc = next(s for s in res.layers if s.name == "fc")
    assert fc.agreement["compared"] > 0 and fc.agreement["within_1lsb_share"] >= 0.99
    assert all(s.exact_mismatches == 0 for s in res.layers)


def test_narrow_accumulator_equals_per_gemm_reference(saved):
    model = load_model(saved["xnnpack"])
    config = ArrayConfig(rows=4, cols=4, act_signed=True, pe_acc_bits=16, out_acc_bits=24)
    x = _inputs(3, 4)
    run = Executor(model.graph, GoldenBackend(config)).run(x, keep=True)
    values, arrays = reference_run(model.graph, x, config)
    events = 0
    for node in model.graph.nodes:
        np.testing.assert_array_equal(run.values[node.name], values[node.name], err_msg=node.name)
        if isinstance(node, ArrayLayer):
            assert run.layers[node.name].pe_events == arrays[node.name][3]
            events += arrays[node.name][3] + arrays[node.name][4]
    assert events > 0          # the narrow widths overflow: the check is not vacuous


def test_float_op_left_by_the_quantizer_is_named():
    prog = _program("x86", residual=True)       # X86 leaves this residual add in float
    from accel.frontends.pt2e import from_pt2e

    with pytest.raises(LayerError, match=r"node 'add' \(aten\.add\.Tensor\): its input .* is "
                                         r"not a dequantized tensor.*supported: quantize_per_tensor"):
        from_pt2e(prog)


def test_bad_pt2_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "m.pt2"
    bad.write_text("not a program")
    with pytest.raises(LayerError, match=r"cannot be read as a torch.export program \(\.pt2\)"):
        load_model(bad)


def test_certify_reads_a_pt2_file(saved, capsys):
    from accel.cli import main

    assert main(["certify", str(saved["xnnpack"]), "--act-signed", "--rows", "8",
                 "--pe-acc-bits", "20"]) == 0
    out = capsys.readouterr().out
    assert "stem" in out and "smallest safe P" in out and "[-128, 127]" in out
