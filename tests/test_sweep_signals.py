"""A sweep stopped by Ctrl-C, SIGTERM or SIGKILL, and two sweeps sharing one store.

Each test runs ``accel sweep`` as a real process (its own session, like a terminal job) on a
GEMM workload slow enough (a few seconds per point) to be caught in the middle.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim.sweep.executors import LocalExecutor
from sim.sweep.run import run_sweep
from sim.sweep.store import ResultStore
from procs import workers
from test_sweep_run import gemm_points

#: About 1-3 s per point on one core.
SLOW = ["--model", "gemm", "--rows", "4", "--cols", "4", "--overflow", "saturate",
        "--gemm", "t=2048", "--gemm", "k=2048", "--gemm", "o=64", "--gemm", "dist=extreme",
        "--no-adversarial"]


def _default_sigint() -> None:
    # Python turns SIGINT into KeyboardInterrupt only where its parent left SIGINT at the
    # default; a suite started in the background (`cmd &`, nohup) passes SIG_IGN down
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def sweep(db: Path, ps: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "accel", "sweep", *SLOW, "--grid",
                             f"pe_acc_bits={ps}", "--db", str(db), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=db.parent, preexec_fn=_default_sigint)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"                       # a zombie has exited


def wait_for(cond, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def rows(db: Path) -> int:
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return c.execute("SELECT COUNT(*) FROM points").fetchone()[0]


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_stops_workers_and_says_how_to_resume(tmp_path, sig, code):
    db = tmp_path / "r.db"
    proc = sweep(db, "16,17,18,19,20,21,22,23", "--workers", "2")
    pool = wait_for(lambda: len(workers(proc.pid)) == 2 and workers(proc.pid), 60, "2 workers")
    wait_for(lambda: db.exists() and rows(db) >= 1, 120, "a first finished point")
    os.killpg(proc.pid, sig) if sig == signal.SIGINT else proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and "Traceback" not in out
    assert "run the same command again to resume" in out
    wait_for(lambda: not any(alive(p) for p in pool), 10, "the workers to stop")
    kept = rows(db)
    assert 1 <= kept < 8 and f"{kept} finished points are kept" in out
    with ResultStore(db) as store:
        assert store.claims() == []                  # released: the next sweep takes them at once


def test_workers_exit_when_the_parent_is_killed(tmp_path):
    db = tmp_path / "r.db"
    proc = sweep(db, "16,17,18,19,20,21", "--workers", "2")
    pool = wait_for(lambda: len(workers(proc.pid)) == 2 and workers(proc.pid), 60, "2 workers")
    time.sleep(1.0)                                  # the workers are inside a point now
    proc.kill()
    proc.communicate(timeout=30)
    wait_for(lambda: not any(alive(p) for p in pool), 5, "orphaned workers to exit")


def test_two_sweeps_split_the_work_and_survive_a_kill(tmp_path):
    db = tmp_path / "r.db"
    ps = "16,17,18,19,20,21,22,23"
    a = sweep(db, ps, "--workers", "1", "--json", str(tmp_path / "a.json"))
    b = sweep(db, ps, "--workers", "1", "--json", str(tmp_path / "b.json"))
    out_a, _ = a.communicate(timeout=300)
    out_b, _ = b.communicate(timeout=300)
    assert a.returncode == b.returncode == 0
    import json
    sa, sb = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "ab")
    # each point computed once: together they ran all 8, each fewer than all
    assert sa["finished"] + sb["finished"] == 8 and sa["finished"] < 8 and sb["finished"] < 8
    assert rows(db) == 8


def test_stale_claims_are_taken_over(tmp_path):
    """A sweep killed with SIGKILL leaves claims whose heartbeat stops: another takes them."""
    pts = gemm_points(ps=(16, 18))
    store = ResultStore(tmp_path / "r.db")
    assert store.claim(pts[0], "dead-sweep", stale_after=60) == "mine"
    assert store.claim(pts[0], "other", stale_after=60) == "busy"
    summary = run_sweep(pts, store, LocalExecutor(1), stale_after=0.5, poll=0.2)
    assert summary.complete and summary.finished == 2 and store.count() == 2
    assert store.claims() == [] and store.claim(pts[0], "x", 60) == "finished"


def test_a_live_claim_is_waited_for_not_recomputed(tmp_path):
    """Points held by another live sweep are not computed twice: their rows are waited for."""
    import threading

    pts = gemm_points(ps=(16, 18))
    store = ResultStore(tmp_path / "r.db")
    assert store.claim(pts[1], "other-sweep", stale_after=60) == "mine"

    def other_finishes():
        time.sleep(1.0)
        from sim.sweep.evaluate import evaluate_point
        with ResultStore(tmp_path / "r.db") as s:
            s.add(evaluate_point(pts[1]))

    t = threading.Thread(target=other_finishes)
    t.start()
    summary = run_sweep(pts, store, LocalExecutor(1), poll=0.2)
    t.join()
    assert (summary.finished, summary.by_others, summary.complete) == (1, 1, True)
