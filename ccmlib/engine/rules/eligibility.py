"""Eligibility: two or more chronic conditions (ELIG-01), valid ICD-10-CM codes (ELIG-02), alive (ELIG-03), the claim's
own diagnoses (DX-01)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ccmlib.engine.facts import Facts, condition_lists
from ccmlib.engine.money import inner_pairs
from ccmlib.engine.rules.registry import raw, rule


@rule("ELIG-01", "Fewer than two chronic conditions active in the month", "error", "medical_necessity",
      "CPT 99490 descriptor; CMS MLN909188 (two or more chronic conditions expected to last 12 months)", ("diagnoses",),
      meaning="Fewer than two chronic conditions were active in the month.",
      fix="Confirm two qualifying chronic conditions on the problem list before enrolling.",
      takes_every_line=True)
def elig_01(f: Facts) -> pd.DataFrame:
    """Counts distinct CCW categories (E11.9 + E11.65 = one: diabetes). A code in two categories
    (E11.22: diabetes and CKD) counts for both, as the CCW does."""
    pm = f.pm.loc[(f.pm["chronic_conditions"] < 2).to_numpy(), ["patient_id", "mkey", "chronic_conditions"]]
    return raw(pm, "pm", lambda: pm["chronic_conditions"].astype(str) + " chronic condition(s) active in the month ("
               + condition_lists(f, pm).replace("", "none") + "); two are required")


@rule("ELIG-02", "Diagnosis code is not a valid ICD-10-CM code", "warning", "medical_necessity",
      "ICD-10-CM Official Guidelines; HIPAA code set 45 CFR 162.1002", ("diagnoses",),
      meaning="A diagnosis code is not a valid ICD-10-CM code and was ignored.",
      fix="Correct invalid codes on the problem list.")
def elig_02(f: Facts) -> pd.DataFrame:
    """One finding per invalid code and patient-month of that patient (the code is ignored)."""
    bad = f.diagnoses[~f.diagnoses["valid"]][["patient_id", "icd10_code"]].drop_duplicates()
    m = f.pm[["patient_id", "mkey"]].merge(bad, on="patient_id")
    return raw(m, "pm", lambda: "diagnosis code " + m["icd10_code"].astype(str) + " is not a valid ICD-10-CM code; ignored")


@rule("ELIG-03", "CCM billed for a month that began after the patient's death", "error", "other",
      "CMS MLN909188 (CCM is furnished to a living beneficiary in the month)", ("patients",),
      meaning="CCM was billed for a month that began after the patient died.",
      fix="Stop CCM billing at the patient's death; void the claims.",
      takes_every_line=True)
def elig_03(f: Facts) -> pd.DataFrame:
    """Every CCM line of a month that begins after patients.death_date is unsupported; the month of death is not."""
    pat = f.patients
    if pat is None or "death_date" not in pat.columns or not pat["death_date"].notna().any():
        return raw(f.pm.iloc[:0], "pm", "")
    m = f.pm[["patient_id", "mkey", "month_start"]].merge(pat[["patient_id", "death_date"]].dropna(), on="patient_id")
    m = m[m["month_start"] > m["death_date"]]
    return raw(m, "pm", lambda: "the month begins after the patient's death on " + m["death_date"].dt.strftime("%Y-%m-%d"))


#: what Python's ``\s`` matches among ASCII characters (Arrow's regex ``\s`` leaves out \x0b and \x1c-\x1f)
_ASCII_SPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f "


def _split_codes(lists: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The codes of each diagnosis list (upper case, no dots, split at commas and white space; empty ones dropped):
    (the list's position, the code) per code. Arrow's kernels when every list is ASCII, where they do exactly what
    Python's ``str.upper`` and ``re`` do; Python's otherwise."""
    arr = pa.array(lists.to_numpy(dtype=object), type=pa.string())
    if len(arr) and pc.all(pc.string_is_ascii(arr)).as_py():
        text = pc.replace_substring(pc.ascii_upper(arr), ".", "")
        parts = pc.split_pattern(pc.replace_substring_regex(text, f"[,{_ASCII_SPACE}]+", ";"), ";")
        at = pc.list_parent_indices(parts).to_numpy().astype(np.int64)
        each = pc.list_flatten(parts).to_numpy(zero_copy_only=False).astype(object)
    else:
        split = lists.str.upper().str.replace(".", "", regex=False).str.replace(r"[,\s]+", ";", regex=True).str.split(";").explode()
        at, each = split.index.to_numpy(dtype=np.int64), split.to_numpy(dtype=object)
    keep = each != ""
    return at[keep], each[keep]


@rule("DX-01", "The CCM claim lists fewer than two chronic conditions", "warning", "insufficient_documentation",
      "OIG A-07-17-05101 (claims matched, not charts); CPT 99490 descriptor (two or more chronic conditions)", ("claims",),
      meaning="The CCM claim lists fewer than two chronic conditions among its own diagnosis codes.",
      fix="Put at least two of the patient's chronic conditions on every CCM claim.")
def dx_01(f: Facts) -> pd.DataFrame:
    """A time-based CCM line whose own diagnosis codes (claims.diagnosis_codes) map to fewer than two chronic-condition
    categories: the claim does not show the eligibility the chart may show. Runs only when the column is supplied."""
    from ccmlib.reference import data as refdata
    from ccmlib.reference.codes import TIMED_CODES

    ln = f.lines
    if "diagnosis_codes" not in ln.columns or not ln["diagnosis_codes"].notna().any():
        return raw(ln.iloc[:0], "line", "")
    ln = ln.loc[ln["cpt_code"].isin(TIMED_CODES).to_numpy(dtype=bool, na_value=False),
                ["patient_id", "mkey", "billing_npi", "claim_id", "line", "cpt_code", "units", "diagnosis_codes"]]  # what the findings read
    # counted once per distinct diagnosis_codes text (a patient's claims repeat theirs), then spread to the lines
    which, lists = pd.factorize(ln["diagnosis_codes"], use_na_sentinel=False)
    at, each = _split_codes(pd.Series(lists).fillna("").astype(str))
    # the distinct (list, category) pairs, counted per list, on the codes' and categories' numbers
    code, uniq = pd.factorize(each)
    cats = refdata.map_conditions(pd.Series(uniq, dtype=object), f.condition_map)
    cat = pd.factorize(cats["category"])[0]
    li, ri = inner_pairs(code, pd.Index(uniq).get_indexer(cats["code"].to_numpy(dtype=object)))
    pair = np.unique(at[li] * (int(cat.max(initial=0)) + 1) + cat[ri])
    n = np.bincount(pair // (int(cat.max(initial=0)) + 1), minlength=len(lists)).astype(int)
    count = pd.Series(n[which], index=ln.index)
    bad = ln[count < 2]
    return raw(bad, "line", lambda: "the claim line lists " + count[count < 2].astype(str) + " chronic-condition categor"
               + np.where(count[count < 2] == 1, "y", "ies") + " among its diagnosis codes (" + bad["diagnosis_codes"].fillna("none").astype(str)
               + "); CCM needs two", units_removed=0)
