"""``accel cosim``: a shipped checkpoint on the RTL, the table and JSON, resume, stalls, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accel.cli import main
from sim.runner import simulator_missing

ROOT = Path(__file__).resolve().parent.parent
MLP = str(ROOT / "models" / "checkpoints" / "mlp_a2q_n8_p16_s0.pt")
#: The cocotb suite's 4x4 configuration (its harness build is shared with tests/test_cosim.py).
ARRAY = ["--rows", "4", "--cols", "4", "--pe-acc-bits", "16", "--overflow", "saturate",
         "--acc-depth", "8"]

needs_verilator = pytest.mark.skipif(simulator_missing("verilator") is not None,
                                     reason=str(simulator_missing("verilator")))


@needs_verilator
def test_cosim_checkpoint_table_json_and_resume(tmp_path, capsys):
    out = tmp_path / "cosim"
    base = ["cosim", MLP, *ARRAY, "--batch", "4", "-o", str(out)]
    assert main(base + ["--limit", "8", "--workers", "1", "--json", str(tmp_path / "a.json")]) == 0
    text = capsys.readouterr()
    assert "4/4 GEMMs" in text.err
    for part in ("layer", "RTL cycles", "closed form", "sim cycles/s", "fc1", "fc2", "total",
                 "accuracy from the RTL's outputs", "every GEMM's measured cycles equal the "
                 "closed form", "PASSED: "):
        assert part in text.out, part
    first = json.loads((tmp_path / "a.json").read_text())
    assert first["ok"] and first["samples"] == 8 and first["total"]["gemms"] == 4
    assert all(l["cycles"] == l["closed_form"] > 0 and l["mismatches"] == 0
               for l in first["layers"])
    assert first["total"]["y_beats"] == 8 * (16 + 3)        # T = 8: 64/4 and 10/4 column groups
    # golden accuracy on the same images and the same array
    assert main(["simulate", MLP, *ARRAY, "--limit", "8", "--no-extremes", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == first["accuracy"]
    # twice the images on two workers: the first two batches of each layer come from the cache
    assert main(base + ["--limit", "16", "--json", str(tmp_path / "b.json")]) == 0
    second = json.loads((tmp_path / "b.json").read_text())
    assert second["total"]["gemms"] == 8 and second["total"]["cached"] == 4
    assert "8 GEMMs (4 from the cache" in capsys.readouterr().out


@needs_verilator
def test_cosim_with_gaps_and_backpressure(tmp_path, capsys):
    argv = ["cosim", MLP, *ARRAY, "--limit", "4", "--workers", "1", "--gaps", "0.3",
            "--stalls", "0.2", "--max-stall", "5", "-o", str(tmp_path), "--json", "-"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and not data["stimulus"]["canonical"]
    assert all(l["cycles"] > l["closed_form"] for l in data["layers"])


@pytest.mark.parametrize("argv, msg", [
    (["--gaps", "1.5"], "--gaps must be a probability in [0, 1), not 1.5"),
    (["--stalls", "-0.1"], "--stalls must be a probability in [0, 1), not -0.1"),
    (["--max-gap", "0"], "--max-gap must be at least 1 clock edge, not 0"),
    (["--workers", "0"], "--workers must be a positive integer, not 0"),
    (["--batch", "0"], "--batch must be at least 1, not 0"),
])
def test_cosim_errors(argv, msg, capsys):
    assert main(["cosim", MLP, *argv]) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err


def test_cosim_output_folder_checked_first(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["cosim", MLP, "-o", str(blocker)]) == 2
    assert "-o/--out-dir" in capsys.readouterr().err


def test_cosim_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["cosim", "--help"])
    out = capsys.readouterr().out
    assert "accel cosim models/checkpoints/cnn_a2qplus_n8_p20_s0.pt" in out and "--replay" in out
    # GEMMs of 32 images (parallel, resumable, quick to replay), not the executor's 256-image batch
    assert "images per GEMM: one GEMM per layer, batch and group, each from reset (default 32)" \
        in " ".join(out.split())


def test_verify_replay_errors(tmp_path, capsys):
    assert main(["verify", "--replay", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert f"--replay {tmp_path / 'none'}: no such folder" in err
    assert main(["verify", "--replay", str(tmp_path), "--scenario", "stall"]) == 2
    assert "cannot be combined with --scenario" in capsys.readouterr().err
