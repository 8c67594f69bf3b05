"""Reference data shipped with the package: chronic-condition map, exclusions, fee schedule, ICD-10-CM."""
from __future__ import annotations

import os
import warnings
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError

REF = resources.files("ccmlib") / "reference"


def _read(name: str) -> pd.DataFrame:
    with resources.as_file(REF / name) as p:
        return pd.read_csv(p, dtype=str, keep_default_na=False)


def _user_csv(path: str | Path, columns: list[str], what: str) -> pd.DataFrame:
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: {what} file not found") from None
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path}: cannot be read as a UTF-8 CSV {what} file ({exc})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} (a {what} file needs {', '.join(columns)})")
    return df


def condition_map(extra: str | Path | None = None) -> pd.DataFrame:
    """ICD-10-CM prefix (upper case, no dot) -> chronic-condition category; ``extra`` CSV adds rows."""
    m = _read("chronic_conditions.csv")
    if extra:
        add = _user_csv(extra, ["prefix", "category"], "chronic-condition")
        add["category_name"] = add.get("category_name", add["category"])
        m = pd.concat([m, add[["prefix", "category", "category_name"]]], ignore_index=True)
    m["prefix"] = m["prefix"].str.upper().str.replace(".", "", regex=False).str.strip()
    return m.drop_duplicates(["prefix", "category"]).reset_index(drop=True)


def exclusions() -> pd.DataFrame:
    return _read("chronic_exclusions.csv")


def _prefix_join(codes: pd.Series, table: pd.DataFrame) -> pd.DataFrame:
    """All (code, table row) pairs where a table prefix starts the code; one merge per prefix length."""
    uniq = pd.Series(codes.dropna().unique(), dtype="string")
    parts = []
    for n in sorted(table["prefix"].str.len().unique()):
        sub = table[table["prefix"].str.len() == n]
        left = pd.DataFrame({"code": uniq, "prefix": uniq.str.slice(0, n)})
        parts.append(left.merge(sub, on="prefix"))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["code", *table.columns])


def map_conditions(codes: pd.Series, cmap: pd.DataFrame | None = None) -> pd.DataFrame:
    """(code, category) for every chronic category a code maps to, exclusions applied."""
    cmap = condition_map() if cmap is None else cmap
    hits = _prefix_join(codes, cmap)
    excluded = set(_prefix_join(codes, exclusions())["code"])
    hits = hits[~hits["code"].isin(excluded)]
    return hits[["code", "category"]].drop_duplicates().reset_index(drop=True)


@lru_cache(maxsize=1)
def icd10_codes() -> frozenset[str]:
    """Every ICD-10-CM code of the simple-icd-10-cm release, cached on disk (parsing its XML takes seconds)."""
    from importlib.metadata import version

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ccm-audit" / f"icd10cm-{version('simple-icd-10-cm')}.txt"
    try:
        return frozenset(cache.read_text(encoding="ascii").split())
    except OSError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import simple_icd_10_cm as cm
    codes = frozenset(c.upper() for c in cm.get_all_codes(with_dots=False))
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text("\n".join(sorted(codes)), encoding="ascii")
        os.replace(tmp, cache)
    except OSError:  # a read-only home: no cache, still correct
        pass
    return codes


def icd10_version() -> str:
    from importlib.metadata import version

    return f"simple-icd-10-cm {version('simple-icd-10-cm')}"


def valid_icd10(codes: pd.Series) -> pd.Series:
    """True where the (dotless, upper-case) code exists in ICD-10-CM."""
    known = icd10_codes()
    uniq = codes.dropna().unique()
    ok = {c: (c in known) for c in uniq}
    return codes.map(ok).fillna(False).astype(bool)


def fee_schedule(path: str | Path | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Fee rows with every ``to_verify`` amount carried forward from the latest earlier published one.

    Returns the table and a list of human-readable notes on what was carried forward or is missing.
    """
    if path:
        fees = _user_csv(path, ["code", "effective_from", "effective_to", "amount"], "fee schedule")
        for c, default in (("year", ""), ("conversion_factor", ""), ("status", "locality")):
            if c not in fees.columns:
                fees[c] = default
    else:
        fees = _read("fee_schedule.csv")
    fees = fees.copy()
    fees["code"] = fees["code"].str.upper().str.strip()
    fees["amount"] = pd.to_numeric(fees["amount"], errors="coerce")
    for c in ("effective_from", "effective_to"):
        fees[c] = pd.to_datetime(fees[c], format="%Y-%m-%d", errors="coerce")
    if fees[["effective_from", "effective_to"]].isna().any().any():
        raise InputError(f"{path or 'fee_schedule.csv'}: effective_from/effective_to must be dates YYYY-MM-DD")
    fees = fees.sort_values(["code", "effective_from"]).reset_index(drop=True)
    notes = []
    filled = fees.groupby("code")["amount"].ffill()
    carried = fees["amount"].isna() & filled.notna()
    for _, r in fees[carried].iterrows():  # a handful of reference rows, not data
        notes.append(f"{r['code']} {r['effective_from']:%Y-%m-%d}..{r['effective_to']:%Y-%m-%d}: amount not yet verified; "
                     f"carried forward ${filled[_]:.2f} from the latest earlier published amount")
    for _, r in fees[fees["amount"].isna() & ~carried].iterrows():
        notes.append(f"{r['code']} {r['effective_from']:%Y-%m-%d}..{r['effective_to']:%Y-%m-%d}: no amount; "
                     f"lines without paid_amount get no dollar value")
    fees["status"] = np.where(carried, "carried_forward", fees["status"])
    fees["amount"] = filled
    return fees, notes


def fee_for(codes: pd.Series, dates: pd.Series, fees: pd.DataFrame) -> pd.Series:
    """Fee-schedule amount per (code, service date); NaN where the schedule has none."""
    left = pd.DataFrame({"code": codes.to_numpy(), "d": dates.to_numpy(), "_i": np.arange(len(codes))})
    m = left.merge(fees[["code", "effective_from", "effective_to", "amount"]], on="code", how="inner")
    m = m[(m["d"] >= m["effective_from"]) & (m["d"] <= m["effective_to"])].drop_duplicates("_i")
    out = np.full(len(codes), np.nan)
    out[m["_i"].to_numpy()] = m["amount"].to_numpy()
    return pd.Series(out, index=codes.index)
