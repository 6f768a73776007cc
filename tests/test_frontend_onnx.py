"""ONNX QDQ and QOperator models from the real exporter and quantizer (torch.onnx.export, then
onnxruntime.quantization.quantize_static): the graph reproduces onnxruntime's CPU codes after
every quantized op at P = Q = 32, and at a narrow P equals the per-GEMM golden reference."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")
torch = pytest.importorskip("torch")

from test_executor import reference_run  # noqa: E402

from accel.backends import GoldenBackend  # noqa: E402
from accel.config import ArrayConfig  # noqa: E402
from accel.executor import Executor, simulate  # noqa: E402
from accel.frontends import detect_format, load_model  # noqa: E402
from accel.frontends.onnx import (OPTIMIZATION, cpu_has_vnni, from_onnx,  # noqa: E402
                                  saturation_risk)
from accel.layers import LayerError  # noqa: E402
from accel.nodes import Add, AvgPool, Concat, MaxPool  # noqa: E402

#: x86 u8 x s8 kernels without VNNI saturate pairs of products to int16 (module docstring of
#: accel.frontends.onnx); there the models are quantized with 7-bit weights, which cannot.
VNNI = cpu_has_vnni()
REDUCE_RANGE = VNNI is False


class Residual(torch.nn.Module):
    """conv-relu, conv + skip, relu, global average pool, flatten, gemm."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x):
        y = torch.relu(self.c1(x))
        z = torch.relu(self.c2(y) + y)
        return self.fc(torch.nn.functional.adaptive_avg_pool2d(z, 1).flatten(1))


class Branches(torch.nn.Module):
    """Strided conv, max pool, a 1x1 and a depthwise branch (ReLU6) concatenated, average
    pooling, two gemms with a ReLU between."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1, stride=1)
        self.a = torch.nn.Conv2d(8, 4, 1)
        self.b = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.fc = torch.nn.Linear(12 * 2 * 2, 16)
        self.fc2 = torch.nn.Linear(16, 10)

    def forward(self, x):
        y = torch.nn.functional.max_pool2d(torch.relu(self.c1(x)), 2)
        z = torch.cat([self.a(y), torch.clamp(self.b(y), 0, 6)], 1)
        z = torch.nn.functional.avg_pool2d(z, 2).flatten(1)
        return self.fc2(torch.relu(self.fc(z)))


class Tokens(torch.nn.Module):
    """A matmul on [N, T, K] features (MatMul), ReLU, flatten, gemm."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Linear(16, 8, bias=False)
        self.fc = torch.nn.Linear(4 * 8, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.w(x.reshape(-1, 4, 16))).flatten(1))


MODELS = {"residual": Residual, "branches": Branches, "tokens": Tokens}
SHAPE = {"residual": (3, 8, 8), "branches": (3, 8, 8), "tokens": (64,)}
VARIANTS = [(fmt, pc, act) for fmt in ("QDQ", "QOperator") for pc in (True, False)
            for act in ("QUInt8", "QInt8")]
#: Models also exported by torch.onnx.export's default (torch.export) path, in two variants.
DYNAMO = ("branches", "residual")
DYNAMO_VARIANTS = [("QDQ", True, "QUInt8"), ("QOperator", False, "QInt8")]


def _inputs(name, n, seed, spread=1.0):
    return (np.random.default_rng(seed).standard_normal((n, *SHAPE[name])) * spread).astype(np.float32)


class _Reader(quantization.CalibrationDataReader):
    def __init__(self, name):
        self.it = iter([{"x": _inputs(name, 8, i)} for i in range(4)])

    def get_next(self):
        return next(self.it, None)


