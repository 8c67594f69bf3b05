"""Work the engine does once per audit, or only for the rows that use it (issue #23), gives exactly what the general
code gives: the flagged time entries fetched once for the entry rules, the lines joined to their minutes and ordered
once for TIME-06..09, span boundaries joined only for patients with a revoked consent, the fee looked up only for lines
that lack a paid or an allowed amount (and by REV-01 only for months with missed units), the visit evidence found
once. Each test compares with the general code (kept here as the oracle) frame for frame: values, dtypes, index."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ccmlib.engine import money
from ccmlib.engine.facts import PM, _covers, _month_end, initiating_visit_status, span_boundaries, visit_evidence
from ccmlib.engine.rules import load_all
from ccmlib.engine.rules.billing import in_order
from ccmlib.engine.rules.time import ENTRY_FLAGS, ENTRY_KEYS, _flagged, _lines_with_minutes
from ccmlib.reference import data as refdata
from ccmlib.reference.codes import CCM_CODES


@pytest.fixture(scope="module")
def facts():
    from ccmlib.engine.pipeline import audit
    from conftest import DEMO
    return audit(DEMO, period="2026").facts


def same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, check_exact=True, check_index_type=True)
    assert list(a.index) == list(b.index)


def test_flagged_entries_are_the_store_query_of_each_rule(facts):
    facts.memo.pop("flagged_entries", None)
    reads = ENTRY_KEYS + ["description", "staff_id", "role", "overlap", "counted_toward", "activity_date", "first_consent",
                          "revoked_date"]
    checked = 0
    for flag in [*ENTRY_FLAGS, ["x_before_consent", "x_no_consent", "x_after_revocation"], ["x_f2f", "x_counted"]]:
        for cols in (ENTRY_KEYS, reads, ENTRY_KEYS + ["x_no_consent", "x_before_consent"]):
            got = _flagged(facts, flag, cols)
            same(got, facts.entry_rows(flag, columns=cols))
            checked += len(got)
    assert checked > 0  # the demo flags entries of several kinds
    assert facts.memo["flagged_entries"][0] == (facts.store,)  # kept, and found again for another store


def test_flagged_entries_fall_back_to_the_store_for_other_flags_or_columns(facts):
    same(_flagged(facts, "x_overlap", ["patient_id", "mkey", "qualifying"]),
         facts.entry_rows("x_overlap", columns=["patient_id", "mkey", "qualifying"]))


def test_lines_with_minutes_are_the_ordered_merge_for_every_code(facts):
    facts.memo.pop("minutes_order", None)
    pm = facts.pm[["patient_id", "mkey", "qualifying_minutes", "practitioner_minutes"]]
    code_sets = [(c,) for c in CCM_CODES] + [("99490", "99439"), ("99487", "99489", "99491"), ("no-such-code",)]
    for codes in code_sets:
        want = in_order(facts.lines[facts.lines["cpt_code"].isin(codes)].merge(pm, on=["patient_id", "mkey"], how="left"))
        got = _lines_with_minutes(facts, codes)
        if len(want):
            same(got, want)
        else:  # no line of those codes: no rows, the same columns and dtypes
            assert got.empty and list(got.columns) == list(want.columns) and list(got.dtypes) == list(want.dtypes)


def _span_boundaries_all_pairs(consents, who):
    """span_boundaries joining every (patient, practitioner) pair to the patient's consents (the code before #23)."""
    pairs = who[["patient_id", "billing_npi"]].drop_duplicates().reset_index(drop=True)
    pairs = pairs.assign(_q=np.arange(len(pairs)))
    c = consents.assign(_row=consents["_line"] if "_line" in consents else np.arange(len(consents)))
    c = c[["patient_id", "consent_date", "practitioner_npi", "revoked_date", "_row"]].dropna(subset=["consent_date"])
    m = pairs.merge(c, on="patient_id")
    m = m[_covers(m["practitioner_npi"], m["billing_npi"])]
    cand = m.dropna(subset=["revoked_date"])[["_q"]].assign(b=_month_end(m["revoked_date"].dropna()).to_numpy()).drop_duplicates()
    x = cand.merge(m[["_q", "consent_date", "_row", "revoked_date"]], on="_q")
    x = x[x["consent_date"] <= x["b"]].sort_values(["_q", "b", "consent_date", "_row"], kind="mergesort").drop_duplicates(["_q", "b"], keep="last")
    x = x[x["revoked_date"].notna() & (_month_end(x["revoked_date"]) == x["b"]).to_numpy(dtype=bool)]
    out = x[["_q", "b"]].merge(pairs, on="_q").rename(columns={"b": "boundary"})
    return out[["patient_id", "billing_npi", "boundary"]].reset_index(drop=True)


