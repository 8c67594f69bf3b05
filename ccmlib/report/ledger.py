"""The run ledger: one SQLite row per report run (period, practice, inputs' hashes, parameters, headline)."""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

SCHEMA = """CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_at TEXT NOT NULL,
    practice TEXT NOT NULL,
    period TEXT NOT NULL,
    status TEXT NOT NULL,
    report_dir TEXT,
    inputs TEXT,
    parameters TEXT,
    headline TEXT
)"""


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.execute(SCHEMA)
    return con


def add_run(path: Path, practice: str, period: str, status: str, report_dir: str, inputs, parameters: dict, headline: dict | None) -> int:
    with connect(path) as con:
        cur = con.execute("INSERT INTO runs (run_at, practice, period, status, report_dir, inputs, parameters, headline) VALUES (?,?,?,?,?,?,?,?)",
                          (datetime.now(timezone.utc).isoformat(timespec="seconds"), practice, period, status, report_dir,
                           json.dumps(inputs, default=str), json.dumps(parameters, default=str), json.dumps(headline, default=str)))
        return int(cur.lastrowid)


def runs(path: Path, practice: str | None = None) -> pd.DataFrame:
    if not Path(path).exists():
        return pd.DataFrame(columns=["id", "run_at", "practice", "period", "status", "report_dir"])
    with connect(Path(path)) as con:
        q = "SELECT id, run_at, practice, period, status, report_dir, headline FROM runs"
        df = pd.read_sql_query(q + (" WHERE practice = ?" if practice else "") + " ORDER BY id", con, params=(practice,) if practice else ())
    return df
