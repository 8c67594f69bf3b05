"""Reference data shipped with the package: chronic-condition map, exclusions, fee schedule, ICD-10-CM."""
from __future__ import annotations

import os
import warnings
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ccmlib.errors import InputError

REF = resources.files("ccmlib") / "reference"


def _read(name: str) -> pd.DataFrame:
    """A bundled reference table as text, the caller's own copy (read once per process: every audit asks)."""
    return _bundled(name).copy()


@lru_cache(maxsize=None)
def _bundled(name: str) -> pd.DataFrame:
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
    if not extra:  # the bundled map is built once per process; each caller gets its own copy
        return _bundled_map().copy()
    return _condition_map(extra)


@lru_cache(maxsize=1)
def _bundled_map() -> pd.DataFrame:
    return _condition_map(None)


def _condition_map(extra: str | Path | None) -> pd.DataFrame:
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
    """All (code, table row) pairs where a table prefix starts the code, by prefix length, then code, then table row (a
    merge per prefix length; here a dictionary lookup per distinct code, which are few)."""
    uniq = pd.Series(codes.dropna().unique(), dtype="string")
    if not len(table):
        return pd.DataFrame(columns=["code", *table.columns])
    prefixes, texts = table["prefix"].tolist(), uniq.tolist()
    left, right = [], []
    for n in sorted({len(p) for p in prefixes}):
        rows: dict[str, list[int]] = {}
        for i, p in enumerate(prefixes):
            if len(p) == n:
                rows.setdefault(p, []).append(i)
        for j, text in enumerate(texts):
            for i in rows.get(text[:n], ()):
                left.append(j)
                right.append(i)
    return pd.concat([pd.DataFrame({"code": uniq.iloc[left].to_numpy()}, dtype=uniq.dtype),
                      table.iloc[right].reset_index(drop=True)], axis=1)


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


#: CMS place-of-service codes priced at the facility rate (catalog v2, Money)
FACILITY_POS = frozenset({"19", "21", "22", "23", "24", "26", "31", "34", "41", "42", "51", "52", "53", "56", "61"})
FEE_COLUMNS = ["code", "valid_from", "valid_to", "qualifying_apm", "conversion_factor", "nonfacility_amount", "facility_amount"]


