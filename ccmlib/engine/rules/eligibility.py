"""Eligibility: two or more chronic conditions (ELIG-01), valid ICD-10-CM codes (ELIG-02)."""
from __future__ import annotations

import pandas as pd

from ccmlib.engine.facts import Facts, condition_lists
from ccmlib.engine.rules.registry import raw, rule


@rule("ELIG-01", "Fewer than two chronic conditions active in the month", "error", "medical_necessity",
      "CPT 99490 descriptor; CMS MLN909188 (two or more chronic conditions expected to last 12 months)", ("diagnoses",))
def elig_01(f: Facts) -> pd.DataFrame:
    """Counts distinct CCW categories (E11.9 + E11.65 = one: diabetes). A code in two categories
    (E11.22: diabetes and CKD) counts for both, as the CCW does."""
    pm = f.pm[f.pm["chronic_conditions"] < 2]
    found = condition_lists(f, pm).replace("", "none")
    msg = pm["chronic_conditions"].astype(str) + " chronic condition(s) active in the month (" + found + "); two are required"
    return raw(pm, "pm", msg)


@rule("ELIG-02", "Diagnosis code is not a valid ICD-10-CM code", "warning", "medical_necessity",
      "ICD-10-CM Official Guidelines; HIPAA code set 45 CFR 162.1002", ("diagnoses",))
def elig_02(f: Facts) -> pd.DataFrame:
    """One finding per invalid code and patient-month of that patient (the code is ignored)."""
    bad = f.diagnoses[~f.diagnoses["valid"]][["patient_id", "icd10_code"]].drop_duplicates()
    m = f.pm[["patient_id", "mkey"]].merge(bad, on="patient_id")
    return raw(m, "pm", "diagnosis code " + m["icd10_code"].astype(str) + " is not a valid ICD-10-CM code; ignored")
