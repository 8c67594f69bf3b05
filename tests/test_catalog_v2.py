"""Rule catalog v2 (issue 11): each change with its near miss (one day, one minute, one NPI either side), on small
in-memory frames at the rule function; a few through audit() where the money is the point."""
import math

import pandas as pd
import pytest

from ccmlib.engine.pipeline import audit
from ccmlib.synth.examples import NPI, OTHER_NPI, chart, claim, entry, facts, practice
from ccmlib.engine.facts import natural_key, practitioner_visit_status
from ccmlib.engine.money import unit_values
from ccmlib.reference.data import fee_schedule
from ccmlib.engine.rules.billing import bill_01, bill_07, iv_01
from ccmlib.engine.rules.consent import cons_01, cons_02, cons_03, cons_04, cons_06
from ccmlib.engine.rules.time import cons_05, sup_01, time_03, time_06

COMPLETE = {"informed_cost_sharing": "yes", "informed_one_practitioner": "yes", "informed_right_to_stop": "yes",
            "informed_availability": "yes", "revoked_date": "", "method": "written"}


def consent(date, npi=NPI, revoked="", **kw):
    return {"patient_id": "P1", "consent_date": date, "practitioner_npi": npi, **COMPLETE, "revoked_date": revoked, **kw}


def hits(rule, c, period="2026-01"):
    return rule(facts(c, period))


def run(c, period="2026-01", **kw):
    return audit(practice(c), period=period, **kw)


# ---------------------------------------------------------------- the consent in force per practitioner
def test_another_practitioners_later_incomplete_consent_is_not_judged_for_this_one():
    c = chart()
    c["consents"] = [consent("2025-12-01"), consent("2026-01-10", npi=OTHER_NPI, informed_cost_sharing="")]
    assert hits(cons_02, c).empty
    c["consents"][1]["practitioner_npi"] = ""  # near miss: a practice-level consent covers every practitioner
    assert hits(cons_02, c)["billing_npi"].tolist() == [NPI]


def test_an_older_complete_consent_never_rescues_the_one_in_force():
    c = chart()
    c["consents"] = [consent("2025-12-01", informed_cost_sharing=""), consent("2026-01-10", npi=OTHER_NPI)]
    f = hits(cons_02, c)
    assert f["billing_npi"].tolist() == [NPI] and "cost sharing" in f["message"].iloc[0]
    res = run(c)
    assert res.claim_lines["overpayment"].tolist() == [66.13]


@pytest.mark.parametrize("date, judged", [("2026-01-31", True), ("2026-02-01", False)])
def test_consent_in_force_is_dated_on_or_before_the_reference_date(date, judged):
    c = chart()  # claim dated 2026-01-31 is the reference date
    c["consents"] = [consent("2025-12-01"), consent(date, informed_availability="")]
    assert (not hits(cons_06, c).empty) == judged


def test_cons_01_and_cons_04_per_practitioner():
    c = chart()
    c["consents"] = [consent("2025-12-01", npi=OTHER_NPI)]
    assert hits(cons_04, c)["billing_npi"].tolist() == [NPI] and hits(cons_01, c).empty
    c["consents"][0]["consent_date"] = "2026-02-01"  # near miss: dated after the reference date, so no consent at all
    assert hits(cons_01, c)["billing_npi"].tolist() == [NPI] and hits(cons_04, c).empty


@pytest.mark.parametrize("revoked, expect", [("2025-12-31", True), ("2026-01-01", False)])
def test_cons_03_when_the_latest_consent_was_revoked_even_if_an_older_one_was_not(revoked, expect):
    c = chart()
    c["consents"] = [consent("2025-06-01"), consent("2025-12-01", revoked=revoked)]
    assert (not hits(cons_03, c).empty) == expect  # the revocation month itself is still covered


