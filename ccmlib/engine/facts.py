"""Derived facts per time entry, patient-month and claim line, computed once and shared by the rules.

Everything here is vectorized: group-bys, merges and interval logic, no per-row Python.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ccmlib.reference import data as refdata
from ccmlib.reference.codes import CCM_CODES, INITIATING_VISITS
from ccmlib.intake.fastops import arrow_text, distinct_rows, join_groups, lex_order, positions
from ccmlib.intake.load import Practice
from ccmlib.paths import map_ordered, usable_cores
from ccmlib.engine.periods import Period, key_end, key_start, key_to_label, month_key
# the time-entry facts and the facts per patient-month and practitioner on Arrow and DuckDB (issue #23)
from ccmlib.engine.sqlfacts import EntryStore, RunningTotals, entry_store, month_minutes, use_threads
from ccmlib.engine.sqlfacts import commencement as sql_commencement, consent_in_force as sql_consent_in_force, \
    consent_judged as sql_consent_judged, month_conditions_and_plans as sql_conditions_and_plans, \
    month_practitioner as sql_month_practitioner, visit_found as sql_visit_found
from ccmlib.intake.schema import CLINICAL_STAFF_ROLES, PRACTITIONER_ROLES, TABLES

PM = ["patient_id", "mkey"]
_ONCE_LOCK = threading.Lock()  # guards the per-name locks of Facts.once
#: staff-code thresholds whose reach date is reported and used by BILL-05
STAFF_THRESHOLDS = (20, 40, 60, 90, 120)
PRACTITIONER_THRESHOLDS = (30, 60, 90)


def table(practice: Practice, name: str) -> pd.DataFrame:
    """The practice's table, or an empty typed frame with the contract's columns."""
    if practice.has(name):
        return practice[name]
    from ccmlib.intake.validate import parse_column
    empty = pd.Series([], dtype="object")
    return pd.DataFrame({c.name: parse_column(empty, c)[0] for c in TABLES[name].cols} | {"_line": pd.Series([], dtype="int64")})


def natural_key(ids: pd.Series) -> pd.Series:
    """A sort key that orders ids naturally: digit runs compare as numbers, so C9 < C10 and T9 < T10 (catalog v2,
    every tie-break). Computed once per distinct id (ids repeat; a categorical's categories are its distinct ids), as
    zero-padded text: with Arrow kernels for the usual shape (letters, then one run of digits), by a regular expression
    per id for any other; the keys stay Arrow text from the kernels to the returned column."""
    if isinstance(ids.dtype, pd.CategoricalDtype) and len(ids.cat.categories) <= len(ids):
        codes, uniq = ids.cat.codes.to_numpy(dtype="int64"), ids.cat.categories.astype("string")
    else:
        codes, uniq = pd.factorize(ids.astype("string"), use_na_sentinel=True)
    arr = arrow_text(pd.Series(uniq, dtype="string")).cast(pa.string())
    m = pc.extract_regex(arr, r"^(?P<p>\D*)(?P<d>\d+)$")
    padded = pc.binary_join_element_wise(m.field("p"), pc.utf8_lpad(pc.utf8_ltrim(m.field("d"), "0"), 24, "0"), "")
    simple = np.asarray(m.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if (~simple).any():
        other = pd.Series(arr.filter(pa.array(~simple)).to_numpy(zero_copy_only=False), dtype="string")
        other = other.str.replace(r"\d+", lambda g: g.group(0).lstrip("0").zfill(24), regex=True)
        padded = pc.replace_with_mask(padded, pa.array(~simple), pa.array(other.to_numpy(dtype=object), type=pa.string()))
    out = padded.take(pa.array(codes, mask=codes < 0)) if len(padded) else pa.nulls(len(codes), type=pa.string())
    return pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([out.cast(pa.large_string())])), index=ids.index)


@dataclass
class Facts:
    period: Period
    store: "EntryStore"  # time entries of the period with exclusion flags and qualifying minutes (Arrow; sqlfacts.EntryStore)
    pm: pd.DataFrame  # patient-months of the period: minutes, threshold dates, conditions, consent, plan
    lines: pd.DataFrame  # CCM-family claim lines of the period
    claims: pd.DataFrame  # all claim lines (for conflicts, initiating visits)
    diagnoses: pd.DataFrame  # diagnoses with validity
    consents: pd.DataFrame
    consent_status: pd.DataFrame  # per (patient-month, billing NPI; <NA> for an unbilled month): the consent in force
    plans: pd.DataFrame
    encounters: pd.DataFrame
    commencement: pd.DataFrame  # (patient_id, mkey, billing_npi) -> CCM commencement date (catalog v3: restarts after a span boundary)
    missing: set[str] = field(default_factory=set)  # tables not provided
    totals: "RunningTotals | None" = None  # running qualifying minutes per patient-month (sqlfacts.RunningTotals; BILL-05's thresholds)
    conditions: pd.DataFrame | None = None  # (patient_id, mkey, category) active chronic categories
    patients: pd.DataFrame | None = None  # the patients table (death_date for ELIG-03)
    condition_map: pd.DataFrame | None = None  # the chronic-condition map the run uses (DX-01 maps claim diagnoses with it)
    visits_from: pd.Timestamp = pd.NaT  # where the visit history begins (IV-01 coverage, catalog v3; NaT: no start)
    visits_from_source: str = "none"  # declared (mapping.yml or --encounters-from), derived (earliest date) or none
    memo: dict = field(default_factory=dict, repr=False)  # what :meth:`once` computed: name -> (its inputs, the value)
    _locks: dict = field(default_factory=dict, repr=False, compare=False)  # name -> the lock :meth:`once` holds computing it

    @property
    def entries(self) -> pd.DataFrame:
        """Every time entry of the period with its facts as one pandas frame (built on first use: the rules read only
        the rows they flag, :meth:`entry_rows`)."""
        return self.store.frame()

    @property
    def cum(self) -> pd.DataFrame:
        """The running totals as the pandas frame (pm_id, activity_date, staff_cum, prac_cum), sorted (built on first use)."""
        return self.totals.frame()

    def once(self, name: str, compute, *inputs):
        """``compute()``, computed once per audit for the rules that share it (the visit evidence, the lines' order...)
        and kept in :attr:`memo`; computed again when any of ``inputs`` (the facts' tables it reads) is another object.
        Rules run in threads on a large practice (``pipeline._run_rules``): the first to ask computes, the others wait."""
        with _ONCE_LOCK:
            lock = self._locks.setdefault(name, threading.RLock())
        with lock:
            hit = self.memo.get(name)
            if hit is None or len(hit[0]) != len(inputs) or any(a is not b for a, b in zip(hit[0], inputs)):
                hit = self.memo[name] = (inputs, compute())
            return hit[1]

    def keep_for_summary(self) -> None:
        """Let go of what only the rules and the views read (the running totals, the shared work, the entries' text and
        flags), keeping what a run folder's summary reads: the entries' staff minutes (``by_staff``) and the tables the
        risk indicators read. A large audit's output tables are then made in the memory this frees."""
        self.memo.clear()
        self.totals = None
        self.store = self.store.only(["patient_id", "staff_id", "mkey", "duration", "qualifying"])

    def entry_rows(self, where: str | list[str] | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        """The period's time entries where the SQL condition ``where`` holds over their facts' columns (e.g.
        ``x_overlap``), or any of a list of flags, with the columns and dtypes of :attr:`entries`."""
        return self.store.rows(where, columns)


# --------------------------------------------------------------------------- time entries
# every fact of an entry: ccmlib/engine/sqlfacts.py (entry_store); the pandas version is the oracle in tests/test_entry_store.py

def _month_end(d: pd.Series) -> pd.Series:
    return (d.dt.to_period("M").dt.end_time.dt.normalize()).astype("datetime64[ns]")


def _patient_codes(left: pd.Series, right: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of two patient_id columns on one scale (the categoricals' codes when both share categories)."""
    if isinstance(left.dtype, pd.CategoricalDtype) and isinstance(right.dtype, pd.CategoricalDtype) \
            and left.cat.categories.equals(right.cat.categories):
        return left.cat.codes.to_numpy(), right.cat.codes.to_numpy()
    cats = pd.Index(pd.unique(pd.concat([left.astype("string"), right.astype("string")])))
    return cats.get_indexer(left.astype("string")), cats.get_indexer(right.astype("string"))


def month_practitioner(lines: pd.DataFrame | None, consents: pd.DataFrame, keys: pd.DataFrame) -> pd.Series:
    """The practitioner whose consent a month's time is judged against (CONS-05, catalog v3), per row of ``keys``
    (patient_id, mkey): the month's first billing practitioner (its first time-based CCM line by service date, claim
    and line; G0506 only when nothing else was billed), else the practitioner of the patient's latest consent dated on
    or before the month's end (by consent_date, then row). <NA> means any practitioner: a practice-level latest
    consent, or none. Text (pandas "string"), with the index of ``keys``."""
    found = sql_month_practitioner(keys, lines, consents) if len(keys) else None  # one DuckDB query (issue #23)
    if found is None:
        return _month_practitioner(lines, consents, keys)
    line, consent = found  # a line's position where it names its practitioner, else a consent's (-1: none)
    at = lambda npi, pos: arrow_text(npi.astype("string")).cast(pa.large_string()).take(pa.array(pos, mask=pos < 0))  # noqa: E731
    npi = at(consents["practitioner_npi"], consent)
    if lines is not None and len(lines):
        npi = pc.coalesce(at(lines["billing_npi"], line), npi)
    return pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([npi])), index=keys.index)


def _month_practitioner(lines: pd.DataFrame | None, consents: pd.DataFrame, keys: pd.DataFrame) -> pd.Series:
    """:func:`month_practitioner` in pandas (the lines in ``lex_order``, the first of each month kept; a ``merge_asof``
    of the consents): the answer where the patient ids are not one category list, and the oracle of
    tests/test_sqlfacts.py."""
    out = pd.Series(pd.NA, index=keys.index, dtype="string")
    if not len(keys):
        return out
    pid = keys["patient_id"]  # a categorical stays one (integer codes below), other ids are compared as text
    k = pd.DataFrame({"patient_id": pid.array if isinstance(pid.dtype, pd.CategoricalDtype) else pid.astype("string").to_numpy(),
                      "mkey": keys["mkey"].to_numpy(dtype="float64")})
    if lines is not None and len(lines):
        ln = lines.assign(_g=(lines["cpt_code"] == "G0506").astype(int),
                          _o=lines["_claim_order"] if "_claim_order" in lines else natural_key(lines["claim_id"]))
        order = lex_order([ln[c] for c in ("patient_id", "mkey", "_g", "service_date", "_o", "line")])
        ln = ln[["patient_id", "mkey", "billing_npi"]].take(order).drop_duplicates(PM)  # the month's first line (its keys)
        lp, kp = _patient_codes(ln["patient_id"], keys["patient_id"])  # integer codes on one scale, not text merges
        lm = ln["mkey"].to_numpy(dtype="float64", na_value=np.nan)
        km = keys["mkey"].to_numpy(dtype="float64", na_value=np.nan)
        span = int(np.nanmax(np.r_[lm, km, 0])) + 2
        code = lambda p, m: np.where(np.isnan(m) | (p < 0), -1, p.astype("int64") * span + np.nan_to_num(m, nan=0).astype("int64"))  # noqa: E731
        have, want = code(lp, lm), code(kp, km)
        valid = np.flatnonzero(have >= 0)  # one line per (patient, month): the index is unique
        at = pd.Index(have[valid]).get_indexer(want)
        # each key's line's practitioner, taken as Arrow text (no Python string per key)
        pick = np.where((at >= 0) & (want >= 0), valid[np.where(at >= 0, at, 0)] if len(valid) else -1, -1)
        npi = arrow_text(ln["billing_npi"].astype("string")).take(pa.array(pick, mask=pick < 0))
        out = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([npi.cast(pa.large_string())])), index=keys.index)
    c = consents.dropna(subset=["consent_date"])
    todo = out.isna().to_numpy() & k["mkey"].notna().to_numpy()
    if todo.any() and len(c):
        kk = k[todo]
        lp, rp = _patient_codes(kk["patient_id"], c["patient_id"])
        right = pd.DataFrame({"p": rp, "d": c["consent_date"].to_numpy(dtype="datetime64[ns]"),
                              "row": c["_line"].to_numpy() if "_line" in c else np.arange(len(c)),
                              "npi": c["practitioner_npi"].astype("string").to_numpy()}).sort_values(["d", "row"], kind="mergesort")
        left = pd.DataFrame({"p": lp, "d": key_end(kk["mkey"].astype("int64")).to_numpy(dtype="datetime64[ns]"), "i": np.flatnonzero(todo)})
        m = pd.merge_asof(left.sort_values("d", kind="mergesort"), right, on="d", by="p", direction="backward")
        out.iloc[m["i"].to_numpy()] = m["npi"].astype("string").to_numpy()
    return out


def consent_episode(patient_id: pd.Series, dates: pd.Series, consents: pd.DataFrame, npi: pd.Series | None = None) -> pd.DataFrame:
    """For each (patient, date[, practitioner]): the consent judged on that date, its revoked_date, and whether the
    date falls after the end of that consent's revocation month (CONS-05: CCM had stopped and no new consent was given
    yet). Catalog v3: the judged consent is the latest (by consent_date, then row) dated on or before the date that
    covers the practitioner ``npi`` (its own NPI or practice-level; <NA> = any practitioner), else, when none covers
    it (CONS-04's case), the patient's latest consent of any practitioner; so a revoked consent given to another
    practitioner never puts this practitioner's activity outside consent. A row without a date has no judged consent.
    Returns revoked_date (NaT where none) and after_revocation, numbered 0..n-1."""
    n = len(dates)
    pos = sql_consent_judged(patient_id, dates, npi, consents)  # one DuckDB query (issue #23); the pandas code where it cannot
    if pos is None:
        return _consent_episode(patient_id, dates, consents, npi)
    rev = pd.Series(np.append(consents["revoked_date"].to_numpy(dtype="datetime64[ns]"), np.datetime64("NaT"))[pos],
                    index=range(n), dtype="datetime64[ns]")  # position -1 (no consent judged): the NaT appended
    after = rev.notna().to_numpy() & (np.asarray(dates, dtype="datetime64[ns]") > _month_end(rev).to_numpy())
    return pd.DataFrame({"revoked_date": rev, "after_revocation": after})


def _consent_episode(patient_id: pd.Series, dates: pd.Series, consents: pd.DataFrame, npi: pd.Series | None = None) -> pd.DataFrame:
    """:func:`consent_episode` in pandas, three ``merge_asof`` (any practitioner's, the practitioner's own and the
    practice-level consents): the answer where the patient ids are not one category list, and the oracle of
    tests/test_sqlfacts.py."""
    n = len(dates)
    out = pd.DataFrame({"revoked_date": pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns]"),
                        "after_revocation": np.zeros(n, dtype=bool)})
    c = consents.dropna(subset=["consent_date"])
    if not n or not len(c):
        return out
    lp, rp = _patient_codes(pd.Series(patient_id), c["patient_id"])
    cnpi = c["practitioner_npi"].astype("string").to_numpy()
    right = pd.DataFrame({"p": rp, "d": c["consent_date"].to_numpy(dtype="datetime64[ns]"),
                          "row": c["_line"].to_numpy() if "_line" in c else np.arange(len(c)),
                          "rev": c["revoked_date"].to_numpy(dtype="datetime64[ns]"),
                          "npi": pd.Series(cnpi, dtype="string")}).assign(cd=lambda d: d["d"]).sort_values(["d", "row"], kind="mergesort")
    who = pd.Series(pd.NA, index=range(n), dtype="string") if npi is None else pd.Series(np.asarray(npi, dtype=object), dtype="string")
    left = pd.DataFrame({"p": lp, "d": np.asarray(dates, dtype="datetime64[ns]"), "i": np.arange(n), "npi": who})
    left = left[left["d"].notna()].sort_values("d", kind="mergesort")
    cols = ["cd", "row", "rev"]
    anyone = pd.merge_asof(left[["p", "d", "i"]], right[["p", "d", *cols]], on="d", by="p", direction="backward")
    named = left.dropna(subset=["npi"])
    own = pd.merge_asof(named[["p", "d", "i", "npi"]], right.dropna(subset=["npi"])[["p", "d", "npi", *cols]], on="d", by=["p", "npi"],
                        direction="backward")
    practice = pd.merge_asof(named[["p", "d", "i"]], right[right["npi"].isna()][["p", "d", *cols]], on="d", by="p", direction="backward")
    cover = pd.concat([own[["i", *cols]], practice[["i", *cols]]]).dropna(subset=["cd"])
    cover = cover.sort_values(["i", "cd", "row"], kind="mergesort").drop_duplicates("i", keep="last").set_index("i")
    judged = anyone.set_index("i")[cols]
    judged.loc[cover.index, cols] = cover[cols]  # the covering consent when there is one, else any practitioner's
    rev = pd.Series(judged["rev"].to_numpy(), dtype="datetime64[ns]")
    end = _month_end(rev)
    d = left.set_index("i")["d"].reindex(judged.index).to_numpy()
    out.loc[judged.index.to_numpy(), "revoked_date"] = rev.to_numpy()
    out.loc[judged.index.to_numpy(), "after_revocation"] = (rev.notna() & (d > end)).to_numpy()
    return out


def consents_in_force(consents: pd.DataFrame, who: pd.DataFrame) -> pd.DataFrame:
    """The consent in force per row of ``who`` (patient_id, mkey, billing_npi, ref_date; billing_npi <NA> = any
    practitioner): the latest consent dated on or before ref_date (by consent_date, then row) that covers the
    practitioner (blank practitioner_npi, or theirs). Adds ``consents_before`` (of any practitioner),
    ``covering_before`` and the in-force consent's columns, and ``revoked_ended`` (its revocation month ended before
    the service month: CONS-03)."""
    w = who.reset_index(drop=True).assign(_w=lambda d: np.arange(len(d)))
    cols = ["consent_date", "practitioner_npi", "informed_cost_sharing", "informed_one_practitioner", "informed_right_to_stop",
            "informed_availability", "revoked_date"]
    found = sql_consent_in_force(w, consents)  # one DuckDB query (issue #23); the pandas code below where it cannot
    if found is not None:
        has = found["pos"] >= 0
        inforce = consents[cols].take(found["pos"][has]).assign(_w=np.flatnonzero(has))
        out = w.merge(inforce[["_w", *cols]], on="_w", how="left")
        out["consents_before"] = found["before"]
        out["covering_before"] = found["covering"]
        out["other_npis"] = pd.Series(found["others"], index=out.index, dtype=object).fillna("").astype(str)
        return _revoked_ended(out)
    return _consents_in_force(consents, w, cols)


def _consents_in_force(consents: pd.DataFrame, w: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """:func:`consents_in_force` in pandas (the oracle of tests/test_sqlfacts.py); ``w`` numbered in ``_w``."""
    c = consents.assign(_row=consents["_line"] if "_line" in consents else np.arange(len(consents)))
    m = w[["_w", "patient_id", "billing_npi", "ref_date"]].merge(c[["patient_id", "_row", *cols]], on="patient_id")
    m = m[m["consent_date"] <= m["ref_date"]]
    before = m.groupby("_w").size()
    covers = m["practitioner_npi"].isna() | m["billing_npi"].isna() | (m["practitioner_npi"] == m["billing_npi"])
    cov = m[covers.fillna(False).astype(bool)]
    inforce = cov.sort_values(["_w", "consent_date", "_row"], kind="mergesort").drop_duplicates("_w", keep="last")
    others = m[~covers.fillna(False).astype(bool)].dropna(subset=["practitioner_npi"])
    named = others.drop_duplicates(["_w", "practitioner_npi"]).sort_values("practitioner_npi")
    names = join_groups(named, ["_w"], "practitioner_npi", ", ")
    out = w.merge(inforce[["_w", *cols]], on="_w", how="left")
    out["consents_before"] = out["_w"].map(before).fillna(0).astype("int64")
    out["covering_before"] = out["_w"].map(cov.groupby("_w").size()).fillna(0).astype("int64")
    out["other_npis"] = out["_w"].map(names).fillna("").astype(str)
    return _revoked_ended(out)


def _revoked_ended(out: pd.DataFrame) -> pd.DataFrame:
    """The consent in force's revocation month ended before the service month (CONS-03), added; the row numbers dropped."""
    start = key_start(out["mkey"]).to_numpy() if len(out) else np.array([], dtype="datetime64[ns]")
    out["revoked_ended"] = (out["revoked_date"].notna() & (out["revoked_date"].to_numpy() < start)).astype(bool)
    return out.drop(columns="_w")


def _dates_by(keys: pd.Series, by: pd.Series) -> np.ndarray:
    """``by[key]`` per key as datetime64 (NaT where missing), also when ``by`` is empty."""
    return pd.Series(by, dtype="datetime64[ns]").reindex(keys.to_numpy()).to_numpy(dtype="datetime64[ns]")


def _covers(consent_npi: pd.Series, npi: pd.Series) -> np.ndarray:
    """A consent covers a practitioner when it is practice-level (blank practitioner_npi) or names them; <NA> for the
    practitioner means any practitioner."""
    return (consent_npi.isna() | npi.isna() | (consent_npi.astype("string") == npi.astype("string"))).fillna(False).to_numpy(dtype=bool)


def span_boundaries(consents: pd.DataFrame, who: pd.DataFrame) -> pd.DataFrame:
    """The ends of CCM spans per (patient_id, billing_npi) of ``who`` (npi <NA> = any practitioner), catalog v3: the
    last day of a revocation month, when the consent revoked in that month is the consent in force for that
    practitioner at that day (the latest covering consent dated on or before it, by consent_date then row). So only revocations of consents that
    cover the practitioner end its span, and a covering consent dated in the revocation month itself means coverage
    never lapsed (no boundary). Returns (patient_id, billing_npi, boundary)."""
    pairs = who[["patient_id", "billing_npi"]].drop_duplicates().reset_index(drop=True)
    pairs = pairs.assign(_q=np.arange(len(pairs)))
    c = consents.assign(_row=consents["_line"] if "_line" in consents else np.arange(len(consents)))
    c = c[["patient_id", "consent_date", "practitioner_npi", "revoked_date", "_row"]].dropna(subset=["consent_date"])
    # only a patient with a revoked consent can have a boundary: the others' pairs are left out of the join (their
    # rows would give no candidate); the kept pairs keep their numbers (_q) and order
    revoked = c.loc[c["revoked_date"].notna().to_numpy(), "patient_id"]
    m = pairs[pairs["patient_id"].isin(revoked.unique()).to_numpy()].merge(c, on="patient_id")
    m = m[_covers(m["practitioner_npi"], m["billing_npi"])]
    cand = m.dropna(subset=["revoked_date"])[["_q"]].assign(b=_month_end(m["revoked_date"].dropna()).to_numpy()).drop_duplicates()
    x = cand.merge(m[["_q", "consent_date", "_row", "revoked_date"]], on="_q")
    x = x[x["consent_date"] <= x["b"]].sort_values(["_q", "b", "consent_date", "_row"], kind="mergesort").drop_duplicates(["_q", "b"], keep="last")
    x = x[x["revoked_date"].notna() & (_month_end(x["revoked_date"]) == x["b"]).to_numpy(dtype=bool)]
    out = x[["_q", "b"]].merge(pairs, on="_q").rename(columns={"b": "boundary"})
    return out[["patient_id", "billing_npi", "boundary"]].reset_index(drop=True)


def commencement_dates(consents: pd.DataFrame, ccm_claims: pd.DataFrame, who: pd.DataFrame) -> pd.DataFrame:
    """CCM commencement per (patient_id, mkey, billing_npi; <NA> = any practitioner), catalog v3: the earlier of the
    first consent covering the practitioner and the practitioner's first CCM claim for the patient, both in the current
    span: after the latest span boundary (:func:`span_boundaries`, the end of a revocation month) that ended before the
    service month. One boundary for consents and claims: a claim in the revocation month belongs to the old span."""
    w = who[["patient_id", "mkey", "billing_npi"]].drop_duplicates().reset_index(drop=True)
    w["billing_npi"] = w["billing_npi"].astype("string")
    found = sql_commencement(w, consents, ccm_claims)  # one DuckDB query (issue #23); this code where it cannot
    if found is not None:
        w["reset"], w["commencement"] = found
        return w
    return _commencement_dates(consents, ccm_claims, w)


def _commencement_dates(consents: pd.DataFrame, ccm_claims: pd.DataFrame, w: pd.DataFrame) -> pd.DataFrame:
    """:func:`commencement_dates` in pandas, for ``w`` its distinct rows (the oracle of tests/test_sqlfacts.py)."""
    w = w.assign(_w=np.arange(len(w)))
    start = pd.Series(key_start(w["mkey"]).to_numpy() if len(w) else [], dtype="datetime64[ns]")
    bounds = span_boundaries(consents, w)
    r = w[["_w", "patient_id", "billing_npi"]].assign(start=start.to_numpy()).merge(bounds, on=["patient_id", "billing_npi"])
    r = r[r["boundary"] < r["start"]]  # the revocation month ended before the service month
    reset = r.groupby("_w")["boundary"].max() if len(r) else pd.Series(dtype="datetime64[ns]")  # the span starts after it
    w["reset"] = _dates_by(w["_w"], reset)
    c = w.merge(consents[["patient_id", "consent_date", "practitioner_npi"]], on="patient_id")
    c = c[_covers(c["practitioner_npi"], c["billing_npi"]) & (c["reset"].isna() | (c["consent_date"] > c["reset"])).to_numpy(dtype=bool)]
    first_c = c.groupby("_w")["consent_date"].min()
    k = ccm_claims[["patient_id", "billing_npi", "service_date"]].rename(columns={"billing_npi": "claim_npi"})
    # the first claim: without a span boundary, the earliest claim of the patient (by the practitioner) looked up per
    # patient (and practitioner); only the few rows with a boundary join the patient's claims to keep those after it
    plain = w["reset"].isna().to_numpy()
    first_b = pd.concat([_first_claims(w[plain], k), _first_claims_after_reset(w[~plain], k)])
    both = pd.DataFrame({"c": _dates_by(w["_w"], first_c), "b": _dates_by(w["_w"], first_b)})
    w["commencement"] = both.min(axis=1).astype("datetime64[ns]")
    return w.drop(columns="_w")


def _first_claims(w: pd.DataFrame, k: pd.DataFrame) -> pd.Series:
    """Per row of ``w`` (_w, patient_id, billing_npi; <NA> = any practitioner): the earliest service_date of the claims
    ``k`` (patient_id, claim_npi, service_date) of the patient by that practitioner, indexed by _w (rows without one
    left out)."""
    k = k.dropna(subset=["service_date"])
    if isinstance(k["patient_id"].dtype, pd.CategoricalDtype) and k["patient_id"].dtype == w["patient_id"].dtype:
        return _first_claims_coded(w, k)
    any_npi = k.groupby("patient_id", observed=True)["service_date"].min()
    by_npi = k.assign(claim_npi=k["claim_npi"].astype("string")).groupby(["patient_id", "claim_npi"], observed=True)["service_date"].min()
    anyone = w[w["billing_npi"].isna()]
    named = w[w["billing_npi"].notna()]
    a = pd.Series(any_npi.reindex(anyone["patient_id"]).to_numpy(dtype="datetime64[ns]"), index=anyone["_w"].to_numpy())
    n = pd.Series(by_npi.reindex(pd.MultiIndex.from_arrays([named["patient_id"], named["billing_npi"].astype("string")])).to_numpy(dtype="datetime64[ns]"),
                  index=named["_w"].to_numpy())
    out = pd.concat([a, n])
    return out[out.notna()]


def _first_claims_coded(w: pd.DataFrame, k: pd.DataFrame) -> pd.Series:
    """:func:`_first_claims` on integer keys, for patient ids that are categoricals of one category list (as
    build_facts gives them): (patient code, practitioner code) instead of a text MultiIndex."""
    kp, wp = k["patient_id"].cat.codes.to_numpy(dtype="int64"), w["patient_id"].cat.codes.to_numpy(dtype="int64")
    kn, wn = k["claim_npi"].astype("string"), w["billing_npi"].astype("string")
    codes, uniq = pd.factorize(pd.concat([kn, wn], ignore_index=True), use_na_sentinel=True)  # missing: -1
    knc, wnc = codes[:len(k)].astype("int64"), codes[len(k):].astype("int64")
    dates = pd.Series(k["service_date"].to_numpy(dtype="datetime64[ns]"))
    width = len(uniq) + 1
    has_p = kp >= 0
    any_npi = dates[has_p].groupby(kp[has_p]).min()
    named_k = has_p & (knc >= 0)
    by_npi = dates[named_k].groupby(kp[named_k] * width + knc[named_k]).min()
    anyone = w["billing_npi"].isna().to_numpy()
    named = ~anyone
    a = pd.Series(any_npi.reindex(np.where(wp[anyone] >= 0, wp[anyone], -1)).to_numpy(dtype="datetime64[ns]"),
                  index=w["_w"].to_numpy()[anyone])
    want = np.where((wp[named] >= 0) & (wnc[named] >= 0), wp[named] * width + wnc[named], -1)
    n = pd.Series(by_npi.reindex(want).to_numpy(dtype="datetime64[ns]"), index=w["_w"].to_numpy()[named])
    out = pd.concat([a, n])
    return out[out.notna()]


def _first_claims_after_reset(w: pd.DataFrame, k: pd.DataFrame) -> pd.Series:
    """:func:`_first_claims` counting only the claims after each row's span boundary (``reset``)."""
    b = w.merge(k, on="patient_id")
    b = b[(b["billing_npi"].isna() | (b["claim_npi"].astype("string") == b["billing_npi"])).fillna(False).astype(bool)
          & (b["reset"].isna() | (b["service_date"] > b["reset"]))]
    return b.groupby("_w")["service_date"].min()


# --------------------------------------------------------------------------- assembly
def encoded_tables(practice: Practice) -> dict[str, pd.DataFrame]:
    """Every table with patient_id (and claim_id) as categoricals sharing one category list, so that the many
    merges and group-bys on them work on integer codes instead of strings."""
    names = [n for n in TABLES if TABLES[n].patient_ref or n == "patients"]
    tabs = {n: table(practice, n) for n in TABLES}
    # the categories are every table's distinct ids, sorted. Hashing a large log's ids for its distinct values costs as
    # much as looking them up, so the ids are looked up (one Arrow hash lookup per table, a large practice's tables two
    # at a time: the lookups let go of the interpreter) among the patients table's, and only ids found nowhere there
    # (the few rows data quality flags) are added and looked up again
    base = tabs["patients"]["patient_id"]
    cats = pd.Index(np.sort(np.asarray(pd.unique(base.dropna().astype(str)), dtype=object)))
    rows = sum(len(tabs[n]) for n in names)
    value_set = arrow_text(pd.Series(cats.to_numpy(dtype=object), dtype=object))
    found = list(map_ordered(lambda n: positions(tabs[n]["patient_id"], cats, value_set), names,
                             2 if rows >= PARALLEL_ENCODE_FROM and usable_cores() >= 2 else 1))
    unknown = [tabs[n]["patient_id"][(f < 0) & tabs[n]["patient_id"].notna().to_numpy()] for n, f in zip(names, found)]
    if any(len(u) for u in unknown):
        more = pd.unique(pd.concat([u.astype(str) for u in unknown if len(u)], ignore_index=True))
        wider = pd.Index(np.sort(np.concatenate([cats.to_numpy(dtype=object), np.asarray(more, dtype=object)])))
        moved = np.append(positions(pd.Series(cats.to_numpy(dtype=object), dtype=object), wider), -1)  # the last: no id
        found = [moved[f] for f in found]
        for f, n in zip(found, names):
            miss = np.flatnonzero(f < 0)
            if len(miss):
                f[miss] = positions(tabs[n]["patient_id"].iloc[miss], wider)
        cats = wider
    pid = pd.CategoricalDtype(cats)
    out = dict(tabs)
    for n, f in zip(names, found):
        df = tabs[n]
        out[n] = df.assign(patient_id=pd.Series(pd.Categorical.from_codes(f, dtype=pid), index=df.index))
    c = out["claims"]
    out["claims"] = c.assign(claim_id=c["claim_id"].astype("category"))
    return out


#: rows of the patient tables from which their patient ids are encoded two at a time
PARALLEL_ENCODE_FROM = 1_000_000


def per_patient_month(df: pd.DataFrame, col: str, how: str, name: str) -> pd.DataFrame:
    """``df.groupby(PM, observed=True)[col].agg(how).rename(name).reset_index()`` (how: min or max), on one integer
    key per (patient code, month) where patient_id is a categorical: groups in the same order (its categories are
    sorted), rows without a patient or a month left out as the group-by leaves them."""
    pid = df["patient_id"]
    m = df["mkey"].to_numpy(dtype="float64", na_value=np.nan)
    codes = pid.cat.codes.to_numpy(dtype="int64") if isinstance(pid.dtype, pd.CategoricalDtype) else None
    valid = (codes >= 0) & ~np.isnan(m) if codes is not None else None
    if codes is None or not valid.any() or not pid.cat.categories.is_monotonic_increasing:
        return df.groupby(PM, observed=True)[col].agg(how).rename(name).reset_index()
    months = m[valid].astype("int64")
    lo = int(months.min())
    key = codes[valid] * (int(months.max()) - lo + 1) + (months - lo)
    rows = np.flatnonzero(valid)
    value = pd.Series(df[col].to_numpy()[rows]).groupby(key, sort=True).agg(how)
    _, first = np.unique(key, return_index=True)  # each group's first row, in the groups' (sorted) order
    return pd.DataFrame({"patient_id": pid.take(rows[first]).reset_index(drop=True),
                         "mkey": df["mkey"].take(rows[first]).reset_index(drop=True), name: value.to_numpy()})


def patient_month_rows_of(*parts: pd.DataFrame) -> pd.DataFrame:
    """The distinct (patient_id, mkey) of the frames, sorted by patient id as text (a missing one last), then month.
    Patient ids that are categoricals of sorted categories (as build_facts gives them) are compared by their codes."""
    both = pd.concat(list(parts), ignore_index=True)
    pid = both["patient_id"]
    cats = pid.dtype.categories if isinstance(pid.dtype, pd.CategoricalDtype) else None
    if cats is not None and cats.is_monotonic_increasing and cats.is_unique and both["mkey"].notna().all():
        codes, mkey = pid.cat.codes.to_numpy(dtype="int64"), both["mkey"].to_numpy(dtype="int64")
        _, first = distinct_rows(codes, mkey)
        rows = first[np.lexsort((mkey[first], np.where(codes[first] < 0, np.iinfo(np.int64).max, codes[first])))]
        pm = both.take(rows).reset_index(drop=True)
        pm["mkey"] = pm["mkey"].astype("int64")
        return pm
    pm = both.drop_duplicates().reset_index(drop=True)
    pm["mkey"] = pm["mkey"].astype("int64")
    return pm.sort_values(PM, key=lambda s: s if s.name == "mkey" else s.astype("string"), kind="mergesort").reset_index(drop=True)


def build_facts(practice: Practice, period: Period | None, condition_map: pd.DataFrame | None = None, encounters_from=None,
                release: bool = False, visit_history: tuple[pd.Timestamp, str] | None = None) -> Facts:
    """Everything the rules read. ``encounters_from`` is the declared start of the visit history (IV-01's coverage);
    without it the earliest encounter or visit claim is the start (:func:`visit_history_start`). ``release``: the
    practice was loaded for this audit alone, so its time log is let go as soon as the entry store holds what the facts
    need of it (taken out of ``practice.tables``: a large log's text is then held once, not twice). ``visit_history``
    (date, source) is the start found for the whole data when ``practice`` holds only some of its patients (a shard)."""
    missing = {n for n in TABLES if not practice.has(n)}
    tabs = encoded_tables(practice)
    if release:
        practice.tables.pop("time_entries", None)
    te, staff, consents = tabs.pop("time_entries"), tabs["staff"], tabs["consents"]
    claims = tabs["claims"].copy(deep=False)
    claims["units"] = claims["units"].fillna(1).astype("int64")
    claims["mkey"] = month_key(claims["service_date"])
    claims["_claim_order"] = natural_key(claims["claim_id"])  # once here; rules sort lines by it (billing.in_order)
    ccm = claims[claims["cpt_code"].isin(CCM_CODES)]
    day = te["activity_date"]
    if period is None:  # every month that has CCM claims or time (the log's months from its first and last day)
        period = period_of(pd.concat([ccm["mkey"], month_key(pd.Series([day.min(), day.max()], dtype="datetime64[ns]"))]).dropna())
    in_p = lambda k: k.between(period.first, period.last).fillna(False).astype(bool)  # noqa: E731
    lines = ccm[in_p(ccm["mkey"])].copy()
    # an entry is in the period when its day is: from the first month's first day to the day after the last month
    # (two comparisons on the dates, not a month key for each of millions of entries; a missing day is in no period)
    bounds = key_start([period.first, period.last + 1])  # any year: pandas gives a coarser unit beyond nanoseconds' range
    in_period = (day >= bounds[0]) & (day < bounds[1])
    te = te if in_period.all() else te[in_period]  # no copy of a log within the period
    use_threads(len(te))  # the database's threads for this audit's queries, before the first
    entries = entry_store(te, staff, consents, lines)
    del te, day, in_period  # the store holds what the facts need of the log

    # patient-months: billed or documented
    pm = patient_month_rows_of(lines[PM], entries.patient_months())
    pm["pm_id"] = np.arange(len(pm))
    pm["service_month"] = key_to_label(pm["mkey"]) if len(pm) else pd.Series([], dtype="string")
    pm["month_start"] = key_start(pm["mkey"]).to_numpy() if len(pm) else pd.Series([], dtype="datetime64[ns]")
    pm["month_end"] = key_end(pm["mkey"]).to_numpy() if len(pm) else pd.Series([], dtype="datetime64[ns]")

    # minutes, running totals through the month and threshold dates (on DuckDB: ccmlib/engine/sqlfacts.py; ties on date
    # and start keep the log's order)
    pm, totals = month_minutes(entries, pm)

    # billed?
    billed = per_patient_month(lines, "service_date", "max", "last_service").astype({"mkey": "int64"})
    pm = pm.merge(billed, on=PM, how="left")
    pm["billed"] = pm["last_service"].notna()
    pm["ref_date"] = pm[["last_service", "last_activity"]].max(axis=1)

    # chronic conditions active in the month
    dx = tabs["diagnoses"].copy()
    dx["valid"] = refdata.valid_icd10(dx["icd10_code"])
    cats = refdata.map_conditions(dx.loc[dx["valid"], "icd10_code"], condition_map)
    dxc = dx[dx["valid"]].merge(cats, left_on="icd10_code", right_on="code")
    dxc["_cc"] = pd.factorize(dxc["category"], use_na_sentinel=False)[0]
    plans = tabs["care_plans"].reset_index(drop=True).assign(plan_row=lambda d: np.arange(len(d)))
    # the distinct (patient-month, category) and the care plan in force per patient-month (the latest version created
    # on or before the month's end): two DuckDB queries (issue #23); the pandas code where they cannot
    found = sql_conditions_and_plans(pm, dxc, plans)
    if found is None:
        ncat, cp = _conditions_and_plans(pm, dxc, plans)
    else:
        ci, cj, pi, prow = found
        ncat = pd.DataFrame({"patient_id": pm["patient_id"].take(ci).reset_index(drop=True),
                             "mkey": pm["mkey"].take(ci).reset_index(drop=True), "category": dxc["category"].take(cj).reset_index(drop=True)})
        cp = plans.take(prow).reset_index(drop=True).assign(patient_id=pm["patient_id"].take(pi).reset_index(drop=True),
                                                             mkey=pm["mkey"].take(pi).reset_index(drop=True))
    pm = pm.merge(ncat.groupby(PM).size().rename("chronic_conditions").reset_index(), on=PM, how="left")
    pm["chronic_conditions"] = pm["chronic_conditions"].fillna(0).astype("int64")

    # consent in force per (patient-month, billing practitioner); an unbilled month is judged for any practitioner
    npi_ref = lines.groupby(PM + ["billing_npi"], observed=True)["service_date"].max().rename("npi_service").reset_index()
    npi_ref = npi_ref.astype({"mkey": "int64"}).merge(pm[PM + ["last_activity"]], on=PM, how="left")
    npi_ref["ref_date"] = npi_ref[["npi_service", "last_activity"]].max(axis=1)
    unbilled = pm.loc[~pm["billed"], PM + ["month_end"]].rename(columns={"month_end": "ref_date"})
    who = pd.concat([npi_ref[PM + ["billing_npi", "ref_date"]],
                     unbilled.assign(billing_npi=pd.Series(pd.NA, index=unbilled.index, dtype=object))], ignore_index=True)
    who["billing_npi"] = who["billing_npi"].astype("string")
    consent_status = consents_in_force(consents, who)
    anyone = pm[PM].assign(billing_npi=pd.Series(pd.NA, index=pm.index, dtype="string"))  # REV-01 asks for any practitioner
    comm = commencement_dates(consents, ccm, pd.concat([who[PM + ["billing_npi"]], anyone], ignore_index=True))
    plan_cols = [c.name for c in TABLES["care_plans"].cols if c.name != "patient_id"]
    pm = pm.merge(cp[PM + plan_cols].rename(columns={c: f"plan_{c}" if not c.startswith("plan_") else c for c in plan_cols}), on=PM, how="left")


    enc = tabs["encounters"]
    visits_from, visits_source = visit_history or visit_history_start(enc, claims, encounters_from)
    return Facts(period=period, store=entries, pm=pm, lines=lines.reset_index(drop=True), claims=claims, diagnoses=dx,
                 consents=consents, consent_status=consent_status, plans=plans, encounters=enc, commencement=comm, missing=missing, totals=totals,
                 conditions=ncat.reset_index(drop=True), patients=tabs.get("patients"), condition_map=condition_map,
                 visits_from=visits_from, visits_from_source=visits_source)


def _conditions_and_plans(pm: pd.DataFrame, dxc: pd.DataFrame, plans: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The chronic categories active per patient-month (patient_id, mkey, category; the first diagnosis of each) and the
    care plan in force (the plans' rows with patient_id, mkey), in pandas (the oracle of tests/test_sqlfacts.py)."""
    act = pm[PM + ["month_start", "month_end"]].merge(dxc[["patient_id", "category", "_cc", "onset_date", "resolved_date"]], on="patient_id")
    act = act[(act["onset_date"].isna() | (act["onset_date"] <= act["month_end"]))
              & (act["resolved_date"].isna() | (act["resolved_date"] >= act["month_start"]))]
    # the distinct (patient-month, category) on the category's integer code
    ncat = act.drop_duplicates(PM + ["_cc"])[PM + ["category"]].reset_index(drop=True)
    cp = pm[PM + ["month_end"]].merge(plans, on="patient_id")
    cp = cp[cp["created_date"] <= cp["month_end"]].sort_values(PM + ["created_date", "plan_row"], kind="mergesort").drop_duplicates(PM, keep="last")
    return ncat, cp


def period_of(keys) -> Period:
    """The period of a check given none: from the first to the last of the month ``keys`` with data ("all"), or the
    empty period ("none") when there are none."""
    keys = pd.Series(keys, dtype="float64")
    return Period(int(keys.min()), int(keys.max()), "all") if len(keys) else Period(0, 0, "none")


def condition_lists(f: Facts, pms: pd.DataFrame) -> pd.Series:
    """'ckd;diabetes' per row of ``pms`` (patient_id, mkey): the chronic categories active in the month.
    Meant for the few patient-months a message or a view needs, not for the whole population."""
    c = f.conditions.merge(pms[PM].drop_duplicates(), on=PM).sort_values(PM + ["category"])
    lists = join_groups(c, PM, "category", ";")
    return pd.Series(pms.set_index(PM).index.map(lists), index=pms.index).fillna("")


def practitioner_visit_status(f: Facts) -> pd.DataFrame:
    """:func:`initiating_visit_status` for every (patient-month, billing NPI) of the period's CCM lines, computed once
    per run (IV-01 and the data-quality note both need it)."""
    return f.once("visit_status", lambda: initiating_visit_status(f, f.lines[["patient_id", "mkey", "billing_npi"]]),
                  f.lines, f.commencement, f.encounters, f.claims)


def one_year_before(d: pd.Series) -> pd.Series:
    """The same calendar date one year earlier (catalog v3's window: 2025-02-28 for 2026-02-28). February 29 has no
    such date in the year before: the window of a commencement on 2028-02-29 begins on 2027-02-28 (that February's
    last day; a visit on 2027-02-28 qualifies, one on 2027-02-27 does not)."""
    return (pd.Series(d, dtype="datetime64[ns]") - pd.DateOffset(years=1)).astype("datetime64[ns]")


def visit_evidence(encounters: pd.DataFrame, claims: pd.DataFrame) -> pd.DataFrame:
    """Qualifying initiating visits (reference/initiating_visits.csv) from both tables (catalog v3): encounters rows
    (practitioner_npi may be blank: then by any practitioner) and claim lines (by their billing NPI).
    Columns patient_id, visit_date, npi."""
    codes = list(INITIATING_VISITS)
    e = encounters[encounters["cpt_code"].isin(codes)]
    c = claims[claims["cpt_code"].isin(codes)]
    parts = [pd.DataFrame({"patient_id": e["patient_id"], "visit_date": e["encounter_date"], "npi": e["practitioner_npi"].astype("string")}),
             pd.DataFrame({"patient_id": c["patient_id"], "visit_date": c["service_date"], "npi": c["billing_npi"].astype("string")})]
    return pd.concat(parts, ignore_index=True).dropna(subset=["visit_date"])


def visit_history_start(encounters: pd.DataFrame, claims: pd.DataFrame, declared=None) -> tuple[pd.Timestamp, str]:
    """Where the visit history begins, one date for the whole data (catalog v3): the declared date (mapping.yml's
    ``encounters_from`` or ``--encounters-from``), else the earliest date among the encounters rows (any code) and the
    claim lines with a qualifying visit code. Returns (date, 'declared' | 'derived'); (NaT, 'none') when there is
    nothing to derive it from (an empty encounters table and no visit claims: evidence of no visit)."""
    if declared is not None and not pd.isna(declared):
        return pd.Timestamp(declared).normalize(), "declared"
    dates = pd.concat([encounters["encounter_date"], claims.loc[claims["cpt_code"].isin(list(INITIATING_VISITS)), "service_date"]]).dropna()
    return (pd.Timestamp(dates.min()), "derived") if len(dates) else (pd.NaT, "none")


def _visits(f: Facts) -> pd.DataFrame:
    """:func:`visit_evidence` of the facts' encounters and claims, found once per audit (IV-01 and REV-01 both ask)."""
    return f.once("visits", lambda: visit_evidence(f.encounters, f.claims), f.encounters, f.claims)


def _left_join_on_keys(left: pd.DataFrame, right: pd.DataFrame, on: list[str]) -> pd.DataFrame:
    """``left.merge(right, on=on, how="left")`` where ``right`` has one row per key: each key column's values as
    integer codes on one scale (money.key_codes: a missing value matches a missing value, a value the other side lacks
    matches nothing), the rows found by one index lookup; any other right (duplicate keys) merges as before."""
    from ccmlib.engine.money import key_codes

    if right[on].duplicated().any() or any(c in left.columns for c in right.columns if c not in on):
        return left.merge(right, on=on, how="left")
    lk, rk = np.zeros(len(left), dtype=np.int64), np.zeros(len(right), dtype=np.int64)
    absent = np.zeros(len(left), dtype=bool)
    for c in on:
        a, b = key_codes(left[c], right[c])
        width = int(max(a.max(initial=0), b.max(initial=0))) + 2  # codes -1 (missing) .. max, shifted to 0 ..
        if lk.max(initial=0) > (2 ** 62) // width or rk.max(initial=0) > (2 ** 62) // width:
            return left.merge(right, on=on, how="left")
        absent |= a == -2
        lk, rk = lk * width + np.maximum(a, -1) + 1, rk * width + np.maximum(b, -1) + 1
        rk[b == -2] = -1  # never looked up (no left row has its value)
    at = pd.Index(rk).get_indexer(lk)
    at[absent] = -1
    rest = [c for c in right.columns if c not in on]
    taken = right[rest].reset_index(drop=True).reindex(at)
    out = left.reset_index(drop=True)
    for c in rest:
        out[c] = taken[c].to_numpy()
    return out


def _visit_found(w: pd.DataFrame, v: pd.DataFrame) -> np.ndarray:
    """:func:`~ccmlib.engine.sqlfacts.visit_found` in pandas (the oracle of tests/test_sqlfacts.py)."""
    m = w[["patient_id", "billing_npi", "commencement", "window_start"]].assign(_i=np.arange(len(w))).merge(v, on="patient_id")
    hit = (m["visit_date"] <= m["commencement"]) & (m["visit_date"] >= m["window_start"]) \
        & (m["npi"].isna() | m["billing_npi"].isna() | (m["npi"] == m["billing_npi"]))
    found = m.loc[hit.fillna(False).astype(bool), "_i"].unique()
    return np.isin(np.arange(len(w)), found)


def initiating_visit_status(f: Facts, who: pd.DataFrame) -> pd.DataFrame:
    """For (patient_id, mkey, billing_npi) rows (npi <NA> = any practitioner), catalog v3: was there a qualifying visit
    (:func:`visit_evidence`, encounters and claims) by the practitioner from the same calendar date one year before
    commencement up to and including it (``visit_found``), and does the visit history cover that window (``covered``:
    the window begins on or after the history's start, :attr:`Facts.visits_from`; always when there is no start)?
    ``window_start`` is the window's first day. Coverage is a property of the data, never of a patient: a patient with
    or without encounter rows is judged alike. IV-01 is not assessed where neither holds."""
    w = who.assign(billing_npi=who["billing_npi"].astype("string")).drop_duplicates()
    w = _left_join_on_keys(w, f.commencement.assign(billing_npi=f.commencement["billing_npi"].astype("string")),
                           ["patient_id", "mkey", "billing_npi"]).reset_index(drop=True)
    w["window_start"] = one_year_before(w["commencement"]).to_numpy()
    v = _visits(f)
    found = sql_visit_found(w, v)  # one DuckDB query (issue #23); the pandas code where it cannot
    w["visit_found"] = _visit_found(w, v) if found is None else found
    start = f.visits_from
    if pd.isna(start):
        w["covered"] = True
    else:
        w["covered"] = (w["window_start"].isna() | (w["window_start"] >= start)).to_numpy(dtype=bool)
    return w
