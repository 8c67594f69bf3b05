"""The time-entry facts on DuckDB (issue #23, first slice): overlap minutes per entry, and per patient-month the minute
sums, the running totals and the dates the staff and practitioner thresholds were first reached.

The inputs are the pandas frames :func:`ccmlib.engine.facts.time_entry_facts` and :func:`~ccmlib.engine.facts.build_facts`
hold; DuckDB scans them as Arrow tables (only the columns a query needs) in an in-process connection, and the
results come back ordered by the input's row positions, so they are the pandas engine's values, order and dtypes:

- :func:`overlap_minutes`: minutes of an entry already covered by an earlier-starting entry of the same staff member
  on the same day (any patient): a running maximum of end times over (staff, day) in the order start time, entry_id
  in natural order (:func:`~ccmlib.engine.facts.natural_key`: C9 before C10), then the log's order;
- :func:`month_minutes`: qualifying, practitioner and documented minutes and the last activity per patient-month,
  the running totals (``cum``, ordered by patient-month, date, start time with a missing start first, then the log's
  order, as billing's :func:`~ccmlib.engine.facts.threshold_dates` reads them) and the ``date_{t}min`` and
  ``date_{t}min_practitioner`` columns.
"""
from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

#: the entries with a start, an end and a staff member only (the others never overlap); k orders entries of one staff
#: member starting the same minute by entry_id in natural order (0 elsewhere)
OVERLAP_SQL = """
SELECT pos, (f - s) - greatest(f - greatest(s, coalesce(max(f) OVER (PARTITION BY staff, d ORDER BY s, k
                                            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), -1)), 0) AS overlap
FROM e
"""

#: running totals within a patient-month, in the engine's order: date, start time (a missing start as -1), the log's order
CUM_SQL = """
CREATE TEMP TABLE cum AS
SELECT i, pm_id, d AS activity_date,
       sum(q) OVER w AS staff_cum, sum(pq) OVER w AS prac_cum, coalesce(s, -1) AS s_, pos
FROM e WHERE q > 0
WINDOW w AS (PARTITION BY pm_id ORDER BY d, coalesce(s, -1), pos ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
"""


_BASE: dict[int, duckdb.DuckDBPyConnection] = {}


def _connect() -> duckdb.DuckDBPyConnection:
    """A connection of its own (its registered tables and temp tables are its own; closed by the caller) to one
    in-memory database per process: opening a database costs about 12 ms, a cursor on it much less, and an audit opens
    two. Keyed by process id, so a forked child (the report's background jobs) never uses its parent's database."""
    import os

    base = _BASE.get(os.getpid())
    if base is None:
        base = _BASE[os.getpid()] = duckdb.connect(":memory:")
    return base.cursor()


def overlap_minutes(e: pd.DataFrame) -> pd.Series:
    """Minutes of each entry already covered by an earlier-starting entry of the same staff member on the same day
    (any patient); ties on start go to the lower entry_id in natural order, then to the earlier row. 0 for an entry
    without start, end or staff. Same index as ``e``, float64."""
    from ccmlib.engine.facts import natural_key

    out = np.zeros(len(e), dtype="float64")
    ok = (e["start_time"].notna() & e["end_time"].notna() & e["staff_id"].notna()).to_numpy(dtype=bool)
    if not ok.any():
        return pd.Series(out, index=e.index)
    pos = np.flatnonzero(ok)
    staff = pd.factorize(e["staff_id"].to_numpy()[ok])[0].astype("int64")
    day = e["activity_date"].to_numpy(dtype="datetime64[ns]")[ok].view("int64")
    s = e["start_time"].to_numpy(dtype="int64", na_value=0)[ok]
    f = e["end_time"].to_numpy(dtype="int64", na_value=0)[ok]
    # natural order of entry_id, needed only where one staff member has several entries starting the same minute
    k = np.zeros(len(pos), dtype="int64")
    tied = pd.DataFrame({"a": staff, "b": day, "c": s}).duplicated(keep=False).to_numpy()
    if tied.any():
        ids = e["entry_id"].iloc[pos[tied]]
        k[tied] = pd.Series(natural_key(ids).to_numpy()).rank(method="first", na_option="bottom").to_numpy(dtype="int64")
    con = _connect()
    try:
        con.register("e", pa.table({"pos": pos, "staff": staff, "d": day, "s": s, "f": f, "k": k}))
        res = con.execute(OVERLAP_SQL).fetchnumpy()
    finally:
        con.close()
    out[np.asarray(res["pos"], dtype="int64")] = np.asarray(res["overlap"], dtype="float64")
    return pd.Series(out, index=e.index)