def test_cons_05_excludes_time_between_revocation_month_and_new_consent():
    c = chart()
    c["consents"] = [consent("2025-06-01", revoked="2025-11-15"), consent("2026-01-10")]
    c["time_entries"] = [entry("E1", 15, date="2026-01-09"), entry("E2", 15, date="2026-01-10", start="10:00", end="10:15")]
    f = hits(cons_05, c)
    assert f["entry_id"].tolist() == ["E1"] and "revoked on 2025-11-15" in f["message"].iloc[0]
    fx = facts(c)
    assert fx.pm["qualifying_minutes"].tolist() == [15.0]  # E2, dated on the new consent, counts
    assert hits(cons_03, c).empty  # the new consent is in force


def test_initiating_visit_window_restarts_after_re_enrolment():
    c = chart()
    c["consents"] = [consent("2024-01-01", revoked="2025-06-10"), consent("2025-12-01")]
    c["encounters"] = [{"patient_id": "P1", "encounter_date": "2024-11-30", "cpt_code": "99214", "practitioner_npi": NPI}]
    f = hits(iv_01, c)
    assert f["billing_npi"].tolist() == [NPI] and "2025-12-01" in f["message"].iloc[0]
    c["encounters"][0]["encounter_date"] = "2024-12-01"  # near miss: exactly 365 days before the new commencement
    assert hits(iv_01, c).empty


def test_iv_01_with_an_empty_encounters_table_or_no_row_for_the_patient():
    c = chart()
    c["encounters"] = []
    assert hits(iv_01, c)["billing_npi"].tolist() == [NPI]
    c["encounters"] = [{"patient_id": "P2", "encounter_date": "2020-01-01", "cpt_code": "99214", "practitioner_npi": NPI}]
    assert hits(iv_01, c)["billing_npi"].tolist() == [NPI]  # an unrelated patient's row changes nothing


def test_iv_01_not_assessed_only_when_a_non_empty_table_starts_too_late():
    c = chart()
    c["encounters"] = [{"patient_id": "P1", "encounter_date": "2025-12-15", "cpt_code": "99211", "practitioner_npi": NPI}]
    fx = facts(c)
    st = practitioner_visit_status(fx)
    assert not st["visit_found"].any() and not st["covered"].any() and iv_01(fx).empty
    assert run(c).run["summary"]["iv01_not_assessed_patient_months"] == 1
    c["encounters"][0]["encounter_date"] = "2024-11-30"  # near miss: the table reaches back 365 days: IV-01 applies
    assert not hits(iv_01, c).empty


# ---------------------------------------------------------------- time
@pytest.mark.parametrize("start, end, overlap", [("09:00", "09:10", 10.0), ("09:30", "09:40", 0.0)])
def test_time_03_against_an_earlier_entry_that_does_not_qualify(start, end, overlap):
    c = chart()
    c["time_entries"].append(entry("E3", 35, date="2026-01-06", start="08:55", end="09:30", face_to_face="true"))
    c["time_entries"][0].update(start_time=start, end_time=end, minutes="10")
    fx = facts(c)
    e = fx.entries.set_index("entry_id")
    assert e.loc["E1", "overlap"] == overlap and e.loc["E1", "qualifying"] == 10 - overlap
    assert (time_03(fx)["entry_id"].tolist() == ["E1"]) == (overlap > 0)


def test_sup_01_clinical_staff_without_supervisor_still_count():
    c = chart()
    c["staff"][0]["supervising_npi"] = ""
    fx = facts(c)
    assert sorted(sup_01(fx)["entry_id"]) == ["E1", "E2"] and fx.pm["qualifying_minutes"].tolist() == [28.0]
    c["staff"][0]["supervising_npi"] = NPI
    c["staff"][2]["supervising_npi"] = ""  # near miss: a physician's own time needs no supervisor
    c["time_entries"][0]["staff_id"] = "D1"
    assert sup_01(facts(c)).empty