def test_span_boundaries_are_those_of_every_pair(facts):
    who = facts.commencement[["patient_id", "mkey", "billing_npi"]]
    got = span_boundaries(facts.consents, who)
    assert len(got)  # the demo has revocations that end spans
    same(got, _span_boundaries_all_pairs(facts.consents, who))
    none = facts.consents.assign(revoked_date=pd.Series(pd.NaT, index=facts.consents.index, dtype="datetime64[ns]"))
    same(span_boundaries(none, who), _span_boundaries_all_pairs(none, who))


def _unit_values_every_fee(lines, fees, qp_npis=(), pricing="fee_schedule"):
    """unit_values looking the fee up for every line (the code before #23)."""
    fac = None
    if "place_of_service" in lines.columns:
        pos, uniq = pd.factorize(lines["place_of_service"])
        fac = np.append(refdata.is_facility(pd.Series(uniq, dtype=lines["place_of_service"].dtype)).to_numpy(dtype=bool), False)[pos]
    qp = lines["billing_npi"].astype("string").isin(list(qp_npis)).fillna(False).to_numpy() if len(qp_npis) else None
    fee = refdata.fee_for(lines["cpt_code"], lines["service_date"], fees, fac, qp)
    units = lines["units"].to_numpy(dtype=float)
    paid = lines["paid_amount"].to_numpy(dtype=float) / units
    allowed_given = lines["allowed_amount"].to_numpy(dtype=float) / units
    fee_amt = fee["amount"].to_numpy(dtype=float)
    if pricing == "paid_only":
        fee_amt = np.full(len(lines), np.nan)
        allowed_given = np.where(np.isnan(paid), np.nan, allowed_given)
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
                         "conversion_factor": np.where(by_fee, fee["conversion_factor"].to_numpy(), np.nan),
                         "sequestration": np.where(has_paid, np.nan, seq)}, index=lines.index)


@pytest.mark.parametrize("pricing", ["fee_schedule", "paid_only"])
def test_unit_values_look_fees_up_only_where_they_are_read(facts, pricing):
    fees, _ = refdata.fee_schedule(None)
    ln = facts.lines.copy()
    rng = np.random.default_rng(7)
    r = rng.random(len(ln))
    ln.loc[r < 0.3, "paid_amount"] = np.nan
    ln.loc[(r > 0.2) & (r < 0.5), "allowed_amount"] = np.nan
    ln.loc[rng.random(len(ln)) < 0.3, "place_of_service"] = "22"  # facility
    ln.loc[rng.random(len(ln)) < 0.1, "cpt_code"] = "99999"  # no fee at all
    npis = (str(ln["billing_npi"].iloc[0]),)
    for lines, qp in ((ln, ()), (ln, npis), (facts.lines, ()), (ln.iloc[:0], ())):
        same(money.unit_values(lines, fees, qp, pricing), _unit_values_every_fee(lines, fees, qp, pricing))
    got = money.unit_values(ln, fees, (), pricing)
    assert (got["price_source"] == ("fee_schedule" if pricing == "fee_schedule" else "unpriced")).any()


def test_rev01_prices_only_the_months_with_missed_units(facts, monkeypatch):
    from ccmlib.engine.rules import revenue

    fees, _ = refdata.fee_schedule(None)
    standing = pd.DataFrame({"patient_id": pd.Series([], dtype=object), "mkey": pd.Series([], dtype="int64"),
                             "severity": pd.Series([], dtype=object)})
    got = revenue.missed_revenue(facts, standing, facts.lines, fees)
    assert (got["missed_amount"] > 0).any()
    asked = []
    real = refdata.fee_for
    monkeypatch.setattr(refdata, "fee_for", lambda codes, *a, **k: asked.append(len(codes)) or real(codes, *a, **k))
    again = revenue.missed_revenue(facts, standing, facts.lines, fees)
    same(got, again)
    assert asked and max(asked) < len(facts.pm)  # only the months with missed units were looked up
    # the value of each month: every code's missed units at the fee in force on the date its minutes were reached
    pot, billed = money.potential_units(facts.pm, facts.lines[PM + ["cpt_code", "units"]])
    missed = (pot.drop(columns=PM) - billed.drop(columns=PM)).clip(lower=0)
    ok = got["missed_amount"] > 0
    expect = pd.Series(0.0, index=facts.pm.index)
    for c in missed.columns:
        when = revenue._threshold_date(facts.pm, c, pot[c])
        expect += missed[c] * real(pd.Series(c, index=facts.pm.index), when, fees)["amount"].fillna(0)
    assert np.array_equal(got.loc[ok, "missed_amount"].to_numpy(), expect[ok].round(2).to_numpy())


