"""Parse text columns into types and validate rows against the declared schemas.

Parsing is vectorized per column; the value checks (value sets, minimums, maximums, flags) and the unique key
are declared with the columns in :mod:`ccmlib.intake.schema` and run here as vectorized comparisons (numpy, pandas,
Arrow). Every failure becomes a row of the data-quality table; a row with any ``rejected`` problem is left out of
the typed table, a ``flagged`` row is kept. Nothing is dropped without a data-quality row.
"""
from __future__ import annotations

from functools import lru_cache

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


def _problems(mask: pd.Series | np.ndarray, column: str, problem: str, values: pd.Series | None = None,
              action: str = "rejected") -> pd.DataFrame:
    idx = np.flatnonzero(mask if isinstance(mask, np.ndarray) else mask.to_numpy(dtype=bool, na_value=False))
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
    # what ``astype`` does to an object column or (a no-op cast) to an Arrow ``str`` one, without its dispatch, which is
    # most of the time on small tables
    if s.dtype == object:
        text = pd.Series(pd.arrays.ArrowStringArray._from_sequence(s.to_numpy(), dtype=TEXT), index=s.index, name=s.name, copy=False)
    elif isinstance(s.array, pd.arrays.ArrowStringArray) and s.dtype != TEXT:
        text = pd.Series(pd.arrays.ArrowStringArray(s.array._pa_array, dtype=TEXT), index=s.index, name=s.name, copy=False)
    else:
        text = s.astype(TEXT)
    return text.str.strip() if _may_need_strip(text) else text  # most exports have no padded value: no copy of the column


def _string_chunks(text: pd.Series) -> list | None:
    """The Arrow chunks of a ``string[pyarrow]`` column (None for another storage)."""
    import pyarrow as pa

    arr = getattr(text.array, "_pa_array", None)
    if arr is None or not (pa.types.is_large_string(arr.type) or pa.types.is_string(arr.type)):
        return None
    return arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]


