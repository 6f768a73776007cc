"""Sweeps over model files (``accel sweep --model FILE``) and named data (``--data``, ``--limit``):
the rows equal the executor's own run of that file on that data, the data is part of the
workload's identity, and bad files or data are one-line errors before any work."""

import json

import numpy as np
import pytest

from accel.backends import GoldenBackend
from accel.cli import main
from accel.config import ArrayConfig
from accel.data import load_data
from accel.executor import simulate
from accel.graph import load_graph
from models.random_nets import reference_graph
from sim.sweep.catalog import default_checkpoint_dir

SHIPPED = default_checkpoint_dir() / "cnn_a2q_n8_p16_s0.pt"
ARRAY = ["--rows", "4", "--cols", "4", "--workers", "1", "--no-adversarial"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A model file outside any checkpoint folder: the random digits CNN, quantized here."""
    graph, _ = reference_graph("digits-cnn-random", seed=3)
    graph.meta["dataset"] = "digits"
    del graph.meta["model"]             # named by its file
    path = tmp_path_factory.mktemp("byom") / "mynet.pt"
    graph.save(path)
    return path


def _rows(tmp_path, capsys, args):
    out = tmp_path / "rows.json"
    assert main(["sweep", *args, *ARRAY, "--db", str(tmp_path / "r.db"),
                 "--export-json", str(out)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    return json.loads(out.read_text())


def test_model_file_rows_equal_the_executor_on_its_data(model_file, tmp_path, capsys):
    rows = _rows(tmp_path, capsys, ["--model", str(model_file), "--limit", "60",
                                    "--grid", "pe_acc_bits=16,18"])
    assert [(r["model"], r["pe_acc_bits"], r["samples"]) for r in rows] == [
        ("mynet", 16, 60), ("mynet", 18, 60)]
    graph = load_graph(model_file)
    test = load_data("digits", split="test")
    for r in rows:
        cfg = ArrayConfig(rows=4, cols=4, pe_acc_bits=r["pe_acc_bits"])
        res = simulate(graph, [(test.x[:60], test.y[:60])], GoldenBackend(cfg))
        assert r["accuracy"] == pytest.approx(res.accuracy)
        assert r["pe_events"] == sum(s.pe_events for s in res.layers)
        assert r["target_p"] == 0          # not trained for a P: it serves every array


def test_named_data_is_another_workload(tmp_path, capsys):
    """The shipped checkpoint as a file on the same data as the catalog's run is the same point;
    on a slice of it (``--limit``) a different one (resume must not mistake one for the other)."""
    by_name = _rows(tmp_path, capsys, ["--model", "cnn", "--quantizer", "a2q",
                                       "--grid", "pe_acc_bits=16"])
    by_file = _rows(tmp_path, capsys, ["--model", str(SHIPPED), "--grid", "pe_acc_bits=16"])
    assert len(by_file) == 1 and by_file[0]["checkpoint_hash"] == by_name[0]["checkpoint_hash"]
    sliced = _rows(tmp_path, capsys, ["--model", str(SHIPPED), "--limit", "100",
                                      "--grid", "pe_acc_bits=16"])
    hashes = {r["checkpoint_hash"] for r in sliced}
    assert len(sliced) == 2 and len(hashes) == 2
    assert sorted(r["samples"] for r in sliced) == [100, 360]


def test_data_file_with_labels(model_file, tmp_path, capsys):
    test = load_data("digits", split="test")
    np.save(tmp_path / "x.npy", test.x[:40])
    np.save(tmp_path / "y.npy", np.zeros(40, np.int64))
    rows = _rows(tmp_path, capsys, ["--model", str(model_file), "--data", str(tmp_path / "x.npy"),
                                    "--labels", str(tmp_path / "y.npy"), "--grid",
                                    "pe_acc_bits=20"])
    graph = load_graph(model_file)
    res = simulate(graph, [(test.x[:40], np.zeros(40, np.int64))],
                   GoldenBackend(ArrayConfig(rows=4, cols=4, pe_acc_bits=20)))
    assert rows[0]["samples"] == 40 and rows[0]["accuracy"] == pytest.approx(res.accuracy)


@pytest.mark.parametrize("args, message", [
    (["--model", "nets/absent.pt"], "model nets/absent.pt does not exist"),
    (["--model", "gemm", "--data", "absent.npz"],
     "data absent.npz is neither a built-in dataset (digits, fashion-mnist, random-cifar)"),
    (["--model", "gemm", "--labels", "y.npy"], "data names no path; labels need one"),
    (["--model", "gemm", "--limit", "0"], "data limit must be at least 1, not 0"),
    (["--model", "nets/model.xyz"], "cannot tell the format of nets/model.xyz"),
    (["--model", "model.xyz"], "unknown model 'model.xyz'; known models are gemm, cnn, fashion-resnet, mlp"),
])
def test_bad_model_files_and_data_exit_2_before_work(args, message, tmp_path, capsys):
    db = tmp_path / "r.db"
    code = main(["sweep", *args, "--db", str(db)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.startswith("accel sweep: error:")
    assert not db.exists()
