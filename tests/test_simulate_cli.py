"""``accel simulate``: built-in and checkpoint models on the digits test split, JSON output, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accel.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_simulate_builtin_digits(tmp_path, capsys):
    out = tmp_path / "sim.json"
    rc = main(["simulate", "--limit", "40", "--batch", "16", "--rows", "8", "--cols", "8",
               "--pe-acc-bits", "17", "--overflow", "saturate", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr()
    assert "semantics: golden model" in text.out and "samples 40, accuracy " in text.out
    assert " %" in text.out.splitlines()[-1]                       # accuracy in percent
    assert "40/40 samples" in text.err
    data = json.loads(out.read_text())
    assert data["samples"] == 40 and [l["name"] for l in data["layers"]] == ["0", "4"]
    assert data["total_cycles"] == sum(l["cycles"] for l in data["layers"]) > 0
    assert 0.0 <= data["accuracy"] <= 1.0


@pytest.mark.parametrize("argv, msg", [
    (["--batch", "0"], "--batch must be at least 1, not 0"),
    (["--limit", "0"], "--limit must be at least 1, not 0"),
])
def test_simulate_errors(argv, msg, capsys):
    assert main(["simulate", *argv]) == 2
    assert msg in capsys.readouterr().err


def test_simulate_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    out = capsys.readouterr().out
    assert "accel simulate resnet18-random" in out and "default 32" in out


def test_simulate_checkpoint_with_overq_is_right(capsys):
    """The 4-bit digits CNN keeps its accuracy with OverQ (the integer graph carries the raw wide
    codes between layers; before it did not, and OverQ precision gave 4.69 %)."""
    ckpt = str(ROOT / "models" / "checkpoints" / "cnn_baseline_n4_p32_s0.pt")
    base = ["simulate", ckpt, "--act-bits", "4", "--weight-bits", "4", "--rows", "4",
            "--cols", "4", "--limit", "128", "--json", "-", "--no-extremes"]
    accs = []
    for extra in ([], ["--overq-mode", "precision", "--pe-acc-bits", "20"]):
        assert main(base + extra) == 0
        accs.append(json.loads(capsys.readouterr().out)["accuracy"])
    assert accs[0] >= 0.95 and abs(accs[0] - accs[1]) <= 0.02


@pytest.mark.parametrize("path, msg", [
    ("README.md", "cannot tell the format of .*README.md from its suffix '.md'; known: .pt"),
    ("text.pt", "text.pt cannot be read as a torch.save file of an integer model"),
    ("models", "is a folder"),
    ("nope.pt", "does not exist"),
])
def test_simulate_bad_checkpoint_is_one_line(path, msg, capsys, tmp_path):
    (tmp_path / "text.pt").write_text("hello\n")
    path = str(tmp_path / path if path == "text.pt" else ROOT / path)
    assert main(["simulate", path]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and __import__("re").search(msg, err[0]) and path in err[0]


def _npz(tmp_path, n=24):
    from accel.data import load_data

    d = load_data("digits")
    path = tmp_path / "digits.npz"
    import numpy as np

    np.savez(path, x=d.x[:n], y=d.y[:n])
    return path


def test_simulate_on_a_data_file_equals_the_builtin(tmp_path, capsys):
    ckpt = str(ROOT / "models" / "checkpoints" / "cnn_a2qplus_n8_p16_s0.pt")
    flags = ["--pe-acc-bits", "16", "--no-extremes", "--json", "-"]
    assert main(["simulate", ckpt, "--limit", "24", *flags]) == 0
    builtin = json.loads(capsys.readouterr().out)
    assert main(["simulate", ckpt, "--data", str(_npz(tmp_path)), *flags]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert from_file["accuracy"] == builtin["accuracy"] and from_file["samples"] == 24
    assert [l["pe_events"] for l in from_file["layers"]] == [l["pe_events"] for l in builtin["layers"]]
    assert from_file["data"].endswith("digits.npz")


@pytest.mark.parametrize("make, msg", [
    (lambda p: p.write_text("not numbers\n"), "is not a .npy array file"),
    (lambda p: __import__("numpy").save(p, __import__("numpy").zeros((0, 1, 8, 8))), "holds no samples"),
    (lambda p: __import__("numpy").save(p, __import__("numpy").zeros((2, 3, 8, 8))),
     "conv2d input must be \\[N, 1, H, W\\]"),
])
def test_bad_data_is_one_line(tmp_path, make, msg, capsys):
    path = tmp_path / "x.npy"
    make(path)
    ckpt = str(ROOT / "models" / "checkpoints" / "cnn_a2qplus_n8_p16_s0.pt")
    assert main(["simulate", ckpt, "--data", str(path), "--no-extremes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and __import__("re").search(msg, err[0]), err