@pytest.fixture(scope="session")
def onnx_models(tmp_path_factory):
    """Every model exported once and quantized in every variant (paths by (model, fmt, per
    channel, activation type)), plus the float exports."""
    out = tmp_path_factory.mktemp("onnx")
    paths = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, cls in MODELS.items():
            torch.manual_seed(0)
            model = cls().eval()
            fp = out / f"{name}_float.onnx"
            torch.onnx.export(model, (torch.from_numpy(_inputs(name, 1, 0)),), str(fp),
                              dynamo=False, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "n"}}, opset_version=17)
            paths[name, "float"] = fp
            exports = [("", fp, VARIANTS)]
            if name in DYNAMO:
                dp = out / f"{name}_float_dynamo.onnx"
                torch.onnx.export(model, (torch.from_numpy(_inputs(name, 2, 0)),), str(dp),
                                  input_names=["x"], output_names=["y"],
                                  dynamic_shapes={"x": {0: torch.export.Dim("n")}})
                exports.append(("_dynamo", dp, DYNAMO_VARIANTS))
            for tag, src, variants in exports:
                for fmt, pc, act in variants:
                    qp = out / f"{name}{tag}_{fmt}_{pc}_{act}.onnx"
                    quantization.quantize_static(
                        str(src), str(qp), _Reader(name),
                        quant_format=getattr(quantization.QuantFormat, fmt), per_channel=pc,
                        reduce_range=REDUCE_RANGE, activation_type=getattr(quantization.QuantType, act),
                        weight_type=quantization.QuantType.QInt8)
                    paths[name + tag, fmt, pc, act] = qp
    return paths


def _config(graph, **kw):
    return ArrayConfig(rows=8, cols=8, act_signed=graph.layers[0].act_signed, **kw)


@pytest.mark.parametrize("fmt, pc, act", VARIANTS)
@pytest.mark.parametrize("name", list(MODELS))
def test_onnx_codes_equal_onnxruntime(onnx_models, name, fmt, pc, act, record_property):
    """Every quantized op's codes and the logits, bit for bit, at P = Q = 32 (inputs spread
    beyond the calibration range too, so that codes clamp)."""
    record_property("vnni", VNNI)
    path = onnx_models[name, fmt, pc, act]
    assert detect_format(path) == "onnx"
    lm = load_model(path)
    assert lm.format == "onnx" and lm.extra["optimization"] == OPTIMIZATION
    graph = lm.graph
    assert graph.layers[0].act_signed == (act == "QInt8")
    assert any(lay.per_channel for lay in graph.layers) == pc
    x = np.concatenate([_inputs(name, 16, 10), _inputs(name, 16, 11, spread=3.0)])
    res = simulate(graph, [(x[:16], None), (x[16:], None)], GoldenBackend(_config(graph, pe_acc_bits=32)),
                   reference=lm.reference)
    assert [s.name for s in res.layers] == [n.name for n in graph.array_nodes]
    for s in res.layers:
        assert s.agreement["equal"] == s.agreement["compared"] > 0, (s.name, s.agreement)
        assert s.exact_mismatches == 0
    observed = set(lm.extra["observed"])
    kinds = {type(graph.node(n)) for n in observed}
    want = {"residual": {Add, AvgPool}, "branches": {MaxPool, Concat, AvgPool}, "tokens": set()}
    assert want[name] <= kinds
    run = Executor(graph, GoldenBackend(_config(graph, pe_acc_bits=32))).run(x)
    assert np.array_equal(run.logits, lm.reference(x)["logits"])      # the float logits too


@pytest.mark.parametrize("fmt, pc, act", DYNAMO_VARIANTS)
def test_onnx_torch_export_path(onnx_models, fmt, pc, act):
    """torch.onnx.export's default exporter: exact as well; its ReduceMean for adaptive average
    pooling (float in onnxruntime) is refused with the way out."""
    lm = load_model(onnx_models["branches_dynamo", fmt, pc, act])
    x = _inputs("branches", 16, 12, spread=2.0)
    res = simulate(lm.graph, [(x, None)], GoldenBackend(_config(lm.graph, pe_acc_bits=32)),
                   reference=lm.reference)
    assert len(res.layers) == 5
    assert all(s.agreement["equal"] == s.agreement["compared"] > 0 for s in res.layers)
    with pytest.raises(LayerError, match=r"\(ReduceMean\): cannot be mapped .* export with "
                                         r"dynamo=False \(GlobalAveragePool"):
        load_model(onnx_models["residual_dynamo", fmt, pc, act])