def _layout(chunk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(valid, offsets, data) of one Arrow string chunk, read in place: ``offsets`` has one more entry than the chunk
    (value i is ``data[offsets[i]:offsets[i + 1]]``), ``valid`` is False for a missing value."""
    import pyarrow as pa

    n = len(chunk)
    bufs = chunk.buffers()
    if n == 0 or bufs[1] is None:
        return np.zeros(0, dtype=bool), np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    off_type = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    offsets = np.frombuffer(bufs[1], dtype=off_type)[chunk.offset: chunk.offset + n + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, dtype=np.uint8)
    valid = np.ones(n, dtype=bool) if chunk.null_count == 0 else chunk.is_valid().to_numpy(zero_copy_only=False)
    return valid, offsets, data


def _may_need_strip(text: pd.Series) -> bool:
    """False only when no value of a ``string[pyarrow]`` column begins or ends with a byte that could be (part of)
    whitespace: an ASCII control character or space, or any non-ASCII byte (so stripping would change nothing).
    One look at the first and last byte of each value, in the Arrow buffers; True (strip) when unsure."""
    chunks = _string_chunks(text)
    if chunks is None:
        return True
    for ch in chunks:
        _, offsets, data = _layout(ch)
        if not len(data) or offsets[-1] == offsets[0]:
            continue
        # the first and last byte of every value (a missing or empty value points at a neighbour's: checked anyway);
        # in uint8, byte - 0x21 is above 0x5D for a control character, space, DEL or any byte of a non-ASCII character
        for at in (offsets[:-1], offsets[1:] - 1):
            if ((np.take(data, at, mode="clip") - np.uint8(0x21)) > np.uint8(0x5D)).any():
                return True
    return False


def _byte_set(chars: str) -> np.ndarray:
    """256 flags: the bytes of ``chars`` and every non-ASCII byte (a non-ASCII letter may have a case)."""
    flags = np.zeros(256, dtype=bool)
    flags[[ord(c) for c in chars]] = True
    flags[0x80:] = True
    return flags


_LOWER = _byte_set("abcdefghijklmnopqrstuvwxyz")
_UPPER = _byte_set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LOWER_DOT_SPACE = _byte_set("abcdefghijklmnopqrstuvwxyz. ")


def _has_none_of(text: pd.Series, flags: np.ndarray) -> bool:
    """True when no byte of a ``string[pyarrow]`` column's values is one of ``flags`` (then upper- or lower-casing it,
    or removing dots and spaces, changes nothing and the column is kept without a copy); False when unsure."""
    chunks = _string_chunks(text)
    if chunks is None:
        return False
    for ch in chunks:
        _, offsets, data = _layout(ch)
        if flags[data[offsets[0]:offsets[-1]]].any():
            return False
    return True


def _blank_fast(text: pd.Series) -> np.ndarray | None:
    """``text.isna()`` as a numpy mask when a ``string[pyarrow]`` column has no empty value (then it is also
    ``text.isna() | (text == "")`` and masking the blanks changes nothing); None when it has one or is stored otherwise."""
    chunks = _string_chunks(text)
    if chunks is None:
        return None
    blank = []
    for ch in chunks:
        valid, offsets, _ = _layout(ch)
        if len(valid) < len(ch):  # no value buffer (a chunk of nulls only)
            valid = np.zeros(len(ch), dtype=bool)
        empty = offsets[1:] == offsets[:-1]  # empty text, or (usually) a missing value
        if empty.any() and (empty & valid).any():
            return None
        blank.append(~valid)
    return blank[0] if len(blank) == 1 else np.concatenate(blank) if blank else np.zeros(0, dtype=bool)


def _mask_empty(text: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """``text.mask(blank)`` and ``blank = text.isna() | (text == "")`` (as a numpy mask), by Arrow kernels chunk by
    chunk: a column with empty values (most CSV exports) is masked without pandas' per-operation cost."""
    import pyarrow as pa
    import pyarrow.compute as pc

    chunks = _string_chunks(text)
    if chunks is None:
        blank = (text.isna() | (text == "")).to_numpy(dtype=bool, na_value=True)
        return text.mask(blank), blank
    kept, blank = [], []
    for ch in chunks:
        empty = pc.equal(pc.binary_length(ch), 0)  # null for a missing value
        kept.append(pc.if_else(empty, pa.scalar(None, ch.type), ch))
        blank.append(pc.fill_null(empty, True).to_numpy(zero_copy_only=False))
    arr = pa.chunked_array(kept, type=chunks[0].type) if chunks else text.array._pa_array
    out = pd.Series(pd.arrays.ArrowStringArray(arr, dtype=TEXT), index=text.index, name=text.name, copy=False)
    return out, (np.concatenate(blank) if blank else np.zeros(0, dtype=bool))


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
        out[np.flatnonzero(rest)] = _regex_minutes(text[rest])
    return pd.Series(out, index=text.index)


def _ascii(chunk) -> bool:
    """No byte of a string chunk's values is non-ASCII."""
    _, offsets, data = _layout(chunk)
    return bool(data[offsets[0]:offsets[-1]].max(initial=0) < 0x80)


def _regex_minutes(text: pd.Series) -> np.ndarray:
    """Minutes after midnight of H:MM, HH:MM or HH:MM:SS text (NaN for anything else)."""
    parts = text.str.extract(_TIME_RE)
    hh, mm = pd.to_numeric(parts[0], errors="coerce"), pd.to_numeric(parts[1], errors="coerce")
    return (hh * 60 + mm).where(hh.between(0, 23) & mm.between(0, 59)).to_numpy(dtype=float)


