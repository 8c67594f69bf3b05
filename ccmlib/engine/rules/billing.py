"""Initiating visit (IV-01) and billing rules (BILL-01..08)."""
from __future__ import annotations


import numpy as np
import pandas as pd

from ccmlib.reference import data as refdata
from ccmlib.reference.codes import (ADDON_OF, BASE_CODES, G0506_HOSTS, G0511,
                     TIMED_CODES, minutes_needed, time_family)
from ccmlib.engine.facts import PM, PRACTITIONER_THRESHOLDS, STAFF_THRESHOLDS, Facts, natural_key, practitioner_visit_status
from ccmlib.engine.rules.registry import raw, rule
from ccmlib.engine.money import joint_codes, key_codes
from ccmlib.intake.fastops import distinct_rows, join_groups, lex_order

ORDER = ["patient_id", "mkey", "service_date", "_claim_order", "line"]
TIMED = TIMED_CODES


def in_order(ln: pd.DataFrame, by=("patient_id", "mkey", "service_date")) -> pd.DataFrame:
    """Lines in "first" order: ``by``, then claim_id in natural order (claim 9 before claim 10), then line (a stable sort
    on the columns' integer codes: the order of ``sort_values(kind="mergesort")`` on them)."""
    return ln.take(_order(ln, by))


def _order(ln: pd.DataFrame, by=("patient_id", "mkey", "service_date")) -> np.ndarray:
    claim_order = ln["_claim_order"] if "_claim_order" in ln else natural_key(ln["claim_id"])  # computed once by build_facts
    return lex_order([ln[c] for c in by] + [claim_order, ln["line"]])


def _timed(f: Facts) -> tuple[pd.DataFrame, np.ndarray]:
    """The time-based lines in "first" order and a number per patient-month for each. The order is found once per
    audit for the rules that read it (kept on the facts as positions, not as a second copy of the lines)."""
    def order():
        timed = np.flatnonzero(f.lines["cpt_code"].isin(TIMED).to_numpy(dtype=bool, na_value=False))
        at = timed[_order(f.lines[[c for c in (*ORDER, "claim_id") if c in f.lines]].take(timed))]
        return at, distinct_rows(f.lines["patient_id"].take(at), f.lines["mkey"].take(at))[0]

    at, month = f.once("timed_order", order, f.lines)
    return f.lines.take(at), month


def _with_pm_id(ln: pd.DataFrame, pm: pd.DataFrame) -> pd.DataFrame:
    """``ln.merge(pm[PM + ["pm_id"]], on=PM, how="left")``: each line's patient-month found on integer keys when the
    patient ids share the facts' categories and every line has one (always, for the facts' lines), else merged."""
    from ccmlib.engine.sqlfacts import patient_month_rows

    lp, rp = ln["patient_id"], pm["patient_id"]
    if (len(ln) and isinstance(lp.dtype, pd.CategoricalDtype) and lp.dtype == rp.dtype and not lp.isna().any()
            and ln["mkey"].notna().all() and pm["mkey"].notna().all()):
        rows = patient_month_rows(lp.cat.codes.to_numpy().astype("int64"), ln["mkey"].to_numpy(dtype="int64"),
                        rp.cat.codes.to_numpy().astype("int64"), pm["mkey"].to_numpy(dtype="int64"))
        if (rows >= 0).all():
            return ln.reset_index(drop=True).assign(pm_id=pm["pm_id"].to_numpy()[rows])
    return ln.merge(pm[PM + ["pm_id"]], on=PM, how="left")


def _timed_lines(f: Facts) -> pd.DataFrame:
    return _timed(f)[0]


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
    return raw(m, "npi", lambda: "no qualifying visit by " + m["billing_npi"].astype(str) + " from "
               + m["window_start"].dt.strftime("%Y-%m-%d").fillna("?") + " to CCM commencement on "
               + m["commencement"].dt.strftime("%Y-%m-%d").fillna("(no consent or claim)") + " (encounters and visit claims)",
               billing_npi=m["billing_npi"])


@rule("BILL-01", "More than one practitioner billed CCM for the patient-month", "error", "other",
      "CMS MLN909188 (only one practitioner may bill CCM per month)", ("claims",),
      meaning="More than one practitioner billed CCM for the same patient and month.",
      fix="Coordinate with other practices; only one practitioner may bill CCM a month.")