def month_minutes(entries: pd.DataFrame, pm: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per patient-month of ``pm`` (patient_id, mkey, pm_id; one row per patient-month): ``qualifying_minutes``,
    ``practitioner_minutes``, ``documented_minutes`` (0 without entries), ``last_activity`` and the dates the running
    totals first reached each threshold; and the running totals themselves (pm_id, activity_date, staff_cum,
    prac_cum), one row per entry with qualifying minutes. ``entries`` has patient_id, mkey, activity_date,
    start_time, duration, qualifying and prac_qualifying. Returns (pm with the new columns, cum)."""
    from ccmlib.engine.facts import PRACTITIONER_THRESHOLDS, STAFF_THRESHOLDS, _patient_codes

    lp, rp = _patient_codes(entries["patient_id"], pm["patient_id"])
    # the patient-month of each entry: pm_id by (patient code, mkey), through a DuckDB join
    pkey = pa.table({"p": pa.array(np.asarray(rp, dtype="int64")), "mkey": pa.array(pm["mkey"].to_numpy(dtype="int64")),
                     "i": pa.array(np.arange(len(pm), dtype="int64")), "pm_id": pa.array(pm["pm_id"].to_numpy(dtype="int64"))})
    ent = pa.table({
        "pos": pa.array(np.arange(len(entries), dtype="int64")),
        "p": pa.array(np.asarray(lp, dtype="int64")),
        "mkey": pa.array(entries["mkey"].to_numpy(dtype="float64"), from_pandas=True).cast(pa.int64()),
        "d": pa.array(entries["activity_date"].to_numpy(dtype="datetime64[ns]")),
        "s": pa.array(pd.Series(entries["start_time"], dtype="float64").to_numpy(dtype="float64", na_value=np.nan), from_pandas=True),
        "dur": pa.array(entries["duration"].to_numpy(dtype="float64"), from_pandas=True),
        "q": pa.array(entries["qualifying"].to_numpy(dtype="float64"), from_pandas=True),
        "pq": pa.array(entries["prac_qualifying"].to_numpy(dtype="float64"), from_pandas=True),
    })
    n = len(pm)
    con = _connect()
    try:
        con.register("pkey", pkey)
        con.register("ent", ent)
        con.execute("CREATE TEMP TABLE e AS SELECT pkey.i, pkey.pm_id, ent.* FROM ent JOIN pkey USING (p, mkey)")
        sums = con.execute("SELECT i, fsum(q) AS qm, fsum(pq) AS pm_, coalesce(fsum(dur), 0.0) AS dm, max(d) AS last "
                           "FROM e GROUP BY i ORDER BY i").fetchnumpy()
        con.execute(CUM_SQL)
        cum = con.execute("SELECT pm_id, activity_date, staff_cum, prac_cum FROM cum ORDER BY pm_id, activity_date, s_, pos").fetchnumpy()
        firsts = ", ".join([f"min(activity_date) FILTER (WHERE staff_cum >= {t}) AS s{t}" for t in STAFF_THRESHOLDS]
                           + [f"min(activity_date) FILTER (WHERE prac_cum >= {t}) AS p{t}" for t in PRACTITIONER_THRESHOLDS])
        dates = con.execute(f"SELECT i, {firsts} FROM cum GROUP BY i ORDER BY i").fetchnumpy()
    finally:
        con.close()

    def spread(res: dict, col: str, fill, dtype) -> np.ndarray:
        out = np.full(n, fill, dtype=dtype)
        ids = np.asarray(res["i"], dtype="int64")
        vals = res[col]
        if isinstance(vals, np.ma.MaskedArray):
            keep = ~np.ma.getmaskarray(vals)
            out[ids[keep]] = np.asarray(vals.data[keep], dtype=dtype)
        else:
            out[ids] = np.asarray(vals, dtype=dtype)
        return out

    nat = np.datetime64("NaT")
    pm = pm.copy(deep=False)
    pm["qualifying_minutes"] = spread(sums, "qm", 0.0, "float64")
    pm["practitioner_minutes"] = spread(sums, "pm_", 0.0, "float64")
    pm["documented_minutes"] = spread(sums, "dm", 0.0, "float64")
    pm["last_activity"] = spread(sums, "last", nat, "datetime64[ns]")
    for t in STAFF_THRESHOLDS:
        pm[f"date_{t}min"] = spread(dates, f"s{t}", nat, "datetime64[ns]")
    for t in PRACTITIONER_THRESHOLDS:
        pm[f"date_{t}min_practitioner"] = spread(dates, f"p{t}", nat, "datetime64[ns]")
    cum_df = pd.DataFrame({"pm_id": np.asarray(cum["pm_id"], dtype="int64"),
                           "activity_date": np.asarray(cum["activity_date"], dtype="datetime64[ns]"),
                           "staff_cum": np.asarray(cum["staff_cum"], dtype="float64"),
                           "prac_cum": np.asarray(cum["prac_cum"], dtype="float64")})
    return pm, cum_df