def _pairs(upto: int) -> np.ndarray:
    """-1 for every 16-bit number but those of two ASCII digits "00".."upto" (first digit in the low byte): their value."""
    table = np.full(1 << 16, -1, dtype=np.int16)
    for v in range(upto + 1):
        table[(48 + v // 10) | ((48 + v % 10) << 8)] = v
    return table


_HOURS, _MINUTES = _pairs(23), _pairs(59)


def _times(text: pd.Series) -> pd.Series:
    """``_hhmm(text).astype("Int32")``: for a column of ASCII text, the HH:MM values are read in the Arrow buffers
    (no copy of the column, no float column), the others (H:MM, HH:MM:SS, anything else) by the regex."""
    chunks = _string_chunks(text)
    if chunks is None or not all(_ascii(ch) for ch in chunks):
        return _hhmm(text).astype("Int32")
    n = len(text)
    values, missing = np.ones(n, dtype=np.int32), np.ones(n, dtype=bool)  # 1 under the mask, as astype("Int32") leaves it
    rest, at = [], 0
    for ch in chunks:
        valid, offsets, data = _layout(ch)
        width = offsets[1:] - offsets[:-1]
        length = np.where(valid, width, 0)
        five = length == 5
        idx = np.flatnonzero(five)
        if len(idx):
            if ((width == 5) | (width == 0)).all() and not (width[~valid]).any():  # HH:MM or missing: records in a row
                rec = data[offsets[0]:offsets[-1]].reshape(-1, 5)
            else:
                rec = np.stack([data[offsets[:-1][idx] + k] for k in range(5)], axis=1)
            # each record's two hour bytes and two minute bytes as one 16-bit number, looked up in a table of the valid
            # pairs "00".."23" and "00".."59" (-1 for any other pair); a ':' between them
            hh = _HOURS[rec[:, 0].astype(np.uint16) | (rec[:, 1].astype(np.uint16) << 8)]
            mm = _MINUTES[rec[:, 3].astype(np.uint16) | (rec[:, 4].astype(np.uint16) << 8)]
            ok = (rec[:, 2] == 58) & (hh >= 0) & (mm >= 0)
            mins = np.where(ok, hh.astype(np.int32) * 60 + mm, 1)
            if len(idx) == len(valid):  # every value of the chunk: slices, not scattered positions
                values[at:at + len(idx)], missing[at:at + len(idx)] = mins, ~ok
            else:
                values[at + idx], missing[at + idx] = mins, ~ok
        other = np.flatnonzero(~five & (length > 0))
        if len(other):
            rest.append(other + at)
        at += len(valid)
    if rest:
        where = np.concatenate(rest)
        mins = _regex_minutes(text.iloc[where])
        ok = ~np.isnan(mins)
        values[where[ok]] = mins[ok].astype(np.int32)
        missing[where[ok]] = False
    return pd.Series(pd.arrays.IntegerArray(values, missing), index=text.index)


DATE_MIN, DATE_MAX = pd.Timestamp("1800-01-01"), pd.Timestamp("2199-12-31")


_LO, _HI = np.datetime64(DATE_MIN, "s"), np.datetime64(DATE_MAX, "s")


def _in_range(d: pd.Series) -> pd.Series:
    """Dates outside 1800-2199 as missing (9999-12-31 or 0954-05-31 are typos or placeholders, and would not fit
    the nanosecond timestamps every later step uses), as ``datetime64[ns]`` (compared in whole seconds); in numpy,
    a few operations whatever the column's length."""
    v = d.to_numpy().astype("datetime64[s]")
    ok = (v >= _LO) & (v <= _HI)  # NaT compares False
    return pd.Series(np.where(ok, v, np.datetime64("NaT", "s")).astype("datetime64[ns]"), index=d.index, name=d.name, copy=False)


def _whole_days_in_range(raw: pd.Series) -> pd.Series | None:
    """A naive datetime64 column whose values are all midnights from 1800 to 2199 (or missing) as the
    ``datetime64[ns]`` column ``parse_column`` would make of it (the column itself when it is in nanoseconds); None
    for any other column."""
    unit = {np.dtype(f"datetime64[{u}]"): u for u in ("s", "ms", "us", "ns")}.get(raw.dtype)
    if unit is None:
        return None
    v = raw.to_numpy(copy=False).view(np.int64)
    nat = v == np.iinfo(np.int64).min
    if nat.any():
        v = v[~nat]
    day, lo, hi = (np.datetime64(x).astype(f"datetime64[{unit}]").astype(np.int64) for x in ("1970-01-02", DATE_MIN, DATE_MAX))
    if len(v) and ((v % day).any() or int(v.min()) < lo or int(v.max()) > hi):
        return None
    return raw if unit == "ns" else raw.astype("datetime64[ns]")


def _per_distinct(text: pd.Series, parse) -> pd.Series:
    """``parse(text)``, computed once per distinct value and spread back when the column repeats its values (the dates,
    minutes and flags of a CSV or Excel export: a few hundred distinct values in 800k rows). ``parse`` must work value
    by value, its result type decided by the set of values only (``to_numeric``, ``to_datetime`` with a format, a
    mapping): the distinct values are that same set (a missing value among them when the column has one)."""
    import pyarrow as pa

    chunks = _string_chunks(text)
    if chunks is None or len(text) < 1000:
        return parse(text)
    codes, uniques = pd.factorize(text)  # a missing value: -1
    if len(uniques) * 2 > len(text):
        return parse(text)
    arr = pa.array(uniques.array, type=pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    missing = codes < 0
    if missing.any():
        arr = pa.concat_arrays([arr, pa.nulls(1, pa.large_string())])
        codes = np.where(missing, len(uniques), codes)
    out = parse(pd.Series(pd.arrays.ArrowStringArray(arr, dtype=TEXT))).take(codes)
    out.index, out.name = text.index, text.name
    return out


#: the largest magnitude a whole-number column holds (64-bit integers)
INT_LIMIT = 2 ** 63


def _whole(out: pd.Series, shown: pd.Series, name: str) -> tuple[pd.Series, list[pd.DataFrame]]:
    """A float column as whole numbers (Int64): a fraction is "not a whole number", a magnitude of 2**63 or more
    (1e30) "too large" (both rejected, rather than a cast that fails the whole load). The masks in numpy (``%`` is
    numpy's remainder: infinity has none, so it is "not a whole number")."""
    v = out.to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"):
        frac = ~np.isnan(v) & (np.remainder(v, 1) != 0)
        huge = ~np.isnan(v) & ~frac & (np.abs(v) >= float(INT_LIMIT))
    probs = [p for p in (_problems(frac, name, "not a whole number", shown),
                         _problems(huge, name, f"too large for a whole number (beyond ±{INT_LIMIT - 1:,})", shown)) if len(p)]
    drop = frac | huge
    if drop.any():
        out = pd.Series(np.where(drop, np.nan, v), index=out.index, name=out.name, copy=False)
    return out.astype("Int64"), probs


def _isin(s: pd.Series, values: list) -> np.ndarray:
    """``s.isin(values).to_numpy()``: for Arrow text and strings, the one Arrow lookup pandas makes, without the Series
    and the Arrow scalar pandas makes of each value first (milliseconds for a list of a hundred codes)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (isinstance(s.array, pd.arrays.ArrowStringArray) and values and all(type(v) is str for v in values)):
        return s.isin(values).to_numpy(dtype=bool, na_value=False)
    arr = s.array._pa_array
    return np.array(pc.is_in(arr, value_set=pa.array(values, type=arr.type)), dtype=np.bool_)  # a missing value: False


def _missing(s: pd.Series) -> np.ndarray:
    """``s.isna()`` as a numpy mask, asked of the column's array (no Series made)."""
    return np.asarray(s.array.isna(), dtype=bool)


_BOOL_KEYS = None


def _bools(t: pd.Series) -> pd.Series:
    """``t.str.lower().map(_BOOL_MAP).astype("boolean")`` for Arrow text: the same lower-casing kernel (pandas'
    ``str.lower``), then one Arrow lookup of the lower-cased values among the words (a value not among them, or
    missing, is missing) instead of pandas' ``map``, which costs milliseconds even on a few rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    global _BOOL_KEYS
    arr = getattr(t.array, "_pa_array", None)
    if not isinstance(t.array, pd.arrays.ArrowStringArray) or arr is None:
        return t.str.lower().map(_BOOL_MAP).astype("boolean")
    if _BOOL_KEYS is None:
        _BOOL_KEYS = (pa.array(list(_BOOL_MAP), type=pa.large_string()), np.array(list(_BOOL_MAP.values()), dtype=bool))
    keys, values = _BOOL_KEYS
    at = pc.index_in(pc.utf8_lower(arr), value_set=keys)  # null: not a word (or missing)
    at = np.asarray(pc.fill_null(at, -1).to_numpy(zero_copy_only=False), dtype=np.int64) if len(arr) else np.zeros(0, dtype=np.int64)
    missing = at < 0
    data = values[np.where(missing, 0, at)] & ~missing  # False under the mask
    return pd.Series(pd.arrays.BooleanArray(data, missing), index=t.index, name=t.name, copy=False)


def _one(probs: list[pd.DataFrame]) -> pd.DataFrame:
    """The problems of a column as one frame: the shared empty one, a single one as it is (concatenating it alone
    would only copy it), or several concatenated."""
    probs = [p for p in probs if len(p)]
    return _NO_PROBLEMS if not probs else probs[0] if len(probs) == 1 else pd.concat(probs, ignore_index=True)


def parse_column(raw: pd.Series, col: Col, date_format: str | None = None) -> tuple[pd.Series, pd.DataFrame]:
    """Typed series and the problems found in one column (dates in ``date_format``, mapping.yml's ``dates:``; ISO
    by default). The masks are numpy arrays and a column with no value is typed without being parsed: on the small
    tables of most practices and tests, pandas' cost per operation, not the rows, is the time."""
    kind = col.kind
    if kind == "date" and (days := _whole_days_in_range(raw)) is not None:  # typed Parquet dates: nothing to normalize or reject
        return days, _NO_PROBLEMS
    if kind == "date" and pd.api.types.is_datetime64_any_dtype(raw):
        d = pd.to_datetime(raw).dt.tz_localize(None).dt.normalize()
        ok = _in_range(d)
        return ok, _problems(~_missing(d) & _missing(ok), col.name,
                             f"date out of range (expected a year from {DATE_MIN.year} to {DATE_MAX.year})",
                             d)  # formatted in _problems, for the rejected rows only
    if kind == "bool" and pd.api.types.is_bool_dtype(raw):
        return raw.astype("boolean"), _NO_PROBLEMS
    if kind in ("number", "int") and pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        out = raw.astype("float64")
        if kind != "int":
            return out, _NO_PROBLEMS
        out, probs = _whole(out, raw, col.name)
        return out, _one(probs)
    text = _as_text(raw)
    blank = _blank_fast(text)
    if blank is None:  # some values are empty text: they are blanks
        text, blank = _mask_empty(text)
    filled = ~blank
    none = not filled.any()  # no value at all (a column the file lacks, or left empty): nothing to parse
    probs = []
    if not col.blank_ok:
        probs.append(_problems(blank, col.name, "required value is blank"))
    if kind in ("id", "text"):
        out = text
    elif kind == "code":
        out = text if _has_none_of(text, _LOWER) else text.str.upper()  # NPIs and CPT codes: usually nothing to change
    elif kind == "icd":
        out = text if _has_none_of(text, _LOWER_DOT_SPACE) else \
            text.str.upper().str.replace(".", "", regex=False).str.replace(" ", "", regex=False)
    elif kind == "choice":
        out = text if _has_none_of(text, _UPPER) else text.str.lower()
    elif kind == "date":
        fmt = date_format or dates.ISO
        if none:
            parsed = pd.Series(np.full(len(text), np.datetime64("NaT", "ns")), index=text.index, name=text.name, copy=False)
        elif fmt == dates.ISO:
            parsed = _per_distinct(text, lambda t: _in_range(pd.to_datetime(t, format="%Y-%m-%d", errors="coerce")))
            retry = filled & _missing(parsed)
            if retry.any():  # also YYYY-MM-DD 00:00:00 (Excel dates read as text)
                t = text[retry]
                ok = t.str.match(_DATE_RE).fillna(False).astype(bool)
                parsed[retry] = _in_range(pd.to_datetime(t.where(ok).str.slice(0, 10), format="%Y-%m-%d", errors="coerce")).to_numpy()
        else:
            parsed = _per_distinct(text, lambda t: _in_range(dates.parse(t, fmt)))
        out = parsed if parsed.dtype == np.dtype("datetime64[ns]") else parsed.astype("datetime64[ns]")
        bad = filled & _missing(out)
        if bad.any():  # a year before 1800 or after 2199 is out of range, anything else not a date
            early_late = np.zeros(len(text), dtype=bool)
            t = text[bad]
            early_late[bad] = (t.str.match(r"^\d{4}-").fillna(False).astype(bool)
                               & ~t.str.slice(0, 4).between(str(DATE_MIN.year), str(DATE_MAX.year))).to_numpy(dtype=bool, na_value=False)
            problem = f"not a valid date (expected {fmt})"
            if dates.majority_bad(blank, bad):  # the column's format, not a few typos
                problem += dates.hint(text[bad & ~early_late]) if fmt == dates.ISO else ""
            probs.append(_problems(bad & ~early_late, col.name, problem, text))
            probs.append(_problems(early_late, col.name, f"date out of range (expected a year from {DATE_MIN.year} to {DATE_MAX.year})", text))
    elif kind == "time":
        out = _times(text)
        probs.append(_problems(filled & _missing(out), col.name, "not a valid time (expected HH:MM, 24 h)", text))
    elif kind == "bool":
        out = _per_distinct(text, _bools)
        probs.append(_problems(filled & _missing(out), col.name, "not a boolean (expected true/false, yes/no, y/n or 1/0)", text))
    elif kind in ("number", "int"):
        if none:
            out = pd.Series(np.full(len(text), np.nan), index=text.index, name=text.name, copy=False)
        else:
            out = _per_distinct(text, lambda t: pd.to_numeric(t, errors="coerce")).astype("float64")
        probs.append(_problems(filled & _missing(out), col.name, "not a number", text))
        if kind == "int":
            out, more = _whole(out, text, col.name)
            probs.extend(more)
    else:  # pragma: no cover - guarded by the schema declarations
        raise ValueError(f"unknown column kind {kind}")
    return out, _one(probs)


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
        if isinstance(s.array, pd.arrays.ArrowStringArray):
            return np.flatnonzero(~_missing(s) & ~_isin(s, list(check.bound)))
        return np.flatnonzero((s.notna() & ~s.isin(list(check.bound))).to_numpy(dtype=bool, na_value=False))
    x = s.to_numpy(dtype="float64", na_value=np.nan)  # NaN compares False: a missing value passes
    return np.flatnonzero(x < check.bound if check.test == "ge" else x > check.bound)


def _distinct_text(s: pd.Series | None) -> bool:
    """True when a one-column text key held by Arrow has no missing value and no two equal, found in place (a key out of order, such as T9999999 before T10000000, would otherwise be looked for duplicates
    by pandas, which at 80M entries holds several GB more than the table); sorted by Arrow, which is faster than a hash."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = getattr(getattr(s, "array", None), "_pa_array", None)
    if arr is None or not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)) or arr.null_count:
        return False
    srt = arr.take(pc.sort_indices(arr))  # sorted, equal values are neighbours (faster than hashing them)
    return len(srt) < 2 or not pc.any(pc.equal(srt[1:], srt[:-1])).as_py()


def _ascending_keys(parts: list[pd.Series]) -> bool:
    """True when no key part is missing and every row's key is greater than the row before's (compared part by part):
    then no two keys are equal. Exports are usually in key order, and this linear pass is ~15x cheaper than hashing
    800k ids. When the first part alone increases from row to row, the others are not looked at."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(parts[0])
    if n < 2:
        return True
    if any(s.hasnans for s in parts):
        return False
    greater = equal = None
    for s in parts:
        try:
            arr = pa.array(s.array, from_pandas=True)  # a string column's chunks as they are (slices of chunked arrays compare)
            nxt, prev = arr.slice(1), arr.slice(0, n - 1)
            gt = pc.greater(nxt, prev)
            if greater is None and gt.null_count == 0 and pc.all(gt).as_py():  # the first part alone is increasing
                return True
            gt = gt.to_numpy(zero_copy_only=False)
            eq = pc.equal(nxt, prev).to_numpy(zero_copy_only=False)
        except (TypeError, ValueError, pa.ArrowException):  # a part Arrow cannot order: let pandas hash the keys
            return False
        if greater is None:
            greater, equal = np.zeros(n - 1, dtype=bool), np.ones(n - 1, dtype=bool)
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
        if not _ascending_keys([df[k] for k in key]) and not _distinct_text(df[key[0]] if len(key) == 1 else None):
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


def _int_parts(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(values, missing) of an integer column, in place for a nullable integer one (values under the mask are
    meaningless)."""
    arr = s.array
    if isinstance(arr, pd.arrays.IntegerArray):
        return arr._data, arr._mask
    missing = s.isna().to_numpy()
    return s.to_numpy(dtype="int64", na_value=0), missing


def _table_rules(table: Table, df: pd.DataFrame) -> list[pd.DataFrame]:
    """Cross-column rules that a column schema cannot state."""
    out = []
    if table.name == "claims":
        from ccmlib.reference.codes import CCM_CODES, CCM_LIKE, OTHER_994_G05

        code = df["cpt_code"]
        like = code.str.match(CCM_LIKE).fillna(False).astype(bool).to_numpy() & ~_isin(code, list(CCM_CODES) + list(OTHER_994_G05))
        out.append(_problems(like, "cpt_code", "looks like a CCM-family code but is not one (typo?); the line is kept but not "
                             "audited as CCM: correct the code if it was meant to be " + ", ".join(CCM_CODES), code, action="flagged"))
    if table.name == "time_entries":  # in numpy: NaN where a time or the minutes are missing, and NaN compares False
        (start, no_start), (end, no_end) = _int_parts(df["start_time"]), _int_parts(df["end_time"])
        span = end - start  # minutes: small numbers, no overflow
        none = no_start | no_end
        before = np.flatnonzero((span < 0) & ~none)
        if len(before):  # HH:MM written only for the rows it names
            out.append(pd.DataFrame({"row": before, "column": "end_time", "problem": "end_time before start_time",
                                     "value": _clock(df["end_time"].iloc[before]).to_numpy(), "action": "rejected"}))
        gap = np.subtract(df["minutes"].to_numpy(dtype="float64", na_value=np.nan), span)
        disagree = np.abs(gap, out=gap) > 1  # NaN minutes: False
        del gap
        disagree &= ~none
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
    texts = None
    if consume:  # the text columns taken out of both frames in one step (a column deleted from a frame costs a rebuild
        # of its blocks, ~1 ms, twice per column), each let go of once typed
        known = [c.name for c in table.cols if c.name in present]
        texts = {c: raw[c] for c in known}
        given.drop(columns=known, inplace=True)
        raw = given.set_axis(raw.index, axis=0)  # its rows, _line and the other columns, on the same index object
    typed = {}
    probs = []
    for c in table.cols:
        if c.name in present:
            typed[c.name], p = parse_column(texts.pop(c.name) if consume else raw[c.name], c, date_format)
            probs.append(p)
        else:
            typed[c.name] = parse_column(pd.Series([None] * len(raw), index=raw.index, dtype="object"), c)[0]
    extra = [c for c in raw.columns if c not in typed and c != "_line"]
    columns = {**typed, **{c: raw[c] for c in extra}, "_line": pd.Series(raw["_line"].to_numpy(), index=raw.index, copy=False)}
    # the typed columns as they are: no copy into 2-D blocks of 8M rows; all on raw's index (the same object: not aligned)
    df = pd.DataFrame(columns, index=raw.index, copy=False)
    del columns, typed
    probs.append(_check_rows(table, df, "rejected"))
    probs.append(_check_rows(table, df, "flagged"))
    probs.extend(_table_rules(table, df))
    probs = [p for p in probs if len(p)]
    if not probs:  # most tables: no problem, no row left out
        return df, _no_quality_rows()
    dq = pd.concat(probs, ignore_index=True)
    row, rejects = dq["row"].to_numpy(dtype="int64"), dq["action"].to_numpy() == "rejected"
    rejected = np.zeros(len(df), dtype=bool)
    rejected[row[rejects]] = True
    keep = rejects | ~rejected[row]  # no flag on a rejected row
    dq = dq[keep]
    dq["line"] = df["_line"].to_numpy()[row[keep]]
    dq["table"], dq["file"] = table.name, label
    accepted = _keep_rows(df, ~rejected) if rejected.any() else df  # no copy of a table without rejects
    return accepted, dq[DQ_COLUMNS]


def _no_quality_rows() -> pd.DataFrame:
    """The data-quality rows of a table without problems, as ``validate_table`` made them before it returned early for
    such a table (the same steps on no rows; their types depend on neither the table nor the file): a copy of one."""
    return _no_quality_rows_once().copy()


@lru_cache(maxsize=1)
def _no_quality_rows_once() -> pd.DataFrame:
    dq = pd.DataFrame(columns=["row", "column", "problem", "value", "action"])
    dq = dq[np.zeros(0, dtype=bool)]
    dq["line"] = pd.Series(dtype="int64")
    dq["table"], dq["file"] = "", ""
    return dq[DQ_COLUMNS]


def _keep_rows(df: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """``df[keep].reset_index(drop=True)`` column by column, each column of ``df`` dropped once its rows are taken: a
    table with a few rejected rows is never held twice (at 1M, 8M time entries are 1.4 GB), only one column at a time."""
    index = pd.RangeIndex(int(keep.sum()))
    columns = {}
    for c in list(df.columns):
        taken = df[c][keep]  # an Arrow column filtered chunk by chunk (a take would first join its chunks: two copies)
        taken.index = index
        columns[c] = taken
        del df[c]
    return pd.DataFrame(columns, index=index, copy=False)


def empty_quality() -> pd.DataFrame:
    """A data-quality table with no row: a copy of one made once (a frame of seven empty columns costs a millisecond)."""
    return _empty_quality_once().copy()


@lru_cache(maxsize=1)
def _empty_quality_once() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in DQ_COLUMNS})
