"""Dollars: supported units per claim line, overpayment, per-finding amounts and missed revenue."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ccmlib.reference import data as refdata
from ccmlib.reference.codes import ADDON_OF_BASE, BASE_CODES, CCM_CODES, PFS_TIME_CODES, TIME_RULES, TIMED_CODES, addon_units, time_family
from ccmlib.engine.facts import PM
from ccmlib.intake.fastops import sort_ranks

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
    fac = None
    if "place_of_service" in lines.columns:  # judged once per distinct place of service
        pos, uniq = pd.factorize(lines["place_of_service"])
        fac = np.append(refdata.is_facility(pd.Series(uniq, dtype=lines["place_of_service"].dtype)).to_numpy(dtype=bool), False)[pos]
    qp = lines["billing_npi"].astype("string").isin(list(qp_npis)).fillna(False).to_numpy() if len(qp_npis) else None
    units = lines["units"].to_numpy(dtype=float)
    paid = (lines["paid_amount"].to_numpy(dtype=float) / units)
    allowed_given = (lines["allowed_amount"].to_numpy(dtype=float) / units) if "allowed_amount" in lines.columns else np.full(len(lines), np.nan)
    fee_amt, fee_cf = np.full(len(lines), np.nan), np.full(len(lines), np.nan)
    if pricing == "paid_only":  # the plan's own payment is the only price: no fee schedule, no price from allowed alone
        allowed_given = np.where(np.isnan(paid), np.nan, allowed_given)
    else:  # the fee in force is read only where a line lacks a paid or an allowed amount (nothing below reads it elsewhere)
        need = np.flatnonzero(np.isnan(paid) | np.isnan(allowed_given))
        if len(need):
            fee = refdata.fee_for(lines["cpt_code"].iloc[need], lines["service_date"].iloc[need], fees,
                                  None if fac is None else fac[need], None if qp is None else qp[need])
            fee_amt[need], fee_cf[need] = fee["amount"].to_numpy(dtype=float), fee["conversion_factor"].to_numpy(dtype=float)
    seq = refdata.sequestration_rate(lines["service_date"])
    has_paid, has_fee, has_allowed = ~np.isnan(paid), ~np.isnan(fee_amt), ~np.isnan(allowed_given)
    allowed = np.where(has_allowed, allowed_given, fee_amt)
    value = np.where(has_paid, paid, allowed * refdata.MEDICARE_SHARE * (1 - seq))
    cost = np.where(has_paid & has_allowed, np.maximum(allowed_given - paid, 0.0), fee_amt * (1 - refdata.MEDICARE_SHARE))
    cost = np.where(~has_paid & has_allowed, allowed_given * (1 - refdata.MEDICARE_SHARE), cost)
    how = np.select([has_paid, has_fee | has_allowed], [0, 1], 2)
    by_fee = ~has_paid & has_fee
    setting = np.where(by_fee, np.where(np.zeros(len(lines), dtype=bool) if fac is None else fac, 0, 1), 2)
    return pd.DataFrame({"unit_value": value, "cost_unit": cost, "allowed_unit": allowed,
                         "price_source": refdata.text_labels(how, ["paid_amount", "fee_schedule", "unpriced"]),
                         "price_basis": refdata.text_labels(how, ["paid", "fee", "unpriced"]),
                         "fee_setting": refdata.text_labels(setting, ["facility", "non-facility", ""]),
                         "conversion_factor": np.where(by_fee, fee_cf, np.nan),
                         "sequestration": np.where(has_paid, np.nan, seq)}, index=lines.index)


def _is_int(s: pd.Series) -> bool:
    return pd.api.types.is_integer_dtype(s.dtype) and not isinstance(s.dtype, pd.CategoricalDtype)


def _positions(uniq, ref) -> np.ndarray:
    """Position of each of the distinct values ``uniq`` in ``ref`` (distinct too), -1 when absent. Text against a much
    longer list is looked up by Arrow (a hash of ``uniq``, the long list probed in C++)."""
    if len(ref) > 4 * len(uniq) > 0:
        try:
            import pyarrow as pa
            import pyarrow.compute as pc

            small = pa.array(np.asarray(uniq, dtype=object), type=pa.string(), from_pandas=True)
            big = pa.array(ref.array if isinstance(ref, pd.Index) and isinstance(ref.array, pd.arrays.ArrowStringArray)
                           else np.asarray(ref, dtype=object), type=pa.string(), from_pandas=True)
            big = big.combine_chunks() if isinstance(big, pa.ChunkedArray) else big
            hit = pc.index_in(big, value_set=small).to_numpy(zero_copy_only=False)
            found = ~np.isnan(hit.astype(float))
            pos = np.full(len(uniq), -1, dtype=np.int64)
            pos[hit[found].astype(np.int64)] = np.flatnonzero(found)
            return pos
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            pass
    return pd.Index(ref).get_indexer(uniq).astype(np.int64) if len(uniq) else np.zeros(0, dtype=np.int64)


def key_codes(small: pd.Series, big: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes for a merge key: equal values get equal codes on both sides, a missing value (-1) matches a missing
    value (as ``DataFrame.merge`` does), a value absent from the other side (-2) matches nothing. A categorical side
    gives its codes as they are; the other side's distinct values alone are looked up in its categories. Integers are
    their own codes (shifted to start at 0)."""
    def cat(s):
        return isinstance(s.dtype, pd.CategoricalDtype)

    if _is_int(small) and _is_int(big):
        vs, vb = (s.to_numpy(dtype="float64", na_value=np.nan) for s in (small, big))
        both = np.concatenate([vs, vb])
        known = both[~np.isnan(both)]
        if not len(known) or (known.max() - known.min() < 2 ** 52):
            lo = known.min() if len(known) else 0.0
            return tuple(np.where(np.isnan(v), -1, v - lo).astype(np.int64) for v in (vs, vb))
    if cat(small) and cat(big) and small.cat.categories.equals(big.cat.categories):
        return small.cat.codes.to_numpy(dtype=np.int64), big.cat.codes.to_numpy(dtype=np.int64)
    if cat(small) and not cat(big):
        b, s = key_codes(big, small)
        return s, b
    if cat(big):
        bc, ref = big.cat.codes.to_numpy(dtype=np.int64), big.cat.categories
    else:
        bc, ref = pd.factorize(big)
        bc = bc.astype(np.int64)
    codes, uniq = pd.factorize(small)
    pos = _positions(uniq, ref)
    pos = np.append(np.where(pos < 0, -2, pos), -1)  # code -1 (missing) stays -1
    return pos[codes], bc


