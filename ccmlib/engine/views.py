"""Public views of an audit for the report and the workbench, so that they never read the engine's internals (the
facts' flag columns, month keys): every time entry with why it was excluded, and everything about one patient-month."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ccmlib.engine.facts import condition_lists
from ccmlib.engine.periods import key_to_label, parse_period
from ccmlib.engine.rules.registry import exclusion_reasons

#: why a time entry does not count, by the facts' exclusion flag: each time rule declares the flag it reports and its
#: words (``excludes=`` of its declaration)
EXCLUSION_REASONS = exclusion_reasons()
ENTRY_COLUMNS = ["entry_id", "patient_id", "service_month", "activity_date", "start_time", "staff_id", "role", "minutes", "qualifying",
                 "activity", "description", "excluded_because", "supervised"]


def _clock(minutes: pd.Series) -> pd.Series:
    m = minutes.astype("Float64")
    text = ((m // 60).astype("Int64").astype("string").str.zfill(2) + ":" + (m % 60).astype("Int64").astype("string").str.zfill(2))
    return text.astype(object).where(m.notna(), None)


def entries(facts) -> pd.DataFrame:
    """Every time entry of the period: who, when, minutes logged and counted, and why any were excluded."""
    e = facts.entries
    reasons = pd.Series("", index=e.index, dtype="object")
    for col, text in EXCLUSION_REASONS.items():
        reasons = reasons + np.where(e[col].to_numpy(dtype=bool), text + "; ", "")
    out = pd.DataFrame({"entry_id": e["entry_id"], "patient_id": e["patient_id"].astype("string"),
                        "service_month": key_to_label(e["mkey"].astype("int64")) if len(e) else pd.Series([], dtype="object"),
                        "activity_date": e["activity_date"], "start_time": _clock(e["start_time"]), "staff_id": e["staff_id"], "role": e["role"], "minutes": e["duration"],
                        "qualifying": e["qualifying"], "activity": e["activity"], "description": e["description"],
                        "excluded_because": reasons.str.rstrip("; "), "supervised": ~e["x_unsupervised"].astype(bool)})
    return out[ENTRY_COLUMNS].reset_index(drop=True)


def patient_month(res, patient_id: str, month: str) -> dict[str, pd.DataFrame]:
    """Conditions, consent, care plan in force, time log with exclusion reasons, claim lines and findings of one
    patient-month (``month`` as ``YYYY-MM``)."""
    f = res.facts
    mkey = parse_period(month).first
    pm = f.pm[(f.pm["patient_id"] == patient_id) & (f.pm["mkey"] == mkey)]
    e = entries(f)
    e = e[(e["patient_id"] == patient_id) & (e["service_month"] == month)].sort_values(["activity_date", "start_time"])
    time_log = pd.DataFrame({"entry_id": e["entry_id"], "date": e["activity_date"].dt.strftime("%Y-%m-%d"), "staff": e["staff_id"],
                             "role": e["role"], "minutes": e["minutes"], "qualifying": e["qualifying"], "activity": e["activity"],
                             "description": e["description"], "excluded_because": e["excluded_because"]})
    dx = f.diagnoses[f.diagnoses["patient_id"] == patient_id][["icd10_code", "onset_date", "resolved_date", "valid"]]
    consent = f.consents[f.consents["patient_id"] == patient_id].drop(columns=["_line"], errors="ignore")
    plan = pm[[c for c in pm.columns if c.startswith("plan_")]].T.reset_index()
    plan.columns = ["field", "value"] if len(plan.columns) == 2 else plan.columns
    lines = res.claim_lines[(res.claim_lines["patient_id"] == patient_id) & (res.claim_lines["service_month"] == month)]
    findings = res.findings[(res.findings["patient_id"] == patient_id) & (res.findings["service_month"] == month)]
    summary = pm[["qualifying_minutes", "practitioner_minutes", "chronic_conditions"]].assign(
        conditions=condition_lists(f, pm)).reset_index(drop=True)
    return {"summary": summary, "diagnoses": dx.reset_index(drop=True), "consent": consent.reset_index(drop=True), "care_plan": plan,
            "time_log": time_log.reset_index(drop=True), "claim_lines": lines.reset_index(drop=True), "findings": findings.reset_index(drop=True)}
