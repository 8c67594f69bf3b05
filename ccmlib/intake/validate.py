"""Parse text columns into types and validate rows against the declared schemas.

Parsing is vectorized per column; value rules (ranges, value sets, unique keys) are declared as
pandera schemas built from :mod:`ccmlib.schema`. Every failure becomes a row of the
data-quality table; a row with any ``rejected`` problem is left out of the typed table, a
``flagged`` row is kept. Nothing is dropped without a data-quality row.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ccmlib.intake import dates
from ccmlib.intake.schema import Col, Table

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import pandera.pandas as pa

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


def _pandera_schemas(table: Table) -> tuple[pa.DataFrameSchema, pa.DataFrameSchema]:
    """(reject schema, flag schema) declared from the table's columns."""
    reject, flag = {}, {}
    for c in table.cols:
        checks = []
        if c.choices:
            checks.append(pa.Check.isin(list(c.choices), error=f"not one of: {', '.join(c.choices)}"))
        if c.min is not None:
            checks.append(pa.Check.ge(c.min, error=f"below the minimum of {c.min:g}"))
        if c.max is not None:
            checks.append(pa.Check.le(c.max, error=f"above the maximum of {c.max:g}"))
        if checks:
            reject[c.name] = pa.Column(checks=checks, nullable=True, required=False)
        if c.flag_above is not None:
            flag[c.name] = pa.Column(checks=[pa.Check.le(c.flag_above, error=f"implausibly large (over {c.flag_above:g}); kept, please verify")],
                                     nullable=True, required=False)
    unique = list(table.key) or None
    return (pa.DataFrameSchema(reject, unique=unique, report_duplicates="exclude_first"),
            pa.DataFrameSchema(flag))


def _run_schema(schema: pa.DataFrameSchema, df: pd.DataFrame, table: Table, action: str) -> pd.DataFrame:
    try:
        schema.validate(df, lazy=True)
    except pa.errors.SchemaErrors as exc:
        fc = exc.failure_cases
        fc = fc[fc["index"].notna()]
        is_dup = fc["check"].astype(str).str.contains("uniqueness|unique", regex=True)
        problem = np.where(is_dup, "duplicate " + "+".join(table.key) + " (an earlier row has the same; this one is left out)",
                           fc["check"].astype(str))
        column = np.where(is_dup, "+".join(table.key), fc["column"].astype(str))
        out = pd.DataFrame({"row": fc["index"].astype("int64").to_numpy(), "column": column, "problem": problem,
                            "value": fc["failure_case"].astype("string").to_numpy(), "action": action})
        return out.drop_duplicates(["row", "column", "problem"])
    return pd.DataFrame(columns=["row", "column", "problem", "value", "action"])


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
        out.append(_problems(both & (span < 0), "end_time", "end_time before start_time", _clock(df["end_time"])))
        disagree = both & df["minutes"].notna() & ((df["minutes"] - span).abs() > 1)
        out.append(_problems(disagree, "minutes", "minutes disagree with start_time/end_time", df["minutes"]))
    return out


def validate_table(table: Table, raw: pd.DataFrame, label: str, date_format: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Typed table of accepted rows (with ``_line``) and its data-quality rows (dates read in ``date_format``)."""
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
    raw = raw.reset_index(drop=True)
    typed = {}
    probs = []
    for c in table.cols:
        if c.name in present:
            typed[c.name], p = parse_column(raw[c.name], c, date_format)
            probs.append(p)
        else:
            typed[c.name] = parse_column(pd.Series([None] * len(raw), dtype="object"), c)[0]
    extra = [c for c in raw.columns if c not in typed and c != "_line"]
    df = pd.DataFrame(typed)
    for c in extra:
        df[c] = raw[c]
    df["_line"] = raw["_line"].to_numpy()
    reject_schema, flag_schema = _pandera_schemas(table)
    probs.append(_run_schema(reject_schema, df, table, "rejected"))
    probs.append(_run_schema(flag_schema, df, table, "flagged"))
    probs.extend(_table_rules(table, df))
    probs = [p for p in probs if len(p)]
    dq = pd.concat(probs, ignore_index=True) if probs else pd.DataFrame(columns=["row", "column", "problem", "value", "action"])
    rejected = np.zeros(len(df), dtype=bool)
    rejected[dq.loc[dq["action"] == "rejected", "row"].astype("int64").to_numpy()] = True
    dq = dq[(dq["action"] == "rejected") | ~rejected[dq["row"].astype("int64").to_numpy()]]  # no flag on a rejected row
    dq["line"] = df["_line"].to_numpy()[dq["row"].astype("int64").to_numpy()] if len(dq) else pd.Series(dtype="int64")
    dq["table"], dq["file"] = table.name, label
    accepted = df[~rejected].reset_index(drop=True)
    return accepted, dq[DQ_COLUMNS]


def empty_quality() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in DQ_COLUMNS})