# ---------------------------------------------------------------- natural order
def test_natural_order_of_ids():
    ids = pd.Series(["C10", "C9", "C09b", "T100", "T9", "10", "9"])
    assert ids.iloc[natural_key(ids).argsort()].tolist() == ["9", "10", "C9", "C09b", "C10", "T9", "T100"]


@pytest.mark.parametrize("first, second", [("C9", "C10"), ("C8", "C9")])
def test_bill_01_first_practitioner_by_natural_claim_order(first, second):
    c = chart()
    c["claims"] = [claim(second, "99490", paid=66.13), claim(first, "99490", npi=OTHER_NPI, paid=66.13)]
    f = hits(bill_01, c)
    assert f["claim_id"].tolist() == [second]  # the other practitioner's claim came first in natural order


def test_overlap_tie_goes_to_the_lower_entry_id_in_natural_order():
    c = chart()
    c["time_entries"] = [entry("T10", 10, date="2026-01-06", start="09:00", end="09:10"),
                         entry("T9", 10, date="2026-01-06", start="09:00", end="09:10")]
    assert time_03(facts(c))["entry_id"].tolist() == ["T10"]


# ---------------------------------------------------------------- G0506 and G0511
def test_g0506_stands_apart_from_month_level_errors_but_falls_with_elig_01():
    c = chart()
    c["claims"].append(claim("C2", "G0506", date="2026-01-20", paid=66.47))
    c["claims"].append(claim("C3", "99214", date="2026-01-20", paid=131))
    c["care_plans"][0]["electronic"] = "false"  # CP-04: a month-level error
    cl = run(c).claim_lines.set_index("cpt_code")
    assert cl.loc["99490", "determination"] == "not_supported" and cl.loc["G0506", "determination"] == "supported"
    c["diagnoses"] = c["diagnoses"][:1]  # ELIG-01 takes G0506 down too
    cl = run(c).claim_lines.set_index("cpt_code")
    assert cl.loc["G0506", "determination"] == "not_supported"


@pytest.mark.parametrize("date, minutes, rules", [("2025-09-30", 15, {"TIME-06"}), ("2025-09-30", 25, set()),
                                                  ("2025-10-01", 25, {"BILL-07"}), ("2025-10-01", 15, {"BILL-07"})])
def test_g0511_like_99490_before_its_last_day_and_bill_07_from_the_next(date, minutes, rules):
    c = chart()
    month = date[:7]
    c["consents"][0]["consent_date"] = "2025-06-01"
    c["care_plans"][0].update(created_date="2025-06-01", shared_with_patient_date="2025-06-02")
    c["encounters"][0]["encounter_date"] = "2025-05-20"
    c["time_entries"] = [entry("E1", minutes, date=f"{month}-05")]
    c["claims"] = [claim("C1", "G0511", date=date, paid=72.90)]
    fx = facts(c, month)
    found = set(time_06(fx).assign(r="TIME-06")["r"]) | set(bill_07(fx).assign(r="BILL-07")["r"])
    assert found == rules


# ---------------------------------------------------------------- money
def _line(code="99490", date="2026-01-31", pos="", paid=None, npi=NPI):
    return pd.DataFrame({"claim_id": ["C1"], "line": [1], "billing_npi": [npi], "cpt_code": [code],
                         "service_date": [pd.Timestamp(date)], "units": [1], "paid_amount": [paid],
                         "place_of_service": [pos]}).astype({"paid_amount": "float64"})


@pytest.mark.parametrize("pos, amount, setting", [("22", 43.76, "facility"), ("11", 66.13, "non-facility"),
                                                  ("", 66.13, "non-facility"), ("2", 66.13, "non-facility")])
def test_fee_by_place_of_service(pos, amount, setting):
    fees, _ = fee_schedule()
    p = unit_values(_line(pos=pos), fees).iloc[0]
    assert p["allowed_unit"] == amount and p["fee_setting"] == setting and p["conversion_factor"] == 33.4009
    assert round(p["unit_value"], 2) == round(amount * 0.8 * 0.98, 2)  # v3: Medicare's share of the allowed amount
    assert p["price_source"] == "fee_schedule"