def test_visit_evidence_is_found_once_and_follows_the_facts(facts):
    who = facts.lines[["patient_id", "mkey", "billing_npi"]]
    facts.memo.pop("visits", None)
    first = initiating_visit_status(facts, who)
    cached = facts.memo["visits"]
    same(cached[1], visit_evidence(facts.encounters, facts.claims))
    same(initiating_visit_status(facts, who), first)
    assert facts.memo["visits"] is cached  # not found again
    enc = facts.encounters
    try:
        facts.encounters = enc.iloc[:0]  # other encounters: found again, from them
        status = initiating_visit_status(facts, who)
        same(facts.memo["visits"][1], visit_evidence(facts.encounters, facts.claims))
        assert status["visit_found"].sum() <= first["visit_found"].sum()
    finally:
        facts.encounters = enc
        facts.memo.pop("visits", None)


def test_every_rule_gives_the_same_findings_with_the_caches_warm(facts):
    rules = load_all()
    facts.memo.clear()
    cold = {rid: r.func(facts) for rid, r in rules.items() if r.phase == 1}
    warm = {rid: r.func(facts) for rid, r in rules.items() if r.phase == 1}
    for rid in cold:
        same(cold[rid], warm[rid])


def _ref_bill_05(f) -> pd.DataFrame:
    """BILL-05 before it found the lines' patient-months and running unit counts on integer codes."""
    from ccmlib.engine.rules.billing import TIMED, _timed_lines, minutes_needed, raw, time_family
    ln = _timed_lines(f).merge(f.pm[PM + ["pm_id"]], on=PM, how="left")
    if not len(ln):
        return raw(ln, "line", "")
    base_min = ln["cpt_code"].map({c: minutes_needed(c, 0) for c in TIMED})
    step = ln["cpt_code"].map({c: minutes_needed(c, 1) - minutes_needed(c, 0) for c in TIMED})
    ln["need"] = base_min + step * ln.groupby(PM + ["cpt_code"])["units"].cumsum()
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


@pytest.mark.parametrize("seed", [2, 9])
def test_bill_05_on_integer_codes_is_the_merge_and_group_by(seed):
    """The lines' patient-months (billing._with_pm_id) and running unit counts on integer codes give BILL-05's rows of
    before, on practices where claims are billed early and lines carry several units."""
    from ccmlib.engine.pipeline import audit
    from ccmlib.engine.rules.billing import _timed_lines, _with_pm_id, bill_05
    from ccmlib.synth.examples import practice
    from ccmlib.synth.generator import build, parse_rates
    t = build(120, "2026-01..2026-03", seed, parse_rates(["0.02", "BILL-05=0.2", "TIME-07=0.1"]), entries=(2, 6))
    t.pop("truth")
    f = audit(practice({k: v.astype(str).replace({"nan": "", "<NA>": "", "NaT": ""}).to_dict("records") for k, v in t.items()}),
              period="2026Q1").facts
    same(_with_pm_id(_timed_lines(f), f.pm), _timed_lines(f).merge(f.pm[PM + ["pm_id"]], on=PM, how="left"))
    got, want = bill_05.__wrapped__(f) if hasattr(bill_05, "__wrapped__") else bill_05(f), _ref_bill_05(f)
    same(got, want)
    assert len(want) > 0
    # ids as plain text: the merge itself
    ln = _timed_lines(f).assign(patient_id=lambda d: d["patient_id"].astype("string"))
    pm = f.pm[PM + ["pm_id"]].assign(patient_id=lambda d: d["patient_id"].astype("string"))
    same(_with_pm_id(ln, pm), ln.merge(pm, on=PM, how="left"))
