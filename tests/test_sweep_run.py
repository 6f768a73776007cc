"""Running sweeps: point evaluation, local and Dask executors, resume after a killed worker."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from accel.operands import random_operands
from accel.golden import gemm
from accel.graph import load_graph
from accel.reference import reference_gemm
from sim.sweep.adversarial import adversarial_codes
from sim.sweep.catalog import Catalog
from sim.sweep.evaluate import evaluate_point
from sim.sweep.executors import DaskExecutor, LocalExecutor, make_executor
from sim.sweep.grid import expand
from accel.progress import Progress
from sim.sweep.run import run_sweep, spread_configs
from procs import workers
from sim.sweep.spec import KEY_FIELDS, PointSpec
from sim.sweep.store import ResultStore
from test_sweep_grid import make_checkpoints

#: Columns that legitimately differ between two runs of the same point.
RUN_COLUMNS = ("seconds", "host", "finished_at")


def gemm_points(ps=(16, 18, 20, 24), **gemm_opts):
    return expand({"models": ["gemm"], "array": {"rows": 4, "cols": 4},
                   "grid": {"pe_acc_bits": list(ps)},
                   "gemm": {"t": 24, "k": 40, "o": 6, "dist": "extreme", **gemm_opts}})


def same_rows(a, b):
    strip = lambda rows: [{k: v for k, v in r.items() if k not in RUN_COLUMNS} for r in rows]  # noqa: E731
    return strip(a) == strip(b)


def test_adversarial_codes_reach_the_exact_extremes():
    rng = np.random.default_rng(1)
    w = rng.integers(-128, 128, size=(30, 7))
    x = adversarial_codes(w, (0, 255))
    s = x @ w
    pos, neg = np.where(w > 0, w, 0).sum(0), np.where(w < 0, w, 0).sum(0)
    np.testing.assert_array_equal(s[0::2].diagonal(), 255 * pos)
    np.testing.assert_array_equal(s[1::2].diagonal(), 255 * neg)
    xs = adversarial_codes(w, (-128, 127))
    np.testing.assert_array_equal((xs @ w)[0::2].diagonal(), 127 * pos - 128 * neg)
    with pytest.raises(ValueError, match="x_range must satisfy lo <= 0 <= hi, not \\(1, 255\\)"):
        adversarial_codes(w, (1, 255))
    with pytest.raises(ValueError, match="w must be a 2-D weight matrix"):
        adversarial_codes(w[0], (0, 255))


def test_gemm_point_matches_the_golden_model():
    (spec,) = gemm_points(ps=(17,))
    row = evaluate_point(spec)
    o = spec.options
    x, w, b = random_operands(spec.config, o["t"], o["k"], o["o"], o["dist"], o["seed"], o["bias"])
    ref = gemm(x, w, spec.config, b)
    assert row["accuracy"] == np.mean(ref.y == x @ w + b) < 1
    assert (row["pe_events"], row["acc_events"]) == (ref.pe_events, ref.acc_events)
    adv = gemm(adversarial_codes(w, spec.config.lane_range), w, spec.config, b)
    assert (row["adv_pe_events"], row["adv_acc_events"]) == (adv.pe_events, adv.acc_events)
    from sim.cycles import gemm_cycles
    cyc = gemm_cycles(o["t"], o["k"], o["o"], spec.config)
    assert row["cycles"] == cyc.cycles and row["macs"] == o["t"] * o["k"] * o["o"]
    assert row["utilisation"] == pytest.approx(cyc.macs / (cyc.cycles * 16))
    assert dict(zip(KEY_FIELDS, spec.key)) == {k: row[k] for k in KEY_FIELDS}
    assert row["versions"]["accel-hw"] and row["area"] is None if "area" in row else True


def test_model_point_matches_the_integer_model(tmp_path):
    cat = Catalog(make_checkpoints(tmp_path / "ck", ps=(16,), quantizers=("a2q",)))
    (spec,) = expand({"models": ["tiny"], "array": {"rows": 4, "cols": 4},
                      "grid": {"pe_acc_bits": [16]}}, catalog=cat)
    row = evaluate_point(spec)
    from models.digits import load_split
    _, _, x, y = load_split()
    (node,) = load_graph(spec.checkpoint).array_nodes       # by hand: quantize, flatten, one GEMM
    fc = node.layer
    codes = np.clip(np.rint(x.numpy().reshape(360, -1).astype(np.float64) / fc.input_scale), 0, 255)
    ref = reference_gemm(codes.astype(np.int64), fc.weight.T, spec.config, fc.bias)
    assert row["accuracy"] == np.mean(ref.y.argmax(1) == y.numpy())
    assert row["samples"] == 360 and row["float_accuracy"] == 0.875
    (lay,) = row["layers"]
    assert (lay["pe_events"], lay["acc_events"]) == (ref.pe_events, ref.acc_events)
    assert lay["pe_events"] > 0 and row["adv_pe_events"] > 0      # random weights overflow P = 16
    from sim.cycles import gemm_cycles
    assert row["cycles"] == gemm_cycles(1, 64, 10, spec.config).cycles   # one inference, batch 1


def test_a_bias_outside_q_is_an_infeasible_row_not_a_failure(tmp_path):
    cat = Catalog(make_checkpoints(tmp_path / "ck", ps=(18,), quantizers=("a2q",), bias_max=40000))
    pts = expand({"models": ["tiny"], "checkpoint_p": 18, "array": {"rows": 4, "cols": 4},
                  "grid": {"pe_acc_bits": [16, 17]}}, catalog=cat)
    narrow, wide = (evaluate_point(p) for p in pts)
    assert narrow["note"] == "layer fc: bias 40000 of channel 3 does not fit Q = 16 bits [-32768, 32767]"
    assert narrow["accuracy"] is None and narrow["pe_events"] is None and narrow["layers"] == []
    assert wide.get("note") is None and wide["accuracy"] is not None
    store = ResultStore(tmp_path / "r.db")
    summary = run_sweep(pts, store, LocalExecutor(1))
    assert summary.complete and store.count() == 2 and store.failures() == []


def test_local_sweep_resumes_and_records_failures(tmp_path):
    pts = gemm_points()
    broken = PointSpec(config=pts[0].config, model="gemm", checkpoint_hash="broken", options={})
    store = ResultStore(tmp_path / "r.db")
    lines = []

    class Lines:
        def write(self, s):
            lines.append(s)

        def flush(self):
            pass

    summary = run_sweep(pts + [broken], store, LocalExecutor(2), progress=Progress(5, "t", "points", stream=Lines()))
    assert (summary.finished, summary.skipped, len(summary.failed)) == (4, 0, 1)
    assert "KeyError" in summary.failed[0]["error"] and not summary.complete
    assert store.count() == 4 and store.failures()[0]["label"] == broken.label
    assert any(s.startswith("t 5/5 points 100 %") for s in lines)
    lines.clear()
    again = run_sweep(pts, store, LocalExecutor(2), progress=Progress(4, "t", "points", stream=Lines()))
    assert (again.finished, again.skipped, again.complete) == (0, 4, True)
    # a resumed run counts the stored points in the total, not in its rate
    assert lines == [] and again.points == 4


def test_points_of_one_configuration_are_spread_out():
    pts = gemm_points(ps=(16, 18, 20))
    pts = pts + [
        PointSpec(config=p.config, model="gemm", checkpoint_hash=f"other{i}", options=p.options)
        for i, p in enumerate(pts)]                      # two points per configuration
    same_first = sorted(pts, key=lambda p: p.config.pe_acc_bits)
    order = spread_configs(same_first)
    assert sorted(map(id, order)) == sorted(map(id, pts))
    assert [p.config.pe_acc_bits for p in order] == [16, 18, 20, 16, 18, 20]


def test_executor_errors():
    from sim.sweep.errors import SweepError
    with pytest.raises(SweepError, match="--workers must be a positive integer, not 0"):
        make_executor("local", 0)
    with pytest.raises(SweepError, match="--executor dask needs --scheduler ADDRESS"):
        make_executor("dask")
    with pytest.raises(SweepError, match="--scheduler is only used with --executor dask"):
        make_executor("local", 2, "tcp://x:1")
    with pytest.raises(SweepError, match="--executor must be one of local, dask, not 'slurm'"):
        make_executor("slurm")


def test_dask_executor_gives_the_same_rows(tmp_path):
    distributed = pytest.importorskip("distributed")
    pts = gemm_points()
    local = ResultStore(tmp_path / "local.db")
    run_sweep(pts, local, LocalExecutor(2))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        dask = ResultStore(tmp_path / "dask.db")
        summary = run_sweep(pts, dask, DaskExecutor(cluster.scheduler_address))
    assert summary.complete and summary.finished == len(pts)
    assert same_rows(local.rows(), dask.rows())


def _sweep_cmd(db):
    return [sys.executable, "-m", "accel", "sweep", "--model", "gemm", "--rows", "4", "--cols", "4",
            "--grid", "pe_acc_bits=16,17,18,19,20,21,22,23", "--gemm", "t=2048", "--gemm", "k=256",
            "--gemm", "dist=extreme", "--db", str(db)]


def _rows_in(db):
    try:
        with sqlite3.connect(db) as c:
            return c.execute("SELECT COUNT(*) FROM points").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find worker processes")
def test_killed_worker_then_rerun_completes_without_duplicates(tmp_path):
    db = tmp_path / "r.db"
    proc = subprocess.Popen(_sweep_cmd(db), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while _rows_in(db) < 1 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    pids = workers(proc.pid)
    assert pids, "no worker process found"
    os.kill(pids[0], signal.SIGKILL)                       # a worker dies mid-sweep
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "lost" in out and "run the same command again to resume" in out
    first = _rows_in(db)
    assert 1 <= first < 8
    with sqlite3.connect(db) as c:
        kept = c.execute("SELECT config_hash, finished_at FROM points").fetchall()
    rerun = subprocess.run(_sweep_cmd(db), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{8 - first} run now, {first} already in" in rerun.stdout
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT COUNT(*), COUNT(DISTINCT config_hash) FROM points").fetchone() == (8, 8)
        assert set(kept) <= set(c.execute("SELECT config_hash, finished_at FROM points").fetchall())


def test_killed_sweep_process_resumes(tmp_path):
    db = tmp_path / "r.db"
    proc = subprocess.Popen(_sweep_cmd(db), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while _rows_in(db) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)                       # the whole sweep, workers included
    proc.wait(30)
    first = _rows_in(db)
    assert 2 <= first < 8
    rerun = subprocess.run(_sweep_cmd(db), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert _rows_in(db) == 8


def test_pool_broken_between_points_loses_them_cleanly(monkeypatch, tmp_path):
    """A worker dying while the next point is being queued (submit raises BrokenProcessPool) is
    a lost point with the resume advice, never a traceback out of the sweep."""
    import concurrent.futures.process as cfp
    import sim.sweep.executors as ex

    class BreaksOnThirdSubmit(cfp.ProcessPoolExecutor):
        calls = 0

        def submit(self, *a, **k):
            type(self).calls += 1
            if type(self).calls >= 3:
                raise cfp.BrokenProcessPool("a child process terminated abruptly")
            return super().submit(*a, **k)

    monkeypatch.setattr(ex, "ProcessPoolExecutor", BreaksOnThirdSubmit)
    pts = gemm_points()
    store = ResultStore(tmp_path / "r.db")
    summary = run_sweep(pts, store, LocalExecutor(1))
    assert summary.finished >= 1 and summary.lost >= 1 and not summary.complete
    assert summary.finished + summary.lost <= len(pts)
    assert len(store.rows()) == summary.finished
