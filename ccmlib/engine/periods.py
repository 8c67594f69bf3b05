"""Audit periods: quarters, month ranges, and integer month keys (year * 12 + month - 1)."""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ccmlib.errors import InputError

_Q = re.compile(r"^(\d{4})\s*-?\s*Q([1-4])$", re.I)
_M = re.compile(r"^(\d{4})-(\d{2})$")
_Y = re.compile(r"^(\d{4})$")


def month_key(dates: pd.Series) -> pd.Series:
    """Integer month key of each date (NaT -> <NA>)."""
    return (dates.dt.year * 12 + dates.dt.month - 1).astype("Int64")


def key_to_label(keys) -> np.ndarray:
    """``YYYY-MM`` of each month key, formatted once per distinct key (a period has a handful)."""
    keys = np.asarray(keys, dtype="int64")
    uniq, inverse = np.unique(keys, return_inverse=True)
    labels = np.array([f"{k // 12}-{k % 12 + 1:02d}" for k in uniq.tolist()], dtype="<U7")
    return labels[inverse.reshape(keys.shape)] if len(uniq) else np.array([], dtype="<U7").reshape(keys.shape)


def quarter_label(key: int) -> str:
    """The calendar quarter (``2026Q3``) a month key falls in."""
    return f"{key // 12}Q{key % 12 // 3 + 1}"


#: month key of 1970-01, numpy's month zero
_EPOCH_KEY = 1970 * 12


def key_start(keys) -> pd.Series:
    """The first day of each month key, as ``datetime64[us]`` (what pandas assembles from year, month and day), by
    numpy's month arithmetic."""
    months = np.asarray(keys, dtype="int64") - _EPOCH_KEY
    return pd.Series(months.astype("datetime64[M]").astype("datetime64[us]"))


def key_end(keys) -> pd.Series:
    """The last day of each month key, as ``datetime64[us]``."""
    months = np.asarray(keys, dtype="int64") - _EPOCH_KEY + 1
    return pd.Series((months.astype("datetime64[M]").astype("datetime64[D]") - np.timedelta64(1, "D")).astype("datetime64[us]"))


def _month(text: str, what: str) -> int:
    m = _M.match(text.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise InputError(f"{what} '{text}' is not a month like 2026-01")
    return int(m.group(1)) * 12 + int(m.group(2)) - 1


@dataclass(frozen=True)
class Period:
    first: int  # month key
    last: int
    label: str

    @property
    def keys(self) -> list[int]:
        return list(range(self.first, self.last + 1))

    @property
    def months(self) -> list[str]:
        return [str(m) for m in key_to_label(self.keys)]

    def to_json(self) -> dict:
        return {"label": self.label, "from": self.months[0], "to": self.months[-1]}


def parse_period(period: str | None = None, start: str | None = None, end: str | None = None) -> Period | None:
    """``2026Q1``, ``2026-03`` or ``2026``; or ``start``/``end`` months. None when nothing given."""
    if period and (start or end):
        raise InputError("give either --period or --from/--to, not both")
    if period:
        p = period.strip()
        if m := _Q.match(p):
            y, q = int(m.group(1)), int(m.group(2))
            first = y * 12 + (q - 1) * 3
            return Period(first, first + 2, f"{y}Q{q}")
        if _M.match(p):
            k = _month(p, "period")
            return Period(k, k, p)
        if m := _Y.match(p):
            y = int(m.group(1))
            return Period(y * 12, y * 12 + 11, p)
        raise InputError(f"period '{period}' is not understood; use a quarter like 2026Q1, a month like 2026-01, or a year")
    if start or end:
        if not (start and end):
            raise InputError("--from and --to go together (months like 2026-01 and 2026-03)")
        a, b = _month(start, "--from"), _month(end, "--to")
        if b < a:
            raise InputError(f"--to {end} is before --from {start}")
        return Period(a, b, f"{start}..{end}")
    return None
