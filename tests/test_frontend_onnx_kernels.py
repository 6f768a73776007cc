"""onnxruntime's quantized kernels one at a time: single-op models built by hand, mapped by the
ONNX front end and run by the executor, against onnxruntime on inputs chosen where the plausible
other evaluations (operand order, float64, no fma) round differently, so each test also shows
that the replicated formula is the one onnxruntime computes."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto as T  # noqa: E402
from onnx import helper as h  # noqa: E402
from onnx import numpy_helper as nh  # noqa: E402

from accel.backends import GoldenBackend  # noqa: E402
from accel.config import ArrayConfig  # noqa: E402
from accel.executor import Executor  # noqa: E402
from accel.frontends.onnx import from_onnx, reference  # noqa: E402

F = np.float32
MS = "com.microsoft"


def _model(nodes, shape, out_type, inits):
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, shape)],
                     [h.make_tensor_value_info("y", out_type, None)],
                     [nh.from_array(np.asarray(v), k) for k, v in inits.items()])
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17), h.make_opsetid(MS, 1)])


def _both(model, x, signed=False):
    """(the graph's output codes, onnxruntime's) on input ``x``."""
    graph, observed = from_onnx(model)
    cfg = ArrayConfig(rows=8, cols=8, pe_acc_bits=32, act_signed=signed)
    got = Executor(graph, GoldenBackend(cfg)).run(x).logits
    return got, reference(model, graph, observed)(x)["logits"]


def test_quantize_linear_divides_in_fp32():
    rng = np.random.default_rng(0)
    s, z = F(0.0371), np.uint8(7)
    x = np.concatenate([rng.normal(0, 3, 2000), (np.arange(-300, 300) + 0.5) * float(s)]).astype(F)
    m = _model([h.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])], [None], T.UINT8,
               {"s": s, "z": z})
    got, want = _both(m, x)
    assert np.array_equal(got, want)
    f64 = np.clip(np.rint(x.astype(np.float64) / float(s)) + 7, 0, 255)
    assert np.any(f64 != want)                   # a float64 division rounds other ties


def _conv_case(rng, o):
    """Per-channel weight scales and accumulators (the int32 bias, input codes at the zero point)
    where fp32(fp32(s_x s_w) / s_y) and fp32(s_x fp32(s_w / s_y)) round the output apart."""
    sx, sy = F(0.0173), F(0.0511)
    sw, bias, found = np.empty(o, F), np.empty(o, np.int64), 0
    for c in range(o):
        for _ in range(200):
            w = F(10 ** rng.uniform(-4, -3))
            m, m2 = F(sx * w) / sy, sx * F(w / sy)
            if m != m2:
                k = np.arange(0, 250)
                a = np.rint((k + 0.5) / float(m)).astype(np.int64)[:, None] + np.arange(-2, 3)
                a = a.ravel()
                diff = np.rint(a.astype(F) * m) != np.rint(a.astype(F) * m2)
                if diff.any():
                    sw[c], bias[c], found = w, a[np.argmax(diff)], found + 1
                    break
        else:
            sw[c], bias[c] = w, 0
    return sx, sy, sw, bias, found


def test_qlinearconv_requantizes_with_fp32_sx_sw_over_sy():
    rng = np.random.default_rng(1)
    o = 32
    sx, sy, sw, bias, found = _conv_case(rng, o)
    assert found >= 16
    inits = {"sx": sx, "zx": np.uint8(100), "w": np.ones((o, 1, 1, 1), np.int8), "sw": sw,
             "zw": np.zeros(o, np.int8), "sy": sy, "zy": np.uint8(0), "b": bias.astype(np.int32)}
    nodes = [h.make_node("QuantizeLinear", ["x", "sx", "zx"], ["q"]),
             h.make_node("QLinearConv", ["q", "sx", "zx", "w", "sw", "zw", "sy", "zy", "b"], ["yq"]),
             h.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"])]
    m = _model(nodes, [None, 1, 1, 3], T.FLOAT, inits)
    x = np.zeros((1, 1, 1, 3), F)                           # codes at the zero point: acc = bias
    got, want = _both(m, x)
    assert np.array_equal(got, want)
    alt = np.clip(np.rint(bias.astype(F) * (sx * (sw / sy).astype(F))), 0, 255) * sy
    assert np.sum(alt != want[0, :, 0, 0]) >= found // 2


def test_qgemm_requantizes_with_fp32_sa_sb_over_sy():
    rng = np.random.default_rng(2)
    o = 32
    sa, sy, sb, bias, found = _conv_case(rng, o)
    inits = {"sa": sa, "za": np.uint8(100), "b": np.ones((o, 1), np.int8), "sb": sb,
             "zb": np.zeros(o, np.int8), "c": bias.astype(np.int32), "sy": sy, "zy": np.uint8(0)}
    nodes = [h.make_node("QuantizeLinear", ["x", "sa", "za"], ["q"]),
             h.make_node("QGemm", ["q", "sa", "za", "b", "sb", "zb", "c", "sy", "zy"], ["yq"],
                         domain=MS, transB=1),
             h.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"])]
    got, want = _both(_model(nodes, [None, 1], T.FLOAT, inits), np.zeros((2, 1), F))
    assert np.array_equal(got, want)
    alt = np.clip(np.rint(bias.astype(F) * (sa * (sb / sy).astype(F))), 0, 255) * sy
    assert np.sum(alt != want[0]) >= found // 2


def _ort(node, inputs, out_type, inits):
    """An onnxruntime session of one node whose listed inputs are uint8/int8 graph inputs."""
    g = h.make_graph([node], "g", [h.make_tensor_value_info(n, t, None) for n, t in inputs],
                     [h.make_tensor_value_info(node.output[0], out_type, None)],
                     [nh.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17), h.make_opsetid(MS, 1)])
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _mapped(node, inits, cls, quantized=("a",)):
    """The graph node of type ``cls`` the front end builds for ``node`` whose code inputs come
    from QuantizeLinear nodes of the float input (their scales ``s_<name>``, zero points
    ``z_<name>``)."""
    qs = [h.make_node("QuantizeLinear", ["x", f"s_{q}", f"z_{q}"], [q]) for q in quantized]
    graph, _ = from_onnx(_model(qs + [node], [None], T.UINT8, inits))
    return next(n for n in graph.nodes if isinstance(n, cls))


def _add_cases(rng, want):
    """Scales and zero points of a QLinearAdd where Add's two fp32 evaluations differ."""
    from accel.nodes import Add

    a, b = (v.ravel() for v in np.meshgrid(np.arange(256), np.arange(256)))
    cases = []
    while len(cases) < want:
        sa, sb, sy = (F(10 ** rng.uniform(-3, -1)) for _ in range(3))
        za, zb, zy = (int(v) for v in rng.integers(0, 256, 3))
        kw = dict(multipliers=(sa / sy, sb / sy), input_zero_points=(za, zb), scale=float(sy),
                  zero_point=zy)
        p = Add(name="s", inputs=("a", "b"), mode="sum_products", **kw).apply(a, b)
        q = Add(name="s", inputs=("a", "b"), mode="fma_offset", **kw).apply(a, b)
        if np.any(p != q):
            cases.append(((sa, sb, sy, za, zb, zy), p))
    return a, b, cases