def fee_schedule(path: str | Path | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The fee table: per code and validity dates, the non-facility and facility amounts, the conversion factor,
    and whether the row is the qualifying-APM (QP) rate. The bundled table is the Medicare PFS national amounts
    CY2024-CY2026 (``reference/fee_schedule.csv``, sources in its last column); ``path`` replaces it with locality
    rates in the same columns, or in the short form ``code, effective_from, effective_to, amount`` (one amount for
    both settings). Returns the table and notes (code, from, to, problem) for rows without an amount (none in the
    bundled table)."""
    if not path:  # the bundled table is parsed once per process; each caller gets its own copy
        fees, notes = _bundled_fees()
        return fees.copy(), [dict(n) for n in notes]
    return _fee_table(path)


@lru_cache(maxsize=1)
def _bundled_fees() -> tuple[pd.DataFrame, list[dict]]:
    return _fee_table(None)


def _fee_table(path: str | Path | None) -> tuple[pd.DataFrame, list[dict]]:
    if path:
        head = _user_csv(path, ["code"], "fee schedule")
        if "amount" in head.columns and "nonfacility_amount" not in head.columns:
            fees = _user_csv(path, ["code", "effective_from", "effective_to", "amount"], "fee schedule")
            fees = fees.rename(columns={"effective_from": "valid_from", "effective_to": "valid_to"})
            fees["nonfacility_amount"] = fees["facility_amount"] = fees["amount"]
        else:
            fees = _user_csv(path, ["code", "valid_from", "valid_to", "nonfacility_amount", "facility_amount"], "fee schedule")
        for c, default in (("qualifying_apm", "no"), ("conversion_factor", ""), ("source", str(path))):
            if c not in fees.columns:
                fees[c] = default
        label = str(path)
    else:
        fees = _read("fee_schedule.csv")
        label = "fee_schedule.csv (bundled)"
    fees = fees.copy()
    fees["code"] = fees["code"].astype(str).str.upper().str.strip()
    for c in ("nonfacility_amount", "facility_amount", "conversion_factor"):
        fees[c] = pd.to_numeric(fees[c], errors="coerce")
    for c in ("valid_from", "valid_to"):
        fees[c] = pd.to_datetime(fees[c], format="%Y-%m-%d", errors="coerce")
    if fees[["valid_from", "valid_to"]].isna().any().any():
        raise InputError(f"{label}: valid_from/valid_to (or effective_from/effective_to) must be dates YYYY-MM-DD")
    qp = fees["qualifying_apm"].astype(str).str.strip().str.lower()
    if not qp.isin(["yes", "no", "true", "false", ""]).all():
        raise InputError(f"{label}: qualifying_apm must be yes or no")
    fees["qualifying_apm"] = qp.isin(["yes", "true"])
    fees["source"] = fees.get("source", label)
    notes = [{"code": r.code, "from": r.valid_from, "to": r.valid_to,
              "problem": f"{r.code} {r.valid_from:%Y-%m-%d}..{r.valid_to:%Y-%m-%d}: no amount; lines without paid_amount are unpriced"}
             for r in fees[fees["nonfacility_amount"].isna() & fees["facility_amount"].isna()].itertuples()]  # reference rows
    fees = fees.sort_values(["code", "qualifying_apm", "valid_from"], kind="mergesort").reset_index(drop=True)
    fees.attrs["label"] = label
    return fees, notes


def is_facility(place_of_service: pd.Series) -> pd.Series:
    """True where the CMS place-of-service code is a facility setting (blank: non-facility)."""
    pos = place_of_service.astype("string").str.strip().str.zfill(2)
    return pos.isin(FACILITY_POS).fillna(False).astype(bool)


def text_labels(codes: np.ndarray, names) -> pd.api.extensions.ExtensionArray | np.ndarray:
    """``names[codes]`` as a text column of pandas' default text dtype (what a column of those strings becomes), built
    from the few distinct names by Arrow instead of from one Python string per row."""
    names = list(names)
    dtype = pd.Series(names, dtype=None if names else object).dtype
    if not (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"):
        return np.array(names, dtype=object)[np.asarray(codes, dtype=np.int64)]
    import pyarrow as pa

    arr = pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, dtype=np.int32)), pa.array(names, type=pa.string()))
    return pd.array(arr.cast(pa.string()), dtype=dtype)


def fee_for(codes: pd.Series, dates: pd.Series, fees: pd.DataFrame, facility: pd.Series | None = None,
            qp: pd.Series | None = None) -> pd.DataFrame:
    """Per (code, date, setting, QP): ``amount`` (NaN where the table has none), ``setting`` and ``conversion_factor``.

    ``facility`` selects the facility amount (default non-facility); ``qp`` the qualifying-APM row where the table
    has one for that date (else the ordinary row)."""
    n = len(codes)
    fac = np.zeros(n, dtype=bool) if facility is None else np.asarray(facility, dtype=bool)
    qpa = np.zeros(n, dtype=bool) if qp is None else np.asarray(qp, dtype=bool)
    code_s = codes if isinstance(codes, pd.Series) else pd.Series(np.asarray(codes, dtype=object))
    d = np.asarray(dates, dtype="datetime64[ns]")
    # looked up once per distinct (code, date, QP wanted): lines repeat them (a quarter has ~90 dates and a few codes)
    group = pd.DataFrame({"c": code_s.to_numpy(), "d": d, "q": qpa}).groupby(["c", "d", "q"], sort=False, dropna=False).ngroup().to_numpy()
    first = np.unique(group, return_index=True)[1]  # groups are numbered in the order they first appear
    k = len(first)
    left = pd.DataFrame({"code": np.asarray(code_s.iloc[first], dtype=object), "d": d[first], "_i": np.arange(k),
                         "want_qp": qpa[first]})
    m = left.merge(fees[["code", "valid_from", "valid_to", "qualifying_apm", "conversion_factor", "nonfacility_amount",
                         "facility_amount"]], on="code", how="inner")
    m = m[(m["d"] >= m["valid_from"]) & (m["d"] <= m["valid_to"]) & (~m["qualifying_apm"] | m["want_qp"])]
    m = m.sort_values(["_i", "qualifying_apm"], kind="mergesort").drop_duplicates("_i", keep="last")  # QP row when wanted and present
    nonfac, facil, cf = np.full(k, np.nan), np.full(k, np.nan), np.full(k, np.nan)
    i = m["_i"].to_numpy()
    nonfac[i] = m["nonfacility_amount"].to_numpy(dtype=float)
    facil[i] = m["facility_amount"].to_numpy(dtype=float)
    cf[i] = m["conversion_factor"].to_numpy(dtype=float)
    amount = np.where(fac, facil[group], nonfac[group])
    setting = text_labels(np.where(fac, 0, 1), ["facility", "non-facility"])
    return pd.DataFrame({"amount": amount, "setting": setting, "conversion_factor": cf[group]}, index=codes.index)


@lru_cache(maxsize=None)
def code_date(code: str, what: str) -> pd.Timestamp:
    """A dated fact about a code from ``reference/code_dates.csv`` (e.g. G0511's last billable date), kept as data so
    that it can be corrected without a code change."""
    t = _read("code_dates.csv")
    row = t[(t["code"] == code) & (t["what"] == what)]
    if len(row) != 1:
        raise InputError(f"reference/code_dates.csv: no single row for {code} {what}")
    return pd.Timestamp(row["date"].iloc[0])


@lru_cache(maxsize=1)
def sequestration() -> pd.DataFrame:
    """The Medicare payment sequestration rate by date (``reference/sequestration.csv``, sources in its last column)."""
    t = pd.read_csv(resources.files("ccmlib.reference").joinpath("sequestration.csv"), dtype={"rate": float})
    return t.assign(valid_from=pd.to_datetime(t["valid_from"]), valid_to=pd.to_datetime(t["valid_to"]))


def sequestration_rate(dates: pd.Series) -> np.ndarray:
    """The sequestration rate in force on each date (0 outside the table)."""
    t = sequestration()
    d = np.asarray(dates, dtype="datetime64[ns]")
    out = np.zeros(len(d))
    for r in t.itertuples():
        out = np.where((d >= np.datetime64(r.valid_from)) & (d <= np.datetime64(r.valid_to)), r.rate, out)
    return out


#: Medicare pays 80 % of the allowed amount (after the Part B deductible); the patient owes the rest
MEDICARE_SHARE = 0.80


@lru_cache(maxsize=1)
def conflicts() -> pd.DataFrame:
    """BILL-03's dated conflict list (``reference/conflicts.csv``): one row per code with the severity when the same
    practitioner bills it in the month of CCM and when another does ('' = allowed), and the service months it applies
    to (blank: always)."""
    t = pd.read_csv(resources.files("ccmlib.reference").joinpath("conflicts.csv"), dtype=str, keep_default_na=False)
    rows = []
    for r in t.itertuples():
        for part in r.codes.split():
            lo, _, hi = part.partition("-")
            if hi:
                prefix = "".join(ch for ch in lo if not ch.isdigit())
                width = len(lo) - len(prefix)
                codes = [f"{prefix}{n:0{width}d}" for n in range(int(lo[len(prefix):]), int(hi.lstrip(prefix)) + 1)]
            else:
                codes = [lo]
            rows += [{"code": c, "what": r.what, "same": r.same_practitioner, "other": r.another_practitioner,
                      "from_month": r.from_month, "to_month": r.to_month} for c in codes]
    return pd.DataFrame(rows)


def _expand_codes(spec: str) -> list[str]:
    """``"99202-99205 G0402"`` -> the codes it names (a range keeps its letter prefix and digit width)."""
    out = []
    for part in spec.split():
        lo, _, hi = part.partition("-")
        if hi:
            prefix = "".join(ch for ch in lo if not ch.isdigit())
            width = len(lo) - len(prefix)
            out += [f"{prefix}{n:0{width}d}" for n in range(int(lo[len(prefix):]), int(hi.lstrip(prefix)) + 1)]
        else:
            out.append(lo)
    return out


@lru_cache(maxsize=1)
def initiating_visits() -> pd.DataFrame:
    """IV-01's qualifying visit codes (``reference/initiating_visits.csv``, catalog v3): one row per code with its kind
    (office/outpatient, home or residence E/M, AWV, IPPE, TCM, FQHC visit). 99211 is not among them."""
    t = _read("initiating_visits.csv")
    rows = [{"code": c, "kind": r.kind} for r in t.itertuples() for c in _expand_codes(r.codes)]
    return pd.DataFrame(rows).drop_duplicates("code").reset_index(drop=True)


def initiating_visit_codes() -> frozenset[str]:
    """The qualifying initiating-visit codes as a set (see :func:`initiating_visits`)."""
    return frozenset(initiating_visits()["code"])
