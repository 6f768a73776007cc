"""Reference models and committed checkpoints: reproducible accuracy, and no overflow for every
A2Q / A2Q+ checkpoint at its P and at the Q its report gives (test set and adversarial inputs).

Every checkpoint runs on its own dataset (``meta["dataset"]``: digits, or Fashion-MNIST for the
residual CNN, whose overflow checks use the first :data:`FASHION_CHECK` test images)."""

import dataclasses
import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from accel.config import ArrayConfig
from accel.golden import gemm
from accel.layers import LayerError
from accel.backends import GoldenBackend
from accel.executor import simulate
from accel.data import model_data
from accel.graph import load_graph
from models.digits import build_model, load_split
from models.recipes import Recipe, float_accuracy, int_accuracy, load_float, train_float

CKPT = Path(__file__).resolve().parents[1] / "models" / "checkpoints"
INT_CKPTS = sorted(p for p in CKPT.glob("*.pt") if "_float_" not in p.name)
AWARE = [p for p in INT_CKPTS if "_a2q" in p.name]
FLOATS = sorted(CKPT.glob("*_float_*.pt"))
#: Fashion-MNIST test images the overflow checks run on (the accuracy checks use all 10,000).
FASHION_CHECK = 2000


@functools.lru_cache(maxsize=2)
def _test_split(dataset: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    ds = model_data({"dataset": dataset})
    return torch.from_numpy(ds.x), torch.from_numpy(ds.y)


def checkpoint_data(meta: dict, limit: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The test split of a checkpoint's dataset (``limit``: Fashion-MNIST's first images only)."""
    x, y = _test_split(meta.get("dataset"))
    n = FASHION_CHECK if limit and meta.get("dataset") == "fashion-mnist" else len(y)
    return x[:n], y[:n]


@pytest.fixture(scope="module")
def split():
    return load_split()


def test_split_is_fixed_and_stratified(split):
    xtr, ytr, xte, yte = split
    assert xtr.shape == (1437, 1, 8, 8) and xte.shape == (360, 1, 8, 8)
    assert float(xtr.max()) == 16.0 and float(xtr.min()) == 0.0
    counts = np.bincount(yte.numpy(), minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37                 # ~36 per class
    again = load_split()
    assert torch.equal(again[0], xtr) and torch.equal(again[3], yte)


def test_unknown_model_is_an_error():
    with pytest.raises(ValueError, match=r"unknown reference model 'resnet'; valid: mlp, cnn"):
        build_model("resnet")


def test_recipe_is_deterministic():
    r = Recipe(float_epochs=1)
    a, acc_a = train_float("mlp", 3, r)
    b, acc_b = train_float("mlp", 3, r)
    assert acc_a == acc_b
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_checkpoints_are_committed():
    names = {p.name for p in CKPT.glob("*.pt")}
    for want in ("cnn_float_s0.pt", "mlp_float_s0.pt", "cnn_a2q_n8_p16_s0.pt",
                 "cnn_a2qplus_n8_p16_s0.pt", "cnn_oaq_n8_p16_s0.pt", "cnn_a2qplus_n4_p10_s0.pt",
                 "cnn_baseline_n8_p32_s0.pt", "mlp_a2qplus_n8_p16_s0.pt"):
        assert want in names
    assert all(p.stat().st_size < 200_000 for p in CKPT.glob("*.pt"))


@pytest.mark.parametrize("path", FLOATS, ids=lambda p: p.name)
def test_float_checkpoint_reproduces_its_accuracy(path):
    model, meta = load_float(path)
    assert meta["provenance"]["seed"] == 0 and meta["provenance"]["threads"] == 1
    assert float_accuracy(model, *checkpoint_data(meta)) == meta["accuracy"]


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.slow) if p.name.startswith(
    "fashion_") else p for p in INT_CKPTS], ids=lambda p: p.name)
def test_int_checkpoint_reproduces_its_accuracy(path):
    """The recorded accuracy, on the whole test split (Fashion-MNIST's 10,000 images, 20-60 s a
    checkpoint here: -m slow; its codes are checked on 256 images by test_paths_agree)."""
    m = load_graph(path)
    meta = m.meta
    assert {"seed", "recipe", "torch", "threads"} <= set(meta["provenance"])
    cfg = ArrayConfig.from_dict(meta["config"])
    acc, layers = int_accuracy(m, *checkpoint_data(meta), cfg)
    assert acc == meta["accuracy"]
    assert layers == meta["layers"]
    for lay in m.layers:                        # integers, scales, zero points and biases stored
        assert lay.weight.dtype == np.int64 and lay.input_zero_point == 0 and lay.bias is not None
    if meta["quantizer"] == "oaq":
        assert set(meta["oaq"]) == {"clamps", "residual_train", "residual_test"}


def _adversarial(wk: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Each channel's input at the extreme that maximises, then minimises, its partial sums."""
    return np.concatenate([np.where(wk.T > 0, hi, lo), np.where(wk.T > 0, lo, hi)])


@pytest.mark.parametrize("path", AWARE, ids=lambda p: p.name)
@pytest.mark.parametrize("mode", ["wrap", "saturate"])
def test_accumulator_aware_checkpoints_never_overflow(path, mode):
    m = load_graph(path)
    x, y = checkpoint_data(m.meta, limit=True)
    cfg = dataclasses.replace(ArrayConfig.from_dict(m.meta["config"]), overflow=mode)
    q_report = m.meta["min_safe_q"]
    assert m.meta["min_safe_p"] <= cfg.pe_acc_bits
    for q in sorted({cfg.out_bits, q_report}):
        c = dataclasses.replace(cfg, out_acc_bits=max(q, cfg.pe_acc_bits))
        res = simulate(m, [(x.numpy(), y.numpy())], GoldenBackend(c))
        assert all(s.pe_events == 0 and s.acc_events == 0 for s in res.layers), res.layers
        for lay in m.layers:
            wk = lay.weight.reshape(lay.out_channels, -1).T
            res = gemm(_adversarial(wk, *lay.input_range), wk, c, lay.bias)
            assert res.pe_events == 0 and res.acc_events == 0, lay.name


def test_a2qplus_not_worse_than_a2q_at_smallest_p():
    """At N = 4, P = 10, A2Q collapsed on seed 0 and is not shipped; A2Q+ is."""
    for bits, p in ((8, 16), (4, 12)):
        a = load_graph(CKPT / f"cnn_a2q_n{bits}_p{p}_s0.pt").meta["accuracy"]
        b = load_graph(CKPT / f"cnn_a2qplus_n{bits}_p{p}_s0.pt").meta["accuracy"]
        assert b >= a
    assert not (CKPT / "cnn_a2q_n4_p10_s0.pt").exists()
    assert load_graph(CKPT / "cnn_a2qplus_n4_p10_s0.pt").meta["accuracy"] > 0.9


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(LayerError, match=r"cannot be read"):
        load_graph(bad)
    with pytest.raises(ValueError, match=r"is not a float checkpoint|cannot be read"):
        load_float(bad)
    with pytest.raises(ValueError, match=r"does not exist"):
        load_float(tmp_path / "missing.pt")


def test_sweep_table_aggregates_seeds():
    from models.sweep import table

    def seed(acc, ev):
        layers = [{"name": "0", "outputs": 1, "pe_events": ev, "acc_events": 2 * ev, "affected": 1}]
        return {"float": 0.99, "rows": [
            {"quantizer": "baseline", "bits": 8, "p": 16, "accuracy": acc, "layers": layers},
            {"quantizer": "a2q", "bits": 8, "p": 16, "accuracy": 0.5, "layers": layers},
            {"quantizer": "oaq", "bits": 8, "p": 16, "error": "OAQ layer '0': ..."}]}

    text = table([seed(0.2, 10), seed(0.4, 20)])
    assert "| float | - | 99.0 ± 0.0 |" in text
    assert "| 8 | 16 | 30.0 ± 10.0 | 50.0 ± 0.0 | - | - (2 failed) | 0: 15 / 30 |" in text
    partial = seed(0.3, 30)                        # a seed still running: only its first row
    partial["rows"] = partial["rows"][:1]
    text = table([seed(0.2, 10), seed(0.4, 20), partial])
    assert "| 8 | 16 | 30.0 ± 8.2 | 50.0 ± 0.0 (2 of 3 seeds) |" in text


@pytest.mark.parametrize("path", INT_CKPTS, ids=lambda p: p.name)
def test_every_shipped_checkpoint_is_well_above_chance(path):
    """Ten classes: chance is 10 %; a checkpoint that collapsed at its own P is not shipped
    (models.sweep.MIN_SHIPPED_ACCURACY)."""
    from models.sweep import MIN_SHIPPED_ACCURACY

    assert load_graph(path).meta["accuracy"] >= MIN_SHIPPED_ACCURACY > 0.1


def test_layers_carry_the_model_names():
    assert [n.name for n in load_graph(CKPT / "cnn_a2qplus_n8_p16_s0.pt").array_nodes] == [
        "conv1", "conv2", "fc"]
    assert [n.name for n in load_graph(CKPT / "mlp_baseline_n8_p32_s0.pt").array_nodes] == [
        "fc1", "fc2"]
