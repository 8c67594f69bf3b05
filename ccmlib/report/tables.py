"""Report tables computed from an audit result: headline figures, results by criterion, corrective
actions, trend, data sources. Pure functions over DataFrames; the notebook only displays them."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ccmlib.engine.money import NOT_SUPPORTED
from ccmlib.engine.pipeline import AuditResult, audit
from ccmlib.engine.periods import Period, month_key, quarter_label
from ccmlib.engine.rules.registry import catalog
from ccmlib.engine.rules.explain import EXPLAIN

CRITERIA = {"CONS": "Consent", "CP": "Care plan", "ELIG": "Eligibility", "IV": "Eligibility", "TIME": "Time documentation",
            "BILL": "Billing", "REV": "Opportunities", "SUP": "Time documentation", "CHART": "Chart review", "DX": "Eligibility",
            "DOC": "Signatures"}
CRITERIA_ORDER = ["Consent", "Care plan", "Signatures", "Eligibility", "Time documentation", "Billing", "Chart review", "Opportunities"]
#: the auditor's own defects (chart review, rule id CHART): a row of the results when the review added any
CHART_RULE = {"id": "CHART", "title": "Defect found in the chart by the auditor", "severity": "error",
              "cert_category": "Insufficient Documentation", "citation": "the auditor's chart review (decision log; appendix D)"}
CHART_EXPLAIN = ("A defect the chart shows that the exports did not (the auditor's description is in appendix D).",
                 "Correct each documentation defect the chart review found (appendix D lists them) and train the staff concerned.")

def criterion(rule_id: pd.Series) -> pd.Series:
    return rule_id.str.split("-").str[0].map(CRITERIA)


#: the report's headline names -> run.json summary keys (the engine computes each figure once)
HEADLINE_KEYS = {"claim_lines_reviewed": "claim_lines", "claim_lines_in_error": "claim_lines_not_supported",
                 "error_rate_count": "error_rate_count", "paid_amount": "paid_amount", "overpayment": "overpayment",
                 "error_rate_dollars": "error_rate_dollars", "missed_revenue": "missed_amount", "cost_sharing": "cost_sharing",
                 "allowed_unsupported": "allowed_unsupported",
                 "patient_months": "patient_months", "patient_months_with_error": "patient_months_with_error"}


def headline(res: AuditResult) -> dict:
    """Headline figures of a run, read from run.json's summary (after auditor decisions); never recomputed here. The
    ledger keeps it, with the per-rule figures, so a later report's trend can read this quarter back."""
    s = res.run["summary"]
    out = {"period": res.run["period"]["label"], **{k: s[v] for k, v in HEADLINE_KEYS.items()},
           "errors": s["findings"]["error"], "warnings": s["findings"]["warning"], "opportunities": s["findings"]["info"],
           "overturned": s.get("overturned", 0), "sampled": s.get("sampled", False), "by_rule": s.get("by_rule", {})}
    for k in ("sample_size", "sample_in_error", "sample_error_rate_count", "sample_error_rate_dollars", "frame_size", "seed",
              "estimate_point", "estimate_lower_90", "estimate_lower_80"):
        if k in s:
            out[k] = s[k]
    return out


def by_rule(res: AuditResult) -> pd.DataFrame:
    """Every rule of the catalog with its findings, patient-months and dollars from the run's summary (rules with none
    included), its criterion, plain-language explanation and whether it ran; severities as the run's profile set them."""
    from ccmlib.engine.profiles import catalog as profile_catalog
    cat = profile_catalog(res.run.get("profile")).drop(columns=["catalog_severity", "profile_status"])
    per = res.run["summary"].get("by_rule", {})
    if "CHART" in per:
        cat = pd.concat([cat, pd.DataFrame([CHART_RULE])], ignore_index=True)
    out = cat.assign(findings=cat["id"].map(lambda r: per.get(r, {}).get("findings", 0)).astype(int),
                     patient_months=cat["id"].map(lambda r: per.get(r, {}).get("patient_months", 0)).astype(int),
                     amount=cat["id"].map(lambda r: per.get(r, {}).get("amount", 0.0)).astype(float))
    out["explanation"] = out["id"].map(lambda r: EXPLAIN.get(r, CHART_EXPLAIN)[0])
    status = {s["rule_id"]: s["status"] for s in res.run["rules"]} | {"CHART": "ran"}
    out["status"] = out["id"].map(status).fillna("not selected")
    out["criterion"] = pd.Categorical(criterion(out["id"]), CRITERIA_ORDER, ordered=True)
    return out.sort_values(["criterion", "id"]).reset_index(drop=True)


