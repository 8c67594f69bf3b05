"""Dollars: supported units per claim line, overpayment, per-finding amounts and missed revenue."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ccmlib.reference import data as refdata
from ccmlib.reference.codes import ADDON_OF_BASE, BASE_CODES, CCM_CODES, PFS_TIME_CODES, TIME_RULES, TIMED_CODES, addon_units, time_family
from ccmlib.engine.facts import PM

LINE_KEY = ["claim_id", "line"]
#: determinations of a line whose documentation does not support what was paid (a denied line was not paid)
NOT_SUPPORTED = ("partially_supported", "not_supported")


def unit_values(lines: pd.DataFrame, fees: pd.DataFrame, qp_npis=(), pricing: str = "fee_schedule") -> pd.DataFrame:
    """How each line is priced, per unit (the one pricing function: money, REV-01, the pre-bill and the trainer use it).

    - ``unit_value``: Medicare's share, paid_amount / units when paid_amount is given, else the allowed amount x 0.80 x
      (1 - the sequestration in force on the service date);
    - ``cost_unit``: the patient's share, (allowed_amount - paid_amount) / units when both are given, else 0.20 x the
      fee-schedule amount (an estimate);
    - ``allowed_unit``: allowed_amount / units when given, else the fee in force on the service date for the line's
      setting (facility by place of service; the QP row for a qualifying APM participant);
    - ``price_source`` (paid_amount, fee_schedule or unpriced) and ``price_basis`` (paid, fee, unpriced), ``fee_setting``
      and ``conversion_factor`` (of the fee row, when the fee schedule priced the line), ``sequestration``.

    ``pricing="paid_only"`` (a profile's pricing source, e.g. medicare-advantage): paid_amount is the only price; a line
    without it is unpriced (never fee-priced), and cost sharing comes only from allowed_amount - paid_amount."""
    fac = refdata.is_facility(lines["place_of_service"]) if "place_of_service" in lines.columns else None
    qp = lines["billing_npi"].astype("string").isin(list(qp_npis)).fillna(False).to_numpy() if len(qp_npis) else None
    fee = refdata.fee_for(lines["cpt_code"], lines["service_date"], fees, fac, qp)
    units = lines["units"].to_numpy(dtype=float)
    paid = (lines["paid_amount"].to_numpy(dtype=float) / units)
    allowed_given = (lines["allowed_amount"].to_numpy(dtype=float) / units) if "allowed_amount" in lines.columns else np.full(len(lines), np.nan)
    fee_amt = fee["amount"].to_numpy(dtype=float)
    if pricing == "paid_only":  # the plan's own payment is the only price: no fee schedule, no price from allowed alone
        fee_amt = np.full(len(lines), np.nan)
        allowed_given = np.where(np.isnan(paid), np.nan, allowed_given)
    seq = refdata.sequestration_rate(lines["service_date"])
    has_paid, has_fee, has_allowed = ~np.isnan(paid), ~np.isnan(fee_amt), ~np.isnan(allowed_given)
    allowed = np.where(has_allowed, allowed_given, fee_amt)
    value = np.where(has_paid, paid, allowed * refdata.MEDICARE_SHARE * (1 - seq))
    cost = np.where(has_paid & has_allowed, np.maximum(allowed_given - paid, 0.0), fee_amt * (1 - refdata.MEDICARE_SHARE))
    cost = np.where(~has_paid & has_allowed, allowed_given * (1 - refdata.MEDICARE_SHARE), cost)
    source = np.select([has_paid, has_fee | has_allowed], ["paid_amount", "fee_schedule"], "unpriced")
    basis = np.select([has_paid, has_fee | has_allowed], ["paid", "fee"], "unpriced")
    by_fee = ~has_paid & has_fee
    return pd.DataFrame({"unit_value": value, "cost_unit": cost, "allowed_unit": allowed, "price_source": source, "price_basis": basis,
                         "fee_setting": np.where(by_fee, fee["setting"].to_numpy(), ""),
                         "conversion_factor": np.where(by_fee, fee["conversion_factor"].to_numpy(), np.nan),
                         "sequestration": np.where(has_paid, np.nan, seq)}, index=lines.index)


def expand_effects(findings: pd.DataFrame, lines: pd.DataFrame) -> pd.DataFrame:
    """(fid, claim_id, line, units_removed) for every error finding, add-ons of a fully removed base included."""
    from ccmlib.engine.rules.registry import rule_ids  # the rules import this module

    err = findings[findings["severity"] == "error"]
    ln = lines[PM + LINE_KEY + ["billing_npi", "cpt_code", "units"]]
    timed = ln["cpt_code"].isin(TIMED_CODES).to_numpy()
    parts = []
    # month-level errors take down the time-based lines; G0506 falls only with ELIG-01 (or its own BILL-06 line finding)
    pm = err[err["scope"] == "pm"][["fid", "rule_id", *PM]].merge(ln, on=PM)
    pm = pm[pm["cpt_code"].isin(TIMED_CODES) | pm["rule_id"].isin(rule_ids("takes_every_line"))].drop(columns="rule_id")
    parts.append(pm.assign(units_removed=pm["units"]))
    npi = err[err["scope"] == "npi"][["fid", *PM, "billing_npi"]].merge(ln[timed], on=PM + ["billing_npi"])
    parts.append(npi.assign(units_removed=npi["units"]))
    li = err[err["scope"] == "line"][["fid", *LINE_KEY, "units_removed"]].merge(ln, on=LINE_KEY)
    parts.append(li)
    # a time-entry finding a profile raises to error (SUP-01, DOC-02): the month's time-based lines its minutes count
    # toward (reach, set by profiles.apply: staff codes for clinical staff, every time code for a practitioner)
    if "reach" in err.columns:
        ent = err[(err["scope"] == "entry") & err["reach"].isin(["staff", "all"])][["fid", "reach", *PM]].merge(ln[timed], on=PM)
        ent = ent[(ent["reach"] == "all") | (ent["cpt_code"].map(time_family) == "staff")].drop(columns="reach")
        parts.append(ent.assign(units_removed=ent["units"]))
    # an auditor's defect on a whole patient-month (chart review): none of the month's lines is supported
    every = err[err["scope"] == "pm_all"][["fid", *PM]].merge(ln, on=PM)
    parts.append(every.assign(units_removed=every["units"]))
    eff = pd.concat(parts, ignore_index=True)[["fid", *PM, *LINE_KEY, "billing_npi", "cpt_code", "units", "units_removed"]]
    # a finding that removes every unit of a base code for a practitioner's month also sinks the add-ons
    base = eff[eff["cpt_code"].isin(BASE_CODES)].groupby(["fid", *PM, "billing_npi", "cpt_code"])["units_removed"].sum().reset_index()
    billed = ln[ln["cpt_code"].isin(BASE_CODES)].groupby([*PM, "billing_npi", "cpt_code"])["units"].sum().rename("billed").reset_index()
    base = base.merge(billed, on=[*PM, "billing_npi", "cpt_code"])
    gone = base[base["units_removed"] >= base["billed"]].assign(addon=lambda d: d["cpt_code"].map(ADDON_OF_BASE))
    casc = gone[["fid", *PM, "billing_npi", "addon"]].merge(ln.rename(columns={"cpt_code": "addon"}), on=[*PM, "billing_npi", "addon"])
    casc = casc.rename(columns={"addon": "cpt_code"}).assign(units_removed=lambda d: d["units"])
    eff = pd.concat([eff, casc[eff.columns]], ignore_index=True)
    eff["units_removed"] = np.minimum(eff["units_removed"].astype("int64"), eff["units"].astype("int64"))
    return eff.groupby(["fid", *LINE_KEY], sort=False, as_index=False).agg({**{c: "first" for c in (*PM, "billing_npi", "cpt_code", "units")}, "units_removed": "max"})


def settle_lines(lines: pd.DataFrame, effects: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    """units_supported, overpayment and determination per CCM line. An unpriced line with unsupported units has a
    blank (NaN) overpayment, never a silent 0."""
    out = lines.copy()
    removed = effects.groupby(LINE_KEY)["units_removed"].max().rename("removed").reset_index()
    out = out.merge(removed, on=LINE_KEY, how="left")
    for c in prices.columns:
        out[c] = prices[c].to_numpy()
    out["units_supported"] = (out["units"] - out["removed"].fillna(0)).clip(lower=0).astype("int64")
    # an add-on is never supported when no unit of its base is supported for that practitioner's month
    base_ok = out[out["cpt_code"].isin(BASE_CODES)].groupby([*PM, "billing_npi", "cpt_code"])["units_supported"].sum()
    base_ok = base_ok.rename("base_supported").reset_index().assign(cpt_code=lambda d: d["cpt_code"].map(ADDON_OF_BASE))
    out = out.merge(base_ok, on=[*PM, "billing_npi", "cpt_code"], how="left")
    is_addon = out["cpt_code"].isin(ADDON_OF_BASE.values())
    out.loc[is_addon & (out["base_supported"].fillna(0) <= 0), "units_supported"] = 0
    short = out["units"] - out["units_supported"]
    denied = (out["paid_amount"] == 0).fillna(False).to_numpy()  # BILL-08: denied by the payer, nothing to refund
    for col, per_unit in (("overpayment", "unit_value"), ("cost_sharing", "cost_unit"), ("allowed_unsupported", "allowed_unit")):
        out[col] = (short * out[per_unit]).where(short > 0, 0.0).where(~denied, 0.0).round(2)
    out["determination"] = np.select([denied, out["units_supported"] >= out["units"], out["units_supported"] > 0],
                                     ["denied", "supported", "partially_supported"], "not_supported")
    return out.drop(columns=["removed", "base_supported"])


def potential_units(pm: pd.DataFrame, billed: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(units each patient-month's qualifying minutes support, units billed), per code, in the code family billed
    (99490 when none).

    Complex CCM (99487) is never proposed for an unbilled month: it needs medical decision-making that
    time logs cannot show.
    """
    fam = billed.pivot_table(index=PM, columns="cpt_code", values="units", aggfunc="sum", fill_value=0)
    fam = fam.reindex(columns=list(PFS_TIME_CODES), fill_value=0)
    p = pm[PM + ["qualifying_minutes", "practitioner_minutes"]].merge(fam.reset_index(), on=PM, how="left").fillna(0)
    m, pm_ = p["qualifying_minutes"], p["practitioner_minutes"]
    complex_ = p["99487"] > 0
    prac = (p["99491"] > 0) & ~complex_
    staff = ~complex_ & ~prac
    pot = pd.DataFrame({c: 0 for c in fam.columns}, index=p.index)
    for base, who, minutes in (("99490", staff, m), ("99487", complex_, m), ("99491", prac, pm_)):
        first = TIME_RULES[base][1]
        pot[base] = np.where(who & (minutes >= first), 1, 0)
        pot[ADDON_OF_BASE[base]] = np.where(who, addon_units(minutes, base), 0)
    return pd.concat([p[PM], pot.astype("int64")], axis=1), p[PM + list(fam.columns)].astype({c: "int64" for c in fam.columns})


def codes_label(units: pd.DataFrame) -> pd.Series:
    """'99490+99439x2' from a frame of unit counts per code column (CCM order). Labels are built once per
    distinct combination of counts (a handful), then mapped back to the rows."""
    cols = [c for c in CCM_CODES if c in units.columns]
    if not len(units) or not cols:
        return pd.Series("", index=units.index, dtype="object")
    counts = units[cols].fillna(0).to_numpy(dtype="int64").clip(0, 999)
    key = (counts * (1000 ** np.arange(len(cols)))).sum(axis=1)  # one integer per combination of counts
    uniq, first, combo = np.unique(key, return_index=True, return_inverse=True)
    labels = np.array(["+".join(c if u == 1 else f"{c}x{u}" for c, u in zip(cols, counts[i]) if u > 0) for i in first], dtype=object)
    return pd.Series(labels[combo], index=units.index)