def test_qualifying_apm_rate_only_for_the_named_npis():
    fees, _ = fee_schedule()
    assert unit_values(_line(), fees, qp_npis=(NPI,)).iloc[0]["allowed_unit"] == 66.46
    assert unit_values(_line(), fees, qp_npis=(OTHER_NPI,)).iloc[0]["allowed_unit"] == 66.13
    assert unit_values(_line(date="2025-06-30"), fees, qp_npis=(NPI,)).iloc[0]["allowed_unit"] == 60.49  # no QP row in 2025


def test_unpriced_line_is_blank_counted_and_noted_never_zero():
    c = chart()
    c["consents"][0]["consent_date"] = "2025-06-01"
    c["encounters"][0]["encounter_date"] = "2025-05-20"
    c["care_plans"][0].update(created_date="2025-06-01", shared_with_patient_date="2025-06-02")
    c["time_entries"] = [entry("E1", 12, date="2025-09-05")]
    c["claims"] = [claim("C1", "G0511", date="2025-09-30")]  # no paid_amount; G0511 has no PFS amount
    res = run(c, period="2025-09")
    cl = res.claim_lines.iloc[0]
    assert cl["determination"] == "not_supported" and math.isnan(cl["overpayment"]) and cl["price_source"] == "unpriced"
    assert res.run["summary"]["unpriced_lines"] == 1 and res.run["summary"]["unpriced_lines_not_supported"] == 1
    assert res.data_quality["problem"].str.contains("overpayment left blank").any()
    assert math.isnan(res.findings.query("rule_id == 'TIME-06'")["amount"].iloc[0])


@pytest.mark.parametrize("day, fee", [("08", 47.15), ("09", 47.93)])
def test_rev_01_priced_on_the_date_the_missed_threshold_was_reached(day, fee):
    c = chart()
    c["consents"][0]["consent_date"] = "2024-01-01"
    c["encounters"][0]["encounter_date"] = "2023-12-20"
    c["care_plans"][0].update(created_date="2024-01-01", shared_with_patient_date="2024-01-02")
    c["time_entries"] = [entry("E1", 25, date="2024-03-01", start="09:00", end="09:25"),
                         entry("E2", 20, date=f"2024-03-{day}", start="09:00", end="09:20")]
    c["claims"] = [claim("C1", "99490", date="2024-03-31", paid=62.58)]
    res = run(c, period="2024-03")
    assert res.findings.query("rule_id == 'REV-01'")["amount"].tolist() == [fee]


def test_run_json_says_how_lines_were_priced():
    c = chart()
    c["claims"] = [claim("C1", "99490")]
    c["claims"][0]["place_of_service"] = "22"
    res = run(c)
    fs = res.run["fee_schedule"]
    assert fs["lines_by_price_source"] == {"fee_schedule": 1} and fs["fee_settings"] == {"facility": 1}
    assert fs["conversion_factors"] == [33.4009] and "bundled" in fs["table"]
    assert res.claim_lines[["fee_setting", "conversion_factor"]].iloc[0].tolist() == ["facility", 33.4009]


def test_a_locality_table_without_an_amount_is_noted_for_the_years_audited(tmp_path):
    rates = tmp_path / "rates.csv"
    rates.write_text("code,effective_from,effective_to,amount\n99490,2026-01-01,2026-12-31,70.00\n"
                     "99439,2026-01-01,2026-12-31,\n99439,2024-01-01,2024-12-31,\n")
    c = chart()
    c["claims"] = [claim("C1", "99490")]
    res = run(c, fees=rates)
    assert res.claim_lines["paid_amount"].isna().all() and res.findings.empty
    notes = res.run["fee_schedule"]["notes"]
    assert notes == ["99439 2026-01-01..2026-12-31: no amount; lines without paid_amount are unpriced"]  # not the 2024 row
    assert res.data_quality["problem"].isin(notes).any()
