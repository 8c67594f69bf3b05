"""Breakdowns and risk indicators of a run, computed once by the engine into run.json's ``summary`` (after auditor
decisions), so that the report, the workbook and the portfolio read them and never recompute them.

Breakdowns: per rule, per billing practitioner, per staff member who logged time. Risk indicators are the patterns
the rule catalog's sources look for (OIG audits of CCM A-07-17-05101 and A-07-19-05122, OIG Work Plan OAS-26-09-007, and
OIG's reports on remote patient monitoring OEI-02-23-00260 and OEI-02-23-00261, whose indicators of billing without a
recent visit and of enrolment patterns carry over to care management): enrolment spikes by month, CCM billed without a
visit by the billing practitioner in the prior year, patient-months billed by several practitioners, and monthly
minutes clustered just over the 20, 40 and 60-minute thresholds.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ccmlib.engine.money import NOT_SUPPORTED
from ccmlib.intake.fastops import distinct_rows, positions
from ccmlib.engine.periods import key_to_label

PM = ["patient_id", "service_month"]
THRESHOLDS = (20, 40, 60)
#: a cluster "just over" a threshold: minutes in [t, t+JUST) against the next band [t+JUST, t+2*JUST)
JUST = 3
SPIKE_MIN_COUNT = 5
SPIKE_RATIO = 2.0
#: an enrolment spike: a month with at least this many new consents and ``ENROL_RATIO`` times the median month
ENROL_MIN = 5
ENROL_RATIO = 2.0


def _rate(num, den) -> float:
    return float(num) / float(den) if den else 0.0


def by_rule(findings: pd.DataFrame) -> dict:
    """rule_id -> findings, patient-months and dollars (overlapping) of the standing findings."""
    f = findings.loc[findings["review_decision"] != "overturn", [*PM, "rule_id", "amount"]]
    if f.empty:
        return {}
    g = f.groupby("rule_id").agg(findings=("rule_id", "size"), amount=("amount", "sum"))
    _, first = distinct_rows(f["patient_id"], f["service_month"], f["rule_id"])  # drop_duplicates on integer codes
    g["patient_months"] = f["rule_id"].iloc[first].value_counts()
    return {str(r): {"findings": int(n), "patient_months": int(m), "amount": round(float(a), 2)}
            for r, n, m, a in zip(g.index, g["findings"].to_numpy(), g["patient_months"].to_numpy(), g["amount"].to_numpy())}


def by_practitioner(cl: pd.DataFrame) -> list[dict]:
    """Per billing NPI: claim lines, lines not fully supported, paid, overpayment, error rates."""
    if cl.empty:
        return []
    bad = cl["determination"].isin(NOT_SUPPORTED)
    g = cl.assign(_bad=bad, _over=cl["overpayment"].fillna(0), _paid=cl["paid_amount"].fillna(0),
                  _npi=cl["billing_npi"].astype("string").fillna("(none)"))
    g = g.groupby("_npi").agg(claim_lines=("_bad", "size"), not_supported=("_bad", "sum"), paid_amount=("_paid", "sum"),
                              overpayment=("_over", "sum"), patients=("patient_id", "nunique"))
    g = g.sort_values(["overpayment", "claim_lines"], ascending=False, kind="mergesort")
    out = []
    for npi, patients, lines, bad, paid, over in zip(g.index, *(g[c].to_numpy() for c in (
            "patients", "claim_lines", "not_supported", "paid_amount", "overpayment"))):
        out.append({"billing_npi": str(npi), "patients": int(patients), "claim_lines": int(lines),
                    "not_supported": int(bad), "error_rate_count": _rate(bad, lines),
                    "paid_amount": round(float(paid), 2), "overpayment": round(float(over), 2),
                    "error_rate_dollars": _rate(over, paid)})
    return out


def by_month(cl: pd.DataFrame) -> list[dict]:
    """Per service month: claim lines, lines not fully supported, paid, overpayment, error rate by count."""
    if cl.empty:
        return []
    g = cl.assign(_bad=cl["determination"].isin(NOT_SUPPORTED), _over=cl["overpayment"].fillna(0), _paid=cl["paid_amount"].fillna(0))
    g = g.groupby("service_month").agg(claim_lines=("_bad", "size"), not_supported=("_bad", "sum"), paid_amount=("_paid", "sum"),
                                       overpayment=("_over", "sum"))
    return [{"service_month": str(m), "claim_lines": int(x.claim_lines), "not_supported": int(x.not_supported),
             "error_rate_count": _rate(x.not_supported, x.claim_lines), "paid_amount": round(float(x.paid_amount), 2),
             "overpayment": round(float(x.overpayment), 2)} for m, x in g.iterrows()]


def enrolments(consents: pd.DataFrame, last_key: int, months: int = 12) -> list[dict]:
    """New CCM patients (first consent) per month over the ``months`` months up to the period's end, spikes flagged."""
    counts = enrolment_counts(consents, last_key, months)
    return [] if counts is None else enrolments_of(counts, last_key)


