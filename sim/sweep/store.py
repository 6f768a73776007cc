"""The results store: an embedded SQLite database, one row per finished design point.

Safe for several writers at once (worker processes, or two sweeps sharing one file): the database
runs in WAL mode with a busy timeout, every write is one ``BEGIN IMMEDIATE`` transaction, and the
unique key (:data:`sim.sweep.spec.KEY_FIELDS`) makes a second insert of the same point a no-op
(``ON CONFLICT DO UPDATE`` only fills area columns a previous run left empty). A row is written
only once its point has finished, so a killed sweep leaves finished rows and nothing half-written;
the next run skips them (:meth:`ResultStore.finished`).

Sweeps that share a store split the work: a sweep *claims* a point (table ``claims``: key, owner,
heartbeat time) before computing it and skips points that another sweep has claimed; the owner
refreshes its claims' heartbeat while it runs, so the claims of a sweep that was killed go stale
and another sweep takes them over (:meth:`ResultStore.claim`).

Columns are :data:`COLUMNS` (the one schema); per-layer results and anything a workload adds are
JSON text columns (``layers``, ``extra``).
"""

from __future__ import annotations

import csv
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sim.sweep.errors import SweepError
from sim.sweep.spec import KEY_FIELDS, PointSpec

__all__ = ["ResultStore", "COLUMNS", "STORE_VERSION"]

#: Version of the table layout, kept in the ``meta`` table; a different one is refused.
STORE_VERSION = 2

#: (column, SQLite type) of the ``points`` table, key first.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("config_hash", "TEXT NOT NULL"),
    ("model", "TEXT NOT NULL"),
    ("quantizer", "TEXT NOT NULL"),
    ("act_bits", "INTEGER NOT NULL"),       # N
    ("weight_bits", "INTEGER NOT NULL"),    # M
    ("target_p", "INTEGER NOT NULL"),       # P the checkpoint was trained for (0: none)
    ("checkpoint_hash", "TEXT NOT NULL"),
    # the array
    ("rows", "INTEGER"), ("cols", "INTEGER"), ("act_signed", "INTEGER"),
    ("pe_acc_bits", "INTEGER"), ("out_acc_bits", "INTEGER"), ("overflow", "TEXT"),
    ("acc_depth", "INTEGER"), ("overq", "TEXT"), ("config", "TEXT"), ("checkpoint", "TEXT"),
    # measurements
    ("accuracy", "REAL"),                   # share of test samples right (0..1)
    ("float_accuracy", "REAL"),             # the float model's accuracy on the same split
    ("samples", "INTEGER"),
    ("pe_events", "INTEGER"), ("acc_events", "INTEGER"),
    ("adv_pe_events", "INTEGER"), ("adv_acc_events", "INTEGER"),
    ("affected_share", "REAL"),             # share of outputs with an overflowed step
    ("cycles", "INTEGER"), ("macs", "INTEGER"), ("utilisation", "REAL"),
    ("synth_target", "TEXT"), ("area", "REAL"), ("area_unit", "TEXT"),
    ("luts", "INTEGER"), ("ffs", "INTEGER"),
    ("energy_pj", "REAL"),                  # dynamic energy of one inference (pJ)
    ("pj_per_mac", "REAL"),                 # of it per useful multiply-accumulate
    ("note", "TEXT"),                       # why a point could not run (infeasible), or NULL
    ("layers", "TEXT"),                     # JSON list, one dict per layer
    ("extra", "TEXT"),                      # JSON dict of workload-specific results
    ("versions", "TEXT"),                   # JSON dict of tool versions
    ("seconds", "REAL"), ("host", "TEXT"), ("finished_at", "TEXT"),
)
_NAMES = tuple(name for name, _ in COLUMNS)
_JSON = ("layers", "extra", "versions", "config", "overq")
#: Columns a second run may fill in when the first left them empty (synthesis or energy asked
#: later).
_FILLABLE = ("synth_target", "area", "area_unit", "luts", "ffs", "energy_pj", "pj_per_mac")
#: Columns each older layout version lacks (added on opening, so old stores stay usable).
_ADDED = {1: ("energy_pj", "pj_per_mac")}


