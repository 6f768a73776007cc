"""Bring your own model, on real data: the Fashion-MNIST reference network as an ONNX QDQ file
made by onnxruntime's own quantizer (models.onnx_twin), run by `accel simulate` and `accel sweep`
on the Fashion-MNIST test images. At P = Q = 32 every observed code equals onnxruntime's; at a
narrow P the events equal the executor's run of the same graph on the golden back end."""

import json

import pytest

from accel.cli import main
from accel.data import fashion_mnist_dir
from sim.sweep.catalog import default_checkpoint_dir

pytest.importorskip("onnxruntime")
FLOAT = default_checkpoint_dir() / "fashion_float_s0.pt"
pytestmark = pytest.mark.skipif(
    not (fashion_mnist_dir() / "t10k-images-idx3-ubyte.gz").is_file(),
    reason="the Debian package dataset-fashion-mnist is not installed")
#: Test images run (the first of the test split).
LIMIT = 512
#: Images run at a narrow P, where many outputs overflow and the screen refines them.
NARROW = 64


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    from models.onnx_twin import export_qdq

    return export_qdq(FLOAT, tmp_path_factory.mktemp("twin") / "fashion_qdq.onnx", calibration=256)


def _simulate(capsys, path, *flags, limit=LIMIT):
    assert main(["simulate", str(path), "--data", "fashion-mnist", "--limit", str(limit),
                 "--no-extremes", "--json", "-", *flags]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_twin_runs_exactly_as_onnxruntime_at_p32(twin, capsys):
    res = _simulate(capsys, twin, "--rows", "8", "--cols", "8")
    names = [lay["name"] for lay in res["layers"]]
    assert names[0].startswith("/stem/") and names[-1].startswith("/fc/")   # the file's own names
    compared = [lay["agreement"] for lay in res["layers"] if lay.get("agreement")]
    assert len(compared) == len(res["layers"])
    assert all(a["equal"] == a["compared"] > 0 for a in compared)
    assert res["accuracy"] == res["reference_accuracy"] > 0.7
    assert all(lay["pe_events"] == lay["acc_events"] == 0 for lay in res["layers"])


def test_twin_at_narrow_p_equals_the_executor(twin, capsys):
    """P = 16 makes the 8-bit post-training quantized model overflow; the CLI's counts are the golden back end's."""
    from accel.backends import GoldenBackend
    from accel.config import ArrayConfig
    from accel.data import load_data
    from accel.executor import simulate
    from accel.frontends import load_model

    res = _simulate(capsys, twin, "--rows", "8", "--cols", "8", "--pe-acc-bits", "16",
                    "--out-acc-bits", "32", limit=NARROW)
    assert sum(lay["pe_events"] for lay in res["layers"]) > 0
    data = load_data("fashion-mnist", split="test")
    cfg = ArrayConfig(rows=8, cols=8, pe_acc_bits=16, out_acc_bits=32)
    want = simulate(load_model(twin).graph, [(data.x[:NARROW], data.y[:NARROW])], GoldenBackend(cfg))
    assert [(lay["name"], lay["pe_events"], lay["acc_events"]) for lay in res["layers"]] == [
        (st.name, st.pe_events, st.acc_events) for st in want.layers]
    assert res["accuracy"] == pytest.approx(want.accuracy)


def test_twin_sweeps_with_its_data_only(twin, tmp_path, capsys):
    args = ["sweep", "--model", str(twin), "--grid", "pe_acc_bits=16,32", "--rows", "8",
            "--cols", "8", "--workers", "1", "--no-adversarial", "--db", str(tmp_path / "r.db")]
    assert main(args) == 2
    assert "--data" in capsys.readouterr().err
    out = tmp_path / "rows.json"
    assert main([*args, "--data", "fashion-mnist", "--limit", "128", "--export-json",
                 str(out)]) == 0, capsys.readouterr().err
    rows = {r["pe_acc_bits"]: r for r in json.loads(out.read_text())}
    assert set(rows) == {16, 32} and rows[32]["accuracy"] > 0.7
    # Q = P = 16 cannot hold the stem's bias: the point is recorded as infeasible, with why
    assert rows[16]["accuracy"] is None and "does not fit Q = 16 bits" in rows[16]["note"]
