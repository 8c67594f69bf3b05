"""Report tables computed from an audit result: headline figures, results by criterion, corrective
actions, trend, data sources. Pure functions over DataFrames; the notebook only displays them."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ccmlib.engine.pipeline import AuditResult, audit
from ccmlib.engine.periods import Period, month_key, parse_period
from ccmlib.engine.rules.registry import catalog

CRITERIA = {"CONS": "Consent", "CP": "Care plan", "ELIG": "Eligibility", "IV": "Eligibility", "TIME": "Time documentation",
            "BILL": "Billing", "REV": "Opportunities", "SUP": "Time documentation"}
CRITERIA_ORDER = ["Consent", "Care plan", "Eligibility", "Time documentation", "Billing", "Opportunities"]

#: plain-language explanation and corrective action per rule
EXPLAIN = {
    "TIME-01": ("A time entry lacks a description, a staff member or a duration, so it cannot count.",
                "Make description, staff and minutes (or start/end) mandatory fields in the CCM time log."),
    "TIME-02": ("Time was logged by someone who is not clinical staff or a billing practitioner.",
                "Restrict CCM time logging to clinical roles; keep the staff roster current."),
    "TIME-03": ("One staff member logged overlapping time; overlapping minutes count once.",
                "Log start and end times and review overlapping entries before billing."),
    "TIME-04": ("Face-to-face time belongs to a visit and cannot count toward CCM.",
                "Log visit time on the visit, not in the CCM time log."),
    "TIME-05": ("The minutes were already counted toward another service (e.g. TCM, RPM, BHI).",
                "Separate time logs per service; never count a minute twice."),
    "TIME-06": ("99490 needs at least 20 qualifying minutes in the calendar month; fewer were documented.",
                "Hold the claim until 20 qualifying minutes are documented; reconcile time logs monthly."),
    "TIME-07": ("Each 99439 unit needs a further full 20 minutes (at most two a month).",
                "Bill 99439 units from the qualifying-minute total, never rounded up."),
    "TIME-08": ("99487 needs 60 minutes and each 99489 a further 30.",
                "Bill complex CCM only when 60 qualifying minutes and complex decision-making are documented."),
    "TIME-09": ("99491/99437 count only the practitioner's own time.",
                "Track practitioner time separately from staff time."),
    "CONS-01": ("No consent was documented before the service.",
                "Obtain and document consent before the first CCM activity; verify it before billing."),
    "CONS-02": ("The consent in force for the billing practitioner does not show the patient was told of cost sharing, the one-practitioner limit and the right to stop.",
                "Use a consent template with all required disclosures as separate checkboxes."),
    "CONS-03": ("The consent in force was revoked; later months are not covered until a new consent.",
                "Stop CCM billing after the month of revocation; flag revoked patients in the billing system."),
    "CONS-04": ("The consent names a different billing practitioner.",
                "Obtain a new consent when the billing practitioner changes."),
    "CONS-05": ("Activity logged before the consent, without one, or after a revocation and before a new consent cannot count.",
                "Start the CCM clock on the consent date; stop it at the end of a revocation month until a new consent."),
    "SUP-01": ("Clinical staff time with no supervising practitioner on record (the minutes still count).",
               "Record the supervising physician or practitioner of every clinical staff member in the staff roster."),
    "CONS-06": ("The consent does not show the patient was told CCM is available.",
                "Add the availability statement to the consent template."),
    "ELIG-01": ("Fewer than two chronic conditions were active in the month.",
                "Confirm two qualifying chronic conditions on the problem list before enrolling."),
    "ELIG-02": ("A diagnosis code is not a valid ICD-10-CM code and was ignored.",
                "Correct invalid codes on the problem list."),
    "IV-01": ("No initiating face-to-face visit by the billing practitioner in the year before CCM began.",
              "Schedule an initiating visit (E/M, AWV, IPPE or TCM) before starting CCM."),
    "CP-01": ("No care plan was in force for the month.", "Create the comprehensive care plan at enrollment."),
    "CP-02": ("The care plan lacks a core element (problem list, measurable goals, interventions, responsible individuals).",
              "Use a care-plan template that requires every core element."),
    "CP-03": ("The care plan lacks another expected element.", "Complete every expected care-plan element."),
    "CP-04": ("The care plan is not kept electronically and shareable with the care team.",
              "Keep the care plan in the certified EHR, shareable with the care team."),
    "CP-05": ("No record that the patient received a copy of the care plan.",
              "Give the patient a copy and document the date."),
    "CP-06": ("The care plan was not created or reviewed in the last 12 months.", "Review care plans at least yearly."),
    "BILL-01": ("More than one practitioner billed CCM for the same patient and month.",
                "Coordinate with other practices; only one practitioner may bill CCM a month."),
    "BILL-02": ("A base CCM code was billed more than once in the month.", "Bill the base code once per calendar month."),
    "BILL-03": ("CCM was billed in a month with a conflicting service (home health or hospice supervision, ESRD, PCM, APCM).",
                "Check for conflicting services before billing CCM."),
    "BILL-04": ("Incompatible CCM codes were billed together, or an add-on without its base.",
                "Bill add-ons only with their base code; do not combine 99490 and 99487."),
    "BILL-05": ("The claim was dated before the time threshold was reached.", "Date the claim after the threshold is met."),
    "BILL-06": ("G0506 was billed without a same-day initiating visit by the same practitioner, or twice.",
                "Bill G0506 once, with the initiating visit."),
    "BILL-07": ("G0511 was billed after 30 Sep 2025; rural health clinics and FQHCs now bill the individual care-management codes.",
                "Bill 99490 and its siblings for RHC/FQHC care management from 1 Oct 2025."),
    "REV-01": ("Documented qualifying minutes support codes or units that were not billed.",
               "Review time totals at month end and bill what the documentation supports."),
}


def criterion(rule_id: pd.Series) -> pd.Series:
    return rule_id.str.split("-").str[0].map(CRITERIA)


#: the report's headline names -> run.json summary keys (the engine computes each figure once)
HEADLINE_KEYS = {"claim_lines_reviewed": "claim_lines", "claim_lines_in_error": "claim_lines_not_supported",
                 "error_rate_count": "error_rate_count", "paid_amount": "paid_amount", "overpayment": "overpayment",
                 "error_rate_dollars": "error_rate_dollars", "missed_revenue": "missed_amount",
                 "patient_months": "patient_months", "patient_months_with_error": "patient_months_with_error"}


def headline(res: AuditResult) -> dict:
    """Headline figures of a run, read from run.json's summary (after auditor decisions); never recomputed here."""
    s = res.run["summary"]
    out = {"period": res.run["period"]["label"], **{k: s[v] for k, v in HEADLINE_KEYS.items()},
           "errors": s["findings"]["error"], "warnings": s["findings"]["warning"], "opportunities": s["findings"]["info"],
           "overturned": s.get("overturned", 0), "sampled": s.get("sampled", False)}
    for k in ("sample_size", "sample_in_error", "sample_error_rate_count", "sample_error_rate_dollars", "frame_size", "seed",
              "estimate_point", "estimate_lower_90", "estimate_lower_80"):
        if k in s:
            out[k] = s[k]
    return out