class ResultStore:
    """A results database file (created on first use).

    Parameters
    ----------
    path : str or Path
        The SQLite file (``results.db`` by default in the CLI). Its folder is created.
    timeout : float
        Seconds a writer waits for another writer's lock before failing.
    """

    def __init__(self, path: str | Path, timeout: float = 60.0) -> None:
        self.path = Path(path)
        if self.path.exists() and self.path.is_dir():
            raise SweepError(f"results store {self.path} is a directory; give a database file "
                             "path such as results.db")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            self._create()
        except sqlite3.DatabaseError as e:
            raise SweepError(f"results store {self.path} is not a usable SQLite database: {e}") from None

    # --- schema ------------------------------------------------------------------------------
    def _create(self) -> None:
        cols = ",\n  ".join(f"{n} {t}" for n, t in COLUMNS)
        key = ", ".join(KEY_FIELDS)
        with self._transaction():
            self._db.execute(f"CREATE TABLE IF NOT EXISTS points (\n  {cols},\n  UNIQUE ({key}))")
            self._db.execute("CREATE TABLE IF NOT EXISTS failures (" + ", ".join(
                f"{n} {t}" for n, t in COLUMNS[:len(KEY_FIELDS)])
                + f", label TEXT, error TEXT, finished_at TEXT, UNIQUE ({key}))")
            self._db.execute("CREATE TABLE IF NOT EXISTS claims (" + ", ".join(
                f"{n} {t}" for n, t in COLUMNS[:len(KEY_FIELDS)])
                + f", owner TEXT NOT NULL, heartbeat REAL NOT NULL, UNIQUE ({key}))")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('store_version', ?)",
                             (str(STORE_VERSION),))
        (version,) = self._db.execute(
            "SELECT value FROM meta WHERE name = 'store_version'").fetchone()
        if int(version) in _ADDED:
            self._upgrade(int(version))
            version = STORE_VERSION
        if int(version) != STORE_VERSION:
            raise SweepError(f"results store {self.path} has layout version {version}; this "
                             f"accel-hw writes version {STORE_VERSION}: use a new file")

    def _upgrade(self, version: int) -> None:
        """Add the columns later layouts added to a store of layout ``version``."""
        types = dict(COLUMNS)
        with self._transaction():
            have = {r[1] for r in self._db.execute("PRAGMA table_info(points)")}
            for v in range(version, STORE_VERSION):
                for col in _ADDED[v]:
                    if col not in have:
                        self._db.execute(f"ALTER TABLE points ADD COLUMN {col} {types[col]}")
            self._db.execute("UPDATE meta SET value = ? WHERE name = 'store_version'",
                             (str(STORE_VERSION),))

    def _transaction(self) -> "_Transaction":
        return _Transaction(self._db)

    # --- writing -----------------------------------------------------------------------------
    def add(self, row: dict[str, Any]) -> bool:
        """Insert one finished point; returns False when its key was already there.

        ``row`` holds key columns and any of :data:`COLUMNS`; dicts and lists are stored as JSON.
        A point already present is not duplicated: only its empty synthesis columns are filled.
        """
        return self.add_many([row]) == 1

    def add_many(self, rows: Iterable[dict[str, Any]]) -> int:
        """Insert rows in one transaction; returns how many were new."""
        rows = list(rows)
        for row in rows:
            unknown = sorted(set(row) - set(_NAMES))
            if unknown:
                raise SweepError(f"unknown result column(s) {', '.join(unknown)}; the store's "
                                 f"columns are {', '.join(_NAMES)}")
            missing = [k for k in KEY_FIELDS if row.get(k) is None]
            if missing:
                raise SweepError(f"result row lacks key column(s) {', '.join(missing)}")
        names = ", ".join(_NAMES)
        marks = ", ".join("?" for _ in _NAMES)
        fill = ", ".join(f"{c} = COALESCE(points.{c}, excluded.{c})" for c in _FILLABLE)
        sql = (f"INSERT INTO points ({names}) VALUES ({marks}) "
               f"ON CONFLICT ({', '.join(KEY_FIELDS)}) DO UPDATE SET {fill}")
        new = 0
        with self._transaction():
            for row in rows:
                before = self._has(tuple(row[k] for k in KEY_FIELDS))
                self._db.execute(sql, [_encode(c, row.get(c)) for c in _NAMES])
                new += not before
                for table in ("failures", "claims"):
                    self._db.execute(f"DELETE FROM {table} WHERE {_key_where()}",
                                     [row[k] for k in KEY_FIELDS])
        return new

    def add_failure(self, spec: PointSpec, error: str, finished_at: str) -> None:
        """Record that a point failed (replacing an earlier failure); a rerun retries it."""
        with self._transaction():
            self._db.execute(
                f"INSERT OR REPLACE INTO failures ({', '.join(KEY_FIELDS)}, label, error, finished_at) "
                f"VALUES ({', '.join('?' for _ in KEY_FIELDS)}, ?, ?, ?)",
                [*spec.key, spec.label, error, finished_at])
            self._db.execute(f"DELETE FROM claims WHERE {_key_where()}", list(spec.key))

    # --- claims (sweeps sharing a store) -----------------------------------------------------
    def claim(self, spec: PointSpec, owner: str, stale_after: float) -> str:
        """Try to claim a point for ``owner`` before computing it.

        Returns ``"mine"`` (claimed now, or already ours, or taken over from an owner whose
        heartbeat is older than ``stale_after`` seconds), ``"finished"`` (it has a row) or
        ``"busy"`` (another owner's claim is fresh). One transaction: two sweeps never both get
        ``"mine"`` for one point.
        """
        now = time.time()
        with self._transaction():
            if self.finished(spec):
                return "finished"
            held = self._db.execute(f"SELECT owner, heartbeat FROM claims WHERE {_key_where()}",
                                    list(spec.key)).fetchone()
            if held is not None and held[0] != owner and now - held[1] < stale_after:
                return "busy"
            self._db.execute(f"INSERT OR REPLACE INTO claims ({', '.join(KEY_FIELDS)}, owner, "
                             f"heartbeat) VALUES ({', '.join('?' for _ in KEY_FIELDS)}, ?, ?)",
                             [*spec.key, owner, now])
        return "mine"

    def heartbeat(self, owner: str) -> int:
        """Refresh the heartbeat of every claim of ``owner``; returns how many it holds."""
        with self._transaction():
            return self._db.execute("UPDATE claims SET heartbeat = ? WHERE owner = ?",
                                    (time.time(), owner)).rowcount

    def release(self, owner: str) -> None:
        """Drop every claim of ``owner`` (points it did not finish become free at once)."""
        with self._transaction():
            self._db.execute("DELETE FROM claims WHERE owner = ?", (owner,))

    def claims(self) -> list[dict[str, Any]]:
        """Open claims: key columns, owner and heartbeat (seconds since the epoch)."""
        cur = self._db.execute("SELECT * FROM claims ORDER BY heartbeat")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur]

    # --- reading -----------------------------------------------------------------------------
    def _has(self, key: Sequence[Any]) -> bool:
        return self._db.execute(f"SELECT 1 FROM points WHERE {_key_where()}", list(key)
                                ).fetchone() is not None

    def finished(self, spec: PointSpec) -> bool:
        """True when the point has a row (with area, if ``spec.synth`` asks for synthesis, and
        energy, if ``spec.energy`` asks for it and the point could run)."""
        row = self._db.execute(f"SELECT area, energy_pj, note FROM points WHERE {_key_where()}",
                               list(spec.key)).fetchone()
        if row is None:
            return False
        area, energy, note = row
        return ((spec.synth is None or area is not None)
                and (spec.energy is None or energy is not None or note is not None))

    def rows(self, where: str = "", params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """All rows (JSON columns decoded), ordered by model, quantizer, P, R, C; optional SQL filter."""
        sql = f"SELECT {', '.join(_NAMES)} FROM points"
        if where:
            sql += f" WHERE {where}"
        sql += " ORDER BY model, quantizer, target_p, pe_acc_bits, rows, cols, config_hash"
        return [_decode(dict(zip(_NAMES, r))) for r in self._db.execute(sql, list(params))]

    def failures(self) -> list[dict[str, Any]]:
        """Points whose last attempt failed, with their error text."""
        cur = self._db.execute("SELECT * FROM failures ORDER BY finished_at")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur]

    def count(self) -> int:
        """Number of finished points."""
        return self._db.execute("SELECT COUNT(*) FROM points").fetchone()[0]

    # --- export ------------------------------------------------------------------------------
    def export_csv(self, path: str | Path) -> Path:
        """Write every row as CSV (JSON columns as JSON text); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(_NAMES))
            writer.writeheader()
            for row in self.rows():
                writer.writerow({k: json.dumps(v) if k in _JSON and v is not None else v
                                 for k, v in row.items()})
        return path

    def export_json(self, path: str | Path) -> Path:
        """Write every row as a JSON list of objects (JSON columns nested); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.rows(), indent=1) + "\n")
        return path

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error): takes the write lock up front,
    so concurrent writers queue on the busy timeout instead of failing on lock upgrade."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def _key_where() -> str:
    return " AND ".join(f"{k} = ?" for k in KEY_FIELDS)


def _encode(column: str, value: Any) -> Any:
    if column in _JSON and value is not None and not isinstance(value, str):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        return int(value)
    return value


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for c in _JSON:
        if row.get(c) is not None:
            row[c] = json.loads(row[c])
    return row
