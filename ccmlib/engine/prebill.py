"""The monthly pre-bill review: which CCM claims the documentation supports now, which need more minutes, and which
are blocked, before anything is sent.

It runs the same engine as ``check``, never a second copy of a rule. For the month and an as-of date:

1. the practice's data is cut to what existed on the as-of date (:func:`as_of_practice`): later time entries, consents,
   care plans, diagnoses, visits and claims are left out, and later revocations, reviews and copies not yet happened;
2. the time facts give each patient's qualifying minutes, and :func:`~ccmlib.engine.money.potential_units` (the
   function REV-01 uses) the codes and units they support;
3. every patient with CCM activity or a consent in force in the month and no CCM claim yet gets *proposed* claim lines
   for those codes, dated the as-of date (a base code even when the minutes fall short, so that every other defect
   shows), and the month is audited with :func:`~ccmlib.engine.pipeline.audit` exactly as ``check`` would audit it;
4. each proposed line's determination and the rules that took its units (``claim_lines.rule_ids``) give the status:
   *ready to bill*, *needs N more minutes* (only the time thresholds stand in the way), *blocked* (any other error
   rule, in words with its fix), or *not enrolled* (no consent in force); claims already billed keep their verdict.

So billing exactly the codes called ready and running ``check`` gives those lines no finding, and every blocked line is
unsupported by ``check`` for the rule named (tests/test_prebill.py checks both over generated practices).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from ccmlib.engine.facts import build_facts, consents_in_force
from ccmlib.engine.money import codes_label, potential_units
from ccmlib.engine.periods import Period, parse_period
from ccmlib.engine.pipeline import AuditResult, audit
from ccmlib.engine.rules.registry import catalog, rule_ids
from ccmlib.errors import InputError
from ccmlib.intake.load import Practice, load_practice
from ccmlib.reference import data as refdata
from ccmlib.reference.codes import ADDON_OF_BASE, CCM_CODES, PFS_TIME_CODES, TIME_RULES, addon_units
from ccmlib.engine.rules.explain import EXPLAIN

PM = ["patient_id", "service_month"]
PROPOSED = "PREBILL-"
#: rules that only say the minutes fall short of a threshold: the month needs more time, nothing else is wrong (declared
#: ``threshold=True``)
TIME_THRESHOLD_RULES = rule_ids("threshold")
STATUS_ORDER = ["blocked", "needs minutes", "ready to bill", "billed with problems", "billed", "not enrolled"]
COLUMNS = ["patient_id", "service_month", "as_of", "status", "action", "billing_npi", "codes_ready", "codes_billed", "billed_verdict",
           "qualifying_minutes", "excluded_minutes", "excluded_because", "next_threshold", "minutes_needed", "days_left",
           "blocking_rules", "blocking", "fixes", "warning_rules", "warnings", "dollars_at_stake"]

#: date columns cut at the as-of date: rows dated later did not exist yet; later events on kept rows did not happen yet
ROW_DATES = {"time_entries": "activity_date", "consents": "consent_date", "care_plans": "created_date", "claims": "service_date",
             "encounters": "encounter_date", "diagnoses": "onset_date"}
EVENT_DATES = {"consents": ("revoked_date",), "care_plans": ("reviewed_date", "shared_with_patient_date"),
               "diagnoses": ("resolved_date",)}


@dataclass
class Prebill:
    month: str
    as_of: date
    worklist: pd.DataFrame  # one row per patient (COLUMNS)
    audit: AuditResult  # the month audited with the proposed lines, as check would
    proposed: pd.DataFrame  # the proposed claim lines (claims-table columns)
    run: dict

    def by_status(self) -> pd.DataFrame:
        w = self.worklist
        g = w.groupby("status").agg(patients=("patient_id", "size"), dollars_at_stake=("dollars_at_stake", "sum"))
        g = g.reindex([s for s in STATUS_ORDER if s in g.index]).reset_index()
        g["dollars_at_stake"] = g["dollars_at_stake"].round(2)
        return g


def default_as_of(per: Period, today: date | None = None) -> date:
    """Today for the current month, the month's last day for a past month."""
    today = today or date.today()
    last = pd.Timestamp(per.months[-1] + "-01") + pd.offsets.MonthEnd(0)
    first = pd.Timestamp(per.months[0] + "-01")
    if pd.Timestamp(today) > last:
        return last.date()
    if pd.Timestamp(today) < first:
        raise InputError(f"--month {per.label} has not begun (today is {today}); give --as-of inside the month")
    return today