def by_rule(res: AuditResult) -> pd.DataFrame:
    """Every rule of the catalog with its findings, patient-months and dollars (rules with none included)."""
    cat = catalog()
    f = res.findings[res.findings["review_decision"] != "overturn"]  # an overturned finding no longer counts anywhere
    g = f.groupby("rule_id").agg(findings=("rule_id", "size"), amount=("amount", "sum"))
    g["patient_months"] = f.drop_duplicates(["patient_id", "service_month", "rule_id"]).groupby("rule_id").size()
    out = cat.merge(g.reset_index(), left_on="id", right_on="rule_id", how="left").drop(columns="rule_id")
    out[["findings", "patient_months"]] = out[["findings", "patient_months"]].fillna(0).astype(int)
    out["amount"] = out["amount"].fillna(0.0).round(2)
    out["criterion"] = criterion(out["id"])
    out["explanation"] = out["id"].map(lambda r: EXPLAIN[r][0])
    status = {s["rule_id"]: s["status"] for s in res.run["rules"]}
    out["status"] = out["id"].map(status).fillna("not selected")
    out["criterion"] = pd.Categorical(out["criterion"], CRITERIA_ORDER, ordered=True)
    return out.sort_values(["criterion", "id"]).reset_index(drop=True)


def corrective_actions(res: AuditResult) -> pd.DataFrame:
    """Error and warning rules that fired, ordered by dollars at risk, with the action to take."""
    r = by_rule(res)
    r = r[(r["findings"] > 0) & (r["severity"] != "info")]
    r = r.assign(action=r["id"].map(lambda x: EXPLAIN[x][1]))
    return r.sort_values(["amount", "findings"], ascending=False)[["id", "title", "severity", "findings", "patient_months", "amount", "action"]].reset_index(drop=True)


