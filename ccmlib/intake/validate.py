"""Parse text columns into types and validate rows against the declared schemas.

Parsing is vectorized per column; the value checks (value sets, minimums, maximums, flags) and the unique key
are declared with the columns in :mod:`ccmlib.intake.schema` and run here as vectorized comparisons (numpy, pandas,
Arrow). Every failure becomes a row of the data-quality table; a row with any ``rejected`` problem is left out of
the typed table, a ``flagged`` row is kept. Nothing is dropped without a data-quality row.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ccmlib.intake import dates
from ccmlib.intake.schema import Col, Table

DQ_COLUMNS = ["table", "file", "line", "column", "problem", "value", "action"]

TRUE = {"true", "yes", "y", "1", "t"}
FALSE = {"false", "no", "n", "0", "f"}
_BOOL_MAP = {**{k: True for k in TRUE}, **{k: False for k in FALSE}}
_DATE_RE = r"^\d{4}-\d{2}-\d{2}(?:[ T]00:00(?::00(?:\.0+)?)?)?$"
_TIME_RE = r"^(\d{1,2}):(\d{2})(?::\d{2})?$"


def _clock(minutes: pd.Series) -> pd.Series:
    """Minutes after midnight back to HH:MM (for messages)."""
    m = minutes.astype("Float64")
    return ((m // 60).astype("Int64").astype("string").str.zfill(2) + ":" + (m % 60).astype("Int64").astype("string").str.zfill(2))


_NO_PROBLEMS = pd.DataFrame({"row": pd.Series([], dtype="int64"), "column": pd.Series([], dtype=object),
                             "problem": pd.Series([], dtype=object), "value": pd.Series([], dtype=object),
                             "action": pd.Series([], dtype=object)})


def _problems(mask: pd.Series, column: str, problem: str, values: pd.Series | None = None,
              action: str = "rejected") -> pd.DataFrame:
    idx = np.flatnonzero(mask.to_numpy(dtype=bool, na_value=False))
    if not len(idx):
        return _NO_PROBLEMS  # shared and never modified: most columns have none, and a frame per column is costly
    if values is None:
        vals = [""] * len(idx)
    else:
        vals = values.iloc[idx]
        vals = (vals.dt.strftime("%Y-%m-%d") if pd.api.types.is_datetime64_any_dtype(vals) else vals).astype("string").to_numpy()
    return pd.DataFrame({"row": idx, "column": column, "problem": problem, "value": vals, "action": action})


TEXT = pd.StringDtype("pyarrow")  # vectorized string kernels (pyarrow is a dependency)


def _as_text(s: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(s) and s.dropna().mod(1).eq(0).all():
        s = s.astype("Int64")  # 123.0 from a Parquet/Excel number column -> "123"
    return s.astype(TEXT).str.strip()


def _fixed5(text: pd.Series) -> np.ndarray:
    """(n, 5) uint8 array of 5-character ASCII strings, straight from the Arrow buffer when possible."""
    import pyarrow as pa

    try:
        arr = pa.array(text.array)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if arr.null_count == 0 and (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            off_type = np.int64 if pa.types.is_large_string(arr.type) else np.int32
            offsets = np.frombuffer(arr.buffers()[1], dtype=off_type)[arr.offset: arr.offset + len(arr) + 1]
            if offsets[-1] - offsets[0] == 5 * len(arr):  # all exactly 5 bytes: ASCII and contiguous
                return np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]].reshape(-1, 5)
    except (TypeError, pa.ArrowException):
        pass
    return np.frombuffer(np.asarray(text.to_numpy(dtype=object), dtype="S5").tobytes(), dtype=np.uint8).reshape(-1, 5)


def _hhmm(text: pd.Series) -> pd.Series:
    """Minutes after midnight of HH:MM / H:MM / HH:MM:SS text (NaN where invalid): fixed-width fast path, regex for the rest."""
    out = np.full(len(text), np.nan)
    lens = text.str.len().fillna(0).to_numpy()
    fast = lens == 5
    if fast.any():
        try:
            b = _fixed5(text[fast]).astype(np.int16)
            d = b - 48
            ok = (b[:, 2] == 58) & (np.delete(d, 2, axis=1) >= 0).all(axis=1) & (np.delete(d, 2, axis=1) <= 9).all(axis=1)
            hh, mm = d[:, 0] * 10 + d[:, 1], d[:, 3] * 10 + d[:, 4]
            out[np.flatnonzero(fast)] = np.where(ok & (hh <= 23) & (mm <= 59), hh * 60 + mm, np.nan)
        except UnicodeEncodeError:  # non-ASCII text: let the regex decide
            fast[:] = False
    rest = ~fast & (lens > 0)
    if rest.any():
        parts = text[rest].str.extract(_TIME_RE)
        hh, mm = pd.to_numeric(parts[0], errors="coerce"), pd.to_numeric(parts[1], errors="coerce")
        out[np.flatnonzero(rest)] = (hh * 60 + mm).where(hh.between(0, 23) & mm.between(0, 59)).to_numpy(dtype=float)
    return pd.Series(out, index=text.index)


DATE_MIN, DATE_MAX = pd.Timestamp("1800-01-01"), pd.Timestamp("2199-12-31")


def _in_range(d: pd.Series) -> pd.Series:
    """Dates outside 1800-2199 as missing (9999-12-31 or 0954-05-31 are typos or placeholders, and would not fit
    the nanosecond timestamps every later step uses)."""
    d = d.astype("datetime64[s]")
    return d.where((d >= DATE_MIN) & (d <= DATE_MAX))


def parse_column(raw: pd.Series, col: Col, date_format: str | None = None) -> tuple[pd.Series, pd.DataFrame]:
    """Typed series and the problems found in one column (dates in ``date_format``, mapping.yml's ``dates:``; ISO
    by default)."""
    kind = col.kind
    if kind == "date" and pd.api.types.is_datetime64_any_dtype(raw):
        d = pd.to_datetime(raw).dt.tz_localize(None).dt.normalize()
        ok = _in_range(d)
        return ok.astype("datetime64[ns]"), _problems(d.notna() & ok.isna(), col.name,
                                                      f"date out of range (expected a year from {DATE_MIN.year} to {DATE_MAX.year})",
                                                      d)  # formatted in _problems, for the rejected rows only
    if kind == "bool" and pd.api.types.is_bool_dtype(raw):
        return raw.astype("boolean"), _problems(raw.isna() & False, col.name, "")
    if kind in ("number", "int") and pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        out = raw.astype("float64")
        frac = out.notna() & (out % 1 != 0) if kind == "int" else out.isna() & False
        return (out.where(~frac).astype("Int64") if kind == "int" else out), _problems(frac, col.name, "not a whole number", raw)
    text = _as_text(raw)
    blank = text.isna() | (text == "")
    text = text.mask(blank)
    probs = []
    if not col.blank_ok:
        probs.append(_problems(blank, col.name, "required value is blank"))
    if kind in ("id", "text"):
        out = text
    elif kind == "code":
        out = text.str.upper()
    elif kind == "icd":
        out = text.str.upper().str.replace(".", "", regex=False).str.replace(" ", "", regex=False)
    elif kind == "choice":
        out = text.str.lower()
    elif kind == "date":
        fmt = date_format or dates.ISO
        if fmt == dates.ISO:
            parsed = _in_range(pd.to_datetime(text, format="%Y-%m-%d", errors="coerce"))
            retry = (~blank & parsed.isna()).to_numpy()
            if retry.any():  # also YYYY-MM-DD 00:00:00 (Excel dates read as text)
                t = text[retry]
                ok = t.str.match(_DATE_RE).fillna(False).astype(bool)
                parsed[retry] = _in_range(pd.to_datetime(t.where(ok).str.slice(0, 10), format="%Y-%m-%d", errors="coerce")).to_numpy()
        else:
            parsed = _in_range(dates.parse(text, fmt))
        out = parsed.astype("datetime64[ns]")
        bad = ~blank & out.isna()
        early_late = bad & text.str.match(r"^\d{4}-").fillna(False).astype(bool) & ~text.str.slice(0, 4).between(str(DATE_MIN.year), str(DATE_MAX.year))
        problem = f"not a valid date (expected {fmt})"
        if dates.majority_bad(blank.to_numpy(dtype=bool), bad.to_numpy(dtype=bool)):  # the column's format, not a few typos
            problem += dates.hint(text[bad & ~early_late]) if fmt == dates.ISO else ""
        probs.append(_problems(bad & ~early_late, col.name, problem, text))
        probs.append(_problems(early_late, col.name, f"date out of range (expected a year from {DATE_MIN.year} to {DATE_MAX.year})", text))
    elif kind == "time":
        mins = _hhmm(text)
        out = mins.astype("Int32")
        probs.append(_problems(~blank & mins.isna(), col.name, "not a valid time (expected HH:MM, 24 h)", text))
    elif kind == "bool":
        out = text.str.lower().map(_BOOL_MAP).astype("boolean")
        probs.append(_problems(~blank & out.isna(), col.name, "not a boolean (expected true/false, yes/no, y/n or 1/0)", text))
    elif kind in ("number", "int"):
        out = pd.to_numeric(text, errors="coerce").astype("float64")
        probs.append(_problems(~blank & out.isna(), col.name, "not a number", text))
        if kind == "int":
            frac = out.notna() & (out % 1 != 0)
            probs.append(_problems(frac, col.name, "not a whole number", text))
            out = out.where(~frac).astype("Int64")
    else:  # pragma: no cover - guarded by the schema declarations
        raise ValueError(f"unknown column kind {kind}")
    probs = [p for p in probs if len(p)]
    return out, (pd.concat(probs, ignore_index=True) if probs else _problems(blank & False, col.name, ""))


@dataclass(frozen=True)
class Check:
    """One value check a column declares in :mod:`ccmlib.intake.schema`: ``test`` is ``isin`` (``bound`` the
    choices), ``ge`` or ``le``; a missing value passes every check (a blank required value has its own problem)."""

    column: str
    test: str
    bound: float | tuple[str, ...]
    problem: str
    action: str  # rejected or flagged


def declared_checks(table: Table) -> list[Check]:
    """The value checks of the table's columns: the rejecting ones in column order (choices, min, max), then the flags."""
    reject, flag = [], []
    for c in table.cols:
        if c.choices:
            reject.append(Check(c.name, "isin", tuple(c.choices), f"not one of: {', '.join(c.choices)}", "rejected"))
        if c.min is not None:
            reject.append(Check(c.name, "ge", c.min, f"below the minimum of {c.min:g}", "rejected"))
        if c.max is not None:
            reject.append(Check(c.name, "le", c.max, f"above the maximum of {c.max:g}", "rejected"))
        if c.flag_above is not None:
            flag.append(Check(c.name, "le", c.flag_above, f"implausibly large (over {c.flag_above:g}); kept, please verify", "flagged"))
    return reject + flag


