"""Care plan (CP-01..06): the plan in force is the latest version created on or before the month's end."""
from __future__ import annotations

import pandas as pd

from ccmlib.engine.facts import Facts
from ccmlib.intake.schema import CARE_PLAN_CORE, CARE_PLAN_OTHER
from ccmlib.engine.rules.registry import not_documented, raw, rule

CP = "CMS MLN909188 (comprehensive care plan, electronic, copy to patient); CMS CY2015 PFS final rule"


def _has_plan(f: Facts) -> pd.DataFrame:
    return f.pm[f.pm["plan_id"].notna()]


@rule("CP-01", "No care plan in force", "error", "no_documentation", CP, ("care_plans",))
def cp_01(f: Facts) -> pd.DataFrame:
    pm = f.pm[f.pm["plan_id"].isna()]
    return raw(pm, "pm", "no care plan created on or before " + pm["month_end"].dt.strftime("%Y-%m-%d"))


def _lacks(f: Facts, elements) -> pd.DataFrame:
    pm = _has_plan(f)
    lack = not_documented(pm, "plan_", elements)
    pm, lack = pm[lack != ""], lack[lack != ""]
    return raw(pm, "pm", "care plan " + pm["plan_id"].astype(str) + " lacks: " + lack)


@rule("CP-02", "Care plan lacks a core element", "error", "insufficient_documentation", CP, ("care_plans",))
def cp_02(f: Facts) -> pd.DataFrame:
    return _lacks(f, CARE_PLAN_CORE)


@rule("CP-03", "Care plan lacks another expected element", "warning", "insufficient_documentation", CP, ("care_plans",))
def cp_03(f: Facts) -> pd.DataFrame:
    return _lacks(f, CARE_PLAN_OTHER)


@rule("CP-04", "Care plan not electronic and shareable", "error", "insufficient_documentation", CP, ("care_plans",))
def cp_04(f: Facts) -> pd.DataFrame:
    pm = _has_plan(f)
    pm = pm[~pm["plan_electronic"].fillna(False).astype(bool)]
    return raw(pm, "pm", "care plan " + pm["plan_id"].astype(str) + " is not kept electronically and shareable with the care team")


@rule("CP-05", "No copy of the care plan given to the patient", "error", "insufficient_documentation",
      CP + "; CERT CCM insufficient-documentation reasons", ("care_plans",))
def cp_05(f: Facts) -> pd.DataFrame:
    """Judged on the plan version in force for the month."""
    pm = _has_plan(f)
    pm = pm[pm["plan_shared_with_patient_date"].isna() | (pm["plan_shared_with_patient_date"] > pm["month_end"])]
    return raw(pm, "pm", "no record that care plan " + pm["plan_id"].astype(str) + " was given to the patient by "
               + pm["month_end"].dt.strftime("%Y-%m-%d"))


@rule("CP-06", "Care plan neither created nor reviewed in the last 12 months", "warning", "insufficient_documentation", CP, ("care_plans",))
def cp_06(f: Facts) -> pd.DataFrame:
    pm = _has_plan(f)
    reviewed = pm["plan_reviewed_date"].where(pm["plan_reviewed_date"] <= pm["month_end"])
    touched = pd.concat([pm["plan_created_date"], reviewed], axis=1).max(axis=1)
    stale = touched < (pm["month_end"] - pd.DateOffset(months=12))
    pm, touched = pm[stale], touched[stale]
    return raw(pm, "pm", "care plan " + pm["plan_id"].astype(str) + " last created or reviewed on " + touched.dt.strftime("%Y-%m-%d"))