def as_of_practice(practice: Practice, as_of) -> Practice:
    """The practice's tables as they stood at the end of ``as_of``: rows dated later dropped (rows without the date
    kept, as check keeps them), later revocations, reviews, copies and resolutions blanked."""
    cut = pd.Timestamp(as_of)
    tables = {}
    for name, df in practice.tables.items():
        col = ROW_DATES.get(name)
        if col and col in df:
            df = df[~(df[col] > cut)]
        for ev in EVENT_DATES.get(name, ()):
            if ev in df:
                df = df.assign(**{ev: df[ev].where(~(df[ev] > cut))})
        tables[name] = df.reset_index(drop=True)
    return Practice(practice.folder, tables, practice.quality, practice.inputs)


def _family(claims: pd.DataFrame, patients: pd.Series, before: pd.Timestamp) -> pd.Series:
    """The CCM base code a patient was billed under most recently before the month (99490, 99487 or 99491), else 99490."""
    base = claims[claims["cpt_code"].isin(["99490", "99487", "99491"]) & (claims["service_date"] < before)]
    last = base.sort_values(["service_date", "claim_id"], kind="mergesort").drop_duplicates("patient_id", keep="last")
    fam = pd.Series(last["cpt_code"].astype(str).to_numpy(), index=last["patient_id"].astype(str).to_numpy())
    return patients.map(fam).fillna("99490")