@pytest.mark.parametrize("fmt, pc, act", [("QDQ", True, "QUInt8"), ("QOperator", False, "QInt8")])
@pytest.mark.parametrize("name", ["residual", "branches"])
def test_onnx_narrow_p_equals_per_gemm_reference(onnx_models, name, fmt, pc, act):
    """At P = 16, Q = 20 (wrap) and P = 16, Q = 19 (saturate) every node value equals the golden
    model run GEMM by GEMM (tests/test_executor.py's reference_run)."""
    graph = load_model(onnx_models[name, fmt, pc, act]).graph
    x = _inputs(name, 4, 3, spread=2.0)
    for cfg in (_config(graph, pe_acc_bits=16, out_acc_bits=20),
                _config(graph, pe_acc_bits=16, out_acc_bits=19, overflow="saturate")):
        run = Executor(graph, GoldenBackend(cfg)).run(x, keep=True)
        values, arrays = reference_run(graph, x, cfg)
        for node in graph.nodes:
            assert np.array_equal(run.values[node.name], values[node.name]), node.name
        assert any(a[3] > 0 for a in arrays.values())         # the narrow P did overflow
        assert sum(s.pe_events for s in run.layers.values()) == sum(a[3] for a in arrays.values())


def test_reference_outputs_do_not_change_onnxruntime(onnx_models):
    """The extra graph outputs the reference adds leave onnxruntime's fusion (and logits) alone."""
    path = onnx_models["residual", "QDQ", True, "QUInt8"]
    lm = load_model(path)
    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPTIMIZATION)
    plain = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    x = _inputs("residual", 8, 4)
    assert np.array_equal(plain.run(None, {"x": x})[0], lm.reference(x)["logits"])


def test_integer_ops_with_constant_zero_points():
    """QuantizeLinear -> MatMulInteger / ConvInteger -> Cast -> Mul, built by hand."""
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(3)
    f32 = np.float32
    sx, zx = f32(0.0123), np.uint8(117)
    wc = rng.integers(-127, 128, (6, 3, 3, 3)).astype(np.int8)
    wl = rng.integers(-127, 128, (6 * 4 * 4, 10)).astype(np.int8)
    cc = (sx * rng.uniform(1e-3, 1e-2, (1, 6, 1, 1))).astype(f32)
    cl = (f32(0.05) * rng.uniform(1e-3, 1e-2, 10)).astype(f32)
    inits = [nh.from_array(np.array(sx), "sx"), nh.from_array(np.array(zx), "zx"),
             nh.from_array(wc, "wc"), nh.from_array(wl, "wl"), nh.from_array(cc, "cc"),
             nh.from_array(cl, "cl"), nh.from_array(np.array(f32(0.05)), "s1"),
             nh.from_array(np.array(np.uint8(3)), "z1")]
    nodes = [h.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
             h.make_node("ConvInteger", ["xq", "wc", "zx"], ["a1"], pads=[1, 1, 1, 1], strides=[2, 2]),
             h.make_node("Cast", ["a1"], ["f1"], to=T.FLOAT), h.make_node("Mul", ["f1", "cc"], ["r1"]),
             h.make_node("QuantizeLinear", ["r1", "s1", "z1"], ["q1"]),
             h.make_node("Flatten", ["q1"], ["fl"], axis=1),
             h.make_node("MatMulInteger", ["fl", "wl", "z1"], ["a2"]),
             h.make_node("Cast", ["a2"], ["f2"], to=T.FLOAT), h.make_node("Mul", ["f2", "cl"], ["y"])]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [None, 3, 8, 8])],
                     [h.make_tensor_value_info("y", T.FLOAT, [None, 10])], inits)
    model = h.make_model(g, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("ai.onnx.ml", 3)])
    graph, observed = from_onnx(model)
    assert [n.layer.kind for n in graph.array_nodes] == ["conv2d", "linear"]
    from accel.frontends.onnx import reference

    ref = reference(model, graph, observed)
    x = _inputs("residual", 8, 5, spread=2.0)
    cfg = ArrayConfig(rows=8, cols=8, pe_acc_bits=32)
    run = Executor(graph, GoldenBackend(cfg)).run(x, keep=True)
    want = ref(x)
    assert np.array_equal(run.logits, want["logits"])
    assert observed and all(np.array_equal(run.values[k], want[k]) for k in observed)


