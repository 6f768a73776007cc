"""Sweep definitions: TOML and flag tables expand to points; every mistake is caught before work."""

from pathlib import Path

import numpy as np
import pytest
import torch

from accel.config import ArrayConfig
from accel.layers import IntLayer
from accel.backends import ExactBackend
from accel.executor import Executor
from accel.graph import Graph
from accel.nodes import ArrayLayer, Dequantize, Input, Quantize, Reshape
from sim.sweep.catalog import GEMM_DEFAULTS, Catalog
from sim.sweep.errors import SweepError
from sim.sweep.grid import expand, load_sweep

TINY_PS = (18, 20, 22)


def tiny_graph(layer: IntLayer, meta: dict) -> Graph:
    """Image -> 8-bit codes -> flatten -> the linear layer -> logits."""
    return Graph([Input(name="x"), Quantize(name="q", inputs=("x",), scale=layer.input_scale),
                  Reshape(name="flat", inputs=("q",), shape=(-1,)),
                  ArrayLayer(name="fc", inputs=("flat",), layer=layer),
                  Dequantize(name="out", inputs=("fc",), scale=layer.acc_scale, axis=-1)], meta=meta)


def make_checkpoints(folder: Path, ps=TINY_PS, quantizers=("a2q", "baseline"), seed=0,
                     bias_max=1000, float_accuracy=0.875) -> Path:
    """A tiny integer model (flatten -> linear 64 -> 10 on the digits images) saved as one
    checkpoint per quantizer and target P, with the sweep metadata a recipe writes, and a float
    checkpoint recording ``float_accuracy`` ("exact": the integer model's with exact sums)."""
    rng = np.random.default_rng(seed)
    bias = rng.integers(-bias_max, bias_max, size=10)
    bias[3] = bias_max
    layer = IntLayer(name="fc", kind="linear", weight=rng.integers(-127, 128, size=(10, 64)),
                     weight_scale=np.full(10, 0.01), input_scale=16 / 255, input_zero_point=0,
                     act_bits=8, weight_bits=8, bias=bias)
    folder.mkdir(parents=True, exist_ok=True)
    for q in quantizers:
        for p in ps:
            cfg = ArrayConfig(rows=4, cols=4, pe_acc_bits=p).to_dict()
            model = tiny_graph(layer, {"model": "tiny", "quantizer": q, "config": cfg,
                                       "float_accuracy": 0.9, "accuracy": 0.5})
            model.save(folder / f"tiny_{q}_p{p}.pt")
    from models.digits import load_split
    from models.recipes import FLOAT_FORMAT

    if float_accuracy == "exact":
        _, _, x, y = load_split()
        logits = Executor(model, ExactBackend(ArrayConfig(rows=4, cols=4))).run(x.numpy()).logits
        float_accuracy = float(np.mean(logits.argmax(1) == y.numpy()))
    torch.save({"format": FLOAT_FORMAT, "model": "tiny", "state_dict": {},
                "meta": {"accuracy": float_accuracy}}, folder / "tiny_float.pt")
    return folder


def gemm_table(**over):
    table = {"models": ["gemm"], "array": {"rows": 4, "cols": 4},
             "grid": {"pe_acc_bits": [16, 18, 20], "overflow": ["wrap", "saturate"]},
             "gemm": {"t": 8, "k": 20, "o": 5}}
    table.update(over)
    return table


def test_gemm_grid_is_the_cross_product():
    pts = expand(gemm_table())
    assert len(pts) == 6 and len({p.key for p in pts}) == 6
    assert {(p.config.pe_acc_bits, p.config.overflow) for p in pts} == {
        (p, m) for p in (16, 18, 20) for m in ("wrap", "saturate")}
    assert all(p.config.rows == 4 and p.quantizer == "none" and p.target_p == 0 for p in pts)
    assert pts[0].options == {**GEMM_DEFAULTS, "t": 8, "k": 20, "o": 5}
    # another workload shape is another point (its parameters are the "checkpoint hash")
    other = expand(gemm_table(gemm={"t": 9}))
    assert {p.key for p in other}.isdisjoint({p.key for p in pts})


def test_explicit_points_and_duplicates():
    pts = expand({"models": ["gemm"], "array": {"rows": 2, "cols": 2},
                  "points": [{"pe_acc_bits": 20}, {"pe_acc_bits": 24, "rows": 8}, {"pe_acc_bits": 20}]})
    assert [(p.config.pe_acc_bits, p.config.rows) for p in pts] == [(20, 2), (24, 8)]


