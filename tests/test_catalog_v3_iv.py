"""Rule catalog v3 (issue 24), the initiating visit and CONS-05: each change with its near miss (one day, one code, one
NPI either side) on small in-memory practices at the rule function; through audit() where run.json or the
data-quality note is the point."""
import json

import pandas as pd
import pytest

from ccmlib.engine.facts import build_facts, practitioner_visit_status
from ccmlib.engine.periods import parse_period
from ccmlib.engine.pipeline import audit
from ccmlib.engine.rules.billing import iv_01
from ccmlib.engine.rules.time import cons_05
from ccmlib.errors import InputError
from ccmlib.reference import data as refdata
from ccmlib.reference.codes import INITIATING_VISITS
from ccmlib.synth.examples import NPI, OTHER_NPI, chart, claim, entry, practice, write

COMPLETE = {"informed_cost_sharing": "yes", "informed_one_practitioner": "yes", "informed_right_to_stop": "yes",
            "informed_availability": "yes", "method": "written"}
EARLY = "2015-01-01"  # a declared visit-history start long before every window: coverage is not the point


def consent(date, npi=NPI, revoked="", patient="P1"):
    return {"patient_id": patient, "consent_date": date, "practitioner_npi": npi, **COMPLETE, "revoked_date": revoked}


def visit(date, code="99214", npi=NPI, patient="P1"):
    return {"patient_id": patient, "encounter_date": date, "cpt_code": code, "practitioner_npi": npi}


def facts(c, period="2026-01", encounters_from=EARLY):
    return build_facts(practice(c), parse_period(period), refdata.condition_map(), encounters_from)


def iv(c, period="2026-01", encounters_from=EARLY):
    return iv_01(facts(c, period, encounters_from))


def status(c, period="2026-01", encounters_from=EARLY):
    st = practitioner_visit_status(facts(c, period, encounters_from))
    assert len(st) == 1
    return st.iloc[0]


def commencement(c, period="2026-01", npi=NPI):
    f = facts(c, period)
    cm = f.commencement[f.commencement["billing_npi"].astype("string") == npi]
    assert len(cm) == 1
    return cm["commencement"].iloc[0].strftime("%Y-%m-%d")


def month_chart(day):
    """The seed chart moved so that consent, the CCM claim and the time fall on ``day`` (commencement = ``day``)."""
    c = chart()
    c["consents"] = [consent(day)]
    c["care_plans"][0].update(created_date=day, shared_with_patient_date=day)
    c["claims"] = [claim("C1", "99490", date=day, paid=66.13)]
    c["time_entries"] = [entry("E1", 25, date=day)]
    return c


# ---------------------------------------------------------------- the visit codes are reference data
def test_visit_codes_come_from_the_reference_table_and_the_old_name_still_works():
    table = refdata.initiating_visits()
    assert set(table["code"]) == INITIATING_VISITS
    for code in ("99202", "99205", "99212", "99215", "99341", "99345", "99347", "99350", "G0438", "G0439", "G0402", "99495",
                 "99496", "G0466", "G0467", "G0468"):
        assert code in INITIATING_VISITS
    for code in ("99211", "99201", "99346", "99340", "G0465", "G0469", "99490"):  # near misses: one code either side
        assert code not in INITIATING_VISITS


# ---------------------------------------------------------------- calendar-year window
@pytest.mark.parametrize("visit_date, raised", [("2025-02-28", False), ("2025-02-27", True), ("2026-02-28", False), ("2026-03-01", True)])
def test_window_is_the_calendar_year_up_to_and_including_commencement(visit_date, raised):
    c = month_chart("2026-02-28")
    c["encounters"] = [visit(visit_date)]
    assert (not iv(c, "2026-02").empty) == raised


@pytest.mark.parametrize("visit_date, raised", [("2023-03-01", False), ("2023-02-28", True)])
def test_a_calendar_year_is_not_365_days_across_february_29(visit_date, raised):
    c = month_chart("2024-03-01")  # 365 days before is 2023-03-02; the same calendar date a year before is 2023-03-01
    c["encounters"] = [visit(visit_date)]
    assert (not iv(c, "2024-03").empty) == raised


@pytest.mark.parametrize("visit_date, raised", [("2027-02-28", False), ("2027-02-27", True)])
def test_a_year_before_february_29_begins_on_february_28(visit_date, raised):
    c = month_chart("2028-02-29")  # the choice: February 29 has no date a year before; the window begins on Feb 28
    c["encounters"] = [visit(visit_date)]
    assert (not iv(c, "2028-02").empty) == raised