def data_sources(res: AuditResult) -> pd.DataFrame:
    inp = pd.DataFrame(res.run["inputs"])
    return inp[["table", "file", "rows_read", "rows_accepted", "rows_rejected", "sha256"]]


def staff_error_rate(res: AuditResult) -> pd.DataFrame:
    """Per staff member who logged time: billed patient-months and the share with an error."""
    e = res.entries()[["patient_id", "service_month", "staff_id"]].dropna().drop_duplicates()
    pm = res.patient_months[res.patient_months["codes_billed"] != ""]
    m = e.merge(pm[["patient_id", "service_month", "errors"]], on=["patient_id", "service_month"])
    g = m.groupby("staff_id").agg(patient_months=("errors", "size"), with_error=("errors", lambda s: int((s > 0).sum())))
    g["error_rate"] = g["with_error"] / g["patient_months"]
    return g.sort_values(["error_rate", "patient_months"], ascending=[False, False]).reset_index()


def month_error_rate(res: AuditResult) -> pd.DataFrame:
    cl = res.claim_lines
    g = cl.groupby("service_month").agg(lines=("claim_id", "size"), in_error=("determination", lambda s: int((s != "supported").sum())),
                                        paid=("paid_amount", "sum"), overpayment=("overpayment", "sum"))
    g["error_rate"] = g["in_error"] / g["lines"]
    return g.reset_index()


def trend(data, period: Period, quarters: int = 3, current: dict | None = None, recorded: dict | None = None,
          **kw) -> pd.DataFrame:
    """Headline figures of this quarter and up to ``quarters`` earlier quarters present in the data. The current quarter
    comes from this run's headline (``current``); an earlier quarter from ``recorded`` (period -> headline of the last
    successful report in the ledger) when there is one, else it is audited with the same options (``kw``: the same
    auditor decisions), so that every row means the same thing. ``source`` says which."""
    from ccmlib.intake.load import Practice, load_practice

    data = data if isinstance(data, Practice) else load_practice(data)  # load once for every quarter
    months = set()
    for name, col in (("claims", "service_date"), ("time_entries", "activity_date")):
        if data.has(name) and len(data[name]):
            d = data[name][col].dropna()
            months |= set(month_key(d).dropna().astype(int).unique().tolist())
    cols = ("period", "claim_lines_reviewed", "error_rate_count", "overpayment", "error_rate_dollars", "missed_revenue")
    rows = []
    first = period.first
    for back in range(quarters, -1, -1):
        start = first - 3 * back
        label = f"{start // 12}Q{start % 12 // 3 + 1}"
        p = parse_period(label)
        if back == 0 and current is not None:
            rows.append({**{k: current[k] for k in cols}, "source": "this report"})
            continue
        if back and not months & set(range(p.first, p.last + 1)):
            continue  # no claims or time in that quarter: nothing to show
        if back and recorded and label in recorded:
            rows.append({**{k: recorded[label].get(k) for k in cols}, "source": "ledger"})
            continue
        r = audit(data, period=p, **kw)
        if r.claim_lines.empty and back:
            continue
        rows.append({**{k: headline(r)[k] for k in cols}, "source": "audited for the trend"})
    return pd.DataFrame(rows, columns=[*cols, "source"])


def appendix(res: AuditResult) -> pd.DataFrame:
    """Findings per patient-month: rules, codes billed and supported, overpayment, missed revenue."""
    f = res.findings
    rules = f.groupby(["patient_id", "service_month"])["rule_id"].agg(lambda s: ", ".join(sorted(set(s)))).rename("rules")
    pm = res.patient_months.merge(rules.reset_index(), on=["patient_id", "service_month"], how="inner")
    return pm[["patient_id", "service_month", "qualifying_minutes", "codes_billed", "codes_supported", "rules", "overpayment", "missed_amount"]]


def minutes_band(minutes: pd.Series) -> pd.Series:
    return pd.cut(minutes, [-np.inf, 20, 40, 60, np.inf], right=False, labels=["<20", "20-39", "40-59", "60+"])