def test_toml_file(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('models = ["gemm"]\n[array]\nrows = 4\n[grid]\npe_acc_bits = [16, 17]\n'
                 '[array.overq]\nmode = "range"\ncascade = 1\n')
    with pytest.raises(SweepError,
                       match=r"\[grid\] pe_acc_bits = 16: pe_acc_bits must be between 24 and 64"):
        expand(load_sweep(f), source=str(f))          # OverQ range needs P >= 2N + M = 24
    f.write_text('models = ["gemm"]\n[grid]\npe_acc_bits = [24, 26]\n[array.overq]\nmode = "range"\n')
    pts = expand(load_sweep(f))
    assert [p.config.overq.mode for p in pts] == ["range", "range"]


@pytest.mark.parametrize("table, message", [
    ({}, "models is required (a list of model names)"),
    ({"models": "gemm", "modles": 1}, "unknown key(s) modles; valid keys are models"),
    ({"models": [1]}, "models must be a list of model names, not [1]"),
    ({"models": ["gemm"], "array": {"rowz": 4}}, "unknown configuration field(s) rowz; valid fields"),
    ({"models": ["gemm"], "grid": {"pe_acc_bits": 16}}, "pe_acc_bits must be a non-empty list"),
    ({"models": ["gemm"], "grid": {"pe_acc_bits": [8]}},
     "[grid] pe_acc_bits = 8: pe_acc_bits must be between 16 and 64"),
    ({"models": ["gemm"], "grid": {"overflow": ["wrapp"]}}, "overflow must be one of 'wrap', 'saturate'"),
    ({"models": ["gemm"], "points": [{"rows": 0}]}, "[[points]] #1: rows must be between 1 and 1024"),
    ({"models": ["gemm"], "checkpoint_p": "latest"}, "checkpoint_p must be \"match\", \"all\""),
    ({"models": ["gemm"], "adversarial": "yes"}, "adversarial must be true or false"),
    ({"models": ["gemm"], "split": "train"}, "split must be one of 'test', not 'train'"),
    ({"models": ["gemm"], "synth": "asic"}, "synth must be one of 'generic', 'sky130', 'ice40'"),
    ({"models": ["gemm"], "gemm": {"t": 0}}, "[gemm]: t must be a positive integer, not 0"),
    ({"models": ["gemm"], "gemm": {"n": 3}}, "[gemm]: unknown key(s) n; valid keys are t, k, o"),
    ({"models": ["gemm"], "gemm": {"dist": "gauss"}}, "dist must be one of 'uniform', 'extreme'"),
    ({"models": ["gemm"], "quantizers": ["a2q"]}, "the 'gemm' workload has random integer weights"),
    ({"models": ["digits-cnn"], "gemm": {}}, "a [gemm] table is given but models does not list"),
])
def test_errors_name_what_is_wrong(table, message, tmp_path):
    with pytest.raises(SweepError) as e:
        expand(table, catalog=Catalog(make_checkpoints(tmp_path / "ck")), source="s.toml")
    assert message in str(e.value) and str(e.value).startswith("s.toml")


def test_malformed_toml_names_line(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('models = ["gemm"]\n[grid\npe_acc_bits = [16]\n')
    with pytest.raises(SweepError, match=r"bad.toml is not valid TOML: .*line 2"):
        load_sweep(f)
    with pytest.raises(SweepError, match="cannot read sweep file"):
        load_sweep(tmp_path / "missing.toml")


def test_checkpoint_selection(tmp_path):
    cat = Catalog(make_checkpoints(tmp_path / "ck"))
    assert cat.models() == ["gemm", "tiny"] and cat.quantizers("tiny") == ["a2q", "baseline"]
    base = {"models": ["tiny"], "array": {"rows": 4, "cols": 4}, "grid": {"pe_acc_bits": [18, 20]}}
    # a model retrained for each P: the checkpoint of the array's own P
    match = expand(base, catalog=cat)
    assert sorted((p.quantizer, p.config.pe_acc_bits, p.target_p) for p in match) == [
        (q, p, p) for q in ("a2q", "baseline") for p in (18, 20)]
    # one checkpoint on narrower arrays: the P = 22 checkpoint everywhere
    fixed = expand({**base, "quantizers": ["a2q"], "checkpoint_p": 22}, catalog=cat)
    assert [(p.config.pe_acc_bits, p.target_p) for p in fixed] == [(18, 22), (20, 22)]
    assert len({p.checkpoint_hash for p in fixed}) == 1
    every = expand({**base, "quantizers": ["a2q"], "checkpoint_p": "all"}, catalog=cat)
    assert len(every) == 2 * len(TINY_PS)
    # the float reference comes from the float checkpoint, not the 0.9 the integer meta records
    assert {p.options["float_accuracy"] for p in every} == {0.875}


def test_checkpoint_errors(tmp_path):
    cat = Catalog(make_checkpoints(tmp_path / "ck"))
    base = {"models": ["tiny"], "array": {"rows": 4, "cols": 4}, "grid": {"pe_acc_bits": [19]}}
    with pytest.raises(SweepError, match="no checkpoint of 'tiny' 'a2q' with N = 8, M = 8 trained for "
                                         "P = 19; target Ps available: 18, 20, 22"):
        expand({**base, "quantizers": ["a2q"]}, catalog=cat)
    with pytest.raises(SweepError, match="model 'tiny' has no checkpoints for quantizer 'a2q\\+'; "
                                         "it has a2q, baseline"):
        expand({**base, "quantizers": ["a2q+"], "checkpoint_p": 18}, catalog=cat)
    with pytest.raises(SweepError, match="unknown model 'digits-rnn'; known models are gemm, tiny"):
        expand({**base, "models": ["digits-rnn"]}, catalog=cat)
    with pytest.raises(SweepError, match="checkpoint folder .*nowhere does not exist"):
        expand({**base, "checkpoints": str(tmp_path / "nowhere")})
    (tmp_path / "ck" / "junk.pt").write_bytes(b"junk")
    with pytest.raises(SweepError, match="checkpoint .*junk.pt cannot be read \\(.*\\); remove it"):
        expand(base, catalog=Catalog(tmp_path / "ck"))
    (tmp_path / "ck" / "junk.pt").unlink()
    torch.save({"format": "something-else"}, tmp_path / "ck" / "other.pt")
    with pytest.raises(SweepError, match="checkpoint .*other.pt is not an accel integer-model checkpoint"):
        expand(base, catalog=Catalog(tmp_path / "ck"))