def _failing(s: pd.Series, check: Check) -> np.ndarray:
    """Positions of the values that fail the check (missing values never fail)."""
    if check.test == "isin":
        return np.flatnonzero((s.notna() & ~s.isin(list(check.bound))).to_numpy(dtype=bool, na_value=False))
    x = s.to_numpy(dtype="float64", na_value=np.nan)  # NaN compares False: a missing value passes
    return np.flatnonzero(x < check.bound if check.test == "ge" else x > check.bound)


def _ascending_keys(parts: list[pd.Series]) -> bool:
    """True when no key part is missing and every row's key is greater than the row before's (compared part by part):
    then no two keys are equal. Exports are usually in key order, and this linear pass is ~15x cheaper than hashing
    800k ids."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(parts[0])
    if n < 2:
        return True
    greater, equal = np.zeros(n - 1, dtype=bool), np.ones(n - 1, dtype=bool)
    for s in parts:
        if s.hasnans:
            return False
        try:
            arr = pa.array(s.array, from_pandas=True)
            if isinstance(arr, pa.ChunkedArray):
                arr = arr.combine_chunks()
            nxt, prev = arr.slice(1), arr.slice(0, n - 1)
            gt = pc.greater(nxt, prev).to_numpy(zero_copy_only=False)
            eq = pc.equal(nxt, prev).to_numpy(zero_copy_only=False)
        except (TypeError, ValueError, pa.ArrowException):  # a part Arrow cannot order: let pandas hash the keys
            return False
        greater |= equal & gt
        equal &= eq
        if not (greater | equal).all():  # some row's key is below the one before
            return False
    return bool(greater.all())


def _check_rows(table: Table, df: pd.DataFrame, action: str) -> pd.DataFrame:
    """Data-quality rows of the ``action`` checks (for ``rejected``, first the later duplicates of the table's key).

    The rows, their order and their value text are those pandera gave when it ran these checks
    (``tests/test_validate_checks.py`` compares them with it): the duplicates ``DataFrame.duplicated(keep="first")``
    finds (missing key parts equal each other), each shown by its first non-missing key part, the rows shown by the
    first part before those shown by the second (a row with no key part at all is not shown: its blank key is
    rejected anyway); then each check's failures in row order. The values of one action are written as text
    together, so their common type decides how (a units value of 150 reads "150.0" beside a failing float)."""
    rows, problems, columns, values = [], [], [], []
    if action == "rejected" and table.key:
        key = list(table.key)
        if not _ascending_keys([df[k] for k in key]):
            dup = df.duplicated(subset=key, keep="first").to_numpy()
            if dup.any():
                cases = df.loc[dup, key].unstack().dropna()  # (key part, row) -> value, part by part
                pos = cases.index.get_level_values(1).to_numpy()
                first = ~pd.Index(pos).duplicated(keep="first")
                rows.append(pos[first].astype("int64"))
                values.append(cases[first])
                problem = "duplicate " + "+".join(key) + " (an earlier row has the same; this one is left out)"
                problems.append(np.full(int(first.sum()), problem, dtype=object))
                columns.append(np.full(int(first.sum()), "+".join(key), dtype=object))
    for check in declared_checks(table):
        if check.action != action or check.column not in df:
            continue
        s = df[check.column]
        idx = _failing(s, check)
        if len(idx):
            rows.append(idx.astype("int64"))
            values.append(s.iloc[idx])
            problems.append(np.full(len(idx), check.problem, dtype=object))
            columns.append(np.full(len(idx), check.column, dtype=object))
    if not rows:
        return _NO_PROBLEMS
    vals = pd.concat([v.reset_index(drop=True).to_frame("v") for v in values], ignore_index=True)["v"]  # as pandera did
    return pd.DataFrame({"row": np.concatenate(rows), "column": np.concatenate(columns), "problem": np.concatenate(problems),
                         "value": vals.astype("string").to_numpy(), "action": action})


def _table_rules(table: Table, df: pd.DataFrame) -> list[pd.DataFrame]:
    """Cross-column rules that a column schema cannot state."""
    out = []
    if table.name == "claims":
        from ccmlib.reference.codes import CCM_CODES, CCM_LIKE, OTHER_994_G05

        code = df["cpt_code"]
        like = code.str.match(CCM_LIKE).fillna(False).astype(bool) & ~code.isin(list(CCM_CODES) + list(OTHER_994_G05)).fillna(False)
        out.append(_problems(like, "cpt_code", "looks like a CCM-family code but is not one (typo?); the line is kept but not "
                             "audited as CCM: correct the code if it was meant to be " + ", ".join(CCM_CODES), code, action="flagged"))
    if table.name == "time_entries":
        both = df["start_time"].notna() & df["end_time"].notna()
        span = (df["end_time"] - df["start_time"]).astype("Float64")
        before = (both & (span < 0)).fillna(False).astype(bool)
        shown = pd.Series(pd.NA, index=df.index, dtype="string")  # HH:MM written only for the rows it names
        shown[before] = _clock(df.loc[before, "end_time"])
        out.append(_problems(before, "end_time", "end_time before start_time", shown))
        disagree = both & df["minutes"].notna() & ((df["minutes"] - span).abs() > 1)
        out.append(_problems(disagree, "minutes", "minutes disagree with start_time/end_time", df["minutes"]))
    return out


def validate_table(table: Table, raw: pd.DataFrame, label: str, date_format: str | None = None,
                   consume: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Typed table of accepted rows (with ``_line``) and its data-quality rows (dates read in ``date_format``).
    ``consume``: each text column is removed from ``raw`` once it is typed, so that a large table is not held twice
    (``raw`` keeps its rows, its ``_line`` and the columns the contract does not know)."""
    from ccmlib.errors import InputError

    present = set(raw.columns)
    missing = [c for c in table.required if c not in present]
    if table.one_of and not any(all(c in present for c in alt) for alt in table.one_of):
        missing.append(" or ".join("+".join(alt) for alt in table.one_of))
    if missing:
        have = ", ".join(c for c in raw.columns if c != "_line") or "none"
        raise InputError(f"{label}: missing required column(s) {', '.join(missing)} for table {table.name} "
                         f"(columns found: {have}; rename them with mapping.yml if the export uses other names: "
                         f"`ccm-audit inspect DATA_DIR` drafts one)")
    given, raw = raw, raw.reset_index(drop=True)
    typed = {}
    probs = []
    for c in table.cols:
        if c.name in present:
            typed[c.name], p = parse_column(raw[c.name], c, date_format)
            probs.append(p)
            if consume:
                del raw[c.name], given[c.name]
        else:
            typed[c.name] = parse_column(pd.Series([None] * len(raw), dtype="object"), c)[0]
    extra = [c for c in raw.columns if c not in typed and c != "_line"]
    df = pd.DataFrame(typed)
    for c in extra:
        df[c] = raw[c]
    df["_line"] = raw["_line"].to_numpy()
    probs.append(_check_rows(table, df, "rejected"))
    probs.append(_check_rows(table, df, "flagged"))
    probs.extend(_table_rules(table, df))
    probs = [p for p in probs if len(p)]
    dq = pd.concat(probs, ignore_index=True) if probs else pd.DataFrame(columns=["row", "column", "problem", "value", "action"])
    rejected = np.zeros(len(df), dtype=bool)
    rejected[dq.loc[dq["action"] == "rejected", "row"].astype("int64").to_numpy()] = True
    dq = dq[(dq["action"] == "rejected") | ~rejected[dq["row"].astype("int64").to_numpy()]]  # no flag on a rejected row
    dq["line"] = df["_line"].to_numpy()[dq["row"].astype("int64").to_numpy()] if len(dq) else pd.Series(dtype="int64")
    dq["table"], dq["file"] = table.name, label
    accepted = df[~rejected].reset_index(drop=True) if rejected.any() else df  # no copy of a table without rejects
    return accepted, dq[DQ_COLUMNS]


def empty_quality() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in DQ_COLUMNS})
