"""Care plan (CP-01..06): the plan in force is the latest version created on or before the month's end."""
from __future__ import annotations

import pandas as pd

from ccmlib.engine.facts import Facts, per_patient_month
from ccmlib.intake.schema import CARE_PLAN_CORE, CARE_PLAN_OTHER
from ccmlib.engine.rules.registry import not_documented, raw, rule

CP = "CMS MLN909188 (comprehensive care plan, electronic, copy to patient); CMS CY2015 PFS final rule"


def _has_plan(f: Facts, *cols: str) -> pd.DataFrame:
    """The patient-months with a plan in force; with ``cols``, only the keys, plan_id and those columns (a rule's
    findings read no others)."""
    has = f.pm["plan_id"].notna().to_numpy()
    return f.pm.loc[has, ["patient_id", "mkey", "plan_id", *cols]] if cols else f.pm[has]


@rule("CP-01", "No care plan in force", "error", "no_documentation", CP, ("care_plans",),
      meaning="No care plan was in force for the month.",
      fix="Create the comprehensive care plan at enrollment.")
def cp_01(f: Facts) -> pd.DataFrame:
    pm = f.pm.loc[f.pm["plan_id"].isna().to_numpy(), ["patient_id", "mkey", "month_end"]]
    return raw(pm, "pm", lambda: "no care plan created on or before " + pm["month_end"].dt.strftime("%Y-%m-%d"))


def _lacks(f: Facts, elements) -> pd.DataFrame:
    pm = _has_plan(f, *("plan_" + e for e in elements))
    lack = not_documented(pm, "plan_", elements)
    pm, lack = pm[lack != ""], lack[lack != ""]
    return raw(pm, "pm", lambda: "care plan " + pm["plan_id"].astype(str) + " lacks: " + lack)


@rule("CP-02", "Care plan lacks a core element", "error", "insufficient_documentation", CP, ("care_plans",),
      meaning="The care plan lacks a core element (problem list, measurable goals, interventions, responsible "
              "individuals).",
      fix="Use a care-plan template that requires every core element.")
def cp_02(f: Facts) -> pd.DataFrame:
    return _lacks(f, CARE_PLAN_CORE)


@rule("CP-03", "Care plan lacks another expected element", "warning", "insufficient_documentation", CP, ("care_plans",),
      meaning="The care plan lacks another expected element.",
      fix="Complete every expected care-plan element.")
def cp_03(f: Facts) -> pd.DataFrame:
    return _lacks(f, CARE_PLAN_OTHER)


@rule("CP-04", "Care plan not electronic and shareable", "error", "insufficient_documentation", CP, ("care_plans",),
      meaning="The care plan is not kept electronically and shareable with the care team.",
      fix="Keep the care plan in the certified EHR, shareable with the care team.")
def cp_04(f: Facts) -> pd.DataFrame:
    pm = _has_plan(f, "plan_electronic")
    pm = pm[~pm["plan_electronic"].fillna(False).astype(bool)]
    return raw(pm, "pm", lambda: "care plan " + pm["plan_id"].astype(str) + " is not kept electronically and shareable with the care team")


@rule("CP-05", "No copy of the care plan given to the patient", "error", "insufficient_documentation",
      CP + "; CERT CCM insufficient-documentation reasons", ("care_plans",),
      meaning="No record that the patient received a copy of the care plan.",
      fix="Give the patient a copy of the care plan and document the date.")
def cp_05(f: Facts) -> pd.DataFrame:
    """Judged on the plan version in force for the month."""
    pm = _has_plan(f, "plan_shared_with_patient_date", "month_end")
    pm = pm[pm["plan_shared_with_patient_date"].isna() | (pm["plan_shared_with_patient_date"] > pm["month_end"])]
    return raw(pm, "pm", lambda: "no record that care plan " + pm["plan_id"].astype(str) + " was given to the patient by "
               + pm["month_end"].dt.strftime("%Y-%m-%d"))


@rule("CP-06", "Care plan neither created nor reviewed in the last 12 months", "warning", "insufficient_documentation", CP, ("care_plans",),
      meaning="The care plan was not created or reviewed in the last 12 months.",
      fix="Review care plans at least yearly.")