# ---------------------------------------------------------------- span boundary: the end of the revocation month
@pytest.mark.parametrize("old_claim, comm", [("2025-10-31", "2025-12-01"), ("2025-11-01", "2025-11-01")])
def test_a_claim_in_the_revocation_month_belongs_to_the_old_span(old_claim, comm):
    c = chart()
    c["consents"] = [consent("2025-01-01", revoked="2025-10-10"), consent("2025-12-01")]
    c["claims"].append(claim("C0", "99490", date=old_claim, paid=66.13))
    c["encounters"] = [visit("2024-11-15")]  # in the window of a 2025-11-01 commencement, not of 2025-12-01
    assert commencement(c) == comm
    assert iv(c).empty == (comm == "2025-11-01")


@pytest.mark.parametrize("new_consent, comm", [("2025-10-31", "2025-01-01"), ("2025-11-01", "2025-11-01")])
def test_a_consent_in_the_revocation_month_means_coverage_never_lapsed(new_consent, comm):
    c = chart()
    c["consents"] = [consent("2025-01-01", revoked="2025-10-10"), consent(new_consent)]
    c["claims"].append(claim("C0", "99490", date="2025-11-28", paid=66.13))  # after the month: would start a new span
    assert commencement(c) == comm


@pytest.mark.parametrize("revoked_npi, comm", [(OTHER_NPI, "2025-01-01"), (NPI, "2026-01-31"), ("", "2026-01-31")])
def test_only_a_revocation_of_a_consent_covering_the_practitioner_restarts_its_span(revoked_npi, comm):
    c = chart()  # NPI's own consent of 2025-01-01; a later consent revoked in June, given to another practitioner, to
    # NPI itself, or to the practice (blank practitioner_npi: it covers NPI)
    c["consents"] = [consent("2025-01-01"), consent("2025-03-01", npi=revoked_npi, revoked="2025-06-10")]
    c["encounters"] = [visit("2024-06-01")]  # in the window of the first commencement only
    assert commencement(c) == comm
    assert iv(c).empty == (comm == "2025-01-01")


# ---------------------------------------------------------------- visits on the claims table
@pytest.mark.parametrize("npi, raised", [(NPI, False), (OTHER_NPI, True)])
def test_a_visit_only_on_the_claims_table_counts_when_billed_by_the_practitioner(npi, raised):
    c = chart()
    c["encounters"] = [visit("2020-01-01", patient="P2")]  # the table has no row for P1
    c["claims"].append(claim("C0", "99214", date="2025-11-20", npi=npi, paid=131.00))
    assert (not iv(c, encounters_from=None).empty) == raised


@pytest.mark.parametrize("code, raised", [("99212", False), ("99211", True), ("99344", False), ("99346", True), ("G0467", False),
                                          ("99495", False)])
def test_qualifying_codes_99211_does_not_and_home_and_fqhc_visits_do(code, raised):
    c = chart()
    c["encounters"] = [visit("2025-11-20", code=code)]
    assert (not iv(c).empty) == raised


# ---------------------------------------------------------------- visit-history coverage: one start for the whole data
def test_no_encounter_rows_and_a_history_that_begins_after_the_window_begins_is_not_assessed():
    c = chart()  # commencement 2025-12-01: its window begins 2024-12-01
    c["encounters"] = [visit("2024-12-02", patient="P2")]  # the history begins one day after the window does
    st = status(c, encounters_from=None)
    assert not st["visit_found"] and not st["covered"] and iv(c, encounters_from=None).empty
    c["encounters"] = [visit("2024-12-01", patient="P2")]  # near miss: it begins on the window's first day
    assert iv(c, encounters_from=None)["billing_npi"].tolist() == [NPI]


def test_a_patient_with_encounter_rows_whose_window_begins_before_the_start_is_not_assessed():
    c = chart()
    c["encounters"] = [visit("2025-06-01", code="99211")]  # the patient's own row, not a qualifying visit
    assert not status(c, encounters_from=None)["covered"] and iv(c, encounters_from=None).empty
    c["encounters"].append(visit("2024-12-01", code="99211", patient="P2"))  # near miss: another patient's row starts it earlier
    assert iv(c, encounters_from=None)["billing_npi"].tolist() == [NPI]


@pytest.mark.parametrize("declared, raised", [("2024-12-01", True), ("2024-12-02", False)])
def test_a_declared_start_overrides_the_derived_one(declared, raised):
    c = chart()
    c["encounters"] = [visit("2025-06-01", code="99211")]  # derived start 2025-06-01: not assessed
    assert (not iv(c, encounters_from=declared).empty) == raised


