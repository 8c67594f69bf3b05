"""Consent (CONS-01..04, CONS-06; CONS-05 is a time exclusion in rules.time)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ccmlib.engine.facts import Facts
from ccmlib.intake.schema import CONSENT_REQUIRED
from ccmlib.engine.rules.registry import not_documented, raw, rule

MLN = "CMS MLN909188 CCM booklet; CMS CY2015 and CY2017 PFS final rules (consent); MAC CCM checklists"


def _judged(f: Facts) -> pd.DataFrame:
    """The consent status rows: one per (patient-month, billing NPI) billed, one per unbilled month (NPI <NA>,
    scope pm: such findings only block REV-01, they are not reported)."""
    return f.consent_status


def _raw(st: pd.DataFrame, message) -> pd.DataFrame:
    """The findings of the consent status rows ``st``; ``message()`` gives their messages (not called when ``st`` has
    no rows: most charts)."""
    message = message() if len(st) else ""
    parts = []
    unbilled = st["billing_npi"].isna().to_numpy()
    for scope in ("npi", "pm"):
        sel = unbilled if scope == "pm" else ~unbilled
        parts.append(raw(st[sel], scope, message[sel] if isinstance(message, pd.Series) else message,
                         **({"billing_npi": st.loc[sel, "billing_npi"]} if scope == "npi" else {})))
    return pd.concat(parts, ignore_index=True)


def _for(st: pd.DataFrame) -> pd.Series:
    return pd.Series(np.where(st["billing_npi"].isna(), "", " for NPI " + st["billing_npi"].astype(str)), index=st.index)


@rule("CONS-01", "No consent documented before the service", "error", "no_documentation", MLN, ("consents",),
      meaning="No consent was documented before the service.",
      fix="Obtain and document consent before the first CCM activity; verify it before billing.")
def cons_01(f: Facts) -> pd.DataFrame:
    """No consent of any practitioner dated on or before the reference date (the later of the month's last time entry
    and the practitioner's last CCM claim of the month; the month's end when nothing was billed)."""
    st = _judged(f)
    st = st[st["consents_before"] == 0]
    return _raw(st, lambda: "no consent dated on or before " + st["ref_date"].dt.strftime("%Y-%m-%d").fillna("the service"))


@rule("CONS-02", "Consent lacks the required disclosures", "error", "insufficient_documentation", MLN, ("consents",),
      meaning="The consent in force for the billing practitioner does not show the patient was told of cost sharing, "
              "the one-practitioner limit and the right to stop.",
      fix="Use a consent template with all required disclosures as separate checkboxes.")
def cons_02(f: Facts) -> pd.DataFrame:
    """Judges only the consent in force for the billing practitioner (an older complete one never rescues it)."""
    st = _judged(f)
    st = st[st["consent_date"].notna() & ~st["revoked_ended"]]
    missing = not_documented(st, "", CONSENT_REQUIRED, drop="informed_")
    st, missing = st[missing != ""], missing[missing != ""]
    return _raw(st, lambda: "consent of " + st["consent_date"].dt.strftime("%Y-%m-%d") + _for(st) + " does not document: "
                + missing)


@rule("CONS-03", "Consent revoked before the month", "error", "no_documentation", MLN, ("consents",),
      meaning="The consent in force was revoked; later months are not covered until a new consent.",
      fix="Stop CCM billing after the month of revocation; flag revoked patients in the billing system.")
def cons_03(f: Facts) -> pd.DataFrame:
    """The consent in force was revoked in an earlier month (the revocation month itself is still covered), even when
    an older consent was never revoked; a later consent covering the practitioner becomes the one in force."""
    st = _judged(f)
    st = st[st["consent_date"].notna() & st["revoked_ended"]]
    return _raw(st, lambda: "consent of " + st["consent_date"].dt.strftime("%Y-%m-%d") + _for(st) + " was revoked on "
                + st["revoked_date"].dt.strftime("%Y-%m-%d") + "; month not covered")


@rule("CONS-04", "Consent given for a different billing practitioner", "error", "no_documentation", MLN, ("consents", "claims"),
      meaning="The consent names a different billing practitioner.",
      fix="Obtain a new consent when the billing practitioner changes.")
def cons_04(f: Facts) -> pd.DataFrame:
    """Consents are on file by the reference date but none covers the billing practitioner (blank practitioner_npi
    or theirs): a change of billing practitioner needs a new consent."""
    st = _judged(f)
    st = st[(st["consents_before"] > 0) & (st["covering_before"] == 0) & st["billing_npi"].notna()]
    return _raw(st, lambda: "billing NPI " + st["billing_npi"].astype(str) + " is not the practitioner named in the consent ("
                + st["other_npis"] + ")")


@rule("CONS-06", "Consent does not document that CCM is available", "warning", "insufficient_documentation",
      "MAC CCM checklists (Noridian, NGS)", ("consents",),
      meaning="The consent does not show the patient was told CCM is available.",
      fix="Add the availability statement to the consent template.")
def cons_06(f: Facts) -> pd.DataFrame:
    st = _judged(f)
    st = st[st["consent_date"].notna() & ~st["revoked_ended"] & ~st["informed_availability"].fillna(False).astype(bool)]
    return _raw(st, lambda: "consent of " + st["consent_date"].dt.strftime("%Y-%m-%d") + _for(st)
                + " does not document that CCM was offered as available")