def _proposed_lines(cands: pd.DataFrame, claims: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Claim lines for what the minutes support (a base unit at least), by the consent's practitioner."""
    rows = []
    for code in PFS_TIME_CODES:
        n = cands[code].to_numpy()
        base = code in ADDON_OF_BASE
        take = (n > 0) | (base & (cands["family"] == code).to_numpy())
        sub = cands[take]
        if len(sub):
            rows.append(pd.DataFrame({"patient_id": sub["patient_id"].to_numpy(), "billing_npi": sub["billing_npi"].to_numpy(),
                                      "cpt_code": code, "units": np.maximum(sub[code].to_numpy(), 1 if base else 0),
                                      "place_of_service": sub["place_of_service"].to_numpy()}))
    if not rows:
        return claims.iloc[0:0].copy()
    p = pd.concat(rows, ignore_index=True)
    p = p[p["units"] > 0]
    order = {c: i for i, c in enumerate(CCM_CODES)}
    p = p.assign(_o=p["cpt_code"].map(order)).sort_values(["patient_id", "_o"], kind="mergesort").drop(columns="_o")
    p["claim_id"] = PROPOSED + p["patient_id"].astype(str)
    p["line"] = p.groupby("patient_id").cumcount() + 1
    p["service_date"] = as_of
    p["paid_amount"] = np.nan
    p["_line"] = 0
    out = p.reindex(columns=claims.columns)
    return out.astype(claims.dtypes.to_dict())


def _words(rule_ids: pd.Series, what: int) -> pd.Series:
    titles = dict(zip(catalog()["id"], catalog()["title"]))
    return rule_ids.map(lambda v: "; ".join((titles[r] if what == 0 else EXPLAIN[r][1]) + f" ({r})" for r in v.split(";") if r)
                        if isinstance(v, str) else "")


def prebill(data, month: str, as_of=None, fees=None, conditions=None, qp_npis=(), overrides=None, today: date | None = None,
            profile=None) -> Prebill:
    """The pre-bill worklist of ``month`` (``YYYY-MM``) using only data dated on or before ``as_of``, under ``profile``
    (:mod:`ccmlib.engine.profiles`; recorded in ``run["profile"]``)."""
    per = parse_period(month)
    if per is None or len(per.months) != 1:
        raise InputError(f"--month {month!r}: expected one month like 2026-11")
    from ccmlib.intake.dates import option_date

    as_of = option_date(as_of, "--as-of") if as_of is not None else default_as_of(per, today)  # strictly YYYY-MM-DD
    first = pd.Timestamp(per.months[0] + "-01")
    last = first + pd.offsets.MonthEnd(0)
    if not first <= pd.Timestamp(as_of) <= last:
        raise InputError(f"--as-of {as_of} is outside {per.label} ({first.date()} to {last.date()})")
    cut = pd.Timestamp(as_of)
    practice = as_of_practice(data if isinstance(data, Practice) else load_practice(data), cut)
    cmap = refdata.condition_map(conditions)
    facts = build_facts(practice, per, cmap)
    label = per.months[0]

    # who is in scope: CCM time in the month, or a consent dated by the as-of date and not revoked before the month
    active = facts.pm.loc[facts.pm["documented_minutes"].fillna(0) > 0, "patient_id"].astype(str)
    cons = practice["consents"] if practice.has("consents") else pd.DataFrame(columns=["patient_id", "consent_date", "revoked_date"])
    live = cons[(cons["consent_date"] <= cut) & ~(cons["revoked_date"] < first)]["patient_id"].astype(str)
    who = pd.Index(sorted(set(active) | set(live)), name="patient_id")
    claims = practice["claims"] if practice.has("claims") else pd.DataFrame(columns=["patient_id", "service_date", "cpt_code"])
    month_ccm = claims[claims["cpt_code"].isin(list(CCM_CODES)) & (claims["service_date"] >= first) & (claims["service_date"] <= cut)]
    billed = set(month_ccm["patient_id"].astype(str))

    pm = facts.pm.assign(patient_id=facts.pm["patient_id"].astype(str))
    pm = pd.DataFrame({"patient_id": who}).merge(pm[["patient_id", "qualifying_minutes", "practitioner_minutes"]], on="patient_id",
                                                   how="left").fillna({"qualifying_minutes": 0.0, "practitioner_minutes": 0.0})
    pm["service_month"], pm["mkey"] = label, per.first
    fam = _family(claims, pm["patient_id"], first)
    # complex (99487) or practitioner-time (99491) CCM only once its own base is reached; until then 99490 and 99439
    fam = fam.where(~((fam == "99487") & (pm["qualifying_minutes"] < TIME_RULES["99487"][1])), "99490")
    fam = fam.where(~((fam == "99491") & (pm["practitioner_minutes"] < TIME_RULES["99491"][1])), "99490")
    pm["family"] = fam.to_numpy()
    fam_lines = pd.DataFrame({"patient_id": pm["patient_id"], "mkey": per.first, "cpt_code": pm["family"], "units": 1})
    pot, _ = potential_units(pm, fam_lines)
    cands = pm.merge(pot, on=["patient_id", "mkey"])

    # the consent in force at the as-of date (any practitioner): its practitioner bills; none means not enrolled
    ref = pd.DataFrame({"patient_id": cands["patient_id"], "mkey": per.first, "billing_npi": pd.Series(pd.NA, index=cands.index, dtype="string"),
                        "ref_date": cut})
    c = cons.assign(patient_id=cons["patient_id"].astype(str))
    inforce = consents_in_force(c, ref.assign(patient_id=ref["patient_id"].astype(str))) if len(c) else None
    npi = pd.Series(pd.NA, index=cands.index, dtype="string")
    enrolled = np.zeros(len(cands), dtype=bool)
    if inforce is not None and len(inforce):
        enrolled = (inforce["consents_before"].fillna(0).to_numpy() > 0) & ~(inforce["revoked_date"] < first).fillna(False).to_numpy()
        npi = inforce["practitioner_npi"].astype("string").reset_index(drop=True)
    latest = claims.sort_values(["service_date", "claim_id"], kind="mergesort").drop_duplicates("patient_id", keep="last")
    by_pid = latest.assign(patient_id=latest["patient_id"].astype(str)).set_index("patient_id")
    npi = npi.fillna(cands["patient_id"].map(by_pid["billing_npi"].astype("string")).reset_index(drop=True))
    usual = month_ccm["billing_npi"].mode() if len(month_ccm) else claims["billing_npi"].mode() if len(claims) else pd.Series([], dtype="string")
    cands["billing_npi"] = npi.fillna(usual.iloc[0] if len(usual) else pd.NA).to_numpy()
    cands["place_of_service"] = cands["patient_id"].map(by_pid["place_of_service"]).to_numpy() if "place_of_service" in by_pid else pd.NA
    cands["enrolled"] = enrolled
    propose = cands[cands["enrolled"] & ~cands["patient_id"].isin(billed) & cands["billing_npi"].notna()]
    proposed = _proposed_lines(propose, claims, cut)

    tables = dict(practice.tables)
    tables["claims"] = pd.concat([claims, proposed], ignore_index=True) if len(proposed) else claims
    res = audit(Practice(practice.folder, tables, practice.quality, practice.inputs), period=per, fees=fees, conditions=conditions,
                qp_npis=qp_npis, overrides=overrides, profile=profile)
    worklist = _worklist(res, cands, billed, per, cut, last, fees, qp_npis)
    run = {"tool": "ccm-audit prebill", "month": label, "as_of": str(as_of), "inputs": res.run["inputs"],
           "rule_catalog_version": res.run["rule_catalog_version"], "profile": res.run["profile"],
           "fee_schedule": res.run["fee_schedule"]["source"],
           "packages": res.run["packages"], "started": res.run["started"], "finished": res.run["finished"]}
    pb = Prebill(label, as_of, worklist, res, proposed, run)
    run["by_status"] = pb.by_status().to_dict("records")
    return pb


def _next_threshold(family: pd.Series, qualifying: pd.Series, practitioner: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The next time threshold of the patient's code family above the minutes so far (TIME_RULES: base minutes, then a
    step per add-on unit up to its cap; NaN once the last add-on is reached), and the minutes still needed."""
    nxt = np.full(len(family), np.nan)
    mins = np.full(len(family), np.nan)
    for base, (who, first, step, cap) in TIME_RULES.items():
        sel = (family == base).to_numpy()
        if not sel.any() or not step:
            continue
        m = (practitioner if who == "practitioner" else qualifying).to_numpy(dtype=float)
        k = addon_units(m, base, capped=False)  # add-on units reached
        t = np.where(m < first, first, first + (k + 1) * step)
        if cap is not None:
            t = np.where((m >= first) & (k + 1 > cap), np.nan, t)
        nxt[sel], mins[sel] = t[sel], m[sel]
    return nxt, np.where(np.isnan(nxt), np.nan, np.ceil(nxt - mins))


def _worklist(res: AuditResult, cands: pd.DataFrame, billed: set, per: Period, cut, last, fees, qp_npis=()) -> pd.DataFrame:
    label = per.months[0]
    cl = res.claim_lines.assign(patient_id=res.claim_lines["patient_id"].astype(str))
    is_prop = cl["claim_id"].astype(str).str.startswith(PROPOSED)
    prop, real = cl[is_prop], cl[~is_prop]
    w = cands[["patient_id", "service_month", "billing_npi", "family", "qualifying_minutes", "practitioner_minutes", "enrolled"]].copy()

    # rules that took units from the proposed lines: time thresholds alone mean "needs minutes", anything else blocks
    rules = prop.groupby("patient_id")["rule_ids"].agg(lambda s: ";".join(sorted({r for v in s for r in str(v).split(";") if r})))
    w["_rules"] = w["patient_id"].map(rules).fillna("")
    w["blocking_rules"] = w["_rules"].map(lambda v: ";".join(r for r in v.split(";") if r and r not in TIME_THRESHOLD_RULES))
    supp = prop.pivot_table(index="patient_id", columns="cpt_code", values="units_supported", aggfunc="sum", fill_value=0)
    w["codes_ready"] = w["patient_id"].map(codes_label(supp)).fillna("") if len(supp) else ""
    # claims already billed this month: their verdict from the same audit
    verdict = real.groupby("patient_id").agg(
        codes_billed=("cpt_code", lambda s: "+".join(s.astype(str))),
        billed_verdict=("determination", lambda s: ", ".join(sorted(set(s.str.replace("_", " "))))),
        billed_rules=("rule_ids", lambda s: ";".join(sorted({r for v in s for r in str(v).split(";") if r}))),
        billed_paid=("paid_amount", "sum"), billed_over=("overpayment", "sum"))
    w = w.merge(verdict, left_on="patient_id", right_index=True, how="left")
    for col in ("codes_billed", "billed_verdict", "billed_rules"):
        w[col] = w[col].fillna("")

    # warnings of the month (entries without description, overlaps, entries after a revocation, REV-01 ...)
    f = res.findings[(res.findings["severity"] != "error") & (res.findings["review_decision"] != "overturn")]
    warn = f.assign(patient_id=f["patient_id"].astype(str)).groupby("patient_id")["rule_id"].agg(lambda s: ";".join(sorted(set(s))))
    w["warning_rules"] = w["patient_id"].map(warn).fillna("")

    # minutes: excluded ones and why, from the same entries view check uses
    e = res.entries()
    e = e[(e["service_month"] == label)]
    e = e.assign(patient_id=e["patient_id"].astype(str), _x=np.where(e["qualifying"].fillna(0) < e["minutes"].fillna(0),
                                                                      e["minutes"].fillna(0) - e["qualifying"].fillna(0), 0.0))
    ex = e[e["_x"] > 0].groupby("patient_id").agg(excluded_minutes=("_x", "sum"),
                                                  excluded_because=("excluded_because", lambda s: "; ".join(sorted(set("; ".join(s).split("; ")) - {""}))))
    w = w.merge(ex, left_on="patient_id", right_index=True, how="left")
    w["excluded_minutes"] = w["excluded_minutes"].fillna(0.0)
    w["excluded_because"] = w["excluded_because"].fillna("")

    nxt, need = _next_threshold(w["family"], w["qualifying_minutes"], w["practitioner_minutes"])
    w["next_threshold"], w["minutes_needed"] = nxt, need
    w["days_left"] = int((pd.Timestamp(last) - pd.Timestamp(cut)).days)

    has_billed = w["patient_id"].isin(billed)
    base_ok = (w["codes_ready"] != "")
    status = np.select(
        [has_billed & (w["billed_verdict"].str.contains("not") | (w["billed_rules"] != "")), has_billed, ~w["enrolled"],
         w["blocking_rules"] != "", ~base_ok],
        ["billed with problems", "billed", "not enrolled", "blocked", "needs minutes"], "ready to bill")
    w["status"] = status
    w.loc[has_billed, "blocking_rules"] = w.loc[has_billed, "billed_rules"]
    w["blocking"] = _words(w["blocking_rules"], 0)
    w["fixes"] = _words(w["blocking_rules"], 1)
    w.loc[w["status"] == "not enrolled", "blocking"] = "No consent in force on the as-of date"
    w.loc[w["status"] == "not enrolled", "fixes"] = EXPLAIN["CONS-01"][1]
    w["warnings"] = _words(w["warning_rules"], 0)
    w["codes_ready"] = w["codes_ready"].where(w["status"] == "ready to bill", "")

    # dollars at stake: what the supportable codes would pay (the base code for a month still short of minutes);
    # for a billed month, what was paid
    fee_table, _ = refdata.fee_schedule(fees)
    value = _value(w.assign(place_of_service=cands["place_of_service"].to_numpy()), prop, fee_table, cut, qp_npis)
    w["dollars_at_stake"] = np.where(has_billed, w["billed_paid"].fillna(0), value).round(2)
    w["action"] = _action(w)
    w["as_of"] = str(pd.Timestamp(cut).date())
    return w[COLUMNS].iloc[action_order(w)].reset_index(drop=True)


#: the worklist's order, by what a person can still act on: before the month ends, what blocks a claim, then the
#: patients closest to a threshold; once it has ended, the claims billed with problems (to correct or void) first and
#: the months that ended short (nothing left to do) last
ORDER_OPEN = ["blocked", "needs minutes", "billed with problems", "ready to bill", "not enrolled", "billed"]
ORDER_CLOSED = ["billed with problems", "ready to bill", "blocked", "not enrolled", "billed", "needs minutes"]


def action_order(w: pd.DataFrame) -> np.ndarray:
    """Row positions of the worklist in action order (see ORDER_OPEN/ORDER_CLOSED); within a status the largest dollars
    first, except 'needs minutes' before the month ends: the fewest minutes still needed first."""
    closed = bool(len(w)) and int(w["days_left"].iloc[0]) <= 0
    order = ORDER_CLOSED if closed else ORDER_OPEN
    rank = w["status"].map({st: i for i, st in enumerate(order)}).to_numpy()
    near = np.where((w["status"] == "needs minutes").to_numpy() & (not closed), w["minutes_needed"].fillna(1e9).to_numpy(), 0.0)
    key = pd.DataFrame({"r": rank, "near": near, "d": -w["dollars_at_stake"].to_numpy(), "n": w["minutes_needed"].fillna(1e9).to_numpy(),
                        "p": w["patient_id"].astype(str).to_numpy()})
    return key.sort_values(["r", "near", "d", "n", "p"], kind="mergesort").index.to_numpy()


def _value(w: pd.DataFrame, prop: pd.DataFrame, fee_table, cut, qp_npis=()) -> np.ndarray:
    """Value (the allowed amount: Medicare's share and the patient's) of the proposed lines (the units the minutes
    support; one base unit when they fall short), or of one base unit of the patient's code family when nothing was
    proposed (not enrolled), priced as `check` prices a line
    (:func:`ccmlib.engine.money.unit_values`: the facility rate for a facility place of service, the QP rate, the fee in
    force on the day)."""
    from ccmlib.engine.money import unit_values

    base = pd.DataFrame({"cpt_code": w["family"].astype(str).to_numpy(), "service_date": pd.Timestamp(cut),
                         "place_of_service": w["place_of_service"].to_numpy() if "place_of_service" in w else pd.NA,
                         "billing_npi": w["billing_npi"].to_numpy(), "paid_amount": np.nan, "units": 1}, index=w.index)
    base_fee = np.nan_to_num(unit_values(base, fee_table, qp_npis)["allowed_unit"].to_numpy(dtype=float))
    if prop.empty:
        return base_fee
    lines = pd.DataFrame({"cpt_code": prop["cpt_code"].astype(str).to_numpy(), "service_date": prop["service_date"].to_numpy(),
                          "place_of_service": prop["place_of_service"].to_numpy(), "billing_npi": prop["billing_npi"].to_numpy(),
                          "paid_amount": np.nan, "units": prop["units_billed"].to_numpy()})
    fee = unit_values(lines, fee_table, qp_npis)["allowed_unit"].to_numpy(dtype=float)  # what the claim is worth: the allowed amount
    val = pd.Series(np.nan_to_num(fee) * prop["units_billed"].to_numpy(), index=prop.index).groupby(prop["patient_id"].to_numpy()).sum()
    out = w["patient_id"].map(val)
    return np.where(out.notna(), out.fillna(0), base_fee)


def _action(w: pd.DataFrame) -> pd.Series:
    need = w["minutes_needed"].fillna(0).astype(int).astype(str)
    days = w["days_left"].astype(str)
    closed = w["days_left"] <= 0
    return pd.Series(np.select(
        [w["status"] == "blocked", (w["status"] == "needs minutes") & closed, w["status"] == "needs minutes", w["status"] == "ready to bill",
         w["status"] == "billed with problems",
         w["status"] == "billed", w["status"] == "not enrolled"],
        [w["fixes"],
         "Do not bill: the month ended " + need + " qualifying minutes short",
         "Needs " + need + " more qualifying minute" + np.where(w["minutes_needed"].fillna(0) == 1, "", "s") + " (" + days + " day"
         + np.where(w["days_left"] == 1, "", "s") + " left in the month)",
         "Bill " + w["codes_ready"],
         "Already billed; correct or void: " + w["fixes"],
         "Already billed and supported",
         "Not enrolled: " + w["fixes"]], ""), index=w.index)