def _save(model, tmp_path, name):
    p = tmp_path / name
    onnx.save(model, str(p))
    return p


def test_unsupported_and_dynamic_models_are_named(onnx_models, tmp_path):
    class Sig(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return torch.sigmoid(self.c(x)).flatten(1)

    fp = tmp_path / "sig.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Sig().eval(), (torch.zeros(1, 3, 8, 8),), str(fp), dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "n"}}, opset_version=17)
        for fmt in ("QDQ", "QOperator"):
            qp = tmp_path / f"sig_{fmt}.onnx"
            quantization.quantize_static(str(fp), str(qp), _Reader("residual"),
                                         quant_format=getattr(quantization.QuantFormat, fmt))
            with pytest.raises(LayerError, match=r"node '/Sigmoid\w*' \(\w*Sigmoid.*\): .*cannot be "
                                                 r"mapped to the integer graph.*supported: QDQ"):
                load_model(qp)
        dp = tmp_path / "dyn.onnx"
        quantization.quantize_dynamic(str(onnx_models["tokens", "float"]), str(dp))
    with pytest.raises(LayerError, match=r"\(DynamicQuantizeLinear\): dynamic quantization computes "
                                         r"activation scales at run time .*quantize_static"):
        load_model(dp)
    with pytest.raises(LayerError, match=r"node '/c1/Conv' \(Conv\): cannot be mapped to the "
                                         r"integer graph \(it computes on real values, 'x'"):
        load_model(onnx_models["residual", "float"])


def test_bad_files_are_one_clear_error(onnx_models, tmp_path):
    good = onnx_models["residual", "QOperator", True, "QUInt8"].read_bytes()
    (tmp_path / "cut.onnx").write_bytes(good[: len(good) // 3])
    (tmp_path / "junk.onnx").write_text("not a model")
    for name in ("cut.onnx", "junk.onnx"):
        with pytest.raises(LayerError, match=rf"model .*{name} cannot be read as an ONNX model "
                                             r"\(corrupt, truncated or another kind of file\)"):
            load_model(tmp_path / name)
    with pytest.raises(LayerError, match="does not exist"):
        load_model(tmp_path / "missing.onnx")


def test_weights_must_be_symmetric_int8(onnx_models, tmp_path):
    qp = tmp_path / "u8w.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantization.quantize_static(str(onnx_models["residual", "float"]), str(qp),
                                     _Reader("residual"), quant_format=quantization.QuantFormat.QOperator,
                                     activation_type=quantization.QuantType.QUInt8,
                                     weight_type=quantization.QuantType.QUInt8)
    with pytest.raises(LayerError, match=r"node '/c1/Conv_quant' \(QLinearConv\): its weights are "
                                         r"uint8; the array takes int8 weights"):
        load_model(qp)


def test_saturation_risk_flags_8_bit_weights_only(onnx_models, tmp_path):
    """Without VNNI, u8 x s8 pairs can saturate int16 with 8-bit weights, never with 7-bit ones."""
    graph = load_model(onnx_models["residual", "QOperator", True, "QUInt8"]).graph
    wide = max(int(np.abs(lay.weight).max()) for lay in graph.layers)
    assert bool(saturation_risk(graph)) == (wide > 64)
    assert saturation_risk(load_model(onnx_models["residual", "QOperator", True, "QInt8"]).graph) == []
    assert VNNI in (True, False, None)
