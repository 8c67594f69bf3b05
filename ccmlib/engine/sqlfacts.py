"""The time entries' facts in Arrow, with DuckDB for the set-based steps (issue #23).

- :func:`entry_store` builds :class:`EntryStore`: the period's time entries and every fact the rules read (roles,
  exclusion flags, first consent, the judged consent's revocation, overlaps, qualifying minutes) as one Arrow table in
  the log's order. Row-wise facts are Arrow kernels; the few inputs computed per distinct patient-month or day come from
  :mod:`ccmlib.engine.facts`; the overlaps are one DuckDB window (:func:`_overlaps`). Rules fetch only the rows and
  columns they need as pandas (:meth:`EntryStore.rows`), with the dtypes and labels the pandas engine had; the views
  build the whole frame.
- :func:`overlap_minutes`: the same overlaps for a pandas frame of entries: a running maximum of end times over
  (staff, day) in the order start time, entry_id in natural order (:func:`~ccmlib.engine.facts.natural_key`: C9
  before C10), then the log's order.
- :func:`month_minutes`: qualifying, practitioner and documented minutes and the last activity per patient-month, the
  dates each threshold was first reached, and the running totals (:class:`RunningTotals`, which BILL-05 asks when a
  line's minutes were reached), read from the store in place.
- :func:`staff_breakdown`: run.json's per-staff figures, one query over the store.
- The facts per patient-month and practitioner, one query each over Arrow columns of integer codes (the patients'
  category codes, the NPIs factorized on one scale): :func:`commencement` (catalog v3's span boundaries and CCM
  commencement), :func:`consent_in_force`, :func:`consent_judged` (the consent CONS-05 judges a day's time against),
  :func:`visit_found` (IV-01's visit in the window), :func:`month_practitioner` (the practitioner whose consent a
  month's time is judged against) and :func:`month_conditions_and_plans` (the chronic categories active in each month
  and the care plan in force). Each returns row numbers or values that :mod:`ccmlib.engine.facts`
  assembles into the frames its pandas code made (that code stays as the answer where the patient ids are not one
  category list, and as the oracle in tests).

Each is held to the pandas code it replaced by oracle tests (tests/test_entry_store.py, tests/test_sqlfacts.py).
"""
from __future__ import annotations

import os
import threading

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ccmlib.intake.fastops import distinct_rows
from ccmlib.paths import usable_cores

#: running totals within a patient-month, in the engine's order: date, start time (a missing start as -1), the log's order
CUM_SQL = """
SELECT i, pm_id, d AS activity_date,
       sum(q) OVER w AS staff_cum, sum(pq) OVER w AS prac_cum, coalesce(s, -1) AS s_, pos
FROM ent WHERE q > 0
WINDOW w AS (PARTITION BY pm_id ORDER BY d, coalesce(s, -1), pos ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
"""


_BASE: dict[int, duckdb.DuckDBPyConnection] = {}
_BASE_LOCK = threading.Lock()  # rules run in threads on a large practice: one database per process all the same
_THREADS: dict[int, int] = {}  # the threads each process's database runs a query in, as last set

#: time entries from which the facts' queries run in two threads of DuckDB (with two cores): on fewer the second
#: thread only costs CPU (a small query gains nothing from it); the rules run in two threads from it too
#: (``pipeline.PARALLEL_RULES_FROM`` is this number)
PARALLEL_QUERIES_FROM = 250_000


def use_threads(entries: int) -> int:
    """Sets how many threads this process's database runs each query in, for an audit of ``entries`` time entries: two
    from :data:`PARALLEL_QUERIES_FROM` when the process may use two cores, else one. Called once per audit, before its
    first query (a setting of the whole database: the cursors :func:`_connect` gives share it). Returns the number."""
    n = 2 if entries >= PARALLEL_QUERIES_FROM and usable_cores() >= 2 else 1
    if _THREADS.get(os.getpid()) != n:
        base = _connect()
        try:
            base.execute(f"SET threads TO {n}")
        finally:
            base.close()
        _THREADS[os.getpid()] = n
    return n


def _connect() -> duckdb.DuckDBPyConnection:
    """A connection of its own (its registered tables and temp tables are its own; closed by the caller) to one
    in-memory database per process: opening a database costs about 12 ms, a cursor on it much less, and an audit opens
    two. Keyed by process id, so a forked child (the report's background jobs) never uses its parent's database."""
    with _BASE_LOCK:
        base = _BASE.get(os.getpid())
        if base is None:
            base = _BASE[os.getpid()] = duckdb.connect(":memory:")
        return base.cursor()


def overlap_minutes(e: pd.DataFrame) -> pd.Series:
    """Minutes of each entry of the frame ``e`` already covered by an earlier-starting entry of the same staff member on
    the same day (any patient); ties on start go to the lower entry_id in natural order, then to the earlier row. 0 for
    an entry without start, end or staff. Same index as ``e``, float64 (:func:`_overlaps` on the frame's columns)."""
    t = pa.table({"_pos": pa.array(np.arange(len(e), dtype="int64")),
                  "entry_id": pa.array(e["entry_id"].astype(object).where(e["entry_id"].notna(), None).to_numpy(), type=pa.string()),
                  "staff_id": pa.array(e["staff_id"].astype(object).where(e["staff_id"].notna(), None).to_numpy(), type=pa.string()),
                  "activity_date": pa.array(e["activity_date"].to_numpy(dtype="datetime64[ns]")),
                  "start_time": pa.array(pd.array(e["start_time"], dtype="Int32").to_numpy(dtype="float64", na_value=np.nan), from_pandas=True).cast(pa.int32()),
                  "end_time": pa.array(pd.array(e["end_time"], dtype="Int32").to_numpy(dtype="float64", na_value=np.nan), from_pandas=True).cast(pa.int32())})
    return pd.Series(_overlaps(t), index=e.index)


def _overlaps(t: pa.Table) -> np.ndarray:
    """:func:`overlap_minutes` of the entries in ``t`` (_pos, entry_id, staff_id, activity_date, start_time, end_time),
    by row position: one window over (staff, day) in DuckDB on integer keys, which also says where one staff member
    starts several entries the same minute of a day; only then are those entries' ids put in natural order (k) and the
    window run again with them."""
    from ccmlib.engine.facts import natural_key

    out = np.zeros(t.num_rows, dtype="float64")
    ok = pc.and_(pc.and_(pc.is_valid(t.column("start_time")), pc.is_valid(t.column("end_time"))), pc.is_valid(t.column("staff_id")))
    # the entries that can overlap, as integer columns (the staff member's code in the whole log: the text is not
    # copied by the filter); an entry's id is read only where one staff member starts two entries the same minute
    rows = np.flatnonzero(np.asarray(ok.to_numpy(zero_copy_only=False), dtype=bool))
    if not len(rows):
        return out
    staff = pc.dictionary_encode(t.column("staff_id"))
    staff = (staff.combine_chunks() if isinstance(staff, pa.ChunkedArray) else staff).indices
    sub = pa.table({"_pos": t.column("_pos"), "sc": staff, "activity_date": t.column("activity_date"),
                    "start_time": t.column("start_time"), "end_time": t.column("end_time")}).filter(ok)
    day = sub.column("activity_date").cast(pa.timestamp("ns"))
    as_date = pc.cast(pc.cast(day, pa.timestamp("s")), pa.date32())
    exact = pc.all(pc.equal(pc.cast(pc.cast(as_date, pa.timestamp("s")), pa.timestamp("ns")), day)).as_py() is not False
    e = pa.table({"_pos": sub.column("_pos"), "sc": sub.column("sc"),
                  "d": as_date if exact else pc.cast(day, pa.int64()), "s": sub.column("start_time").cast(pa.int32()),
                  "f": sub.column("end_time").cast(pa.int32()), "k": pa.array(np.zeros(sub.num_rows, dtype="int64"))})
    con = _connect()
    try:
        con.register("e", e)
        res = con.sql(OVERLAP_SQL).fetchnumpy()
        tied = np.asarray(res["tied"], dtype=bool)
        if tied.any():  # ties on start: in the natural order of entry_id (C9 before C10), then the log's order
            pos = np.sort(np.asarray(res["_pos"], dtype="int64")[tied])
            at = np.searchsorted(np.asarray(sub.column("_pos").to_numpy(), dtype="int64"), pos)
            ids = pd.Series(t.column("entry_id").take(pa.array(rows[at])).to_pylist(), dtype="string")
            k = np.zeros(sub.num_rows, dtype="int64")
            k[at] = pd.Series(natural_key(ids).to_numpy()).rank(method="first", na_option="bottom").to_numpy(dtype="int64")
            con.register("e", e.set_column(e.column_names.index("k"), "k", pa.array(k)))
            res = con.sql(OVERLAP_SQL).fetchnumpy()
    finally:
        con.close()
    out[np.asarray(res["_pos"], dtype="int64")] = np.asarray(res["overlap"], dtype="float64")
    return out


