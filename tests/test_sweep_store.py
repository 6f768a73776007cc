"""The results store: unique key, resume state, concurrent writers, exports, clear errors."""

import csv
import json
import multiprocessing
import sqlite3

import pytest

from accel.config import ArrayConfig
from sim.sweep.errors import SweepError
from sim.sweep.spec import KEY_FIELDS, PointSpec
from sim.sweep.store import STORE_VERSION, ResultStore


def spec(p=20, model="gemm", synth=None, ckpt="abc"):
    return PointSpec(config=ArrayConfig(rows=4, cols=4, pe_acc_bits=p), model=model,
                     checkpoint_hash=ckpt, synth=synth)


def row_of(s, **extra):
    row = dict(zip(KEY_FIELDS, s.key))
    row.update(pe_acc_bits=s.config.pe_acc_bits, out_acc_bits=s.config.out_bits,
               rows=s.config.rows, cols=s.config.cols, overflow=s.config.overflow,
               config=s.config.to_dict(), layers=[{"name": "l0", "pe_events": 1}], **extra)
    return row


def test_insert_once_and_finished(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    s = spec()
    assert not store.finished(s)
    assert store.add(row_of(s, accuracy=0.5)) is True
    assert store.add(row_of(s, accuracy=0.9)) is False          # same key: not duplicated
    assert store.count() == 1
    row = store.rows()[0]
    assert row["accuracy"] == 0.5 and row["layers"] == [{"name": "l0", "pe_events": 1}]
    assert row["config"]["pe_acc_bits"] == 20
    assert store.finished(s) and not store.finished(spec(p=21))


def test_key_distinguishes_checkpoint_and_p(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    for s in (spec(20, ckpt="a"), spec(20, ckpt="b"), spec(21, ckpt="a"), spec(20, model="m", ckpt="a")):
        assert store.add(row_of(s))
    assert store.count() == 4


def test_synthesis_asked_later_fills_area_in_place(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    plain, synth = spec(), spec(synth="generic")
    store.add(row_of(plain, accuracy=0.7))
    assert store.finished(plain) and not store.finished(synth)
    assert store.add(row_of(synth, accuracy=0.1, area=123.0, area_unit="NAND2-eq",
                            synth_target="generic")) is False
    (row,) = store.rows()
    assert row["area"] == 123.0 and row["accuracy"] == 0.7      # area filled, nothing else replaced
    assert store.finished(synth)


def test_failures_are_recorded_then_cleared(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    s = spec()
    store.add_failure(s, "ValueError: boom", "now")
    store.add_failure(s, "ValueError: boom again", "later")
    (f,) = store.failures()
    assert f["error"] == "ValueError: boom again" and f["label"] == s.label
    assert not store.finished(s)
    store.add(row_of(s))
    assert store.failures() == []


def _writer(path, worker, n_shared, n_own):
    store = ResultStore(path)
    rows = [row_of(spec(16 + i)) for i in range(n_shared)]
    rows += [row_of(spec(16 + i, ckpt=f"w{worker}")) for i in range(n_own)]
    order = rows[worker:] + rows[:worker]
    for r in order:                      # one transaction per row, like the sweep
        store.add(r)
    store.close()


def test_concurrent_writers_never_lose_or_duplicate(tmp_path):
    path = tmp_path / "r.db"
    ResultStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 30, 10)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = ResultStore(path)
    assert store.count() == 30 + 4 * 10
    db = sqlite3.connect(path)
    dupes = db.execute(f"SELECT COUNT(*) FROM (SELECT {', '.join(KEY_FIELDS)}, COUNT(*) c FROM points "
                       f"GROUP BY {', '.join(KEY_FIELDS)} HAVING c > 1)").fetchone()[0]
    assert dupes == 0
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_exports(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    for p in (16, 18, 20):
        store.add(row_of(spec(p), accuracy=p / 100))
    rows = list(csv.DictReader(store.export_csv(tmp_path / "x" / "r.csv").open()))
    assert [int(r["pe_acc_bits"]) for r in rows] == [16, 18, 20]
    assert json.loads(rows[0]["layers"]) == [{"name": "l0", "pe_events": 1}]
    data = json.loads(store.export_json(tmp_path / "r.json").read_text())
    assert data == store.rows() and data[2]["accuracy"] == 0.2


def test_bad_rows_are_refused(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    with pytest.raises(SweepError, match="unknown result column\\(s\\) acuracy; the store's columns"):
        store.add({**row_of(spec()), "acuracy": 1})
    bad = row_of(spec())
    del bad["model"]
    with pytest.raises(SweepError, match="result row lacks key column\\(s\\) model"):
        store.add(bad)
    assert store.count() == 0


def test_bad_files_give_clear_errors(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SweepError, match="junk.db is not a usable SQLite database"):
        ResultStore(junk)
    with pytest.raises(SweepError, match="is a directory; give a database file path"):
        ResultStore(tmp_path)
    old = tmp_path / "old.db"
    ResultStore(old).close()
    db = sqlite3.connect(old)
    db.execute("UPDATE meta SET value = '0' WHERE name = 'store_version'")
    db.commit()
    db.close()
    with pytest.raises(SweepError, match=f"layout version 0; this accel-hw writes version {STORE_VERSION}"):
        ResultStore(old)


def test_a_version_1_store_gains_the_energy_columns(tmp_path):
    """A store written before the energy columns keeps its rows and takes new ones; a point that
    asks for energy is not finished until its row has it (or could not run)."""
    path = tmp_path / "old.db"
    ResultStore(path).add(row_of(spec(p=16), accuracy=0.5))
    db = sqlite3.connect(path)
    for col in ("energy_pj", "pj_per_mac"):
        db.execute(f"ALTER TABLE points DROP COLUMN {col}")
    db.execute("UPDATE meta SET value = '1' WHERE name = 'store_version'")
    db.commit()
    db.close()
    store = ResultStore(path)
    assert store.rows()[0]["accuracy"] == 0.5 and store.rows()[0]["energy_pj"] is None
    wants = PointSpec(config=ArrayConfig(rows=4, cols=4, pe_acc_bits=16), model="gemm",
                      checkpoint_hash="abc", energy="default")
    assert store.finished(spec(p=16)) and not store.finished(wants)
    store.add(row_of(spec(p=16), energy_pj=12.5))                   # filled in by a later run
    assert store.rows()[0]["energy_pj"] == 12.5 and store.finished(wants)
    (version,) = sqlite3.connect(path).execute(
        "SELECT value FROM meta WHERE name = 'store_version'").fetchone()
    assert int(version) == STORE_VERSION