def bill_01(f: Facts) -> pd.DataFrame:
    """The first practitioner (earliest service date, then claim_id, line) keeps the month."""
    ln, month = _timed(f)
    first_at = np.full(int(month.max(initial=-1)) + 1, len(ln), dtype=np.int64)
    np.minimum.at(first_at, month, np.arange(len(ln)))  # the month's first line
    npi, _ = pd.factorize(ln["billing_npi"], use_na_sentinel=False)
    first = first_at[month]
    other = npi != npi[first]
    x = ln[other]
    return raw(x, "line", lambda: "CCM for this month was first billed by "
               + pd.Series(ln["billing_npi"].iloc[first[other]].array, index=x.index).astype(str) + "; "
               + x["billing_npi"].astype(str) + " cannot also bill it")


@rule("BILL-02", "Base CCM code billed more than once in the month", "error", "incorrect_coding",
      "CPT descriptors: 99490, 99487, 99491 are reported once per calendar month", ("claims",),
      meaning="A base CCM code was billed more than once in the month.",
      fix="Bill the base code once per calendar month.")
def bill_02(f: Facts) -> pd.DataFrame:
    ln, month = _timed(f)
    keep = (ln["cpt_code"].isin(BASE_CODES) & (ln["cpt_code"] != G0511)).to_numpy()  # v3: G0511 may be billed more than once (2024-)
    ln, month = ln[keep], month[keep]
    # the units billed before each line by the same practitioner and code in the month (a cumulative sum per group)
    group = distinct_rows(month, ln["billing_npi"], ln["cpt_code"])[0]
    units = ln["units"].to_numpy(dtype=np.int64)
    order = np.argsort(group, kind="stable")
    total = np.cumsum(units[order])
    starts = np.flatnonzero(np.r_[True, group[order][1:] != group[order][:-1]]) if len(order) else np.zeros(0, dtype=np.int64)
    upto = np.empty(len(units), dtype=np.int64)
    upto[order] = total - np.repeat(total[starts] - units[order][starts], np.diff(np.r_[starts, len(order)]))
    before = pd.Series(upto - units, index=ln.index)
    removed = (ln["units"] - (1 - before).clip(lower=0)).clip(lower=0).astype("int64")
    bad = removed > 0
    return raw(ln[bad], "line", lambda: ln["cpt_code"][bad] + " is billed once per month; " + removed[bad].astype(str) + " extra unit(s)",
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
    c = f.claims[f.claims["mkey"].notna() & f.claims["cpt_code"].isin(set(table["code"]))]
    if not len(c):  # no conflicting service billed at all (most practices' months): the empty findings of the end
        return raw(f.lines[PM + ["billing_npi"]].iloc[:0], "npi", "")
    c = c.assign(mkey=c["mkey"].astype("int64")).merge(table.rename(columns={"code": "cpt_code"}), on="cpt_code")
    month = (c["mkey"] // 12).astype(str) + "-" + (c["mkey"] % 12 + 1).astype(str).str.zfill(2)
    c = c[((c["from_month"] == "") | (month >= c["from_month"])) & ((c["to_month"] == "") | (month <= c["to_month"]))]
    # the practitioners' months of CCM, among the months with a conflicting service alone (what the merge below keeps)
    ln = f.lines
    lk, ck = joint_codes({k: key_codes(ln[k], c[k]) for k in PM}, PM)
    who = ln.loc[(ln["cpt_code"] != "G0506").to_numpy() & np.isin(lk, ck), PM + ["billing_npi"]].drop_duplicates()
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
            # per practitioner's month, its distinct codes in order, joined (a group-by's order, without a call per group)
            part = part[PM + ["billing_npi", "cpt_code"]].dropna().drop_duplicates().sort_values("cpt_code", kind="mergesort")
            g = join_groups(part, PM + ["billing_npi"], "cpt_code", ", ").rename("cpt_code").reset_index()
            out.append(raw(g, "npi", lambda: text + g["cpt_code"] + " in the month of CCM by " + g["billing_npi"].astype(str), severity=sev))
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
    ln, month = _timed(f)
    # per line, whether its patient-month has a line of each code: on the month's group number and the code's number
    code, codes = pd.factorize(ln["cpt_code"])
    n_months = int(month.max(initial=-1)) + 1
    number = {c: i for i, c in enumerate(codes)}

    def has(c):
        present = np.zeros(n_months, dtype=bool)
        present[month[code == number.get(c, -2)]] = True
        return present[month]

    out = []
    families = ("99490", "99487", "99491")
    family = {**ADDON_OF, **{c: c for c in families}}
    family_of = np.array([number.get(family[c], -3) if c in family else -1 for c in codes] + [-1], dtype=np.int64)[code]
    n_bases = sum(has(b).astype(int) for b in families)
    # the base billed first keeps the month: the month's first line of a family base (lines are in "first" order)
    is_base = np.isin(code, [number[c] for c in families if c in number])
    first_at = np.full(n_months, len(ln), dtype=np.int64)
    np.minimum.at(first_at, month[is_base], np.flatnonzero(is_base))
    at = first_at[month]
    found = at < len(ln)
    bad = (n_bases > 1) & found & (family_of != -1) & (family_of != code[np.where(found, at, 0)])
    x = ln[bad]
    kept = pd.Series(ln["cpt_code"].iloc[at[bad]].array, index=x.index)
    out.append(raw(x, "line", lambda: x["cpt_code"] + " billed in the same month as " + kept + " (incompatible; the code billed "
                   "first keeps the month)"))
    for addon, base in ADDON_OF.items():
        x = ln[(code == number.get(addon, -2)) & ~has(base)]
        out.append(raw(x, "line", lambda: f"add-on {addon} billed without its base code {base} in the month"))
    return pd.concat(out, ignore_index=True) if out else raw(ln.iloc[:0], "line", "")


@rule("BILL-05", "Billed before the time threshold was reached", "warning", "insufficient_documentation",
      "CMS MLN909188 (the service is complete when the time threshold is met)", ("claims", "time_entries"),
      meaning="The claim was dated before the time threshold was reached.",
      fix="Date the claim after the threshold is met.")
def bill_05(f: Facts) -> pd.DataFrame:
    ln = _with_pm_id(_timed_lines(f), f.pm)
    if not len(ln):
        return raw(ln, "line", "")
    codes, uniq = pd.factorize(ln["cpt_code"])  # each code's minutes and family looked up once, not once per line
    base_min = pd.Series(np.array([minutes_needed(c, 0) for c in uniq], dtype="int64")[codes], index=ln.index)
    step = pd.Series(np.array([minutes_needed(c, 1) - minutes_needed(c, 0) for c in uniq], dtype="int64")[codes], index=ln.index)
    if ln[PM].notna().all().all():  # the running count of units per (patient-month, code), grouped on integer codes
        cum_units = ln["units"].groupby(distinct_rows(ln["pm_id"].to_numpy(), codes)[0]).cumsum()
    else:
        cum_units = ln.groupby(PM + ["cpt_code"])["units"].cumsum()
    ln["need"] = base_min + step * cum_units
    prac = pd.Series(np.array([time_family(c) == "practitioner" for c in uniq], dtype=bool)[codes], index=ln.index)
    reached = pd.Series(pd.NaT, index=ln.index, dtype="datetime64[ns]")
    # a threshold the facts track (20, 40, 60, ... minutes) is the month's date column (the same running totals, the
    # same first date); the running totals are asked only for the others (a third 99439 unit's 80 minutes)
    at = pd.Index(f.pm["pm_id"]).get_indexer(pd.to_numeric(ln["pm_id"]).fillna(-1).astype("int64"))
    for mask, col, tracked, name in ((~prac, "staff_cum", STAFF_THRESHOLDS, "date_{}min"),
                                     (prac, "prac_cum", PRACTITIONER_THRESHOLDS, "date_{}min_practitioner")):
        asked = mask.copy()
        for t in tracked:
            here = (mask & (ln["need"] == t)).to_numpy() & (at >= 0)
            if here.any() and name.format(t) in f.pm:
                reached[here] = f.pm[name.format(t)].to_numpy(dtype="datetime64[ns]")[at[here]]
                asked &= ~here
        if asked.any():
            reached[asked] = f.totals.reach(ln[asked], col).to_numpy()
    bad = reached.notna() & (ln["service_date"] < reached)
    x = ln[bad]
    return raw(x, "line", lambda: "service date " + x["service_date"].dt.strftime("%Y-%m-%d") + " is before the "
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
    hosts_c = f.claims.loc[f.claims["cpt_code"].isin(G0506_HOSTS).to_numpy(dtype=bool, na_value=False)
                           & f.claims["patient_id"].isin(g["patient_id"].unique()).to_numpy(), ["patient_id", "billing_npi", "service_date"]]
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
    return raw(bad, "line", lambda: "G0506: " + pd.Series(why, index=bad.index))


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
    return raw(ln, "line", lambda: "G0511 dated " + ln["service_date"].dt.strftime("%Y-%m-%d") + f", after its last billable date "
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
    return raw(ln, "line", lambda: ln["cpt_code"].astype(str) + " denied by the payer (paid $0.00): not an overpayment; see why it was "
               "denied (duplicate, conflicting service, missing documentation) before billing the next month")
