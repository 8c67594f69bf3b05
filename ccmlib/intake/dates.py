"""Date formats of real exports: ISO by default, a format named in mapping.yml (``dates: MM/DD/YYYY``), the format a
column's values show when they are not ISO, and strict parsing of the dates users type on the command line."""
from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd

from ccmlib.errors import InputError

ISO = "YYYY-MM-DD"
#: the formats mapping.yml's ``dates:`` accepts (as users write them) -> strptime; day and month may have one digit
FORMATS = {ISO: "%Y-%m-%d", "MM/DD/YYYY": "%m/%d/%Y", "DD/MM/YYYY": "%d/%m/%Y", "MM-DD-YYYY": "%m-%d-%Y",
           "DD-MM-YYYY": "%d-%m-%Y", "DD.MM.YYYY": "%d.%m.%Y", "YYYY/MM/DD": "%Y/%m/%d", "YYYYMMDD": "%Y%m%d",
           "MM/DD/YY": "%m/%d/%y", "DD/MM/YY": "%d/%m/%y"}
#: a value followed by a midnight time (Excel and many EHRs write "09/15/2026 00:00" or "2026-09-15T00:00:00")
_MIDNIGHT = r"(?:[ T]0?0:00(?::00(?:\.0+)?)?(?: ?[AaPp][Mm])?)?$"


def check_format(fmt, where: str) -> str:
    """A ``dates:`` value of mapping.yml, checked."""
    text = str(fmt).strip().upper()
    if text not in FORMATS:
        raise InputError(f"{where}: dates: {fmt!r} is not a date format this tool reads; use one of {', '.join(FORMATS)}")
    return text


def parse(text: pd.Series, fmt: str = ISO) -> pd.Series:
    """Dates of a text column in ``fmt`` (ISO values are read too: they are unambiguous); NaT where a value does not
    parse. A midnight time after the date is allowed."""
    day = text.str.replace(_MIDNIGHT, "", regex=True)
    out = pd.to_datetime(day, format=FORMATS[fmt], errors="coerce")
    if fmt != ISO:
        iso = out.isna() & day.str.match(r"^\d{4}-\d{1,2}-\d{1,2}$").fillna(False).astype(bool)
        if iso.any():
            out[iso] = pd.to_datetime(day[iso], format=FORMATS[ISO], errors="coerce")
    return out


def guess(values: pd.Series, exclude: str = ISO) -> list[str]:
    """The formats other than ``exclude`` that read at least 90 % of ``values`` (distinct, non-blank), most specific
    first; two when the values cannot tell MM/DD from DD/MM (every day 12 or less)."""
    v = pd.Series(values.dropna().astype(str).str.strip().unique())
    v = v[v != ""].head(500)
    if v.empty:
        return []
    hits = []
    for name in FORMATS:
        if name == exclude or (name.endswith("YY") and not name.endswith("YYYY") and v.str.match(r".*\d{4}").mean() > 0.5):
            continue
        ok = pd.to_datetime(v.str.replace(_MIDNIGHT, "", regex=True), format=FORMATS[name], errors="coerce").notna()
        if ok.mean() >= 0.9:
            hits.append(name)
    return hits


def hint(values: pd.Series) -> str:
    """'' or the sentence a rejected date column's message ends with: the format the values show and the setting."""
    g = guess(values)
    if not g:
        return ""
    if len(g) > 1:
        return (f"; the values look like {g[0]} (or {' or '.join(g[1:])}: they do not tell which): add `dates: {g[0]}` to "
                f"mapping.yml for this table or the folder")
    return f"; the values look like {g[0]}: add `dates: {g[0]}` to mapping.yml for this table or the folder"


def option_date(value, option: str) -> date | None:
    """A date typed on the command line, strictly YYYY-MM-DD (exit 2 naming the option, the value and the format)."""
    if value is None:
        return None
    if isinstance(value, datetime):  # a pandas Timestamp too
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        if len(text) != 10 or text[4] != "-" or text[7] != "-":
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        other = guess(pd.Series([text]))
        tail = f" ({text!r} looks like {other[0]}; write it as YYYY-MM-DD)" if other else ""
        raise InputError(f"{option} {text!r}: not a date; expected YYYY-MM-DD, a day that exists{tail}") from None


def majority_bad(blank: np.ndarray, bad: np.ndarray) -> bool:
    """Most of the non-blank values failed: the column's format, not a few typos."""
    filled = int((~blank).sum())
    return filled > 0 and int(bad.sum()) * 2 > filled