def enrolment_counts(consents: pd.DataFrame, last_key: int, months: int = 12) -> np.ndarray | None:
    """New CCM patients (first consent) in each of the ``months`` months up to ``last_key`` (None: no consents); the
    counts of several shards of a practice's patients add up to the practice's."""
    if consents is None or consents.empty or "consent_date" not in consents:
        return None
    c = consents[["patient_id", "consent_date"]]  # the two columns read, not a copy of the whole table
    first = c.dropna(subset=["consent_date"]).groupby("patient_id", observed=True)["consent_date"].min()
    if first.empty:
        return None
    keys = (first.dt.year * 12 + first.dt.month - 1).astype("int64")
    return keys.value_counts().reindex(np.arange(last_key - months + 1, last_key + 1), fill_value=0).to_numpy()


def enrolments_of(counts: np.ndarray, last_key: int) -> list[dict]:
    """:func:`enrolments` from the months' counts of new patients (:func:`enrolment_counts`)."""
    med = float(np.median(counts)) if len(counts) else 0.0
    labels = key_to_label(pd.Series(np.arange(last_key - len(counts) + 1, last_key + 1), dtype="int64"))
    return [{"month": str(m), "new_patients": int(n), "spike": bool(n >= ENROL_MIN and n >= ENROL_RATIO * max(med, 1.0))}
            for m, n in zip(labels, counts)]


def minutes_clusters(pm: pd.DataFrame) -> list[dict]:
    """Billed patient-months with qualifying minutes just over each threshold against the next band of the same width."""
    m = pm.loc[pm["codes_billed"].fillna("") != "", "qualifying_minutes"].fillna(0)
    out = []
    for t in THRESHOLDS:
        just = int(((m >= t) & (m < t + JUST)).sum())
        nxt = int(((m >= t + JUST) & (m < t + 2 * JUST)).sum())
        out.append({"threshold": t, "just_over": just, "next_band": nxt, "band_minutes": JUST,
                    "spike": bool(just >= SPIKE_MIN_COUNT and just >= SPIKE_RATIO * max(nxt, 1))})
    return out