def test_a_declared_start_with_an_empty_table():
    c = chart()
    c["encounters"] = []
    assert iv(c, encounters_from=None)["billing_npi"].tolist() == [NPI]  # no start at all: evidence of no visit
    assert iv(c, encounters_from="2025-01-01").empty  # declared after the window begins: not assessed
    assert iv(c, encounters_from="2024-12-01")["billing_npi"].tolist() == [NPI]


def test_an_empty_table_with_a_visit_claim_derives_the_start_from_the_claim():
    c = chart()
    c["encounters"] = []
    c["claims"].append(claim("C9", "99214", date="2025-06-01", patient="P2", paid=131.00))
    f = facts(c, encounters_from=None)
    assert f.visits_from == pd.Timestamp("2025-06-01") and f.visits_from_source == "derived" and iv_01(f).empty
    c["claims"][-1]["cpt_code"] = "99211"  # near miss: not a qualifying visit line, so no start: IV-01 applies
    f = facts(c, encounters_from=None)
    assert pd.isna(f.visits_from) and f.visits_from_source == "none" and len(iv_01(f)) == 1


def test_not_assessed_is_noted_counted_and_the_start_recorded_in_run_json():
    c = chart()
    c["encounters"] = [visit("2025-06-01", code="99211")]
    res = audit(practice(c), period="2026-01")
    assert res.run["summary"]["iv01_not_assessed_patient_months"] == 1
    assert res.run["visit_history"] == {"start": "2025-06-01", "source": "derived", "declared_by": None}
    note = res.data_quality[res.data_quality["problem"].str.contains("IV-01 not assessed")]["problem"].tolist()
    assert len(note) == 1 and "begins on 2025-06-01" in note[0] and "(2024-12-01)" in note[0]
    res = audit(practice(c), period="2026-01", encounters_from="2024-12-01")
    assert res.run["summary"]["iv01_not_assessed_patient_months"] == 0 and "IV-01" in set(res.findings["rule_id"])
    assert res.run["visit_history"] == {"start": "2024-12-01", "source": "declared", "declared_by": "--encounters-from"}


def test_encounters_from_in_mapping_yml_and_the_option_over_it(tmp_path):
    c = chart()
    c["encounters"] = [visit("2025-06-01", code="99211")]
    folder = write(c, tmp_path / "practice")
    (folder / "mapping.yml").write_text("encounters_from: 2024-12-01\n", encoding="utf-8")
    res = audit(folder, period="2026-01")
    assert res.run["visit_history"] == {"start": "2024-12-01", "source": "declared", "declared_by": "mapping.yml"}
    assert "IV-01" in set(res.findings["rule_id"])
    res = audit(folder, period="2026-01", encounters_from="2024-12-02")  # the option wins: not assessed
    assert res.run["visit_history"]["declared_by"] == "--encounters-from" and "IV-01" not in set(res.findings["rule_id"])
    (folder / "mapping.yml").write_text("encounters_from: 12/01/2024\n", encoding="utf-8")
    with pytest.raises(InputError, match="encounters_from"):
        audit(folder, period="2026-01")


def test_a_missing_encounters_table_means_iv_01_did_not_run():
    c = chart()
    c["encounters"] = None
    res = audit(practice(c), period="2026-01")
    st = {r["rule_id"]: r for r in res.run["rules"]}
    assert st["IV-01"]["status"] == "not_run" and res.run["summary"]["iv01_not_assessed_patient_months"] == 0


def test_check_takes_encounters_from(tmp_path):
    from click.testing import CliRunner

    from ccmlib.cli import main

    c = chart()
    c["encounters"] = [visit("2025-06-01", code="99211")]
    folder = write(c, tmp_path / "practice")
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["check", str(folder), "--out", str(out), "--period", "2026-01", "--encounters-from", "2024-12-01",
                                  "--quiet"])
    assert r.exit_code == 0, r.output
    run = json.loads((out / "run.json").read_text())
    assert run["visit_history"]["start"] == "2024-12-01" and run["summary"]["iv01_not_assessed_patient_months"] == 0
    r = CliRunner().invoke(main, ["check", str(folder), "--out", str(tmp_path / "out2"), "--encounters-from", "2024-13-01"])
    assert r.exit_code == 2 and "--encounters-from" in r.output


# ---------------------------------------------------------------- CONS-05: the consent in force for the month's practitioner
@pytest.mark.parametrize("revoked_npi, excluded", [(OTHER_NPI, False), (NPI, True), ("", True)])
def test_cons_05_another_practitioners_revoked_consent_does_not_exclude_this_ones_time(revoked_npi, excluded):
    c = chart()  # billed by NPI in January; NPI's consent of 2025-06-01 is not revoked
    c["consents"] = [consent("2025-06-01"), consent("2025-09-01", npi=revoked_npi, revoked="2025-10-15")]
    f = facts(c)
    assert sorted(cons_05(f)["entry_id"]) == (["E1", "E2"] if excluded else [])
    assert f.pm["qualifying_minutes"].tolist() == [0.0 if excluded else 28.0]


