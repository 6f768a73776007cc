"""``accel quantize``: a short real run writes a checkpoint and a report; errors are clear."""

import argparse
import json

import pytest
from torch import nn

from accel.cli.quantize import Quantize
from accel.graph import load_graph


class TwoLayer(nn.Module):
    """A user model written as a plain Module (not nn.Sequential): traced, it exports whole."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(64, 16), nn.Linear(16, 10)

    def forward(self, x):
        return self.b(self.a(x.flatten(1)).relu())


def _run(argv: list[str]) -> int:
    verb = Quantize()
    parser = argparse.ArgumentParser(prog="accel quantize")
    verb.add_arguments(parser)
    return verb.run(parser.parse_args(argv))


def test_quantize_mlp_writes_checkpoint_and_report(tmp_path, capsys):
    ckpt, rep = tmp_path / "m.pt", tmp_path / "m.json"
    rc = _run(["--model", "mlp", "--quantizer", "a2q+", "--epochs", "1", "--float-epochs", "2",
               "--pe-acc-bits", "16", "--out", str(ckpt), "--json", str(rep)])
    assert rc == 0
    out = capsys.readouterr()
    assert "minimum safe P" in out.out and "a2q+ epoch 1/1" in out.err
    data = json.loads(rep.read_text())
    assert data["accuracy_kind"] == "integer, on the array" and 0.0 <= data["accuracy"] <= 1.0
    assert [r["name"] for r in data["layers"]] == ["fc1", "fc2"]        # models.digits names them
    for r in data["layers"]:
        assert {"l1_max", "l1_per_channel", "sparsity", "min_safe_p", "min_safe_q"} <= set(r)
        assert r["min_safe_p"] <= 16 and r["test_pe_events"] == 0
    m = load_graph(ckpt)
    assert m.meta["quantizer"] == "a2q+" and m.meta["config"]["pe_acc_bits"] == 16
    assert m.meta["provenance"]["seed"] == 0


def test_quantize_user_model_factory(tmp_path):
    rep = tmp_path / "u.json"
    rc = _run(["--model", "test_quant_cli:TwoLayer", "--quantizer", "baseline",
               "--epochs", "1", "--float-epochs", "1", "--out", str(tmp_path / "u.pt"),
               "--json", str(rep)])
    assert rc == 0
    data = json.loads(rep.read_text())
    assert data["accuracy_kind"] == "integer, on the array" and len(data["layers"]) == 2
    assert [n.name for n in load_graph(tmp_path / "u.pt").array_nodes] == ["a", "b"]


@pytest.mark.parametrize("argv, msg", [
    (["--epochs", "0"], r"--epochs must be at least 1, not 0"),
    (["--overq-mode", "range"], r"does not train for OverQ"),
    (["--model", "nosuch.module:f"], r"cannot load model factory 'nosuch.module:f'"),
    (["--model", "vgg"], r"unknown reference model 'vgg'"),
    (["--from", "/nonexistent/x.pt"], r"float checkpoint /nonexistent/x.pt does not exist"),
    (["--quantizer", "oaq", "--tile"], r"tile applies to the accumulator-aware quantizers"),
])
def test_quantize_errors(argv, msg, tmp_path):
    with pytest.raises(ValueError, match=msg):
        _run(argv + ["--float-epochs", "1", "--epochs", "1", "--out", str(tmp_path / "x.pt")]
             if "--epochs" not in argv else argv + ["--out", str(tmp_path / "x.pt")])


def test_help_has_examples_and_defaults():
    parser = argparse.ArgumentParser(prog="accel quantize", epilog=Quantize.examples,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    Quantize().add_arguments(parser)
    text = parser.format_help()
    assert "accel quantize --model cnn --quantizer a2q+" in text and "(default a2q+)" in text


def test_quantize_tile_bounds_folds_at_p_and_rows_at_q(tmp_path):
    rep = tmp_path / "t.json"
    rc = _run(["--model", "mlp", "--quantizer", "a2q", "--tile", "--rows", "16", "--epochs", "1",
               "--float-epochs", "1", "--pe-acc-bits", "16", "--out-acc-bits", "19",
               "--out", str(tmp_path / "t.pt"), "--json", str(rep)])
    assert rc == 0
    data = json.loads(rep.read_text())
    assert data["tile"] and data["config"]["out_acc_bits"] == 19
    for r in data["layers"]:
        assert r["min_safe_p"] <= 16 and r["min_safe_q"] <= 19
        assert r["test_pe_events"] == 0 and r["test_acc_events"] == 0
    assert max(r["a2q_l1_min_bits"] for r in data["layers"]) > 16   # the row really uses Q
