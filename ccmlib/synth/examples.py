"""Small synthetic charts: the clean seed-article example and helpers to change it.

Used by the pitfalls training notebook and by the tests; a chart is a dict of table name -> list of
row dicts (strings, as an export would have them).
"""
from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd

from ccmlib.intake.schema import CARE_PLAN_ELEMENTS, TABLES

NPI = "1234567893"
OTHER_NPI = "1093817465"

BASE = {
    "patients": [{"patient_id": "P1", "first_name": "Philomena", "last_name": "Quackenbush", "birth_date": "1948-05-17",
                  "medicare_id": "1EG4TE5MK73"}],
    "diagnoses": [{"patient_id": "P1", "icd10_code": "E11.9"}, {"patient_id": "P1", "icd10_code": "I10"}],
    "consents": [{"patient_id": "P1", "consent_date": "2025-12-01", "method": "verbal", "practitioner_npi": NPI,
                  "informed_cost_sharing": "yes", "informed_one_practitioner": "yes", "informed_right_to_stop": "yes",
                  "informed_availability": "yes", "revoked_date": ""}],
    "care_plans": [{"patient_id": "P1", "plan_id": "CP1", "created_date": "2025-12-01", "reviewed_date": "", "electronic": "true",
                    "shared_with_patient_date": "2025-12-02", **{k: "true" for k in CARE_PLAN_ELEMENTS}}],
    "staff": [{"staff_id": "S1", "role": "rn", "supervising_npi": NPI}, {"staff_id": "S2", "role": "ma", "supervising_npi": NPI},
              {"staff_id": "D1", "role": "physician", "supervising_npi": ""}, {"staff_id": "X1", "role": "non_clinical", "supervising_npi": ""}],
    "time_entries": [
        {"entry_id": "E1", "patient_id": "P1", "staff_id": "S1", "activity_date": "2026-01-06", "minutes": "15", "start_time": "09:00",
         "end_time": "09:15", "activity": "medication_reconciliation", "description": "Reconciled meds after cardiology visit",
         "face_to_face": "false", "counted_toward": ""},
        {"entry_id": "E2", "patient_id": "P1", "staff_id": "S1", "activity_date": "2026-01-13", "minutes": "13", "start_time": "10:00",
         "end_time": "10:13", "activity": "care_coordination", "description": "Called pharmacy about refills",
         "face_to_face": "false", "counted_toward": ""},
    ],
    "claims": [{"claim_id": "C1", "line": "1", "patient_id": "P1", "billing_npi": NPI, "service_date": "2026-01-31",
                "cpt_code": "99490", "units": "1", "paid_amount": "66.13"}],
    "encounters": [{"patient_id": "P1", "encounter_date": "2025-11-20", "cpt_code": "99214", "practitioner_npi": NPI}],
}


def chart() -> dict:
    """A fresh copy of the clean seed chart: diabetes and hypertension, consent and electronic plan in order,
    28 documented minutes in January 2026, 99490 billed."""
    return copy.deepcopy(BASE)


def entry(eid, minutes, date="2026-01-20", start=None, end=None, staff="S1", patient="P1", **kw) -> dict:
    row = {"entry_id": eid, "patient_id": patient, "staff_id": staff, "activity_date": date,
           "minutes": "" if minutes is None else str(minutes), "start_time": start or "", "end_time": end or "",
           "activity": "care_coordination", "description": "Coordinated home health", "face_to_face": "false", "counted_toward": ""}
    row.update(kw)
    return row


def claim(cid, code, units=1, date="2026-01-31", npi=NPI, patient="P1", paid=None, line=1) -> dict:
    return {"claim_id": cid, "line": str(line), "patient_id": patient, "billing_npi": npi, "service_date": date, "cpt_code": code,
            "units": str(units), "paid_amount": "" if paid is None else str(paid)}


def write(tables: dict, folder: Path) -> Path:
    """Write a chart as a practice folder (a table set to None is left out)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        if rows is None:
            continue
        df = pd.DataFrame(rows) if rows else pd.DataFrame(columns=TABLES[name].columns)  # an empty table keeps its header
        df.to_csv(folder / f"{name}.csv", index=False)
    return folder


def practice(tables: dict):
    """A chart as a loaded :class:`~ccmlib.load.Practice`, in memory (no files): each table typed and validated as
    loading would, with line numbers as in a CSV. For rule tests and the training notebook."""
    from ccmlib.intake.load import Practice, sort_quality
    from ccmlib.intake.validate import empty_quality, validate_table

    typed, dq, inputs = {}, [], []
    for name, rows in tables.items():
        if rows is None:
            continue
        raw = pd.DataFrame(rows, dtype=object) if rows else pd.DataFrame(columns=TABLES[name].columns, dtype=object)
        raw = raw.fillna("").astype(str).assign(_line=range(2, len(raw) + 2))
        accepted, q = validate_table(TABLES[name], raw, f"{name}.csv")
        typed[name] = accepted
        dq.append(q)
        inputs.append({"table": name, "file": f"{name}.csv", "path": "", "sha256": "", "rows_read": len(raw),
                       "rows_accepted": len(accepted), "rows_rejected": len(raw) - len(accepted)})
    dq = [d for d in dq if len(d)]
    return Practice(Path("(in memory)"), typed, sort_quality(pd.concat(dq, ignore_index=True) if dq else empty_quality()), inputs)


def facts(tables: dict, period: str = "2026-01"):
    """:class:`~ccmlib.facts.Facts` of a chart for one period, in memory: what every rule function takes."""
    from ccmlib.reference import data as refdata
    from ccmlib.engine.facts import build_facts
    from ccmlib.engine.periods import parse_period

    return build_facts(practice(tables), parse_period(period), refdata.condition_map())