def test_qlinearadd_is_mlas_fma_with_folded_zero_points():
    """Every pair of uint8 codes (65536) for parameter sets where the products form differs."""
    from accel.nodes import Add

    a, b, cases = _add_cases(np.random.default_rng(3), 3)
    for (sa, sb, sy, za, zb, zy), products in cases:
        inits = {"s_a": sa, "z_a": np.uint8(za), "s_b": sb, "z_b": np.uint8(zb), "sy": sy,
                 "zy": np.uint8(zy)}
        node = h.make_node("QLinearAdd", ["a", "s_a", "z_a", "b", "s_b", "z_b", "sy", "zy"], ["y"],
                           domain=MS)
        add = _mapped(node, inits, Add, ("a", "b"))
        assert add.mode == "fma_offset"
        sess = _ort(node, [("a", T.UINT8), ("b", T.UINT8)], T.UINT8, inits)
        want = sess.run(None, {"a": a.astype(np.uint8), "b": b.astype(np.uint8)})[0]
        assert np.array_equal(add.apply(a, b), want)
        assert np.any(products != want)


def _gap_case(rng):
    """Scales of a 3x3 global average pool where fp32(s_x / fp32(s_y n)) and fp32(fp32(s_x /
    s_y) / n) round some sum apart, and those sums."""
    sums = np.arange(-9 * 128, 9 * 127 + 1)          # what nine uint8 codes around 128 reach
    while True:
        sx, sy = F(10 ** rng.uniform(-3, -1)), F(10 ** rng.uniform(-3, -1))
        m, m2 = sx / (sy * F(9)), F(np.float64(sx / sy) / 9)
        if m == m2:
            continue
        v, v2 = np.rint(sums.astype(F) * m), np.rint(sums.astype(F) * m2)
        ok = (np.abs(v) < 100) & (v != v2)
        if ok.any():
            return sx, sy, sums[ok]