def month_minutes(entries: pd.DataFrame, pm: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per patient-month of ``pm`` (patient_id, mkey, pm_id; one row per patient-month): ``qualifying_minutes``,
    ``practitioner_minutes``, ``documented_minutes`` (0 without entries), ``last_activity`` and the dates the running
    totals first reached each threshold; and the running totals themselves (pm_id, activity_date, staff_cum,
    prac_cum), one row per entry with qualifying minutes. ``entries`` has patient_id, mkey, activity_date,
    start_time, duration, qualifying and prac_qualifying. Returns (pm with the new columns, cum)."""
    from ccmlib.engine.facts import PRACTITIONER_THRESHOLDS, STAFF_THRESHOLDS, _patient_codes

    if isinstance(entries, EntryStore) and pm["patient_id"].dtype != entries.dtypes["patient_id"]:
        entries = entries.rows(columns=["patient_id", "mkey", "activity_date", "start_time", "duration", "qualifying", "prac_qualifying"])
    if isinstance(entries, EntryStore):  # read in place: the store's patient codes are the patient-months' own
        tab = entries.table
        rp = pm["patient_id"].cat.codes.to_numpy()
        lp = np.asarray(tab.column("p").to_numpy(), dtype="int64")
        lm = _int_keys(tab.column("mkey"))
        ent = {"pos": tab.column("_pos"), "d": tab.column("activity_date"), "s": tab.column("start_time").cast(pa.float64()),
               "dur": tab.column("duration"), "q": tab.column("qualifying"), "pq": tab.column("prac_qualifying")}
    else:
        lp, rp = _patient_codes(entries["patient_id"], pm["patient_id"])
        lm = np.asarray(pd.array(entries["mkey"], dtype="Int64").to_numpy(dtype="int64", na_value=-1), dtype="int64")
        ent = {"pos": pa.array(np.arange(len(entries), dtype="int64")),
               "d": pa.array(entries["activity_date"].to_numpy(dtype="datetime64[ns]")),
               "s": pa.array(pd.Series(entries["start_time"], dtype="float64").to_numpy(dtype="float64", na_value=np.nan), from_pandas=True),
               "dur": pa.array(entries["duration"].to_numpy(dtype="float64"), from_pandas=True),
               "q": pa.array(entries["qualifying"].to_numpy(dtype="float64"), from_pandas=True),
               "pq": pa.array(entries["prac_qualifying"].to_numpy(dtype="float64"), from_pandas=True)}
    # the patient-month of each entry (its row i of pm; entries of no row of pm are left out, as by an inner join),
    # found once here on integer keys, so that DuckDB groups and windows without joining
    at = patient_month_rows(np.asarray(lp, dtype="int64"), lm, np.asarray(rp, dtype="int64"), pm["mkey"].to_numpy(dtype="int64"))
    keep = at >= 0
    pm_ids = pm["pm_id"].to_numpy(dtype="int64")
    cols = {"i": pa.array(at), "pm_id": pa.array(pm_ids[np.where(keep, at, 0)] if len(pm_ids) else np.zeros(len(at), dtype="int64")), **ent}
    ent = pa.table(cols)
    if not keep.all():
        ent = ent.filter(pa.array(keep))
    n = len(pm)
    con = _connect()
    try:
        con.register("ent", ent)
        # no temporary tables (a copy of every entry each): the entries are read twice, by the sums and by the window
        sums = con.sql("SELECT i, fsum(q) AS qm, fsum(pq) AS pm_, coalesce(fsum(dur), 0.0) AS dm, max(d) AS last "
                       "FROM ent GROUP BY i ORDER BY i").fetchnumpy()
        cum = con.sql(CUM_SQL).to_arrow_table()  # unsorted: RunningTotals sorts it only on demand
        con.register("cum", cum)
        firsts = ", ".join([f"min(activity_date) FILTER (WHERE staff_cum >= {t}) AS s{t}" for t in STAFF_THRESHOLDS]
                           + [f"min(activity_date) FILTER (WHERE prac_cum >= {t}) AS p{t}" for t in PRACTITIONER_THRESHOLDS])
        dates = con.sql(f"SELECT i, {firsts} FROM cum GROUP BY i ORDER BY i").fetchnumpy()
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
    return pm, RunningTotals(cum.select(["pm_id", "activity_date", "staff_cum", "prac_cum", "s_", "pos"]))


class RunningTotals:
    """The running totals of qualifying minutes through each patient-month, one row per entry with qualifying minutes
    (Arrow, as DuckDB made them): :meth:`reach` answers "when were N minutes reached" in place, :meth:`frame` is the
    pandas engine's ``cum`` (sorted by patient-month, date, start time, the log's order), built on first use."""

    def __init__(self, table: pa.Table):
        self.table = table
        self._frame = None

    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            t = self.table.sort_by([("pm_id", "ascending"), ("activity_date", "ascending"), ("s_", "ascending"), ("pos", "ascending")])
            self._frame = pd.DataFrame({"pm_id": np.asarray(t.column("pm_id").to_numpy(), dtype="int64"),
                                        "activity_date": np.asarray(t.column("activity_date").to_numpy(), dtype="datetime64[ns]"),
                                        "staff_cum": np.asarray(t.column("staff_cum").to_numpy(), dtype="float64"),
                                        "prac_cum": np.asarray(t.column("prac_cum").to_numpy(), dtype="float64")})
        return self._frame

    def reach(self, req: pd.DataFrame, col: str) -> pd.Series:
        """Without sorting the totals: per row of ``req`` (pm_id, need), the
        first date its patient-month's ``col`` (staff_cum or prac_cum) reached ``need`` (NaT if never)."""
        if col not in ("staff_cum", "prac_cum"):
            raise ValueError(f"unknown running total {col!r}")
        out = np.full(len(req), np.datetime64("NaT"), dtype="datetime64[ns]")
        if len(req) and self.table.num_rows:
            r = pa.table({"i": pa.array(np.arange(len(req), dtype="int64")),
                          "pm_id": pa.array(pd.to_numeric(req["pm_id"]).to_numpy(dtype="float64"), from_pandas=True).cast(pa.int64()),
                          "need": pa.array(pd.to_numeric(req["need"]).to_numpy(dtype="float64"), from_pandas=True)})
            con = _connect()
            try:
                con.register("r", r)
                con.register("c", self.table)
                res = con.sql(f"SELECT r.i, min(c.activity_date) AS d FROM r JOIN c ON c.pm_id = r.pm_id AND c.{col} >= r.need "
                              "GROUP BY r.i").fetchnumpy()
            finally:
                con.close()
            out[np.asarray(res["i"], dtype="int64")] = np.asarray(res["d"], dtype="datetime64[ns]")
        return pd.Series(out, index=req.index)


