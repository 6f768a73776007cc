"""``accel simulate``: a torch.ao model on the digits test split, JSON output, errors."""

from __future__ import annotations

import json
import pytest
from accel.cli import main


def test_simulate_builtin_digits(tmp_path, capsys):
    out = tmp_path / "sim.json"
    rc = main(["simulate", "--limit", "40", "--batch", "16", "--rows", "8", "--cols", "8",
               "--pe-acc-bits", "17", "--overflow", "saturate", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr()
    assert "semantics: accel integer layers" in text.out and "samples 40" in text.out
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
    assert "accel simulate --model resnet18-random" in out and "default 32" in out