def corrective_actions(res: AuditResult) -> pd.DataFrame:
    """Error and warning rules that fired, ordered by dollars at risk, with the action to take and blank owner and due
    date for the practice to fill in."""
    r = by_rule(res)
    r = r[(r["findings"] > 0) & (r["severity"] != "info")]
    r = r.assign(action=r["id"].map(lambda x: EXPLAIN.get(x, CHART_EXPLAIN)[1]), owner="", due_date="")
    sev = r["severity"].map({"error": 0, "warning": 1})
    r = r.assign(_sev=sev).sort_values(["_sev", "amount", "findings", "id"], ascending=[True, False, False, True], kind="mergesort")
    return r[["id", "title", "severity", "findings", "patient_months", "amount", "action", "owner", "due_date"]].reset_index(drop=True)


def data_sources(res: AuditResult) -> pd.DataFrame:
    inp = pd.DataFrame(res.run["inputs"])
    return inp[["table", "file", "rows_read", "rows_accepted", "rows_rejected", "sha256"]]


def _records(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


ROLE_WORDS = {"physician": "physician", "np": "nurse practitioner", "pa": "physician assistant", "cns": "clinical nurse specialist",
              "cnm": "certified nurse-midwife", "rn": "registered nurse", "lpn": "licensed practical nurse", "ma": "medical assistant",
              "pharmacist": "pharmacist", "social_worker": "social worker", "other_clinical": "other clinical staff",
              "non_clinical": "non-clinical staff"}


def _directory(res: AuditResult) -> pd.DataFrame:
    d = pd.DataFrame(res.run.get("staff") or [], columns=["staff_id", "role", "name", "npi"])
    return d.reindex(columns=["staff_id", "role", "name", "npi"])


def practitioners(res: AuditResult) -> pd.DataFrame:
    """Per billing NPI, with the practitioner's name when the staff table gives their NPI (and blank when it does not)."""
    t = _records(res.run["summary"].get("by_practitioner", []),
                 ["billing_npi", "patients", "claim_lines", "not_supported", "error_rate_count", "paid_amount", "overpayment",
                  "error_rate_dollars"])
    d = _directory(res).dropna(subset=["npi"]).drop_duplicates("npi")
    who = d.set_index("npi")["name"].fillna("") + d.set_index("npi")["role"].map(lambda r: f" ({ROLE_WORDS.get(r, r)})" if r else "")
    names = t["billing_npi"].map(who).fillna("").str.strip()
    if (names != "").any():  # a column only when the staff table names someone
        t.insert(1, "practitioner", names)
    return t


def staff_error_rate(res: AuditResult) -> pd.DataFrame:
    """Per staff member who logged time: role (and name when the staff table gives it), billed patient-months, the share
    with an error, minutes logged and counted."""
    t = _records(res.run["summary"].get("by_staff", []),
                 ["staff_id", "patient_months", "with_error", "error_rate", "minutes_logged", "minutes_counted"])
    d = _directory(res).drop_duplicates("staff_id").set_index("staff_id")
    t.insert(1, "role", t["staff_id"].map(d["role"].map(lambda r: ROLE_WORDS.get(r, r) if isinstance(r, str) else "")).fillna(""))
    if d["name"].notna().any():
        t.insert(1, "name", t["staff_id"].map(d["name"]).fillna(""))
    return t


def month_error_rate(res: AuditResult) -> pd.DataFrame:
    return _records(res.run["summary"].get("by_month", []),
                    ["service_month", "claim_lines", "not_supported", "error_rate_count", "paid_amount", "overpayment"])


def rule_names(ids: pd.Series) -> pd.Series:
    """``RULE-01;RULE-02`` -> the rules' plain-language titles, one per line."""
    titles = dict(zip(catalog()["id"], catalog()["title"])) | {"CHART": "Defect found in the chart by the auditor"}
    return ids.fillna("").map(lambda v: "; ".join(f"{titles.get(r, r)} ({r})" for r in str(v).split(";") if r))


def lines_not_supported(res: AuditResult) -> pd.DataFrame:
    """Claim lines not fully supported, the largest overpayment first, with the reasons in words."""
    cl = res.claim_lines
    bad = cl[cl["determination"].isin(NOT_SUPPORTED)]
    out = bad.assign(reasons=rule_names(bad["rule_ids"]) if "rule_ids" in bad else "",
                     rule_ids=bad["rule_ids"].fillna("").str.replace(";", ", ", regex=False) if "rule_ids" in bad else "",
                     determination=bad["determination"].str.replace("_", " "))
    out = out.sort_values(["overpayment", "patient_id", "service_date", "claim_id", "line"], ascending=[False, True, True, True, True],
                          kind="mergesort", na_position="first")
    out["sampled"] = sampled_lines(res, out)
    return out[["claim_id", "line", "sampled", "patient_id", "service_month", "service_date", "billing_npi", "cpt_code", "units_billed",
                "units_supported", "paid_amount", "overpayment", "determination", "rule_ids", "reasons"]].reset_index(drop=True)


def sampled_lines(res: AuditResult, lines: pd.DataFrame) -> pd.Series:
    """'yes' for claim lines in the sample (a sampled line, or a line of a sampled patient-month; spares not counted)."""
    if res.sample is None:
        return pd.Series("", index=lines.index, dtype=object)
    s = res.sample[~res.sample["spare"]]
    by = ["claim_id", "line"] if {"claim_id", "line"} <= set(s.columns) else ["patient_id", "service_month"]
    key = lambda d: pd.MultiIndex.from_arrays([d[by[0]].astype(str), d[by[1]].astype(str)])  # noqa: E731
    return pd.Series(np.where(key(lines).isin(key(s)), "yes", ""), index=lines.index, dtype=object)


TREND_COLUMNS = ("period", "claim_lines_reviewed", "claim_lines_in_error", "error_rate_count", "paid_amount", "overpayment",
                 "error_rate_dollars", "missed_revenue")


def data_quarters(data) -> set[int]:
    """Month keys that hold a claim or a time entry."""
    months = set()
    for name, col in (("claims", "service_date"), ("time_entries", "activity_date")):
        if data.has(name) and len(data[name]):
            d = data[name][col].dropna()
            months |= set(month_key(d).dropna().astype(int).unique().tolist())
    return months


def summary_headline(s: dict, label: str) -> dict:
    """A report headline (the names the report and the ledger use) from an engine summary."""
    return {"period": label, **{k: s[v] for k, v in HEADLINE_KEYS.items()}, "errors": s["findings"]["error"],
            "warnings": s["findings"]["warning"], "opportunities": s["findings"]["info"], "overturned": s.get("overturned", 0),
            "by_rule": s.get("by_rule", {})}


def earlier_quarters(data, period: Period, quarters: int = 3, recorded: dict | None = None, **kw) -> dict[str, tuple[dict, str]]:
    """Headlines of up to ``quarters`` quarters before ``period`` present in the data, oldest first: from ``recorded``
    (period -> headline of the last successful report in the ledger) when there is one, else from one audit over the
    quarters still needed, with the same options (``kw``: the same auditor decisions), cut into quarters by the engine
    (:func:`~ccmlib.engine.pipeline.quarter_summaries`). Value: (headline, source)."""
    from ccmlib.engine.pipeline import quarter_summaries
    from ccmlib.intake.load import Practice, load_practice

    data = data if isinstance(data, Practice) else load_practice(data)  # load once for every quarter
    months = data_quarters(data)
    wanted = []
    for back in range(quarters, 0, -1):
        start = period.first - 3 * back
        label = quarter_label(start)
        if months & set(range(start, start + 3)):  # no claims or time in that quarter: nothing to show
            wanted.append((label, start))
    missing = [(label, start) for label, start in wanted if not (recorded and label in recorded)]
    audited = {}
    if missing:
        lo, hi = missing[0][1], missing[-1][1] + 2
        r = audit(data, start=f"{lo // 12}-{lo % 12 + 1:02d}", end=f"{hi // 12}-{hi % 12 + 1:02d}", **kw)
        audited = quarter_summaries(r)
    out = {}
    for label, _ in wanted:
        if recorded and label in recorded:
            out[label] = (recorded[label], "ledger")
        elif label in audited and audited[label]["claim_lines"]:
            out[label] = (summary_headline(audited[label], label), "audited for the trend")
    return out


def trend(current: dict, earlier: dict[str, tuple[dict, str]]) -> pd.DataFrame:
    """Earlier quarters' headlines and this report's, one row each."""
    rows = [{**{k: h.get(k) for k in TREND_COLUMNS}, "source": src} for h, src in earlier.values()]
    rows.append({**{k: current.get(k) for k in TREND_COLUMNS}, "source": "this report"})
    return pd.DataFrame(rows, columns=[*TREND_COLUMNS, "source"])


def rule_change(current: dict, previous: dict | None, profile: dict | None = None) -> pd.DataFrame:
    """Per error rule (with the severities of the run's ``profile``) with findings in either quarter: patient-months and
    dollars now and in the previous quarter."""
    from ccmlib.engine.profiles import catalog as profile_catalog
    cat = profile_catalog(profile).set_index("id")
    now, before = current.get("by_rule", {}), (previous or {}).get("by_rule", {})
    ids = [r for r in sorted(set(now) | set(before)) if r in cat.index and cat.loc[r, "severity"] == "error"]
    rows = [{"id": r, "title": cat.loc[r, "title"], "patient_months": now.get(r, {}).get("patient_months", 0),
             "amount": now.get(r, {}).get("amount", 0.0),
             "previous_amount": before.get(r, {}).get("amount") if previous and "by_rule" in previous else None}
            for r in ids]
    out = pd.DataFrame(rows, columns=["id", "title", "patient_months", "amount", "previous_amount"])
    out["change"] = out["amount"] - out["previous_amount"].astype(float)
    return out.sort_values(["amount", "patient_months", "id"], ascending=[False, False, True], kind="mergesort").reset_index(drop=True)


def appendix(res: AuditResult) -> pd.DataFrame:
    """Findings per patient-month: rules, codes billed and supported, overpayment, missed revenue."""
    f = res.findings[res.findings["review_decision"] != "overturn"]
    f = f.assign(rule_id=f["rule_id"].where(f["found_by"] != "auditor", f["rule_id"] + " (auditor)")) if "found_by" in f else f
    rules = f.groupby(["patient_id", "service_month"])["rule_id"].agg(lambda s: ", ".join(sorted(set(s)))).rename("rules")
    pm = res.patient_months.merge(rules.reset_index(), on=["patient_id", "service_month"], how="inner")
    return pm[["patient_id", "service_month", "qualifying_minutes", "codes_billed", "codes_supported", "rules", "overpayment", "missed_amount"]]


def minutes_band(minutes: pd.Series) -> pd.Series:
    return pd.cut(minutes, [-np.inf, 20, 40, 60, np.inf], right=False, labels=["<20", "20-39", "40-59", "60+"])