# --------------------------------------------------------------------------- the time entries' facts, whole (issue #23)
#: the pandas dtypes of the columns the facts add to each entry, in their order (the rules and views read them so)
FACT_DTYPES = {"duration": "float64", "role": "string", "supervising_npi": "string", "is_practitioner": "bool",
               "x_incomplete": "bool", "x_staff": "bool", "x_f2f": "bool", "x_counted": "bool",
               "first_consent": "datetime64[ns]", "x_before_consent": "bool", "x_no_consent": "bool", "judged_npi": "str",
               "revoked_date": "datetime64[ns]", "x_after_revocation": "bool", "overlap": "float64", "x_overlap": "bool",
               "x_unsupervised": "bool", "qualifying": "float64", "prac_qualifying": "float64", "mkey": "Int64"}


def _sql_list(values) -> str:
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)


#: the minutes of an entry already covered by an earlier-starting entry of the same staff member on the same day (any
#: patient): a running maximum of end times over (staff, day) in the order start time, then k (the natural order of
#: entry_id where one staff member starts several entries the same minute; 0 elsewhere); entries with a start, an end
#: and a staff member only (the others never overlap)
OVERLAP_SQL = """
SELECT _pos, (f - s) - greatest(f - greatest(s, coalesce(max(f) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), -1)), 0)
         AS overlap,
       coalesce(lag(s) OVER w = s, false) OR coalesce(lead(s) OVER w = s, false) AS tied
FROM e WINDOW w AS (PARTITION BY sc, d ORDER BY s, k, _pos)
"""


def _arrow_input(df: pd.DataFrame) -> pa.Table:
    """A pandas frame as Arrow columns (missing values as nulls; NaN of a float column is missing, as pandas has it)."""
    return pa.Table.from_pandas(df, preserve_index=False)


