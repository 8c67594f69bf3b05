"""Initiating visit (IV-01) and billing rules (BILL-01..08)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ccmlib.reference import data as refdata
from ccmlib.reference.codes import (ADDON_OF, BASE_CODES, G0506_HOSTS, G0511,
                     TIMED_CODES, minutes_needed, time_family)
from ccmlib.engine.facts import PM, Facts, natural_key, practitioner_visit_status, threshold_dates
from ccmlib.engine.rules.registry import raw, rule

ORDER = ["patient_id", "mkey", "service_date", "_claim_order", "line"]
TIMED = TIMED_CODES


def in_order(ln: pd.DataFrame, by=("patient_id", "mkey", "service_date")) -> pd.DataFrame:
    """Lines in "first" order: ``by``, then claim_id in natural order (claim 9 before claim 10), then line."""
    if "_claim_order" in ln:  # computed once for all claims by build_facts
        return ln.sort_values([*by, "_claim_order", "line"], kind="mergesort")
    ln = ln.assign(_claim_order=natural_key(ln["claim_id"]))
    return ln.sort_values([*by, "_claim_order", "line"], kind="mergesort").drop(columns="_claim_order")


def _timed_lines(f: Facts) -> pd.DataFrame:
    return in_order(f.lines[f.lines["cpt_code"].isin(TIMED)])


@rule("IV-01", "No initiating visit before CCM began", "error", "no_documentation",
      "CMS CY2015 PFS final rule (CCM begins with a face-to-face initiating visit); CMS CY2017 PFS final rule (required "
      "for new patients and those not seen within a year); CMS MLN909188 CCM booklet", ("encounters", "claims"),
      meaning="No initiating face-to-face visit by the billing practitioner in the year before CCM began.",
      fix="Schedule an initiating visit (E/M, AWV, IPPE or TCM) before starting CCM.")
def iv_01(f: Facts) -> pd.DataFrame:
    """Per patient-month and billing practitioner (catalog v3): no qualifying visit (reference/initiating_visits.csv;
    on the encounters table or on a claim line billed by the practitioner) from the same calendar date one year before
    commencement up to and including it. Commencement restarts after a span boundary, the end of the month in which
    a consent covering the practitioner was revoked (see :func:`~ccmlib.engine.facts.commencement_dates`). Not raised
    where the visit history (one start for the whole data, declared or the earliest date) begins after the window
    begins: a data-quality note, counted in run.json. An encounters table without rows, with no visit claims and no
    declared start, is evidence of no visit."""
    st = practitioner_visit_status(f)
    m = st[~st["visit_found"] & st["covered"]]
    when = m["commencement"].dt.strftime("%Y-%m-%d").fillna("(no consent or claim)")
    since = m["window_start"].dt.strftime("%Y-%m-%d").fillna("?")
    return raw(m, "npi", "no qualifying visit by " + m["billing_npi"].astype(str) + " from " + since + " to CCM commencement on "
               + when + " (encounters and visit claims)", billing_npi=m["billing_npi"])


@rule("BILL-01", "More than one practitioner billed CCM for the patient-month", "error", "other",
      "CMS MLN909188 (only one practitioner may bill CCM per month)", ("claims",),
      meaning="More than one practitioner billed CCM for the same patient and month.",
      fix="Coordinate with other practices; only one practitioner may bill CCM a month.")
def bill_01(f: Facts) -> pd.DataFrame:
    """The first practitioner (earliest service date, then claim_id, line) keeps the month."""
    ln = _timed_lines(f)
    first = ln.drop_duplicates(PM)[PM + ["billing_npi"]].rename(columns={"billing_npi": "first_npi"})
    ln = ln.merge(first, on=PM)
    ln = ln[ln["billing_npi"] != ln["first_npi"]]
    return raw(ln, "line", "CCM for this month was first billed by " + ln["first_npi"].astype(str) + "; "
               + ln["billing_npi"].astype(str) + " cannot also bill it")


@rule("BILL-02", "Base CCM code billed more than once in the month", "error", "incorrect_coding",
      "CPT descriptors: 99490, 99487, 99491 are reported once per calendar month", ("claims",),
      meaning="A base CCM code was billed more than once in the month.",
      fix="Bill the base code once per calendar month.")
def bill_02(f: Facts) -> pd.DataFrame:
    ln = _timed_lines(f)
    ln = ln[ln["cpt_code"].isin(BASE_CODES) & (ln["cpt_code"] != G0511)]  # v3: G0511 may be billed more than once (2024-)
    before = ln.groupby(PM + ["billing_npi", "cpt_code"])["units"].cumsum() - ln["units"]
    removed = (ln["units"] - (1 - before).clip(lower=0)).clip(lower=0).astype("int64")
    bad = removed > 0
    return raw(ln[bad], "line", ln["cpt_code"][bad] + " is billed once per month; " + removed[bad].astype(str) + " extra unit(s)",
               units_removed=removed[bad])


@rule("BILL-03", "CCM billed with a conflicting service in the month", "error", "other",
      "CMS MLN909188; CY2020, CY2025 and CY2026 PFS final rules (dated list: reference/conflicts.csv); OIG A-07-17-05101, "
      "A-07-19-05122 (overlapping care management)", ("claims",),
      meaning="CCM was billed in a month with a conflicting service (home health or hospice supervision, ESRD, PCM, "
              "APCM).",
      fix="Check for conflicting services before billing CCM.",
      effective="each conflicting service from its from_month to its to_month (reference/conflicts.csv)")
def bill_03(f: Facts) -> pd.DataFrame:
    """A conflicting service in the month of CCM, from the dated list (reference data): an error when the CCM
    practitioner bills it (home health/hospice oversight and ESRD always; PCM always; TCM before 2020; APCM from 2025 and
    its behavioral-health add-ons from 2026), a warning when another practitioner bills home health/hospice oversight or
    ESRD services."""
    table = refdata.conflicts()
    who = f.lines[f.lines["cpt_code"] != "G0506"][PM + ["billing_npi"]].drop_duplicates()
    c = f.claims[f.claims["mkey"].notna() & f.claims["cpt_code"].isin(set(table["code"]))]
    c = c.assign(mkey=c["mkey"].astype("int64")).merge(table.rename(columns={"code": "cpt_code"}), on="cpt_code")
    month = (c["mkey"] // 12).astype(str) + "-" + (c["mkey"] % 12 + 1).astype(str).str.zfill(2)
    c = c[((c["from_month"] == "") | (month >= c["from_month"])) & ((c["to_month"] == "") | (month <= c["to_month"]))]
    m = who.merge(c[PM + ["billing_npi", "cpt_code", "same", "other"]].rename(columns={"billing_npi": "other_npi"}), on=PM)
    mine = m["other_npi"] == m["billing_npi"]
    m = m.assign(severity=np.where(mine, m["same"], m["other"]))
    m = m[m["severity"] != ""]
    out = []
    for sev in ("error", "warning"):
        for own, text in ((True, "also billed "), (False, "another practitioner billed ")):
            part = m[(m["severity"] == sev) & (mine.loc[m.index] == own)]
            if not len(part):
                continue
            g = part.groupby(PM + ["billing_npi"])["cpt_code"].agg(lambda s: ", ".join(sorted(set(s)))).reset_index()
            out.append(raw(g, "npi", text + g["cpt_code"] + " in the month of CCM by " + g["billing_npi"].astype(str), severity=sev))
    return pd.concat(out, ignore_index=True) if out else raw(who.iloc[:0], "npi", "")


@rule("BILL-04", "Incompatible CCM codes in one month", "error", "incorrect_coding",
      "CPT CCM family rules: 99490 and 99487 not together; 99491 not in the month of 99490, 99487 or 99489; add-ons need "
      "their base", ("claims",),
      meaning="Incompatible CCM codes were billed together, or an add-on without its base.",
      fix="Bill add-ons only with their base code; do not combine 99490 and 99487.")
def bill_04(f: Facts) -> pd.DataFrame:
    """Two CCM base codes of different families in a month (99490 with 99487; 99491 with 99490 or 99487, or with 99489
    through its base): the base billed first (by service date, then claim_id and line) keeps the month; every other base
    and its add-ons are unsupported. An add-on without its base in the month is unsupported."""
    ln = _timed_lines(f)
    has = pd.get_dummies(ln["cpt_code"]).reindex(columns=list(TIMED), fill_value=False).astype(bool)
    has = has.groupby([ln["patient_id"], ln["mkey"]]).transform("any")
    out = []
    families = ("99490", "99487", "99491")
    family = ln["cpt_code"].map({**ADDON_OF, **{c: c for c in families}})  # a dict lookup, not a Python call per line
    n_bases = sum(has[b].astype(int) for b in families)
    first_base = ln[ln["cpt_code"].isin(families)].drop_duplicates(PM)[PM + ["cpt_code"]].rename(columns={"cpt_code": "kept"})
    x = ln.assign(_family=family)[(n_bases > 1).to_numpy()].merge(first_base, on=PM)
    x = x[x["_family"].notna() & (x["_family"] != x["kept"])]
    out.append(raw(x, "line", x["cpt_code"] + " billed in the same month as " + x["kept"] + " (incompatible; the code billed "
                   "first keeps the month)"))
    for addon, base in ADDON_OF.items():
        x = ln[(ln["cpt_code"] == addon) & ~has[base]]
        out.append(raw(x, "line", f"add-on {addon} billed without its base code {base} in the month"))
    return pd.concat(out, ignore_index=True) if out else raw(ln.iloc[:0], "line", "")


@rule("BILL-05", "Billed before the time threshold was reached", "warning", "insufficient_documentation",
      "CMS MLN909188 (the service is complete when the time threshold is met)", ("claims", "time_entries"),
      meaning="The claim was dated before the time threshold was reached.",
      fix="Date the claim after the threshold is met.")
def bill_05(f: Facts) -> pd.DataFrame:
    ln = _timed_lines(f).merge(f.pm[PM + ["pm_id"]], on=PM, how="left")
    if not len(ln):
        return raw(ln, "line", "")
    base_min = ln["cpt_code"].map({c: minutes_needed(c, 0) for c in TIMED})
    step = ln["cpt_code"].map({c: minutes_needed(c, 1) - minutes_needed(c, 0) for c in TIMED})
    cum_units = ln.groupby(PM + ["cpt_code"])["units"].cumsum()
    ln["need"] = base_min + step * cum_units
    prac = ln["cpt_code"].map({c: time_family(c) == "practitioner" for c in TIMED}).astype(bool)
    reached = pd.Series(pd.NaT, index=ln.index, dtype="datetime64[ns]")
    for mask, col in ((~prac, "staff_cum"), (prac, "prac_cum")):
        if mask.any():
            reached[mask] = f.totals.reach(ln[mask], col).to_numpy()
    bad = reached.notna() & (ln["service_date"] < reached)
    x = ln[bad]
    return raw(x, "line", "service date " + x["service_date"].dt.strftime("%Y-%m-%d") + " is before the "
               + x["need"].astype(int).astype(str) + "-minute threshold was reached on " + reached[bad].dt.strftime("%Y-%m-%d"),
               units_removed=0)


@rule("BILL-06", "G0506 without a qualifying initiating visit, or billed twice", "error", "incorrect_coding",
      "CMS PFS CY2017 final rule (G0506 add-on to the initiating visit, once per practitioner)", ("claims",),
      meaning="G0506 was billed without a same-day initiating visit by the same practitioner, or twice.",
      fix="Bill G0506 once, with the initiating visit.")
def bill_06(f: Facts) -> pd.DataFrame:
    g = in_order(f.claims[f.claims["cpt_code"] == "G0506"], by=("patient_id", "billing_npi", "service_date"))
    if not len(g):
        return raw(f.lines.iloc[:0], "line", "")
    g = g.assign(nth=g.groupby(["patient_id", "billing_npi"]).cumcount())
    hosts_c = f.claims[f.claims["cpt_code"].isin(G0506_HOSTS)][["patient_id", "billing_npi", "service_date"]]
    enc = f.encounters[f.encounters["cpt_code"].isin(G0506_HOSTS)]
    hosts_e = g[["patient_id", "billing_npi", "service_date"]].drop_duplicates().merge(
        enc.rename(columns={"encounter_date": "service_date"})[["patient_id", "service_date", "practitioner_npi"]], on=["patient_id", "service_date"])
    hosts_e = hosts_e[hosts_e["practitioner_npi"].isna() | (hosts_e["practitioner_npi"] == hosts_e["billing_npi"])]
    hosts = pd.concat([hosts_c, hosts_e[["patient_id", "billing_npi", "service_date"]]]).drop_duplicates().assign(host=True)
    g = g.merge(hosts, on=["patient_id", "billing_npi", "service_date"], how="left")
    g = g[g["mkey"].between(f.period.first, f.period.last)]
    no_host = g["host"].isna()
    dup = g["nth"] > 0
    bad = g[no_host | dup]
    why = np.where(no_host[no_host | dup], "no E/M, AWV or IPPE by the same practitioner on " + bad["service_date"].dt.strftime("%Y-%m-%d"),
                   "G0506 already billed for this patient by " + bad["billing_npi"].astype(str))
    return raw(bad, "line", "G0506: " + pd.Series(why, index=bad.index))


@rule("BILL-07", "G0511 billed after its last billable date", "error", "incorrect_coding",
      "CMS CY2025 PFS final rule: RHCs/FQHCs bill the individual care-management codes from 1 Oct 2025", ("claims",),
      meaning="G0511 was billed after 30 Sep 2025; rural health clinics and FQHCs now bill the individual "
              "care-management codes.",
      fix="Bill 99490 and its siblings for RHC/FQHC care management from 1 Oct 2025.",
      effective="G0511 lines dated after its last_billable_date (reference/code_dates.csv)")
def bill_07(f: Facts) -> pd.DataFrame:
    """G0511 dated after its last billable date (``reference/code_dates.csv``, 30 Sep 2025): every unit unsupported.
    Before it, G0511 is judged like 99490 (TIME-06, consent, care plan, eligibility)."""
    last = refdata.code_date(G0511, "last_billable_date")
    ln = f.lines[(f.lines["cpt_code"] == G0511) & (f.lines["service_date"] > last)]
    return raw(ln, "line", "G0511 dated " + ln["service_date"].dt.strftime("%Y-%m-%d") + f", after its last billable date "
               f"{last:%Y-%m-%d}: RHCs and FQHCs bill the individual care-management codes (99490 and siblings)")


@rule("BILL-08", "CCM line denied by the payer", "warning", "other",
      "CMS claim processing: a denied line (paid amount 0) was not paid, so it is not an overpayment (42 CFR 401.303: an "
      "overpayment is money received); CMS claim edits deny many duplicate and conflicting lines before payment",
      ("claims",),
      meaning="The payer denied the CCM line (paid $0): it was not paid, so it is not an overpayment; it is listed "
              "apart.",
      fix="Find out why it was denied (a duplicate, a conflicting service, missing documentation) before billing the "
          "next month.")
def bill_08(f: Facts) -> pd.DataFrame:
    """A CCM-family line with paid_amount 0: listed apart, its overpayment 0 (determination ``denied``)."""
    ln = f.lines[(f.lines["paid_amount"] == 0).fillna(False)]
    return raw(ln, "line", ln["cpt_code"].astype(str) + " denied by the payer (paid $0.00): not an overpayment; see why it was "
               "denied (duplicate, conflicting service, missing documentation) before billing the next month")