def minutes_distribution(pm: pd.DataFrame, width: int = 5, top: int = 120) -> list[dict]:
    """Billed patient-months per band of qualifying minutes (``top``+ in the last band)."""
    m = pm.loc[pm["codes_billed"].fillna("") != "", "qualifying_minutes"].fillna(0).clip(upper=top)
    edges = np.arange(0, top + width, width)
    counts = np.bincount(np.minimum((m.to_numpy() // width).astype(int), len(edges) - 1), minlength=len(edges))
    return [{"from": int(a), "to": int(a + width - 1) if a < top else None, "patient_months": int(n)} for a, n in zip(edges, counts)]


def no_prior_visit(facts, cl: pd.DataFrame) -> dict:
    """Billed patient-months (and patients) with no visit of any kind by the billing practitioner in the 365 days before
    the service month began, from the encounters table and the practice's non-CCM claim lines; ``assessable`` false
    when neither was supplied."""
    from ccmlib.reference.codes import CCM_CODES

    parts = []
    if facts is not None and "encounters" not in facts.missing and len(facts.encounters):
        e = facts.encounters
        parts.append(pd.DataFrame({"patient_id": e["patient_id"], "visit_date": e["encounter_date"], "npi": e["practitioner_npi"]}))
    if facts is not None and "claims" not in facts.missing and len(facts.claims):
        c = facts.claims[~facts.claims["cpt_code"].isin(list(CCM_CODES))]
        parts.append(pd.DataFrame({"patient_id": c["patient_id"], "visit_date": c["service_date"], "npi": c["billing_npi"]}))
    assessable = facts is not None and ("encounters" not in facts.missing)
    # integer codes of the lines' patient, month and NPI text (a missing patient or month a value of its own, as
    # drop_duplicates and merge take it; a missing NPI -1: it matches no visit)
    p_code, p_uniq = pd.factorize(cl["patient_id"].astype("string"), use_na_sentinel=False)
    m_code, m_uniq = pd.factorize(cl["service_month"].astype("string"), use_na_sentinel=False)
    n_code, n_uniq = pd.factorize(cl["billing_npi"].astype("string"))
    width = len(n_uniq) + 1
    pm_key = p_code.astype(np.int64) * max(len(m_uniq), 1) + m_code
    first = np.unique(pm_key * width + n_code + 1, return_index=True)[1]  # the distinct (patient, month, NPI)
    total = int(len(pd.unique(pm_key)))
    if cl.empty or not (assessable or parts):
        return {"patient_months": 0, "patients": 0, "of_patient_months": total, "assessable": bool(assessable or parts)}
    v = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["patient_id", "visit_date", "npi"])
    v = v.dropna(subset=["visit_date"])
    # a visit counts for a pair when its patient and NPI are the pair's: one integer key per (patient, NPI)
    vp, vn = _lookup(v["patient_id"], p_uniq, na_matches=True), _lookup(v["npi"], n_uniq, na_matches=False)
    on_v = (vp >= 0) & (vn >= 0)
    months = pd.Series(m_uniq, dtype="string")
    starts = pd.to_datetime(months + "-01").to_numpy()  # each distinct month once
    fp, fm, fn = p_code[first], m_code[first], n_code[first]
    on_p = fn >= 0
    p = pd.DataFrame({"_k": (fp.astype(np.int64) * width + fn)[on_p], "_start": starts[fm[on_p]], "_i": np.flatnonzero(on_p)})
    m = p.merge(pd.DataFrame({"_k": (vp * width + vn)[on_v], "visit_date": v["visit_date"].to_numpy()[on_v]}), on="_k")
    hit = (m["visit_date"] < m["_start"]) & (m["visit_date"] >= m["_start"] - pd.Timedelta(days=365))
    seen = np.zeros(len(first), dtype=bool)
    seen[m.loc[hit.to_numpy(dtype=bool), "_i"].to_numpy()] = True
    miss_p = fp[~seen]
    named = ~pd.isna(np.asarray(p_uniq, dtype=object))[miss_p] if len(miss_p) else np.zeros(0, dtype=bool)  # nunique skips a missing id
    return {"patient_months": int(len(pd.unique(pm_key[first][~seen]))), "patients": int(len(pd.unique(miss_p[named]))),
            "of_patient_months": total, "assessable": True}


def _lookup(values: pd.Series, uniques, na_matches: bool) -> np.ndarray:
    """Position of each value's text (``astype("string")``, as the lines' are) among ``uniques`` (distinct), -1 when
    absent; a missing value finds a missing one among ``uniques`` only when ``na_matches`` (a merge pairs missing
    keys). Looked up once per distinct value, by an Arrow hash lookup."""
    codes, uniq = pd.factorize(values, use_na_sentinel=False)
    if not len(codes):
        return np.array([], dtype=np.int64)
    uniq, keys = pd.Series(uniq).astype("string"), pd.Series(uniques).astype("string")
    found = positions(uniq, keys)
    missing = np.flatnonzero(keys.isna().to_numpy())
    found = np.where(uniq.isna().to_numpy(), missing[0] if na_matches and len(missing) else -1, found)
    return found[codes].astype(np.int64)


def several_practitioners(cl: pd.DataFrame) -> dict:
    """Patient-months whose CCM lines name more than one billing NPI."""
    if cl.empty:
        return {"patient_months": 0, "of_patient_months": 0}
    p_code, _ = pd.factorize(cl["patient_id"])  # groupby leaves out a missing patient or month, nunique a missing NPI
    m_code, m_uniq = pd.factorize(cl["service_month"])
    n_code, n_uniq = pd.factorize(cl["billing_npi"])
    keyed = (p_code >= 0) & (m_code >= 0)
    key = p_code.astype(np.int64)[keyed] * len(m_uniq) + m_code[keyed]
    named = n_code[keyed] >= 0
    pairs = pd.unique(key[named] * len(n_uniq) + n_code[keyed][named])  # the distinct (patient-month, NPI)
    per_pm = pd.Series(pairs // max(len(n_uniq), 1)).value_counts().to_numpy() if len(pairs) else np.zeros(0, dtype=np.int64)
    return {"patient_months": int((per_pm > 1).sum()), "of_patient_months": int(len(pd.unique(key)))}


def no_prior_visit_of(parts: list[dict]) -> dict:
    """:func:`no_prior_visit` of a practice from its value for each shard of its patients (the counts add up: a
    patient and its months are in one shard)."""
    keys = ("patient_months", "patients", "of_patient_months")
    return {**{k: sum(int(p[k]) for p in parts) for k in keys}, "assessable": any(p["assessable"] for p in parts)}


def risk_indicators(res) -> dict:
    cl, pm, facts = res.claim_lines, res.patient_months, res.facts
    last = facts.period.last if facts is not None else None
    whole = res.facts_details  # a practice checked in shards: what the facts give, found in each shard
    return {
        "enrolments": whole["enrolments"] if whole else enrolments(getattr(facts, "consents", None), last) if last is not None else [],
        "no_prior_visit": whole["no_prior_visit"] if whole else no_prior_visit(facts, cl),
        "several_practitioners": several_practitioners(cl),
        "minutes_clusters": minutes_clusters(pm),
        "minutes_distribution": minutes_distribution(pm),
    }