def _column(arr, dtype) -> pd.Series:
    """One Arrow column back as the pandas dtype the pandas engine gave it."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):  # the store's looked-up text (roles, practitioners): as the plain text it stands for
        arr = arr.dictionary_decode()
    if isinstance(dtype, pd.CategoricalDtype):
        codes = np.asarray(arr.fill_null(-1).to_numpy(zero_copy_only=False), dtype="int64")
        return pd.Series(pd.Categorical.from_codes(codes, dtype=dtype))
    if isinstance(dtype, np.dtype) and dtype.kind == "b":
        return pd.Series(np.asarray(arr.to_numpy(zero_copy_only=False), dtype=bool))
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        return pd.Series(np.asarray(arr.to_numpy(zero_copy_only=False), dtype="float64"))
    if isinstance(dtype, np.dtype) and dtype.kind == "M":
        return pd.Series(np.asarray(arr.cast(pa.timestamp("ns")).to_numpy(zero_copy_only=False), dtype="datetime64[ns]"))
    if isinstance(dtype, np.dtype) and dtype.kind == "i":
        return pd.Series(np.asarray(arr.to_numpy(zero_copy_only=False), dtype=dtype))
    if isinstance(dtype, (pd.Int32Dtype, pd.Int64Dtype, pd.BooleanDtype)) or str(dtype) in ("Int32", "Int64", "boolean"):
        return pd.Series(arr.to_pandas(types_mapper={pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(),
                                                     pa.bool_(): pd.BooleanDtype()}.get)).astype(dtype)
    if isinstance(dtype, pd.StringDtype):
        if dtype.storage == "pyarrow":
            return pd.Series(pd.array(arr.cast(pa.large_string()) if pa.types.is_string(arr.type) else arr, dtype=dtype))
        return pd.Series(arr.to_pandas()).astype(dtype)
    return pd.Series(arr.to_pandas()).astype(dtype)


def _looked_up(values: pa.Array, at: pa.Array) -> pa.DictionaryArray:
    """``values.take(at)`` as a dictionary array over ``values`` (no text copied per row): missing where ``at`` is
    missing or points at a missing value, so that ``is_null`` answers as on the plain array."""
    at = (at.combine_chunks() if isinstance(at, pa.ChunkedArray) else at).cast(pa.int32())
    ok = pc.fill_null(values.is_valid().take(at), False)
    return pa.DictionaryArray.from_arrays(pc.if_else(ok, at, pa.scalar(None, at.type)), values)


def patient_month_rows(lp: np.ndarray, lm: np.ndarray, rp: np.ndarray, rm: np.ndarray) -> np.ndarray:
    """For each (patient code, month key) of the left arrays, the row of the right arrays with the same pair, whose
    pairs are distinct; -1 where there is none or the month key is missing (-1), as an SQL join on the pair finds
    them (a patient code of -1, unknown, is a value like any other): a table addressed by the pair when it is small
    (patients times months of the data), else a hash lookup."""
    out = np.full(len(lp), -1, dtype="int64")
    if not len(lp) or not len(rp):
        return out
    ok_r, ok_l = rm >= 0, lm >= 0
    if not ok_r.any() or not ok_l.any():
        return out
    lo = int(min(lm[ok_l].min(), rm[ok_r].min()))
    width = int(max(lm[ok_l].max(), rm[ok_r].max())) - lo + 1
    npat = int(max(lp.max(), rp.max())) + 2
    rk = np.where(ok_r, (rp + 1) * width + (rm - lo), -1)
    lk = np.where(ok_l, (lp + 1) * width + (lm - lo), -1)
    rows = np.flatnonzero(ok_r)
    if npat * width <= 4 * (len(lp) + len(rp)) + 1024:
        table = np.full(npat * width, -1, dtype="int64")
        table[rk[rows]] = rows
        out[ok_l] = table[lk[ok_l]]
    else:
        out[ok_l] = pd.Index(rk[rows]).get_indexer(lk[ok_l])
        hit = out >= 0
        out[hit] = rows[out[hit]]
    return out


def _int_keys(arr) -> np.ndarray:
    """An integer key column as numpy, a missing value as -1 (a value of its own for distinct_rows)."""
    return np.asarray(pc.fill_null(arr, -1).to_numpy(zero_copy_only=False), dtype="int64")


class EntryStore:
    """The period's time entries and their facts as one Arrow table, in the log's order (the patient as its code in
    ``p``, the row's place in ``_pos``): what the entry rules, the minutes and the views read. DuckDB queries it in
    place (a registered Arrow table: nothing copied); :meth:`rows` turns the rows a rule asks for into the pandas frame
    the pandas engine held, column for column and dtype for dtype, and :meth:`frame` all of them (built once)."""

    def __init__(self, table: pa.Table, dtypes: dict, index: np.ndarray, whole: bool = True):
        self.table, self.dtypes, self.index = table, dtypes, index
        self._frame = None
        self.whole = whole  # False: only some columns kept (:meth:`only`)

    def only(self, columns: list[str]) -> "EntryStore":
        """A store of these columns alone (and the row positions), for an audit that keeps only what its run folder's
        summary reads (``audit(keep_facts=False)``); asking it for any other column says so."""
        keep = [c for c in self.dtypes if c in columns]
        table = self.table.select(["_pos"] + ["p" if c == "patient_id" else c for c in keep])
        return EntryStore(table, {c: self.dtypes[c] for c in keep}, self.index, whole=False)

    def _check(self, names: list[str] | None) -> None:
        """On a store of some columns (:meth:`only`), asking for every column or another one is an error that says why."""
        lacking = None if names is None else [c for c in names if c not in self.dtypes]
        if (names is None or lacking) and not self.whole:
            which = "the whole log" if names is None else ", ".join(lacking)
            raise ValueError(f"the time entries' facts were let go after this audit (audit(keep_facts=False), as `ccm-audit "
                             f"check` runs it), so {which} cannot be read: audit again with keep_facts=True")

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def columns(self) -> list[str]:
        return list(self.dtypes)

    def positions(self, where) -> np.ndarray:
        """Row positions (ascending) where the SQL condition ``where`` holds (a condition the engine's own code writes
        over the store's columns, such as ``x_overlap``; never text from the data), or, for a list of flag columns,
        where any of them does."""
        if isinstance(where, (list, tuple)):
            unknown = [c for c in where if c not in self.dtypes or self.dtypes[c] != np.dtype(bool)]
            if unknown or not where:
                raise ValueError(f"not flag columns of the time entries: {unknown or where}")
            where = " OR ".join(where)
        con = _connect()
        try:
            con.register("ent", self.table)
            res = con.sql(f"SELECT _pos FROM ent WHERE {where} ORDER BY _pos").fetchnumpy()
        finally:
            con.close()
        return np.asarray(res["_pos"], dtype="int64")

    def any(self, where: str) -> bool:
        """Whether any entry meets ``where`` (see :meth:`positions`)."""
        con = _connect()
        try:
            con.register("ent", self.table)
            return bool(con.execute(f"SELECT count(*) FROM (SELECT 1 FROM ent WHERE {where} LIMIT 1)").fetchone()[0])
        finally:
            con.close()

    def rows(self, where: str | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        """The entries where ``where`` (SQL over the columns) holds, as pandas, with the pandas engine's dtypes and
        index labels; ``columns``: only these."""
        self._check(columns)
        if self._frame is not None:
            pos = np.arange(len(self)) if where is None else self.positions(where)
            out = self._frame.iloc[pos]
            return out if columns is None else out[columns]
        names = self.columns if columns is None else list(columns)
        if where is None:
            out = pd.DataFrame({c: _column(self.table.column("p" if c == "patient_id" else c), self.dtypes[c]).array for c in names},
                               columns=names)
            out.index = pd.Index(self.index) if len(self.index) else out.index
            return out
        return self._rows_at(self.positions(where), names)

    def patient_months(self) -> pd.DataFrame:
        """The distinct (patient_id, mkey) of the entries, in the order of their first entry."""
        codes = np.asarray(self.table.column("p").to_numpy(), dtype="int64")
        _, first = distinct_rows(codes, _int_keys(self.table.column("mkey")))
        return self._rows_at(first, ["patient_id", "mkey"])

    def _rows_at(self, pos: np.ndarray, names: list[str]) -> pd.DataFrame:
        tab = self.table.select(["p" if c == "patient_id" else c for c in names]).take(pa.array(pos, type=pa.int64()))
        out = pd.DataFrame({c: _column(tab.column("p" if c == "patient_id" else c), self.dtypes[c]).array for c in names}, columns=names)
        out.index = pd.Index(self.index[pos]) if len(self.index) else out.index
        return out

    def frame(self) -> pd.DataFrame:
        """Every entry with every fact (the pandas engine's ``Facts.entries``), built on first use."""
        if self._frame is None:
            self._frame = self.rows()
        return self._frame


#: the log's text columns kept as dictionary arrays when their values repeat (an activity, a templated description, the
#: signer): every rule and view reads them as the text they stand for (``_column``), and a large log holds a fraction
REPEATED_TEXT = ("activity", "description", "signed_by", "counted_toward")


def _repeated_text_as_dictionary(t: pa.Table) -> pa.Table:
    """``t`` with each column of :data:`REPEATED_TEXT` as a dictionary array where that takes less than half the memory
    (free text that does not repeat stays as it is)."""
    for c in REPEATED_TEXT:
        if c not in t.column_names or not (pa.types.is_string(t.schema.field(c).type) or pa.types.is_large_string(t.schema.field(c).type)):
            continue
        col = t.column(c)
        enc = pc.dictionary_encode(col)  # a log read in chunks: its chunks share one dictionary (not combined first)
        chunks = enc.chunks if isinstance(enc, pa.ChunkedArray) else [enc]
        size = sum(ch.indices.nbytes for ch in chunks) + (chunks[0].dictionary.nbytes if chunks else 0)
        if size < col.nbytes / 2:
            t = t.set_column(t.column_names.index(c), c, enc)
    return t


def entry_store(te: pd.DataFrame, staff: pd.DataFrame, consents: pd.DataFrame, lines: pd.DataFrame | None) -> EntryStore:
    """The time entries ``te`` with every fact :func:`ccmlib.engine.facts.time_entry_facts` gives them, computed in one
    DuckDB query over Arrow: the month's judged practitioner per distinct patient-month and the judged consent's
    revocation per distinct (patient, day, practitioner) of the patients with a revoked consent come from
    :mod:`ccmlib.engine.facts` (small inputs; the judged consent by :func:`consent_judged`); everything per entry
    (roles, the flags, the overlaps, the qualifying minutes) is SQL."""
    from ccmlib.engine.facts import consent_episode, month_practitioner
    from ccmlib.intake.schema import CLINICAL_STAFF_ROLES, PRACTITIONER_ROLES

    n = len(te)
    pid_dtype = te["patient_id"].dtype
    if not (isinstance(pid_dtype, pd.CategoricalDtype) and isinstance(consents["patient_id"].dtype, pd.CategoricalDtype)
            and pid_dtype.categories.equals(consents["patient_id"].cat.categories)):  # one list in one order: one code each
        # build_facts gives every table one categorical patient_id (facts.encoded_tables); anything else is encoded so here
        cats = pd.Index(np.sort(pd.unique(pd.concat([te["patient_id"], consents["patient_id"]]).dropna().astype(str).to_numpy(dtype=object))))
        pid_dtype = pd.CategoricalDtype(cats)
        te = te.assign(patient_id=pd.Categorical(te["patient_id"].astype(object), dtype=pid_dtype))
        consents = consents.assign(patient_id=pd.Categorical(consents["patient_id"].astype(object), dtype=pid_dtype))
    lp, cp = te["patient_id"].cat.codes.to_numpy(), consents["patient_id"].cat.codes.to_numpy()
    dtypes = {c: (pid_dtype if c == "patient_id" else te[c].dtype) for c in te.columns}
    for c, d in FACT_DTYPES.items():
        dtypes[c] = np.dtype(d) if d in ("float64", "bool", "datetime64[ns]") else d
    dtypes["role"] = dtypes["supervising_npi"] = pd.StringDtype()
    body = te.drop(columns=["patient_id"])
    t = _arrow_input(body)
    desc = t.column("description") if "description" in t.column_names else pa.nulls(n, pa.string())
    desc = desc.cast(pa.string())
    t = t.append_column("p", pa.array(np.asarray(lp, dtype="int32"))).append_column("_pos", pa.array(np.arange(n, dtype="int64")))
    # blank: missing, empty or only whitespace (what stripping would leave empty; utf8_is_space stops at the first other
    # character, where a strip copies every description)
    t = t.append_column("desc_blank", pc.or_kleene(pc.is_null(desc), pc.or_(pc.equal(pc.binary_length(desc), 0),
                                                                         pc.utf8_is_space(desc))).fill_null(True))
    for c, typ in (("minutes", pa.float64()), ("start_time", pa.int32()), ("end_time", pa.int32()), ("staff_id", pa.string()),
                   ("face_to_face", pa.bool_()), ("counted_toward", pa.string())):
        if c in t.column_names and t.schema.field(c).type != typ:
            t = t.set_column(t.column_names.index(c), c, t.column(c).cast(typ))

    roster = staff.drop_duplicates("staff_id")

    def text(col: str) -> pa.Array:
        v = roster[col] if col in roster else pd.Series(None, index=roster.index, dtype=object)
        return pa.array(v.astype(object).where(v.notna(), None).to_numpy(), type=pa.string())

    # the roster's role and supervisor of each entry's staff member (the first row of a staff_id; none when unknown)
    at = pc.index_in(t.column("staff_id"), value_set=text("staff_id"))
    # each entry's role and supervisor as an index into the roster's (a dictionary array: nothing copied per entry),
    # missing where the staff member is unknown or the roster's value is missing
    role, sup = _looked_up(text("role"), at), _looked_up(text("supervising_npi"), at)
    cols = {"duration": pc.coalesce(t.column("minutes"), pc.cast(pc.subtract(t.column("end_time"), t.column("start_time")), pa.float64())),
            "role": role, "supervising_npi": sup}
    roster_role = text("role")
    is_role = lambda roles: pc.fill_null(pc.is_in(roster_role, value_set=pa.array(list(roles), pa.string())).take(at), False)  # noqa: E731
    cols["is_practitioner"] = is_role(PRACTITIONER_ROLES)
    cols["x_incomplete"] = pc.or_(pc.or_(t.column("desc_blank"), pc.is_null(t.column("staff_id"))), pc.is_null(cols["duration"]))
    cols["x_staff"] = pc.and_(pc.is_valid(t.column("staff_id")), pc.invert(is_role(CLINICAL_STAFF_ROLES + PRACTITIONER_ROLES)))
    cols["x_f2f"] = pc.fill_null(t.column("face_to_face"), False)
    cols["x_counted"] = pc.is_valid(t.column("counted_toward"))
    # the patient's first consent (any practitioner; none when every consent is undated)
    dated = consents["consent_date"].notna().to_numpy() & (cp >= 0)
    first = np.full(len(pid_dtype.categories) + 1, np.iinfo("int64").max, dtype="int64")
    np.minimum.at(first, cp[dated].astype("int64"), consents["consent_date"].to_numpy(dtype="datetime64[ns]")[dated].view("int64"))
    first = first.view("datetime64[ns]")
    never = np.ones(len(first), dtype=bool)
    never[cp[dated].astype("int64")] = False
    first[never] = np.datetime64("NaT")
    fc = pa.array(first[np.where(lp >= 0, lp, len(first) - 1)], type=pa.timestamp("ns"))
    cols["first_consent"] = fc
    day = t.column("activity_date")
    cols["x_before_consent"] = pc.fill_null(pc.less(day, fc), False)
    cols["x_no_consent"] = pc.is_null(fc)
    mkey = pc.subtract(pc.add(pc.multiply(pc.year(day), 12), pc.month(day)), 1)
    # the month's judged practitioner (CONS-05), computed once per distinct patient-month
    g, first_row = distinct_rows(np.asarray(lp, dtype="int64"), _int_keys(mkey))
    keys = pd.DataFrame({"patient_id": pd.Categorical.from_codes(lp[first_row].astype("int64"), dtype=pid_dtype),
                         "mkey": pd.array(mkey.take(pa.array(first_row)).to_numpy(zero_copy_only=False), dtype="Int64")})
    judged = month_practitioner(lines, consents, keys) if len(keys) else pd.Series([], dtype="string")
    judged_e = _looked_up(pa.array(judged.astype(object).where(judged.notna(), None).to_numpy(), type=pa.string()), pa.array(g))
    cols["judged_npi"] = judged_e
    # the judged consent's revocation: only patients with a revoked consent can have one; once per (patient, day, practitioner)
    revoked = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    after = np.zeros(n, dtype=bool)
    some = np.isin(lp, np.unique(cp[consents["revoked_date"].notna().to_numpy() & (cp >= 0)]))
    if some.any():
        rows = np.flatnonzero(some)
        sub = pd.DataFrame({"p": pd.Categorical.from_codes(lp[rows].astype("int64"), dtype=pid_dtype),
                            "d": _column(day.take(pa.array(rows)), np.dtype("datetime64[ns]")),
                            "npi": _column(judged_e.take(pa.array(rows)), pd.StringDtype())})
        sg, sfirst = distinct_rows(sub["p"], sub["d"], sub["npi"])
        ep = consent_episode(sub["p"].iloc[sfirst], sub["d"].iloc[sfirst], consents, sub["npi"].iloc[sfirst])
        revoked[rows] = ep["revoked_date"].to_numpy(dtype="datetime64[ns]")[sg]
        after[rows] = ep["after_revocation"].to_numpy(dtype=bool)[sg]
    cols["revoked_date"] = pa.array(revoked, type=pa.timestamp("ns"))
    cols["x_after_revocation"] = pc.and_(pc.invert(pc.or_(cols["x_before_consent"], cols["x_no_consent"])), pa.array(after))
    # overlaps of one staff member's entries on one day: a window in DuckDB
    overlap = _overlaps(t.select(["_pos", "entry_id", "staff_id", "activity_date", "start_time", "end_time"]))
    cols["overlap"] = pa.array(overlap)
    cols["x_overlap"] = pa.array(overlap > 0)
    cols["x_unsupervised"] = pc.and_(is_role(CLINICAL_STAFF_ROLES), pc.is_null(sup))
    excluded = cols["x_incomplete"]
    for x in ("x_staff", "x_f2f", "x_counted", "x_before_consent", "x_no_consent", "x_after_revocation"):
        excluded = pc.or_(excluded, cols[x])
    dur = np.asarray(pc.fill_null(cols["duration"], 0.0).to_numpy(zero_copy_only=False), dtype="float64")
    qualifying = np.where(np.asarray(excluded.to_numpy(zero_copy_only=False), dtype=bool), 0.0, np.clip(dur - overlap, 0, None))
    cols["qualifying"] = pa.array(qualifying)
    cols["prac_qualifying"] = pa.array(np.where(np.asarray(cols["is_practitioner"].to_numpy(zero_copy_only=False), dtype=bool), qualifying, 0.0))
    cols["mkey"] = pc.cast(mkey, pa.int64())
    table = _repeated_text_as_dictionary(t.drop_columns(["desc_blank"]))
    for c in FACT_DTYPES:
        table = table.append_column(c, cols[c])
    return EntryStore(table, dtypes, np.asarray(te.index))


#: per staff member who logged time in a billed patient-month (``billed``: _p, _m, errors): those patient-months, the
#: ones with an error, and all the minutes they logged and that counted (every entry of theirs, billed month or not)
STAFF_SQL = """
WITH e AS (SELECT staff_id, p AS _p, mkey AS _m, duration, qualifying FROM ent WHERE staff_id IS NOT NULL),
mins AS (SELECT staff_id, fsum(duration) AS logged, fsum(qualifying) AS counted FROM e GROUP BY staff_id),
g AS (SELECT s.staff_id, count(*) AS pms, sum(CASE WHEN b.errors > 0 THEN 1 ELSE 0 END) AS with_error
      FROM (SELECT DISTINCT staff_id, _p, _m FROM e) s JOIN billed b USING (_p, _m) GROUP BY s.staff_id)
SELECT mins.staff_id, coalesce(g.pms, 0), coalesce(g.with_error, 0), mins.logged, mins.counted
FROM mins LEFT JOIN g USING (staff_id)
"""


def staff_breakdown(store: EntryStore, billed: pd.DataFrame) -> list[dict]:
    """:func:`ccmlib.engine.indicators.by_staff` read from the store in place (no frame of every entry): ``billed`` has
    the billed patient-months' patient codes in the store's categories (_p), month keys (_m) and error counts."""
    return staff_rows_of([staff_counts(store, billed)])


def staff_counts(store: EntryStore, billed: pd.DataFrame) -> list[tuple]:
    """Per staff member who logged time: (staff_id, billed patient-months, those with an error, minutes logged,
    minutes counted), the minutes unrounded, every staff member's minutes whether or not any of their patient-months
    was billed; the counts of several shards of a practice's patients add up to the practice's."""
    if not len(store):
        return []
    b = pa.table({"_p": pa.array(np.asarray(billed["_p"], dtype="int32")), "_m": pa.array(np.asarray(billed["_m"], dtype="int64")),
                  "errors": pa.array(np.asarray(billed["errors"], dtype="int64"))})
    con = _connect()
    try:
        con.register("ent", store.table)
        con.register("billed", b)
        rows = con.execute(STAFF_SQL).fetchall()
    finally:
        con.close()
    return [(str(sid), int(n), int(w), float(logged or 0), float(counted or 0)) for sid, n, w, logged, counted in rows]


def staff_rows_of(parts: list[list[tuple]]) -> list[dict]:
    """The staff breakdown from :func:`staff_counts` of one or more shards: per staff member with a billed
    patient-month, the counts and minutes summed, the error rate, then patient-months, highest first, then the staff
    id (its UTF-8 bytes, as DuckDB orders text)."""
    import math

    from ccmlib.engine.indicators import _rate

    total: dict[str, list] = {}
    for rows in parts:
        for sid, n, w, logged, counted in rows:
            t = total.setdefault(sid, [0, 0, [], []])
            t[0] += n
            t[1] += w
            t[2].append(logged)
            t[3].append(counted)
    billed = [k for k in total if total[k][0] > 0]
    order = sorted(billed, key=lambda k: (-(total[k][1] / total[k][0]), -total[k][0], k.encode("utf-8")))
    return [{"staff_id": sid, "patient_months": int(total[sid][0]), "with_error": int(total[sid][1]),
             "error_rate": _rate(total[sid][1], total[sid][0]), "minutes_logged": int(round(math.fsum(total[sid][2]))),
             "minutes_counted": int(round(math.fsum(total[sid][3])))} for sid in order]

def _codes(s: pd.Series) -> pa.Array:
    """A categorical's codes as an Arrow integer column, a missing value as null (the patient ids of the queries below:
    the tables share one category list, :func:`~ccmlib.engine.facts.encoded_tables`)."""
    c = s.cat.codes.to_numpy(dtype="int64")
    return pa.array(c, mask=c < 0)


def _days(s) -> pa.Array:
    """Dates as an Arrow nanosecond timestamp column, NaT as null."""
    return pa.array(np.asarray(s, dtype="datetime64[ns]"), type=pa.timestamp("ns"), from_pandas=True)


def _text(s: pd.Series) -> pa.Array:
    """Text (an NPI) as an Arrow string column, a missing value as null."""
    s = s.astype("string")
    return pa.array(s.astype(object).where(s.notna(), None).to_numpy(), type=pa.string())


def _npi_codes(*cols: pd.Series) -> list[pa.Array]:
    """The practitioners' NPIs of several columns as integer codes on one scale (equal text, equal code), a missing
    one as null."""
    codes, _ = pd.factorize(pd.concat([s.astype("string") for s in cols], ignore_index=True), use_na_sentinel=True)
    parts = np.split(codes.astype("int64"), np.cumsum([len(s) for s in cols])[:-1])
    return [pa.array(c, mask=c < 0, type=pa.int64()) for c in parts]


def _shared_patients(*cols: pd.Series) -> bool:
    """The patient ids are categoricals of one category list (in one order), and the first column has no missing one:
    the queries below then join on the codes (else the pandas code answers)."""
    if not all(isinstance(s.dtype, pd.CategoricalDtype) for s in cols):
        return False
    first = cols[0].cat.categories
    # the same categories in the same order (equal unordered dtypes may list them in another order: other codes)
    return all(s.cat.categories is first or s.cat.categories.equals(first) for s in cols) and not (cols[0].cat.codes < 0).any()


#: CCM commencement (catalog v3) per row of w (i; patient code p, practitioner code n, NULL = any practitioner; the
#: service month's first day): span boundaries are the last days of revocation months where the revoked consent is the
#: one in force for the (patient, practitioner) pair at that day (the latest covering consent dated on or before it, by
#: consent date, then row); the row's reset is the latest boundary before its month; commencement is the earlier of the
#: first covering consent and the practitioner's first CCM claim after it (:func:`ccmlib.engine.facts.commencement_dates`,
#: the pandas code it is held to)
COMMENCEMENT_SQL = """
WITH pairs AS (SELECT DISTINCT p, n FROM w),
m AS (SELECT pairs.p, pairs.n, c.d, c.r, c.rev FROM pairs JOIN c ON c.p = pairs.p
      WHERE c.d IS NOT NULL AND (c.n IS NULL OR pairs.n IS NULL OR c.n = pairs.n)),
cand AS (SELECT DISTINCT p, n, last_day(rev) AS b FROM m WHERE rev IS NOT NULL),
judged AS (SELECT cand.p, cand.n, cand.b, m.rev,
                  row_number() OVER (PARTITION BY cand.p, cand.n, cand.b ORDER BY m.d DESC, m.r DESC) AS k
           FROM cand JOIN m ON m.p = cand.p AND m.n IS NOT DISTINCT FROM cand.n WHERE m.d <= cand.b),
bounds AS (SELECT p, n, b FROM judged WHERE k = 1 AND rev IS NOT NULL AND last_day(rev) = b),
resets AS (SELECT w.i, max(bounds.b) AS reset FROM w JOIN bounds ON bounds.p = w.p AND bounds.n IS NOT DISTINCT FROM w.n
           WHERE bounds.b < w.start GROUP BY w.i),
ww AS (SELECT w.i, w.p, w.n, resets.reset FROM w LEFT JOIN resets ON resets.i = w.i),
fc AS (SELECT ww.i, min(c.d) AS d FROM ww JOIN c ON c.p = ww.p
       WHERE (c.n IS NULL OR ww.n IS NULL OR c.n = ww.n) AND (ww.reset IS NULL OR c.d > ww.reset) GROUP BY ww.i),
fb AS (SELECT ww.i, min(k.d) AS d FROM ww JOIN k ON k.p = ww.p
       WHERE (ww.n IS NULL OR k.n = ww.n) AND (ww.reset IS NULL OR k.d > ww.reset) GROUP BY ww.i)
SELECT ww.i, CAST(ww.reset AS TIMESTAMP) AS reset, least(fc.d, fb.d) AS commencement
FROM ww LEFT JOIN fc ON fc.i = ww.i LEFT JOIN fb ON fb.i = ww.i ORDER BY ww.i
"""


def commencement(w: pd.DataFrame, consents: pd.DataFrame, claims: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """(reset, commencement) as datetime64[ns] per row of ``w`` (patient_id, mkey, billing_npi; <NA> = any
    practitioner), from the consents (patient_id, consent_date, practitioner_npi, revoked_date, _line) and the CCM
    claim lines (patient_id, billing_npi, service_date): :data:`COMMENCEMENT_SQL`, one query. None where the patient ids
    are not categoricals of one category list or a row of ``w`` has none (the pandas code then answers)."""
    from ccmlib.engine.periods import key_start

    pid = [d["patient_id"] for d in (w, consents, claims)]
    if not _shared_patients(*pid):
        return None
    wn, cn, kn = _npi_codes(w["billing_npi"], consents["practitioner_npi"], claims["billing_npi"])

    n = len(w)
    start = key_start(w["mkey"]).to_numpy() if n else np.array([], dtype="datetime64[ns]")
    row = consents["_line"].to_numpy(dtype="int64") if "_line" in consents else np.arange(len(consents), dtype="int64")
    con = _connect()
    try:
        con.register("w", pa.table({"i": pa.array(np.arange(n, dtype="int64")), "p": _codes(pid[0]), "n": wn, "start": _days(start)}))
        con.register("c", pa.table({"p": _codes(pid[1]), "n": cn, "d": _days(consents["consent_date"]), "r": pa.array(row),
                                    "rev": _days(consents["revoked_date"])}))
        con.register("k", pa.table({"p": _codes(pid[2]), "n": kn, "d": _days(claims["service_date"])}))
        res = con.sql(COMMENCEMENT_SQL).to_arrow_table()
    finally:
        con.close()
    return tuple(np.asarray(res.column(c).cast(pa.timestamp("ns")).to_numpy(zero_copy_only=False), dtype="datetime64[ns]")
                 for c in ("reset", "commencement"))



#: IV-01's visit evidence per row of w (i; patient code p, practitioner code n, NULL = any practitioner; the row's
#: commencement and its window's first day): is there a qualifying visit (v) of the patient by the practitioner (or
#: by any, on either side) from the window's first day up to commencement (:func:`ccmlib.engine.facts.initiating_visit_status`,
#: the pandas code it is held to)
VISIT_SQL = """
SELECT DISTINCT w.i FROM w JOIN v ON v.p = w.p
WHERE v.d <= w.comm AND v.d >= w.ws AND (v.n IS NULL OR w.n IS NULL OR v.n = w.n)
"""


def visit_found(w: pd.DataFrame, visits: pd.DataFrame) -> np.ndarray | None:
    """Per row of ``w`` (patient_id, billing_npi, commencement, window_start): a qualifying visit in the window among
    ``visits`` (patient_id, visit_date, npi): :data:`VISIT_SQL`, one query. None where the patient ids are not
    categoricals of one category list or a row of ``w`` has none (the pandas code then answers)."""
    pid = [w["patient_id"], visits["patient_id"]]
    if not _shared_patients(*pid):
        return None
    wn, vn = _npi_codes(w["billing_npi"], visits["npi"])

    con = _connect()
    try:
        con.register("w", pa.table({"i": pa.array(np.arange(len(w), dtype="int64")), "p": _codes(pid[0]), "n": wn,
                                    "comm": _days(w["commencement"]), "ws": _days(w["window_start"])}))
        con.register("v", pa.table({"p": _codes(pid[1]), "n": vn, "d": _days(visits["visit_date"])}))
        hit = con.sql(VISIT_SQL).fetchnumpy()["i"]
    finally:
        con.close()
    out = np.zeros(len(w), dtype=bool)
    out[np.asarray(hit, dtype="int64")] = True
    return out


#: the consent in force per row of w (i; patient code p, practitioner n, NULL = any practitioner; the reference date):
#: of the patient's consents (c: pos, its place in the table; r, its row) dated on or before the reference date, how many
#: (before), how many cover the practitioner (covering: practice-level or its own), the latest of those by date, then
#: row (pos), and the other practitioners named by the rest, in order, comma-separated
#: (:func:`ccmlib.engine.facts.consents_in_force`, the pandas code it is held to)
CONSENT_SQL = """
WITH m AS (SELECT w.i, c.pos, c.d, c.r, c.n, (c.n IS NULL OR w.n IS NULL OR c.n = w.n) AS covers
           FROM w JOIN c ON c.p = w.p WHERE c.d <= w.ref),
ranked AS (SELECT i, pos, row_number() OVER (PARTITION BY i ORDER BY d DESC, r DESC) AS k FROM m WHERE covers)
SELECT m.i, count(*) AS before, count(*) FILTER (WHERE covers) AS covering,
       any_value(ranked.pos) FILTER (WHERE ranked.k = 1) AS pos,
       string_agg(DISTINCT m.n, ', ' ORDER BY m.n) FILTER (WHERE NOT covers) AS others
FROM m LEFT JOIN ranked ON ranked.i = m.i AND ranked.pos = m.pos GROUP BY m.i
"""


def consent_in_force(w: pd.DataFrame, consents: pd.DataFrame) -> dict[str, np.ndarray] | None:
    """Per row of ``w`` (patient_id, billing_npi, ref_date): the position in ``consents`` of the consent in force (-1:
    none), the consents dated on or before the reference date (``before``) and those covering the practitioner
    (``covering``), and the other practitioners' NPIs (``others``, object; None: none): :data:`CONSENT_SQL`, one query.
    None where the patient ids are not categoricals of one category list or a row of ``w`` has none (the pandas code
    then answers)."""
    pid = [w["patient_id"], consents["patient_id"]]
    if not _shared_patients(*pid):
        return None

    n = len(w)
    row = consents["_line"].to_numpy(dtype="int64") if "_line" in consents else np.arange(len(consents), dtype="int64")
    con = _connect()
    try:
        con.register("w", pa.table({"i": pa.array(np.arange(n, dtype="int64")), "p": _codes(pid[0]), "n": _text(w["billing_npi"]),
                                    "ref": _days(w["ref_date"])}))
        con.register("c", pa.table({"pos": pa.array(np.arange(len(consents), dtype="int64")), "p": _codes(pid[1]),
                                    "n": _text(consents["practitioner_npi"]), "d": _days(consents["consent_date"]), "r": pa.array(row)}))
        res = con.sql(CONSENT_SQL).to_arrow_table()
    finally:
        con.close()
    i = np.asarray(res.column("i").to_numpy(), dtype="int64")
    out = {"pos": np.full(n, -1, dtype="int64"), "before": np.zeros(n, dtype="int64"), "covering": np.zeros(n, dtype="int64"),
           "others": np.full(n, None, dtype=object)}
    out["pos"][i] = np.asarray(res.column("pos").fill_null(-1).to_numpy(zero_copy_only=False), dtype="int64")
    out["before"][i] = np.asarray(res.column("before").to_numpy(zero_copy_only=False), dtype="int64")
    out["covering"][i] = np.asarray(res.column("covering").to_numpy(zero_copy_only=False), dtype="int64")
    out["others"][i] = np.asarray(res.column("others").to_numpy(zero_copy_only=False), dtype=object)
    return out


#: the consent judged per row of w (i; patient code p, the date d, practitioner code n, NULL = any practitioner): of the
#: patient's consents (c: pos, its place in the table; r, its row) dated on or before the date, the latest (by date, then
#: row) that covers the practitioner (practice-level or its own), else, when none covers it, the latest of any
#: practitioner; for any practitioner the latest of all: the consent with the greatest (covers, date, row, place), the
#: tuples compared field by field (an aggregate: a third faster than a row_number window here). A row without a date,
#: or before every consent, has none (:func:`ccmlib.engine.facts.consent_episode`; the pandas code it is held to is
#: facts._consent_episode)
JUDGED_SQL = """
SELECT w.i, arg_max(c.pos, ((w.n IS NOT NULL AND (c.n IS NULL OR c.n = w.n)), c.d, c.r, c.pos)) AS pos
FROM w JOIN c ON c.p = w.p WHERE c.d <= w.d GROUP BY w.i
"""


def consent_judged(patient_id: pd.Series, dates, npi, consents: pd.DataFrame) -> np.ndarray | None:
    """Per (patient_id, date, practitioner of ``npi``; ``npi`` None or a missing one = any practitioner): the position in
    ``consents`` (patient_id, consent_date, practitioner_npi, _line) of the consent judged on that date, -1 where there
    is none: :data:`JUDGED_SQL`, one query. A consent's row is its ``_line`` (else its position); the rows are taken to
    be distinct, as a file's line numbers are. None where the patient ids are not categoricals of one category list (in
    one order) or a row has none (the pandas code then answers)."""
    pid = [pd.Series(patient_id), consents["patient_id"]]
    if not _shared_patients(*pid):
        return None
    n = len(dates)
    out = np.full(n, -1, dtype="int64")
    if not n or not consents["consent_date"].notna().any():
        return out
    who = pd.Series(pd.NA if npi is None else np.asarray(npi, dtype=object), index=range(n), dtype="string")
    wn, cn = _npi_codes(who, consents["practitioner_npi"])
    row = consents["_line"].to_numpy(dtype="int64") if "_line" in consents else np.arange(len(consents), dtype="int64")
    con = _connect()
    try:
        con.register("w", pa.table({"i": pa.array(np.arange(n, dtype="int64")), "p": _codes(pid[0]), "d": _days(dates), "n": wn}))
        con.register("c", pa.table({"pos": pa.array(np.arange(len(consents), dtype="int64")), "p": _codes(pid[1]), "n": cn,
                                    "d": _days(consents["consent_date"]), "r": pa.array(row)}))
        res = con.sql(JUDGED_SQL).fetchnumpy()
    finally:
        con.close()
    out[np.asarray(res["i"], dtype="int64")] = np.asarray(res["pos"], dtype="int64")
    return out


#: the practitioner whose consent a month's time is judged against (CONS-05, catalog v3) per row of k (i; patient code
#: p, month key m, the month's last day e): the first time-based CCM line of each patient-month of the lines (l: pos,
#: its place in the lines; g, 1 for G0506, so that it comes after any other code; the service date d; o, the claim's
#: natural order; ln, the line number; a missing value after every other, as the pandas sort puts it; pos, -1 where
#: that line names no billing practitioner), found once per patient-month of the lines and then joined to the keys (a
#: third faster than grouping the keys' join with the lines); where it names none, the patient's latest consent (c: pos,
#: its place in the consents; r, its row) dated on or before the month's last day, by date, then row, then place. A row
#: without a month key has neither (:func:`ccmlib.engine.facts.month_practitioner`; the pandas code it is held to is
#: facts._month_practitioner)
PRACTITIONER_SQL = """
WITH first_line AS (SELECT p, m, first(CASE WHEN named THEN pos ELSE -1 END
                                       ORDER BY g, d NULLS LAST, o NULLS LAST, ln NULLS LAST, pos) AS pos
                    FROM l GROUP BY p, m),
kf AS (SELECT k.i, k.p, k.e, f.pos FROM k LEFT JOIN first_line f ON f.p = k.p AND f.m = k.m)
SELECT i, pos AS line, -1 AS consent FROM kf WHERE pos >= 0
UNION ALL
SELECT kf.i, -1, arg_max(c.pos, (c.d, c.r, c.pos)) FROM kf JOIN c ON c.p = kf.p AND c.d <= kf.e
WHERE kf.pos IS NULL OR kf.pos < 0 GROUP BY kf.i
"""

#: the lines' columns :data:`PRACTITIONER_SQL` reads (an empty table of them where there are no lines)
_PRACTITIONER_LINES = pa.schema([("pos", pa.int64()), ("p", pa.int64()), ("m", pa.int64()), ("g", pa.int64()),
                                 ("d", pa.timestamp("ns")), ("o", pa.large_string()), ("ln", pa.float64()), ("named", pa.bool_())])


def month_practitioner(keys: pd.DataFrame, lines: pd.DataFrame | None, consents: pd.DataFrame
                       ) -> tuple[np.ndarray, np.ndarray] | None:
    """Per row of ``keys`` (patient_id, mkey): the position in ``lines`` (patient_id, mkey, cpt_code, service_date,
    _claim_order or claim_id, line, billing_npi; None: no lines) of the month's first time-based CCM line where it names
    a billing practitioner, and, where none does, the position in ``consents`` (patient_id, consent_date, _line) of the
    patient's latest consent dated on or before the month's last day; -1 where there is none:
    :data:`PRACTITIONER_SQL`, one query. A consent's row is its ``_line`` (else its position). None where the patient
    ids are not categoricals of one category list (in one order) or a key has none (the pandas code then answers)."""
    from ccmlib.engine.facts import natural_key
    from ccmlib.engine.periods import key_end
    from ccmlib.intake.fastops import arrow_text

    some = lines is not None and len(lines) > 0
    pid = [keys["patient_id"], consents["patient_id"]] + ([lines["patient_id"]] if some else [])
    if not _shared_patients(*pid):
        return None
    n = len(keys)
    line, consent = np.full(n, -1, dtype="int64"), np.full(n, -1, dtype="int64")
    if not n or not (some or consents["consent_date"].notna().any()):
        return line, consent

    def month(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:  # month keys as integers (as the pandas code truncates them)
        m = s.to_numpy(dtype="float64", na_value=np.nan)
        missing = np.isnan(m)
        return np.where(missing, 0, m).astype("int64"), missing

    km, missing = month(keys["mkey"])
    end = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    end[~missing] = key_end(km[~missing]).to_numpy(dtype="datetime64[ns]")
    ln = _PRACTITIONER_LINES.empty_table()
    if some:
        lm, lmissing = month(lines["mkey"])
        order = lines["_claim_order"] if "_claim_order" in lines else natural_key(lines["claim_id"])
        g = (lines["cpt_code"] == "G0506").astype(int).to_numpy(dtype="int64")  # as the pandas code reads it
        ln = pa.table({"pos": pa.array(np.arange(len(lines), dtype="int64")), "p": _codes(lines["patient_id"]),
                       "m": pa.array(lm, mask=lmissing), "g": pa.array(g), "d": _days(lines["service_date"]),
                       "o": arrow_text(order).cast(pa.large_string()),
                       "ln": pa.array(lines["line"].to_numpy(dtype="float64", na_value=np.nan), from_pandas=True),
                       "named": pa.array(lines["billing_npi"].astype("string").notna().to_numpy(dtype=bool))},
                      schema=_PRACTITIONER_LINES)
    row = consents["_line"].to_numpy(dtype="int64") if "_line" in consents else np.arange(len(consents), dtype="int64")
    con = _connect()
    try:
        con.register("k", pa.table({"i": pa.array(np.arange(n, dtype="int64")), "p": _codes(pid[0]),
                                    "m": pa.array(km, mask=missing), "e": _days(end)}))
        con.register("l", ln)
        con.register("c", pa.table({"pos": pa.array(np.arange(len(consents), dtype="int64")), "p": _codes(pid[1]),
                                    "d": _days(consents["consent_date"]), "r": pa.array(row)}))
        res = con.sql(PRACTITIONER_SQL).fetchnumpy()
    finally:
        con.close()
    i = np.asarray(res["i"], dtype="int64")
    line[i] = np.asarray(res["line"], dtype="int64")
    consent[i] = np.asarray(res["consent"], dtype="int64")
    return line, consent


#: per patient-month (pm: i, patient code p, the month's first and last day): the chronic categories active in the
#: month, each by its first diagnosis row (dx: j, in the table's order; cc, the category's number) with an onset on or
#: before the month's end and no resolution before its start; and the care plan in force, the latest created on or
#: before the month's end (by date, then row)
ACTIVE_SQL = """
SELECT pm.i, min(dx.j) AS j FROM pm JOIN dx ON dx.p = pm.p
WHERE (dx.onset IS NULL OR dx.onset <= pm.month_end) AND (dx.resolved IS NULL OR dx.resolved >= pm.month_start)
GROUP BY pm.i, dx.cc ORDER BY pm.i, j
"""
PLAN_SQL = """
SELECT i, row FROM (SELECT pm.i, cp.row, row_number() OVER (PARTITION BY pm.i ORDER BY cp.created DESC, cp.row DESC) AS k
                    FROM pm JOIN cp ON cp.p = pm.p WHERE cp.created <= pm.month_end) WHERE k = 1 ORDER BY i
"""


def month_conditions_and_plans(pm: pd.DataFrame, dx: pd.DataFrame, plans: pd.DataFrame) -> tuple[np.ndarray, ...] | None:
    """For the patient-months ``pm`` (patient_id, month_start, month_end), the diagnoses ``dx`` (patient_id, _cc,
    onset_date, resolved_date) and the care plans (patient_id, created_date): (pm rows, dx rows) of the categories
    active in each month (:data:`ACTIVE_SQL`, in the order a merge of pm with dx and the first of each category keep),
    and (pm rows, plan rows) of the plan in force (:data:`PLAN_SQL`). None where the patient ids are not categoricals of
    one category list or a patient-month has none (the pandas code then answers)."""
    pid = [pm["patient_id"], dx["patient_id"], plans["patient_id"]]
    if not _shared_patients(*pid):
        return None

    con = _connect()
    try:
        con.register("pm", pa.table({"i": pa.array(np.arange(len(pm), dtype="int64")), "p": _codes(pid[0]),
                                     "month_start": _days(pm["month_start"]), "month_end": _days(pm["month_end"])}))
        con.register("dx", pa.table({"j": pa.array(np.arange(len(dx), dtype="int64")), "p": _codes(pid[1]),
                                     "cc": pa.array(dx["_cc"].to_numpy(dtype="int64")), "onset": _days(dx["onset_date"]),
                                     "resolved": _days(dx["resolved_date"])}))
        con.register("cp", pa.table({"row": pa.array(np.arange(len(plans), dtype="int64")), "p": _codes(pid[2]),
                                     "created": _days(plans["created_date"])}))
        active = con.sql(ACTIVE_SQL).fetchnumpy()
        plan = con.sql(PLAN_SQL).fetchnumpy()
    finally:
        con.close()
    return tuple(np.asarray(a, dtype="int64") for a in (active["i"], active["j"], plan["i"], plan["row"]))
