"""``accel gemm``: results agree with the golden model; JSON output; clear errors."""

import json

import numpy as np
import pytest

from accel.cli import main
from accel.config import ArrayConfig
from accel.golden import gemm


def test_random_gemm_json_matches_golden(tmp_path, capsys):
    out = tmp_path / "g.json"
    y = tmp_path / "y.npy"
    args = ["gemm", "-T", "9", "-K", "21", "-O", "5", "--dist", "extreme", "--rows", "4",
            "--pe-acc-bits", "17", "--overflow", "saturate", "--seed", "3", "--json", str(out),
            "--save-y", str(y)]
    assert main(args) == 0
    data = json.loads(out.read_text())
    assert "PE events (P=17)" in capsys.readouterr().out
    cfg = ArrayConfig.from_dict(data["config"])
    assert cfg.rows == 4 and cfg.pe_acc_bits == 17 and data["config_hash"] == cfg.hash
    assert data["row_folds"] == 6 and data["macs"] == 9 * 21 * 5
    from accel.operands import random_operands
    x, w, b = random_operands(cfg, 9, 21, 5, "extreme", 3, True)
    ref = gemm(x, w, cfg, b)
    np.testing.assert_array_equal(np.load(y), ref.y)
    assert data["pe_events"] == ref.pe_events > 0
    assert data["acc_events"] == ref.acc_events


def test_npy_operands_and_json_stdout(tmp_path, capsys):
    x, w = np.array([[1, 2], [3, 4]]), np.array([[5], [-6]])
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    assert main(["gemm", "--x", str(tmp_path / "x.npy"), "--w", str(tmp_path / "w.npy"),
                 "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["y_min"] == -9 and data["y_max"] == -7 and data["pe_events"] == 0


@pytest.mark.parametrize("args, message", [
    (["--x", "a.npy"], "--x and --w must be given together"),
    (["-T", "0"], "-T must be a positive integer, not 0"),
    (["--pe-acc-bits", "8"], "pe_acc_bits must be between 16 and 64"),
])
def test_errors_exit_2_with_message(args, message, capsys):
    assert main(["gemm", *args]) == 2
    assert message in capsys.readouterr().err


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["gemm", "--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "--pe-acc-bits" in text and "(default 8)" in text
