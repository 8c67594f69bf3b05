"""Derived facts per time entry, patient-month and claim line, computed once and shared by the rules.

Everything here is vectorized: group-bys, merges and interval logic, no per-row Python.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import refdata
from .codes import CCM_CODES, INITIATING_VISITS
from .fastops import positions
from .load import Practice
from .period import Period, key_end, key_start, key_to_label, month_key
from .schema import CLINICAL_STAFF_ROLES, PRACTITIONER_ROLES, TABLES

PM = ["patient_id", "mkey"]
#: staff-code thresholds whose reach date is reported and used by BILL-05
STAFF_THRESHOLDS = (20, 40, 60, 90, 120)
PRACTITIONER_THRESHOLDS = (30, 60, 90)


def table(practice: Practice, name: str) -> pd.DataFrame:
    """The practice's table, or an empty typed frame with the contract's columns."""
    if practice.has(name):
        return practice[name]
    from .validate import parse_column
    empty = pd.Series([], dtype="object")
    return pd.DataFrame({c.name: parse_column(empty, c)[0] for c in TABLES[name].cols} | {"_line": pd.Series([], dtype="int64")})


def sort_key(ids: pd.Series) -> pd.Series:
    """Order of ids: numeric when every id is a number, else text (documented tie-breaker)."""
    if len(ids) and ids.astype("string").str.fullmatch(r"\d{1,18}").fillna(False).all():
        return pd.to_numeric(ids)
    return ids.astype("string")


@dataclass
class Facts:
    period: Period
    entries: pd.DataFrame  # time entries of the period with exclusion flags and qualifying minutes
    pm: pd.DataFrame  # patient-months of the period: minutes, threshold dates, conditions, consent, plan
    lines: pd.DataFrame  # CCM-family claim lines of the period
    claims: pd.DataFrame  # all claim lines (for conflicts, initiating visits)
    diagnoses: pd.DataFrame  # diagnoses with validity
    consents: pd.DataFrame
    cand_consents: pd.DataFrame  # (patient-month, consent) pairs: consent dated on/before the month's reference date
    plans: pd.DataFrame
    encounters: pd.DataFrame
    commencement: pd.DataFrame  # patient_id -> CCM commencement date
    missing: set[str] = field(default_factory=set)  # tables not provided
    cum: pd.DataFrame | None = None  # cumulative qualifying minutes per patient-month (for thresholds)
    conditions: pd.DataFrame | None = None  # (patient_id, mkey, category) active chronic categories
    visit_status: pd.DataFrame | None = None  # cache of practitioner_visit_status()


# --------------------------------------------------------------------------- time entries
def time_entry_facts(te: pd.DataFrame, staff: pd.DataFrame, consents: pd.DataFrame) -> pd.DataFrame:
    """Duration, exclusion reasons and qualifying minutes of every entry."""
    e = te.copy()
    span = (e["end_time"] - e["start_time"]).astype("float64")
    e["duration"] = e["minutes"].fillna(span)
    roster = staff.drop_duplicates("staff_id")
    pos = positions(e["staff_id"], roster["staff_id"])  # -1 = not in the staff table
    roles = np.append(roster["role"].astype(object).to_numpy(), None)
    e["role"] = pd.Series(roles[pos], index=e.index, dtype="string")
    e["is_practitioner"] = e["role"].isin(PRACTITIONER_ROLES).astype(bool)
    desc = e["description"].astype("string").str.strip()
    e["x_incomplete"] = (desc.isna() | (desc == "") | e["staff_id"].isna() | e["duration"].isna()).astype(bool)
    e["x_staff"] = (e["staff_id"].notna() & ~e["role"].isin(CLINICAL_STAFF_ROLES + PRACTITIONER_ROLES)).astype(bool)
    e["x_f2f"] = e["face_to_face"].fillna(False).astype(bool)
    e["x_counted"] = e["counted_toward"].notna()
    first_consent = consents.groupby("patient_id")["consent_date"].min()
    fc = pd.Series(first_consent.reindex(e["patient_id"]).to_numpy(), index=e.index, dtype="datetime64[ns]")
    e["first_consent"] = fc
    e["x_before_consent"] = (fc.notna() & (e["activity_date"] < fc)).astype(bool)
    e["x_no_consent"] = fc.isna()
    e["overlap"] = overlap_minutes(e)
    e["x_overlap"] = e["overlap"] > 0
    excluded = e[["x_incomplete", "x_staff", "x_f2f", "x_counted", "x_before_consent", "x_no_consent"]].any(axis=1)
    e["qualifying"] = np.where(excluded, 0.0, (e["duration"].fillna(0) - e["overlap"]).clip(lower=0))
    e["prac_qualifying"] = np.where(e["is_practitioner"], e["qualifying"], 0.0)
    e["mkey"] = month_key(e["activity_date"])
    return e


def overlap_minutes(e: pd.DataFrame) -> pd.Series:
    """Minutes of each entry already covered by an earlier-starting entry of the same staff member
    on the same day (any patient). Ties on start go to the lower entry_id."""
    out = pd.Series(0.0, index=e.index)
    ok = e["start_time"].notna() & e["end_time"].notna() & e["staff_id"].notna()
    if not ok.any():
        return out
    staff = pd.factorize(e.loc[ok, "staff_id"])[0]
    day = e.loc[ok, "activity_date"].to_numpy().astype("int64")
    s = e.loc[ok, "start_time"].to_numpy(dtype="int64")
    f = e.loc[ok, "end_time"].to_numpy(dtype="int64")
    # tie-break on entry_id only where one staff member has several entries starting the same minute
    k = np.zeros(len(s), dtype="int64")
    keys = pd.DataFrame({"a": staff, "b": day, "c": s})
    tied = keys.duplicated(keep=False).to_numpy()
    if tied.any():
        k[tied] = pd.Series(sort_key(e.loc[ok, "entry_id"][tied])).rank(method="first").to_numpy(dtype="int64")
    order = np.lexsort((k, s, day, staff))
    st, dy, s_, f_ = staff[order], day[order], s[order], f[order]
    group = np.r_[True, (st[1:] != st[:-1]) | (dy[1:] != dy[:-1])]  # first entry of a staff member's day
    gid = np.cumsum(group) - 1
    run_max = pd.Series(f_).groupby(gid).cummax().to_numpy()
    prev_end = np.where(group, -1, np.r_[-1, run_max[:-1]])
    counted = np.clip(f_ - np.maximum(s_, prev_end), 0, None)
    idx = e.index[ok.to_numpy()][order]
    out.loc[idx] = f_ - s_ - counted
    return out


def threshold_dates(cum: pd.DataFrame, req: pd.DataFrame, col: str) -> pd.Series:
    """Date on which the cumulative minutes ``col`` of each requirement's patient-month first reached
    ``req['need']`` (NaT if never). ``req`` has pm_id and need; ``cum`` is sorted by pm_id and date."""
    out = np.full(len(req), np.datetime64("NaT"), dtype="datetime64[ns]")
    needs = req["need"].to_numpy(dtype="float64")
    for need in np.unique(needs):  # a handful of thresholds (20, 40, 60, ...)
        hit = cum[cum[col] >= need].drop_duplicates("pm_id")
        first = pd.Series(hit["activity_date"].to_numpy(), index=hit["pm_id"].to_numpy())
        sel = needs == need
        out[sel] = first.reindex(req["pm_id"].to_numpy()[sel]).to_numpy()
    return pd.Series(out, index=req.index)


# --------------------------------------------------------------------------- assembly
def encoded_tables(practice: Practice) -> dict[str, pd.DataFrame]:
    """Every table with patient_id (and claim_id) as categoricals sharing one category list, so that the many
    merges and group-bys on them work on integer codes instead of strings."""
    names = [n for n in TABLES if TABLES[n].patient_ref or n == "patients"]
    tabs = {n: table(practice, n) for n in TABLES}
    ids = pd.unique(pd.concat([tabs[n]["patient_id"].dropna().astype(str) for n in names if len(tabs[n])]
                              or [pd.Series([], dtype=str)], ignore_index=True))
    cats = pd.Index(np.sort(np.asarray(ids, dtype=object)))
    pid = pd.CategoricalDtype(cats)

    def enc(col: pd.Series) -> pd.Series:
        return pd.Series(pd.Categorical.from_codes(positions(col, cats), dtype=pid), index=col.index)

    out = {n: (df.assign(patient_id=enc(df["patient_id"])) if n in names else df) for n, df in tabs.items()}
    c = out["claims"]
    out["claims"] = c.assign(claim_id=c["claim_id"].astype("category"))
    return out


def build_facts(practice: Practice, period: Period | None, condition_map: pd.DataFrame | None = None) -> Facts:
    missing = {n for n in TABLES if not practice.has(n)}
    tabs = encoded_tables(practice)
    te, staff, consents = tabs["time_entries"], tabs["staff"], tabs["consents"]
    claims = tabs["claims"].copy()
    claims["units"] = claims["units"].fillna(1).astype("int64")
    claims["mkey"] = month_key(claims["service_date"])
    ccm = claims[claims["cpt_code"].isin(CCM_CODES)]
    te_keys = month_key(te["activity_date"])
    if period is None:  # every month that has CCM claims or time
        keys = pd.concat([ccm["mkey"], te_keys]).dropna()
        period = Period(int(keys.min()), int(keys.max()), "all") if len(keys) else Period(0, 0, "none")
    in_p = lambda k: k.between(period.first, period.last).fillna(False).astype(bool)  # noqa: E731
    entries = time_entry_facts(te[in_p(te_keys)], staff, consents)
    lines = ccm[in_p(ccm["mkey"])].copy()

    # patient-months: billed or documented
    pm = pd.concat([lines[PM], entries[PM]]).drop_duplicates().reset_index(drop=True)
    pm["mkey"] = pm["mkey"].astype("int64")
    pm = pm.sort_values(PM, key=lambda s: s if s.name == "mkey" else s.astype("string"), kind="mergesort").reset_index(drop=True)
    pm["pm_id"] = np.arange(len(pm))
    pm["service_month"] = key_to_label(pm["mkey"]) if len(pm) else pd.Series([], dtype="string")
    pm["month_start"] = key_start(pm["mkey"]).to_numpy() if len(pm) else pd.Series([], dtype="datetime64[ns]")
    pm["month_end"] = key_end(pm["mkey"]).to_numpy() if len(pm) else pd.Series([], dtype="datetime64[ns]")

    # minutes
    mins = entries.groupby(PM, sort=False).agg(qualifying_minutes=("qualifying", "sum"), practitioner_minutes=("prac_qualifying", "sum"),
                                               documented_minutes=("duration", "sum"), last_activity=("activity_date", "max"))
    pm = pm.merge(mins.reset_index().astype({"mkey": "int64"}), on=PM, how="left")
    for c in ("qualifying_minutes", "practitioner_minutes", "documented_minutes"):
        pm[c] = pm[c].fillna(0.0)
    # running totals through the month (ties on date and start keep the log's order)
    e = entries.loc[entries["qualifying"] > 0, ["patient_id", "mkey", "activity_date", "start_time", "qualifying", "prac_qualifying"]]
    e = e.merge(pm[PM + ["pm_id"]], on=PM, how="left")
    order = np.lexsort((e["start_time"].astype("float64").fillna(-1).to_numpy(), e["activity_date"].to_numpy().astype("int64"),
                        e["pm_id"].to_numpy()))
    e = e.iloc[order]
    g = e.groupby("pm_id", sort=False)
    cum = pd.DataFrame({"pm_id": e["pm_id"].to_numpy(), "activity_date": e["activity_date"].to_numpy(),
                        "staff_cum": g["qualifying"].cumsum().to_numpy(), "prac_cum": g["prac_qualifying"].cumsum().to_numpy()})
    for t in STAFF_THRESHOLDS:
        pm[f"date_{t}min"] = threshold_dates(cum, pm.assign(need=t), "staff_cum").to_numpy()
    for t in PRACTITIONER_THRESHOLDS:
        pm[f"date_{t}min_practitioner"] = threshold_dates(cum, pm.assign(need=t), "prac_cum").to_numpy()

    # billed?
    billed = lines.groupby(PM).agg(last_service=("service_date", "max")).reset_index().astype({"mkey": "int64"})
    pm = pm.merge(billed, on=PM, how="left")
    pm["billed"] = pm["last_service"].notna()
    pm["ref_date"] = pm[["last_service", "last_activity"]].max(axis=1)

    # chronic conditions active in the month
    dx = tabs["diagnoses"].copy()
    dx["valid"] = refdata.valid_icd10(dx["icd10_code"])
    cats = refdata.map_conditions(dx.loc[dx["valid"], "icd10_code"], condition_map)
    dxc = dx[dx["valid"]].merge(cats, left_on="icd10_code", right_on="code")
    act = pm[PM + ["month_start", "month_end"]].merge(dxc[["patient_id", "category", "onset_date", "resolved_date"]], on="patient_id")
    act = act[(act["onset_date"].isna() | (act["onset_date"] <= act["month_end"]))
              & (act["resolved_date"].isna() | (act["resolved_date"] >= act["month_start"]))]
    ncat = act.drop_duplicates(PM + ["category"])[PM + ["category"]]
    pm = pm.merge(ncat.groupby(PM).size().rename("chronic_conditions").reset_index(), on=PM, how="left")
    pm["chronic_conditions"] = pm["chronic_conditions"].fillna(0).astype("int64")

    # consents: candidates dated on/before the month's reference date
    cons = consents.reset_index(drop=True).assign(consent_row=lambda d: np.arange(len(d)))
    cand = pm[PM + ["month_start", "ref_date"]].merge(cons, on="patient_id")
    cand = cand[cand["consent_date"] <= cand["ref_date"]]
    cand = cand.assign(revoked_before=(cand["revoked_date"].notna() & (cand["revoked_date"] < cand["month_start"])).astype(bool))
    live = cand[~cand["revoked_before"]].sort_values(PM + ["consent_date", "consent_row"], kind="mergesort")
    inforce = live.drop_duplicates(PM, keep="last")
    keep = ["consent_date", "practitioner_npi", "informed_cost_sharing", "informed_one_practitioner",
            "informed_right_to_stop", "informed_availability", "revoked_date"]
    pm = pm.merge(inforce[PM + keep].rename(columns={c: f"consent_{c}" if not c.startswith("consent") else c for c in keep}), on=PM, how="left")
    ncand = cand.groupby(PM).size().rename("consents_on_file").reset_index()
    pm = pm.merge(ncand, on=PM, how="left")
    pm["consents_on_file"] = pm["consents_on_file"].fillna(0).astype("int64")

    # care plan in force: latest version created on/before the month's end
    plans = tabs["care_plans"].reset_index(drop=True).assign(plan_row=lambda d: np.arange(len(d)))
    cp = pm[PM + ["month_end"]].merge(plans, on="patient_id")
    cp = cp[cp["created_date"] <= cp["month_end"]].sort_values(PM + ["created_date", "plan_row"], kind="mergesort").drop_duplicates(PM, keep="last")
    plan_cols = [c.name for c in TABLES["care_plans"].cols if c.name != "patient_id"]
    pm = pm.merge(cp[PM + plan_cols].rename(columns={c: f"plan_{c}" if not c.startswith("plan_") else c for c in plan_cols}), on=PM, how="left")

    # CCM commencement: earlier of first consent and first CCM claim in the data
    first_claim = ccm.groupby("patient_id")["service_date"].min()
    first_consent = consents.groupby("patient_id")["consent_date"].min()
    comm = pd.concat([first_claim, first_consent], axis=1).min(axis=1).rename("commencement").reset_index()
    comm.columns = ["patient_id", "commencement"]

    enc = tabs["encounters"]
    return Facts(period=period, entries=entries, pm=pm, lines=lines.reset_index(drop=True), claims=claims, diagnoses=dx,
                 consents=consents, cand_consents=cand, plans=plans, encounters=enc, commencement=comm, missing=missing, cum=cum,
                 conditions=ncat.reset_index(drop=True))


def condition_lists(f: Facts, pms: pd.DataFrame) -> pd.Series:
    """'ckd;diabetes' per row of ``pms`` (patient_id, mkey): the chronic categories active in the month.
    Meant for the few patient-months a message or a view needs, not for the whole population."""
    c = f.conditions.merge(pms[PM].drop_duplicates(), on=PM).sort_values(PM + ["category"])
    lists = c.groupby(PM)["category"].agg(";".join)
    return pd.Series(pms.set_index(PM).index.map(lists), index=pms.index).fillna("")


def practitioner_visit_status(f: Facts) -> pd.DataFrame:
    """:func:`initiating_visit_status` for every (patient, billing NPI) of the period's CCM lines, computed once
    per run (IV-01 and the data-quality note both need it)."""
    if f.visit_status is None:
        f.visit_status = initiating_visit_status(f, f.lines[["patient_id", "billing_npi"]])
    return f.visit_status


def initiating_visit_status(f: Facts, who: pd.DataFrame) -> pd.DataFrame:
    """For (patient_id, billing_npi) pairs (npi <NA> = any practitioner): was there a qualifying visit in
    the 365 days up to and including commencement, and does the encounters table reach back that far?"""
    w = who.drop_duplicates().merge(f.commencement, on="patient_id", how="left")
    enc = f.encounters[f.encounters["cpt_code"].isin(INITIATING_VISITS)]
    m = w.reset_index(drop=True).assign(_i=lambda d: np.arange(len(d))).merge(
        enc[["patient_id", "encounter_date", "practitioner_npi"]], on="patient_id")
    hit = (m["encounter_date"] <= m["commencement"]) & (m["encounter_date"] >= m["commencement"] - pd.Timedelta(days=365)) \
        & (m["practitioner_npi"].isna() | m["billing_npi"].isna() | (m["practitioner_npi"] == m["billing_npi"]))
    found = set(m.loc[hit.fillna(False).astype(bool), "_i"])
    w = w.reset_index(drop=True)
    w["visit_found"] = np.isin(np.arange(len(w)), list(found))
    earliest = f.encounters["encounter_date"].min() if len(f.encounters) else pd.NaT
    w["covered"] = (w["commencement"] - pd.Timedelta(days=365) >= earliest) if pd.notna(earliest) else False
    w["covered"] = w["covered"].fillna(False).astype(bool)
    return w