def test_qlinear_global_average_pool_rescales_in_fp32():
    from accel.nodes import AvgPool

    rng = np.random.default_rng(4)
    for _ in range(3):
        sx, sy, sums = _gap_case(rng)
        zx, zy = 128, 100
        # one channel per sum: nine codes adding up to sum + 9 zx
        total = sums + 9 * zx
        x = np.repeat((total // 9)[:, None], 9, axis=1)
        x += np.arange(9)[None, :] < (total % 9)[:, None]
        x = x.reshape(1, len(sums), 3, 3)
        assert np.array_equal((x - zx).sum(axis=(2, 3)).ravel(), sums)
        inits = {"s_a": sx, "z_a": np.uint8(zx), "sy": sy, "zy": np.uint8(zy)}
        node = h.make_node("QLinearGlobalAveragePool", ["a", "s_a", "z_a", "sy", "zy"], ["y"],
                           domain=MS, channels_last=0)
        pool = _mapped(node, inits, AvgPool)
        assert pool.mode == "sum_rescale"
        want = _ort(node, [("a", T.UINT8)], T.UINT8, inits).run(None, {"a": x.astype(np.uint8)})[0]
        assert np.array_equal(pool.apply(x), want)
        old = AvgPool(name="p", inputs=("a",), global_pool=True, multiplier=float(sx / sy),
                      input_zero_point=zx, scale=float(sy), zero_point=zy).apply(x)
        assert np.any(old != want)


@pytest.mark.parametrize("k, s, p, cip", [(2, 2, 0, 0), (3, 1, 1, 0), (3, 2, 1, 1)])
def test_qlinear_average_pool_is_an_fp32_mean(k, s, p, cip):
    from accel.nodes import AvgPool

    rng = np.random.default_rng(k + s + p)
    x = rng.integers(0, 256, (4, 8, 7, 6))
    for _ in range(3):
        sx, sy = F(10 ** rng.uniform(-3, -1)), F(10 ** rng.uniform(-3, -1))
        zx, zy = (int(v) for v in rng.integers(0, 256, 2))
        inits = {"s_a": sx, "z_a": np.uint8(zx), "sy": sy, "zy": np.uint8(zy)}
        node = h.make_node("QLinearAveragePool", ["a", "s_a", "z_a", "sy", "zy"], ["y"], domain=MS,
                           kernel_shape=[k, k], strides=[s, s], pads=[p] * 4, count_include_pad=cip)
        pool = _mapped(node, inits, AvgPool)
        assert pool.mode == "f32_mean"
        want = _ort(node, [("a", T.UINT8)], T.UINT8, inits).run(None, {"a": x.astype(np.uint8)})[0]
        assert np.array_equal(pool.apply(x), want)


def test_qlinear_concat_requantizes_through_the_lookup_table():
    from accel.graph import Graph

    rng = np.random.default_rng(6)
    codes = np.arange(256).reshape(1, 1, 1, 256)
    for _ in range(5):
        s1, s2, sy = (F(10 ** rng.uniform(-3, -1)) for _ in range(3))
        z1, z2, zy = (int(v) for v in rng.integers(0, 256, 3))
        inits = {"s_a": s1, "z_a": np.uint8(z1), "s_b": s2, "z_b": np.uint8(z2), "sy": sy,
                 "zy": np.uint8(zy)}
        node = h.make_node("QLinearConcat", ["sy", "zy", "a", "s_a", "z_a", "b", "s_b", "z_b"],
                           ["y"], domain=MS, axis=1)
        qs = [h.make_node("QuantizeLinear", ["x", f"s_{q}", f"z_{q}"], [q]) for q in "ab"]
        graph, _ = from_onnx(_model(qs + [node], [None], T.UINT8, inits))
        # run the graph from the concat's inputs on: every code of both inputs
        first = [n.name for n in graph.nodes if n.inputs == (graph.input.name,)]
        values = {name: codes for name in first}
        for n in graph.nodes[1 + len(first):]:
            values[n.name] = n.apply(*[values[i] for i in n.inputs])
        got = values[graph.outputs[0]]
        want = _ort(node, [("a", T.UINT8), ("b", T.UINT8)], T.UINT8, inits).run(
            None, {"a": codes.astype(np.uint8), "b": codes.astype(np.uint8)})[0]
        assert isinstance(graph, Graph) and np.array_equal(got, want)


def test_qdq_codes_moving_ops_equal_onnxruntime():
    """DequantizeLinear -> Relu / MaxPool / Clip / Flatten -> QuantizeLinear, with and without a
    change of scale: on the codes (then requantized), as exact as onnxruntime's float ops."""
    rng = np.random.default_rng(7)
    names = ["1", "2", "3", "4"]
    scales = [F(v) for v in rng.uniform(0.005, 0.05, 4)]
    zps = [np.uint8(v) for v in rng.integers(0, 256, 4)]
    inits = {f"s{k}": v for k, v in zip(names, scales)} | {f"z{k}": v for k, v in zip(names, zps)}
    inits |= {"lo": F(-0.4), "hi": F(0.7)}

    def q(src, k, out):
        return h.make_node("QuantizeLinear", [src, f"s{k}", f"z{k}"], [out])

    def dq(src, k, out):
        return h.make_node("DequantizeLinear", [src, f"s{k}", f"z{k}"], [out])

    nodes = [q("x", "1", "a"), dq("a", "1", "ar"), h.make_node("Relu", ["ar"], ["r"]),
             q("r", "2", "b"), dq("b", "2", "br"),
             h.make_node("MaxPool", ["br"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
             q("m", "3", "c"), dq("c", "3", "cr"), h.make_node("Clip", ["cr", "lo", "hi"], ["k"]),
             q("k", "4", "d"), dq("d", "4", "dr"), h.make_node("Flatten", ["dr"], ["f"], axis=1),
             q("f", "4", "e"), dq("e", "4", "y")]
    model = _model(nodes, [None, 2, 6, 6], T.FLOAT, inits)
    graph, _ = from_onnx(model)
    ops = [n.op for n in graph.nodes]
    assert "clamp" in ops and "maxpool" in ops and ops.count("quantize") == 4
    x = rng.normal(0, 2, (64, 2, 6, 6)).astype(F)
    got, want = _both(model, x)
    assert got.shape == want.shape == (64, 18) and np.array_equal(got, want)


def test_per_channel_weights_along_another_axis_are_refused():
    sw = np.full(4, 0.01, F)
    inits = {"s_a": F(0.1), "z_a": np.uint8(0), "w": np.ones((4, 4), np.int8), "sw": sw,
             "zw": np.zeros(4, np.int8), "sy": F(0.1), "zy": np.uint8(0)}
    nodes = [h.make_node("QuantizeLinear", ["x", "s_a", "z_a"], ["a"]),
             h.make_node("DequantizeLinear", ["a", "s_a", "z_a"], ["ar"]),
             h.make_node("DequantizeLinear", ["w", "sw", "zw"], ["wr"], axis=0),
             h.make_node("MatMul", ["ar", "wr"], ["m"], name="mm"),
             h.make_node("QuantizeLinear", ["m", "sy", "zy"], ["y"])]
    with pytest.raises(Exception, match=r"node 'mm' \(MatMul\): its weights are quantized per "
                                        r"channel along axis 0; .* \(axis 1\)"):
        from_onnx(_model(nodes, [None, 4], T.UINT8, inits))