def joint_codes(codes: dict, on: list[str], dense: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One integer per row for the key columns ``on`` of both frames, from their :func:`key_codes` (``codes[col]``):
    numbered 0, 1, ... in order of first appearance (``dense``), else any non-negative integers below 2**62."""
    ns = len(codes[on[0]][0])
    both = np.zeros(ns + len(codes[on[0]][1]), dtype=np.int64)
    for i, c in enumerate(on):
        code = np.concatenate(codes[c]) + 2
        width = int(code.max(initial=0)) + 1
        if i and int(both.max(initial=0)) >= 2 ** 62 // width:
            both = pd.factorize(both)[0].astype(np.int64)  # keeps the product small, whatever the number of keys
        both = both * width + code
    if dense:
        both = pd.factorize(both)[0].astype(np.int64)
    return both[:ns], both[ns:]


def inner_pairs(lk: np.ndarray, rk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The row pairs of an inner join on integer keys in ``DataFrame.merge``'s order: the left rows in order, each with
    its matching right rows in order."""
    order = np.argsort(rk, kind="stable")
    sk = rk[order]
    lo, hi = np.searchsorted(sk, lk, "left"), np.searchsorted(sk, lk, "right")
    cnt = hi - lo
    li = np.repeat(np.arange(len(lk)), cnt)
    ri = order[np.repeat(lo - (np.cumsum(cnt) - cnt), cnt) + np.arange(int(cnt.sum()))]
    return li, ri


def expand_effects(findings: pd.DataFrame, lines: pd.DataFrame) -> pd.DataFrame:
    """(fid, claim_id, line, units_removed) for every error finding, add-ons of a fully removed base included.

    Worked out on row positions and integer keys (the findings' keys are looked up in the lines' codes once), in the
    order and with the values of the merges it stands for: a finding's lines in the lines' order, findings of scope
    pm, npi, line, entry, pm_all, then the add-ons of the bases a finding removed entirely, one row per (finding, claim
    line) in order of first appearance."""
    from ccmlib.engine.rules.registry import rule_ids  # the rules import this module

    err = findings[(findings["severity"] == "error").to_numpy()]
    ln = lines[PM + LINE_KEY + ["billing_npi", "cpt_code", "units"]]
    cpt = ln["cpt_code"]
    cpt_codes, cpt_uniq = pd.factorize(cpt)
    in_set = lambda codes: np.isin(cpt_codes, [i for i, c in enumerate(cpt_uniq) if c in codes])  # noqa: E731
    timed, is_base = in_set(TIMED_CODES), in_set(BASE_CODES)
    staff = in_set({c for c in cpt_uniq if c in TIMED_CODES and time_family(c) == "staff"})
    units = ln["units"].to_numpy(dtype=np.int64)
    scope = err["scope"].to_numpy()
    codes = {c: key_codes(err[c], ln[c]) for c in (*PM, "billing_npi", *LINE_KEY)}
    ek_pm, lk_pm = joint_codes(codes, PM, dense=False)
    timed_at = np.flatnonzero(timed)
    F, J, U = [], [], []  # finding position in err, line position in ln, units removed

    def part(rows, ek, lk, on_lines=None, keep=None, removed=None):
        sel = np.flatnonzero(rows)
        li, ri = inner_pairs(ek[sel], lk if on_lines is None else lk[on_lines])
        f, j = sel[li], (ri if on_lines is None else on_lines[ri])
        k = np.ones(len(f), dtype=bool) if keep is None else keep(f, j)
        F.append(f[k]), J.append(j[k]), U.append(units[j[k]] if removed is None else removed[f[k]])

    # month-level errors take down the time-based lines; G0506 falls only with ELIG-01 (or its own BILL-06 line finding)
    every_line = err["rule_id"].isin(rule_ids("takes_every_line")).to_numpy()
    part(scope == "pm", ek_pm, lk_pm, keep=lambda f, j: timed[j] | every_line[f])
    ek_npi, lk_npi = joint_codes(codes, PM + ["billing_npi"], dense=False)
    part(scope == "npi", ek_npi, lk_npi, on_lines=timed_at)
    ek_line, lk_line = joint_codes(codes, LINE_KEY, dense=False)
    part(scope == "line", ek_line, lk_line, removed=err["units_removed"].to_numpy())
    # a time-entry finding a profile raises to error (SUP-01, DOC-02): the month's time-based lines its minutes count
    # toward (reach, set by profiles.apply: staff codes for clinical staff, every time code for a practitioner)
    if "reach" in err.columns:
        reach = err["reach"].to_numpy()
        part((scope == "entry") & err["reach"].isin(["staff", "all"]).to_numpy(), ek_pm, lk_pm, on_lines=timed_at,
             keep=lambda f, j: (reach[f] == "all") | staff[j])
    # an auditor's defect on a whole patient-month (chart review): none of the month's lines is supported
    part(scope == "pm_all", ek_pm, lk_pm)
    F, J = np.concatenate(F), np.concatenate(J)
    U = np.concatenate([np.asarray(u).astype(np.int64) for u in U])
    fid = err["fid"].to_numpy()

    # a finding that removes every unit of a base code for a practitioner's month also sinks the add-ons
    pm_npi = lk_npi if int(lk_npi.max(initial=0)) < 2 ** 40 else pd.factorize(lk_npi)[0]  # the lines' (patient, month, NPI)
    width = len(cpt_uniq) + 3
    grp = pd.factorize(pm_npi * width + cpt_codes + 2)[0]
    grp = np.where(ln[PM + ["billing_npi"]].isna().any(axis=1).to_numpy() | (cpt_codes < 0), -1, grp)  # a group-by leaves them out
    n_grp = int(grp.max(initial=-1)) + 1
    counted = is_base & (grp >= 0)
    billed = np.bincount(grp[counted], weights=units[counted], minlength=n_grp)
    b = np.flatnonzero(is_base[J] & (grp[J] >= 0))
    fb, gb = fid[F[b]].astype(np.int64), grp[J[b]]
    pair = pd.factorize(fb * (n_grp + 1) + gb)[0]
    first = np.full(int(pair.max(initial=-1)) + 1, len(pair), dtype=np.int64)
    np.minimum.at(first, pair, np.arange(len(pair)))
    removed = np.bincount(pair, weights=U[b], minlength=len(first))
    gone = first[removed >= billed[gb[first]]]
    gone_at, gone_f = J[b][gone], F[b][gone]
    # in the order of a group-by on (fid, patient_id, mkey, billing_npi, cpt_code)
    order = np.lexsort((sort_ranks(cpt)[gone_at], sort_ranks(ln["billing_npi"])[gone_at], sort_ranks(ln["mkey"])[gone_at],
                        sort_ranks(ln["patient_id"])[gone_at], fid[gone_f]))
    gone_at, gone_f = gone_at[order], gone_f[order]
    addon_of = np.array([cpt_uniq.get_loc(ADDON_OF_BASE[c]) if ADDON_OF_BASE.get(c) in cpt_uniq else -1 for c in cpt_uniq],
                        dtype=np.int64)
    addon = addon_of[cpt_codes[gone_at]]
    li, ri = inner_pairs(np.where(addon < 0, -1, pm_npi[gone_at] * width + addon + 2), pm_npi * width + cpt_codes + 2)
    F, J = np.concatenate([F, gone_f[li]]), np.concatenate([J, ri])
    U = np.minimum(np.concatenate([U, units[ri]]), units[J])
    # one row per (finding, claim line), in order of first appearance; the first row's line, the largest removal
    claim_line = lk_line if int(lk_line.max(initial=0)) < 2 ** 31 else pd.factorize(lk_line)[0].astype(np.int64)
    ok = ~ln[LINE_KEY].isna().any(axis=1).to_numpy()[J]
    F, J, U = F[ok], J[ok], U[ok]
    g, uniq = pd.factorize(fid[F].astype(np.int64) * (int(claim_line.max(initial=0)) + 1) + claim_line[J])
    first = np.full(len(uniq), len(g), dtype=np.int64)
    np.minimum.at(first, g, np.arange(len(g)))
    most = np.full(len(uniq), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(most, g, U)
    out = ln.iloc[J[first]][LINE_KEY + PM + ["billing_npi", "cpt_code", "units"]].reset_index(drop=True)
    out.insert(0, "fid", fid[F[first]])
    out["units"] = out["units"].astype("int64")
    out["units_removed"] = most
    return out


def settle_lines(lines: pd.DataFrame, effects: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    """units_supported, overpayment and determination per CCM line. An unpriced line with unsupported units has a
    blank (NaN) overpayment, never a silent 0. Lines are matched to their effects, and add-ons to their base, on
    integer keys (see :func:`key_codes`)."""
    out = lines.reset_index(drop=True)
    # the largest removal of each line's (claim_id, line) among the effects (a missing key removes nothing)
    ek, lk = joint_codes({c: key_codes(effects[c], lines[c]) for c in LINE_KEY}, LINE_KEY)
    valid = ~effects[LINE_KEY].isna().any(axis=1).to_numpy()
    most = np.full(int(max(ek.max(initial=-1), lk.max(initial=-1))) + 1, -np.inf)
    np.maximum.at(most, ek[valid], effects["units_removed"].to_numpy(dtype=float)[valid])
    removed = most[lk]
    for c in prices.columns:
        out[c] = prices[c].array  # the same dtype, without a round trip through Python objects
    units = out["units"].to_numpy(dtype=np.int64)
    supported = np.clip(units - np.where(np.isinf(removed), 0.0, removed), 0, None).astype("int64")
    # an add-on is never supported when no unit of its base is supported for that practitioner's month
    cpt_codes, cpt_uniq = pd.factorize(out["cpt_code"])
    base_of = {a: b for b, a in ADDON_OF_BASE.items()}
    code_of = {c: i for i, c in enumerate(cpt_uniq)}
    width = len(cpt_uniq) + 1
    pm_npi = joint_codes({c: key_codes(lines[c].iloc[:0], lines[c]) for c in (*PM, "billing_npi")}, PM + ["billing_npi"])[1]
    known = ~out[[*PM, "billing_npi"]].isna().any(axis=1).to_numpy() & (cpt_codes >= 0)  # a group-by leaves out missing keys
    is_base = np.isin(cpt_codes, [code_of[c] for c in BASE_CODES if c in code_of]) & known
    target = np.array([code_of.get(base_of.get(c), -1) for c in cpt_uniq], dtype=np.int64)[cpt_codes]
    is_addon = out["cpt_code"].isin(ADDON_OF_BASE.values()).to_numpy(dtype=bool, na_value=False)
    keys, inv = np.unique(pm_npi[is_base] * width + cpt_codes[is_base], return_inverse=True)
    total = np.bincount(inv, weights=supported[is_base], minlength=len(keys))
    want = pm_npi * width + target
    pos = np.clip(np.searchsorted(keys, want), 0, max(len(keys) - 1, 0))
    found = known & (target >= 0) & (len(keys) > 0) & (keys[pos] == want if len(keys) else False)
    base_supported = np.where(found, total[pos] if len(keys) else 0.0, 0.0)
    supported[is_addon & (base_supported <= 0)] = 0
    out["units_supported"] = supported
    out["cpt_code"] = out["cpt_code"].astype(object)  # as the merge with the add-ons' bases left it
    short = out["units"] - out["units_supported"]
    denied = (out["paid_amount"] == 0).fillna(False).to_numpy()  # BILL-08: denied by the payer, nothing to refund
    for col, per_unit in (("overpayment", "unit_value"), ("cost_sharing", "cost_unit"), ("allowed_unsupported", "allowed_unit")):
        out[col] = (short * out[per_unit]).where(short > 0, 0.0).where(~denied, 0.0).round(2)
    out["determination"] = refdata.text_labels(np.select([denied, out["units_supported"] >= out["units"], out["units_supported"] > 0],
                                                         [0, 1, 2], 3), ["denied", "supported", "partially_supported", "not_supported"])
    return out


def potential_units(pm: pd.DataFrame, billed: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(units each patient-month's qualifying minutes support, units billed), per code, in the code family billed
    (99490 when none).

    Complex CCM (99487) is never proposed for an unbilled month: it needs medical decision-making that
    time logs cannot show.
    """
    codes = list(PFS_TIME_CODES)
    # the units billed per patient-month and code, summed on integer keys and spread to pm's rows
    bk, pk = joint_codes({c: key_codes(billed[c], pm[c]) for c in PM}, PM)
    cpt, cpt_uniq = pd.factorize(billed["cpt_code"])
    units = billed["units"].to_numpy(dtype=float, na_value=np.nan)
    counted = ~billed[PM].isna().any(axis=1).to_numpy() & ~np.isnan(units)  # as the pivot leaves them out
    size = int(max(bk.max(initial=-1), pk.max(initial=-1))) + 1
    p = pm[PM].reset_index(drop=True)
    fam = {}
    for c in codes:
        sel = counted & (cpt == (list(cpt_uniq).index(c) if c in cpt_uniq else -2))
        fam[c] = np.bincount(bk[sel], weights=units[sel], minlength=size).astype("int64")[pk]
    m = pd.Series(pm["qualifying_minutes"].to_numpy(dtype=float), index=p.index).fillna(0)
    pm_ = pd.Series(pm["practitioner_minutes"].to_numpy(dtype=float), index=p.index).fillna(0)
    complex_ = fam["99487"] > 0
    prac = (fam["99491"] > 0) & ~complex_
    staff = ~complex_ & ~prac
    pot = {c: np.zeros(len(pm), dtype="int64") for c in codes}
    for base, who, minutes in (("99490", staff, m), ("99487", complex_, m), ("99491", prac, pm_)):
        first = TIME_RULES[base][1]
        pot[base] = np.where(who & (minutes >= first), 1, 0).astype("int64")
        pot[ADDON_OF_BASE[base]] = np.where(who, addon_units(minutes, base), 0).astype("int64")
    return p.assign(**pot), p.assign(**fam)


def codes_label(units: pd.DataFrame) -> pd.Series:
    """'99490+99439x2' from a frame of unit counts per code column (CCM order). Labels are built once per
    distinct combination of counts (a handful), then mapped back to the rows."""
    cols = [c for c in CCM_CODES if c in units.columns]
    if not len(units) or not cols:
        return pd.Series("", index=units.index, dtype="object")
    counts = [units[c].fillna(0).to_numpy(dtype="int64").clip(0, 999) for c in cols]  # column by column: no 2-D copy
    key = np.zeros(len(units), dtype="int64")
    for c, weight in zip(counts, 1000 ** np.arange(len(cols))):
        key += c * weight  # one integer per combination of counts
    combo, uniq = pd.factorize(key)
    first = np.full(len(uniq), len(key), dtype=np.int64)
    np.minimum.at(first, combo, np.arange(len(key)))
    labels = ["+".join(c if u == 1 else f"{c}x{u}" for c, u in zip(cols, (n[i] for n in counts)) if u > 0) for i in first]
    return pd.Series(refdata.text_labels(combo, labels), index=units.index)