def cp_06(f: Facts) -> pd.DataFrame:
    pm = _has_plan(f, "plan_reviewed_date", "plan_created_date", "month_end")
    reviewed = pm["plan_reviewed_date"].where(pm["plan_reviewed_date"] <= pm["month_end"])
    touched = pd.concat([pm["plan_created_date"], reviewed], axis=1).max(axis=1)
    stale = touched < (pm["month_end"] - pd.DateOffset(months=12))
    pm, touched = pm[stale], touched[stale]
    return raw(pm, "pm", lambda: "care plan " + pm["plan_id"].astype(str) + " last created or reviewed on " + touched.dt.strftime("%Y-%m-%d"))


PIM_SIG = "CMS Program Integrity Manual ch. 3, 3.3.2.4 (signatures; attestation)"


def _signatures_given(f: Facts) -> bool:
    return "plan_signed_by" in f.pm.columns and bool(f.plans["signed_by"].notna().any()) if "signed_by" in f.plans.columns else False


@rule("DOC-01", "Care plan in force is not signed", "error", "insufficient_documentation", PIM_SIG, ("care_plans",),
      meaning="The care plan in force is not signed (or only stamped) and its author did not attest it.",
      fix="Have the author sign the care plan (electronically or by hand), or attest an unsigned one.")
def doc_01(f: Facts) -> pd.DataFrame:
    """The care plan in force has no signature (signed_by blank, or a stamp) and no attestation: every time-based CCM line
    of the month is unsupported. Runs only when the plans carry signed_by."""
    if not _signatures_given(f):
        return raw(f.pm.iloc[:0], "pm", "")
    pm = _has_plan(f, "plan_signed_by", "plan_signature_method", "plan_attested_date")
    unsigned = pm["plan_signed_by"].isna() | (pm["plan_signature_method"] == "stamp")
    pm = pm[unsigned.fillna(True) & pm["plan_attested_date"].isna()]
    why = (pm["plan_signature_method"] == "stamp").map({True: "a stamped signature (not accepted)", False: "no signature"})
    return raw(pm, "pm", lambda: "care plan " + pm["plan_id"].astype(str) + " has " + why + " and no attestation")


@rule("DOC-02", "Time entry or care plan signed late or not at all", "warning", "insufficient_documentation", PIM_SIG,
      ("care_plans", "time_entries"),
      meaning="A counted time entry has no author signature, or the care plan was signed after the claim without an "
              "attestation.",
      fix="Sign time notes when they are written; sign the care plan before billing.")
def doc_02(f: Facts) -> pd.DataFrame:
    """A counted time entry without its author's signature (when time_entries carry signed_by), or a care plan signed
    after the month's first CCM claim without an attestation (when the plans carry signed_date)."""
    out = []
    if "signed_by" in f.store.columns and f.store.any("signed_by IS NOT NULL"):
        bad = f.entry_rows("coalesce(qualifying, 0) > 0 AND signed_by IS NULL", columns=["patient_id", "mkey", "entry_id"])
        out.append(raw(bad, "entry", lambda: "time entry " + bad["entry_id"].astype(str) + " has no author signature"))
    if "plan_signed_date" in f.pm.columns and f.pm["plan_signed_date"].notna().any():
        first_claim = per_patient_month(f.lines, "service_date", "min", "first_claim")
        pm = _has_plan(f, "plan_signed_date", "plan_attested_date").merge(first_claim, on=["patient_id", "mkey"])
        late = pm[(pm["plan_signed_date"] > pm["first_claim"]) & pm["plan_attested_date"].isna()]
        out.append(raw(late, "pm", lambda: "care plan " + late["plan_id"].astype(str) + " signed on "
                       + late["plan_signed_date"].dt.strftime("%Y-%m-%d") + ", after the claim of " + late["first_claim"].dt.strftime("%Y-%m-%d")
                       + ", without an attestation"))
    return pd.concat(out, ignore_index=True) if out else raw(f.pm.iloc[:0], "pm", "")
