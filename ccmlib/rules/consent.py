"""Consent (CONS-01..04, CONS-06; CONS-05 is a time exclusion in rules.time)."""
from __future__ import annotations

import pandas as pd

from ..facts import PM, Facts
from ..schema import CONSENT_REQUIRED
from .registry import not_documented, raw, rule

MLN = "CMS MLN909188 CCM booklet; 42 CFR 410.26; MAC CCM checklists"


@rule("CONS-01", "No consent documented before the service", "error", "no_documentation", MLN, ("consents",))
def cons_01(f: Facts) -> pd.DataFrame:
    """Reference date: the later of the month's last time entry and its last CCM claim service date."""
    pm = f.pm[f.pm["consents_on_file"] == 0]
    return raw(pm, "pm", "no consent dated on or before " + pm["ref_date"].dt.strftime("%Y-%m-%d").fillna("the service"))


@rule("CONS-02", "Consent lacks the required disclosures", "error", "insufficient_documentation", MLN, ("consents",))
def cons_02(f: Facts) -> pd.DataFrame:
    pm = f.pm[f.pm["consent_date"].notna()]
    missing = not_documented(pm, "consent_", CONSENT_REQUIRED, drop="informed_")
    pm, missing = pm[missing != ""], missing[missing != ""]
    return raw(pm, "pm", "consent of " + pm["consent_date"].dt.strftime("%Y-%m-%d") + " does not document: " + missing)


@rule("CONS-03", "Consent revoked before the month", "error", "no_documentation", MLN, ("consents",))
def cons_03(f: Facts) -> pd.DataFrame:
    """Revocation ends CCM at the end of its calendar month; a later consent restores it."""
    pm = f.pm[(f.pm["consents_on_file"] > 0) & f.pm["consent_date"].isna()]
    last = f.cand_consents.sort_values("revoked_date").drop_duplicates(PM, keep="last")[PM + ["revoked_date"]]
    pm = pm.merge(last, on=PM, how="left")
    return raw(pm, "pm", "consent revoked on " + pm["revoked_date"].dt.strftime("%Y-%m-%d").fillna("?") + "; month not covered")


@rule("CONS-04", "Consent given for a different billing practitioner", "error", "no_documentation", MLN, ("consents", "claims"))
def cons_04(f: Facts) -> pd.DataFrame:
    """A practitioner is covered by any unrevoked consent on file for the month that names no NPI or theirs."""
    who = f.lines[PM + ["billing_npi"]].drop_duplicates()
    live = f.cand_consents[~f.cand_consents["revoked_before"]]
    if not len(who) or not len(live):
        return raw(who.iloc[:0], "npi", "")
    m = who.merge(live[PM + ["practitioner_npi"]], on=PM)
    ok = m["practitioner_npi"].isna() | (m["practitioner_npi"] == m["billing_npi"])
    covered = m[ok][PM + ["billing_npi"]].drop_duplicates()
    bad = who.merge(m[PM].drop_duplicates(), on=PM).merge(covered, on=PM + ["billing_npi"], how="left", indicator=True)
    bad = bad[bad["_merge"] == "left_only"]
    named = m.dropna(subset=["practitioner_npi"]).merge(bad[PM].drop_duplicates(), on=PM)  # only the months in question
    names = named.drop_duplicates(PM + ["practitioner_npi"]).sort_values("practitioner_npi").groupby(PM)["practitioner_npi"].agg(", ".join)
    bad = bad.merge(names.rename("consent_npis").reset_index(), on=PM, how="left")
    return raw(bad, "npi", "billing NPI " + bad["billing_npi"].astype(str) + " is not the practitioner named in the consent ("
               + bad["consent_npis"].fillna("") + ")")


@rule("CONS-06", "Consent does not document that CCM is available", "warning", "insufficient_documentation",
      "MAC CCM checklists (Noridian, NGS)", ("consents",))
def cons_06(f: Facts) -> pd.DataFrame:
    pm = f.pm[f.pm["consent_date"].notna() & ~f.pm["consent_informed_availability"].fillna(False).astype(bool)]
    return raw(pm, "pm", "consent of " + pm["consent_date"].dt.strftime("%Y-%m-%d") + " does not document that CCM was offered as available")