@pytest.mark.parametrize("billed, excluded", [(True, False), (False, True)])
def test_cons_05_an_unbilled_month_is_judged_for_the_latest_consents_practitioner(billed, excluded):
    c = chart()
    c["consents"] = [consent("2025-06-01"), consent("2025-09-01", npi=OTHER_NPI, revoked="2025-10-15")]
    if not billed:
        c["claims"] = []  # no CCM claim: the latest consent (OTHER_NPI's, revoked) is the one judged
    assert (not cons_05(facts(c)).empty) == excluded


@pytest.mark.parametrize("revoked, excluded", [("", False), ("2025-10-15", True)])
def test_cons_05_when_no_consent_covers_the_practitioner_the_latest_consent_is_judged(revoked, excluded):
    c = chart()
    c["consents"] = [consent("2025-06-01", npi=OTHER_NPI, revoked=revoked)]  # CONS-04's case for NPI
    assert (not cons_05(facts(c)).empty) == excluded


@pytest.mark.parametrize("day, excluded", [("2025-12-31", False), ("2026-01-01", True)])
def test_cons_05_coverage_ends_with_the_revocation_month(day, excluded):
    c = chart()
    c["consents"] = [consent("2025-06-01", revoked="2025-12-15")]
    c["time_entries"] = [entry("E1", 10, date=day)]
    c["claims"] = [claim("C1", "99490", date="2026-01-31", paid=66.13)]
    assert (cons_05(facts(c, day[:7]))["entry_id"].tolist() == ["E1"]) == excluded


# ---------------------------------------------------------------- the generator's v3 initiating-visit shapes
@pytest.mark.parametrize("encounters", [True, False])
def test_generator_writes_visits_on_claims_and_a_late_history_and_its_truth_holds(encounters):
    from ccmlib.synth.generator import build, parse_rates

    t = build(300, "2026-01..2026-04", 12, parse_rates(["0.03"]), with_encounters=encounters)
    truth = t.pop("truth")
    res = audit(practice({k: v.astype(str).replace({"nan": ""}).to_dict("records") for k, v in t.items()}))
    visits = t["claims"][t["claims"]["cpt_code"].isin(list(INITIATING_VISITS))]
    iv_truth = truth[truth["rule_id"] == "IV-01"][["patient_id", "service_month"]]
    iv_found = res.findings[res.findings["rule_id"] == "IV-01"][["patient_id", "service_month"]].drop_duplicates()
    assert len(iv_truth) and iv_truth.merge(iv_found).shape[0] == len(iv_truth) == len(iv_found)
    if encounters:
        only_on_claims = set(visits["patient_id"]) - set(t["encounters"]["patient_id"])
        assert len(only_on_claims) >= 10 and (visits["service_date"] < "2026-01-01").any()  # some before the period
        first = t["encounters"]["encounter_date"].min()
        assert res.run["visit_history"] == {"start": min(first, visits["service_date"].min()), "source": "derived", "declared_by": None}
        assert res.run["summary"]["iv01_not_assessed_patient_months"] > 0  # the history starts after some windows begin
    else:  # no visit evidence at all: IV-01 in every billed month, nothing not assessed
        assert t["encounters"].empty and visits.empty and res.run["visit_history"]["source"] == "none"
        assert res.run["summary"]["iv01_not_assessed_patient_months"] == 0
        billed = res.claim_lines[["patient_id", "service_month"]].drop_duplicates()
        assert len(iv_found) == len(billed)


def test_the_report_audits_with_the_declared_start(tmp_path):
    from click.testing import CliRunner

    from ccmlib.cli import main
    from ccmlib.report.quarterly import audit_for_report

    c = chart()
    c["encounters"] = [visit("2025-06-01", code="99211")]
    folder = write(c, tmp_path / "practice")
    res = audit_for_report(folder, "2026Q1", tmp_path / "audit", encounters_from="2024-12-01")
    run = json.loads((tmp_path / "audit" / "run.json").read_text())
    assert run["visit_history"] == {"start": "2024-12-01", "source": "declared", "declared_by": "--encounters-from"}
    assert "IV-01" in set(res.findings["rule_id"])
    r = CliRunner().invoke(main, ["report", str(folder), "--period", "2026Q1", "--out", str(tmp_path / "rep"),
                                  "--encounters-from", "01/12/2024"])
    assert r.exit_code == 2 and "--encounters-from" in r.output and not (tmp_path / "rep").exists()
