"""Opportunities (REV-01): a second-phase rule, run after the money of the first phase is settled, because a
month with a standing error has no missed revenue to report."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ccmlib.engine.facts import PM, Facts, initiating_visit_status
from ccmlib.engine.money import codes_label, key_codes, potential_units
from ccmlib.engine.rules.registry import raw, rule, minutes_text
from ccmlib.reference import data as refdata
from ccmlib.reference.codes import minutes_needed, time_family


@rule("REV-01", "Qualifying minutes support codes or units that were not billed", "info", "other",
      "CPT 99490/99439 descriptors; CMS MLN909188", ("time_entries", "claims"), phase=2,
      meaning="Documented qualifying minutes support codes or units that were not billed.",
      fix="Review time totals at month end and bill what the documentation supports.",
      fixed_severity=True)
def rev_01(f: Facts, standing: pd.DataFrame, fees: pd.DataFrame) -> pd.DataFrame:
    """``standing``: the first phase's findings minus overturned ones. Priced on the date the missed threshold was
    reached; ``amount`` is the missed value (an ``info`` finding takes nothing away)."""
    m = missed_revenue(f, standing, f.lines, fees)
    r = m[m["missed_amount"] > 0]
    msg = (minutes_text(r["minutes"]) + " qualifying minutes support " + r["supported_label"] + "; billed "
           + r["billed_label"].replace("", "nothing") + "; not billed: " + r["missed_label"])
    return raw(r, "pm", msg).assign(amount=r["missed_amount"].to_numpy())


def missed_revenue(facts: Facts, raw: pd.DataFrame, lines: pd.DataFrame, fees: pd.DataFrame) -> pd.DataFrame:
    """Per patient-month: the units its minutes support that were not billed, and their value; zero where an error
    stands (billed or not), no initiating visit was found, or the month is an RHC/FQHC month."""
    pm = facts.pm
    blocked = raw.loc[(raw["severity"] == "error").to_numpy(dtype=bool, na_value=False), PM]
    iv = initiating_visit_status(facts, pm[PM].assign(billing_npi=pd.Series(pd.NA, index=pm.index, dtype="string")))
    no_visit = iv.loc[~iv["visit_found"], PM]
    pot, billed = potential_units(pm, lines[PM + ["cpt_code", "units"]])
    missed = (pot.drop(columns=PM) - billed.drop(columns=PM)).clip(lower=0)
    ok = ~_among(pm, blocked) & ~_among(pm, no_visit)
    if "encounters" in facts.missing:
        ok &= False  # cannot tell whether an initiating visit happened
    ok &= ~_among(pm, lines.loc[(lines["cpt_code"] == "G0511").to_numpy(dtype=bool, na_value=False), PM])  # an RHC/FQHC month: no PFS codes to propose
    missed = missed.mul(ok.astype(int), axis=0)
    amount = pd.Series(0.0, index=pm.index)
    for c in missed.columns:
        u = missed[c]
        sel = (u > 0).to_numpy()
        if sel.any():  # priced where units were missed (a row without adds nothing): fee_for looks up each row alone
            when = _threshold_date(pm, c, pot[c])[sel]
            fee = refdata.fee_for(pd.Series(c, index=pm.index[sel]), when, fees)["amount"].fillna(0)
            amount[sel] += u[sel] * fee
    res = pm[PM].assign(missed_label=codes_label(missed), supported_label=codes_label(pot.drop(columns=PM)),
                        billed_label=codes_label(billed.drop(columns=PM)), missed_amount=amount.round(2),
                        minutes=pm["qualifying_minutes"])
    return res


def _among(pm: pd.DataFrame, keys: pd.DataFrame) -> np.ndarray:
    """Per row of ``pm``: its (patient_id, mkey) is among the rows of ``keys`` (on integer keys; a missing key matches
    a missing key, as a merge does)."""
    pk, kk = key_codes(pm["patient_id"], keys["patient_id"])  # -1 missing, -2 a patient the other side lacks
    mp, mk = (d["mkey"].to_numpy(dtype="float64", na_value=np.nan) for d in (pm, keys))
    known = np.concatenate([mp, mk])
    known = known[~np.isnan(known)]
    lo, width = (known.min(), known.max() - known.min() + 2) if len(known) else (0.0, 2.0)

    def number(patient, month):  # (patient, month) as one integer; a missing month has the last slot of the band
        return (patient + 2) * int(width) + np.where(np.isnan(month), width - 1, month - lo).astype(np.int64)

    return np.isin(number(pk, mp), number(kk, mk))


def _threshold_date(pm: pd.DataFrame, code: str, units: pd.Series) -> pd.Series:
    """Date on which the minutes supporting ``units`` of ``code`` were reached (REV-01 is priced on it); the month's
    start when the minutes never got there."""
    base, step = minutes_needed(code, 0), minutes_needed(code, 1) - minutes_needed(code, 0)
    col = "date_{}min_practitioner" if time_family(code) == "practitioner" else "date_{}min"
    need = base + step * units.clip(lower=1 if step else 0)
    out = pm["month_start"].copy()
    for t in sorted(need.unique()):
        name = col.format(int(t))
        if name not in pm.columns:  # beyond the thresholds tracked: the latest tracked one
            have = [c for c in pm.columns if c.startswith("date_") and c.endswith(col.format("X").split("X")[1])
                    and c[5:].split("min")[0].isdigit()]
            name = max(have, key=lambda c: int(c[5:].split("min")[0]))
        sel = need == t
        out[sel] = pm.loc[sel, name].fillna(pm.loc[sel, "month_start"])
    return out


