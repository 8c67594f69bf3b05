"""One test per rule for the case it catches and the near-miss it must not catch."""
import itertools

import pytest
from chart import NPI, chart, claim, entry, write  # noqa: F401

from ccmlib.synth.examples import practice

from ccmlib.engine.pipeline import audit
from ccmlib.engine.rules import load_all

OTHER = "1093817465"
counter = itertools.count()


def run(t, tmp_path, period="2026-01", **kw):
    """Audit a chart in memory (typed and validated as loading would; no files): rule tests stay at the rule level."""
    return audit(practice(t), period=period, **kw)


def ids(res, severity=None):
    f = res.findings
    if severity:
        f = f[f["severity"] == severity]
    return set(f["rule_id"])


def line(res, code):
    cl = res.claim_lines
    return cl[cl["cpt_code"] == code].iloc[0]


# ----------------------------------------------------------------- the seed article's example
def test_seed_example_28_minutes_supports_99490_and_nothing_else(tmp_path):
    r = run(chart(), tmp_path)
    assert r.findings.empty
    assert r.claim_lines[["cpt_code", "units_billed", "units_supported", "overpayment", "determination"]].values.tolist() == [
        ["99490", 1, 1, 0.0, "supported"]]
    pm = r.patient_months.iloc[0]
    assert (pm["qualifying_minutes"], pm["chronic_conditions"], pm["codes_billed"], pm["codes_supported"]) == (28.0, 2, "99490", "99490")


def test_seed_example_48_minutes_supports_99490_plus_one_99439(tmp_path):
    t = chart()
    t["time_entries"].append(entry("E3", 20))
    t["claims"].append(claim("C1", "99439", line=2, paid=45.93))
    r = run(t, tmp_path)
    assert r.findings.empty
    assert r.patient_months.iloc[0]["codes_supported"] == "99490+99439"
    assert set(r.claim_lines["determination"]) == {"supported"}


# ----------------------------------------------------------------- time thresholds
@pytest.mark.parametrize("minutes,expect", [(19, True), (20, False)])
def test_time_06_19_vs_20_minutes(tmp_path, minutes, expect):
    t = chart()
    t["time_entries"] = [entry("E1", minutes - 10, date="2026-01-05"), entry("E2", 10, date="2026-01-06")]
    r = run(t, tmp_path)
    assert ("TIME-06" in ids(r)) is expect
    if expect:
        assert line(r, "99490")["determination"] == "not_supported"
        assert r.findings.query("rule_id == 'TIME-06'")["amount"].tolist() == [66.13]


@pytest.mark.parametrize("minutes,units,expect_supported", [(39, 1, 0), (40, 1, 1), (59, 2, 1), (60, 2, 2), (95, 3, 2)])
def test_time_07_add_on_units(tmp_path, minutes, units, expect_supported):
    t = chart()
    t["time_entries"] = [entry("E1", minutes, date="2026-01-05")]
    t["claims"].append(claim("C1", "99439", units=units, line=2, paid=45.93 * units))
    r = run(t, tmp_path)
    assert line(r, "99439")["units_supported"] == expect_supported
    assert ("TIME-07" in ids(r)) is (expect_supported < units)
    assert line(r, "99439")["overpayment"] == pytest.approx(45.93 * (units - expect_supported))


def test_time_08_complex_needs_60_and_30_per_add_on(tmp_path):
    t = chart()
    t["time_entries"] = [entry("E1", 89, date="2026-01-05")]
    t["claims"] = [claim("C1", "99487", paid=140.0), claim("C1", "99489", line=2, paid=78.16)]
    r = run(t, tmp_path)
    assert line(r, "99487")["determination"] == "supported"
    assert line(r, "99489")["determination"] == "not_supported"
    assert ids(r, "error") == {"TIME-08"}
    t["time_entries"] = [entry("E1", 90, date="2026-01-05")]
    assert ids(run(t, tmp_path), "error") == set()
    t["time_entries"] = [entry("E1", 59, date="2026-01-05")]
    r = run(t, tmp_path)
    assert set(r.claim_lines["determination"]) == {"not_supported"}  # the add-on falls with its base


def test_time_09_counts_only_practitioner_minutes(tmp_path):
    t = chart()
    t["time_entries"] = [entry("E1", 25, staff="D1", date="2026-01-05"), entry("E2", 20, staff="S1", date="2026-01-06")]
    t["claims"] = [claim("C1", "99491", paid=82.16)]
    r = run(t, tmp_path)
    assert "TIME-09" in ids(r)
    t["time_entries"][0]["minutes"] = "30"
    assert "TIME-09" not in ids(run(t, tmp_path))


# ----------------------------------------------------------------- time exclusions
def test_time_01_incomplete_entry_is_excluded(tmp_path):
    t = chart()
    t["time_entries"][1]["description"] = ""
    r = run(t, tmp_path)
    assert {"TIME-01", "TIME-06"} <= ids(r)
    assert r.patient_months.iloc[0]["qualifying_minutes"] == 15


def test_time_02_non_clinical_and_unknown_staff(tmp_path):
    t = chart()
    t["time_entries"] += [entry("E3", 10, staff="X1"), entry("E4", 10, staff="NOBODY")]
    r = run(t, tmp_path)
    f = r.findings.query("rule_id == 'TIME-02'")
    assert set(f["entry_id"]) == {"E3", "E4"}
    assert r.patient_months.iloc[0]["qualifying_minutes"] == 28


def test_time_03_same_nurse_two_patients_same_minute(tmp_path):
    t = chart()
    t["patients"].append({"patient_id": "P2"})
    t["time_entries"] = [entry("E1", 20, start="09:00", end="09:20", date="2026-01-05"),
                         entry("E2", 20, start="09:00", end="09:20", date="2026-01-05", patient="P2"),
                         entry("E3", 10, start="09:15", end="09:25", date="2026-01-05")]
    r = run(t, tmp_path)
    f = r.findings.query("rule_id == 'TIME-03'")
    # tie at 09:00 goes to the lower entry_id; E3 overlaps 5 minutes of E1
    assert dict(zip(f["entry_id"], f["patient_id"])) == {"E2": "P2", "E3": "P1"}
    assert r.patient_months.set_index("patient_id").loc["P1", "qualifying_minutes"] == 25


def test_time_03_back_to_back_is_not_an_overlap(tmp_path):
    t = chart()
    t["time_entries"] = [entry("E1", 10, start="09:00", end="09:10", date="2026-01-05"),
                         entry("E2", 10, start="09:10", end="09:20", date="2026-01-05", staff="S1")]
    assert "TIME-03" not in ids(run(t, tmp_path))


def test_time_04_and_05(tmp_path):
    t = chart()
    t["time_entries"] += [entry("E3", 10, face_to_face="true"), entry("E4", 10, counted_toward="99457")]
    r = run(t, tmp_path)
    assert {"TIME-04", "TIME-05"} <= ids(r)
    assert r.patient_months.iloc[0]["qualifying_minutes"] == 28


def test_cons_05_time_before_consent_excluded(tmp_path):
    t = chart()
    t["consents"][0]["consent_date"] = "2026-01-10"
    r = run(t, tmp_path)
    assert r.findings.query("rule_id == 'CONS-05'")["entry_id"].tolist() == ["E1"]
    assert "TIME-06" in ids(r)  # 13 minutes left
    t["consents"][0]["consent_date"] = "2026-01-06"  # same day counts
    assert "CONS-05" not in ids(run(t, tmp_path))


# ----------------------------------------------------------------- eligibility
def test_elig_01_two_codes_of_one_condition_are_one(tmp_path):
    t = chart()
    t["diagnoses"] = [{"patient_id": "P1", "icd10_code": "E11.9"}, {"patient_id": "P1", "icd10_code": "E11.65"},
                      {"patient_id": "P1", "icd10_code": "J06.9"}, {"patient_id": "P1", "icd10_code": "R05.9"}]
    r = run(t, tmp_path)
    assert ids(r, "error") == {"ELIG-01"}
    assert line(r, "99490")["determination"] == "not_supported"


def test_elig_01_resolved_and_future_onset_do_not_count(tmp_path):
    t = chart()
    t["diagnoses"][1].update(resolved_date="2025-12-31")
    assert "ELIG-01" in ids(run(t, tmp_path))
    t["diagnoses"][1].update(resolved_date="2026-01-01")  # resolved inside the month: still counts
    assert "ELIG-01" not in ids(run(t, tmp_path))
    t["diagnoses"][1].update(resolved_date="", onset_date="2026-02-01")
    assert "ELIG-01" in ids(run(t, tmp_path))


def test_elig_02_invalid_code_is_ignored(tmp_path):
    t = chart()
    t["diagnoses"].append({"patient_id": "P1", "icd10_code": "I10.9"})
    r = run(t, tmp_path)
    assert ids(r) == {"ELIG-02"}
    t["diagnoses"] = [t["diagnoses"][0], {"patient_id": "P1", "icd10_code": "I10.9"}]
    assert {"ELIG-01", "ELIG-02"} <= ids(run(t, tmp_path))


# ----------------------------------------------------------------- consent
def test_cons_01_no_consent_or_consent_after_service(tmp_path):
    t = chart()
    t["consents"] = [dict(t["consents"][0], consent_date="2026-02-01")]
    r = run(t, tmp_path)
    assert "CONS-01" in ids(r)
    assert r.findings.query("rule_id == 'CONS-01'")["amount"].tolist() == [66.13]


def test_cons_02_missing_disclosure(tmp_path):
    t = chart()
    t["consents"][0]["informed_right_to_stop"] = ""
    r = run(t, tmp_path)
    assert ids(r, "error") == {"CONS-02"}
    assert "right to stop" in r.findings.iloc[0]["message"]


def test_cons_03_revocation_inside_the_month_still_covers_it(tmp_path):
    t = chart()
    t["consents"][0]["revoked_date"] = "2026-01-15"
    assert "CONS-03" not in ids(run(t, tmp_path))
    t["consents"][0]["revoked_date"] = "2025-12-20"
    assert "CONS-03" in ids(run(t, tmp_path))


def test_cons_04_other_practitioner(tmp_path):
    t = chart()
    t["consents"][0]["practitioner_npi"] = OTHER
    r = run(t, tmp_path)
    assert ids(r, "error") == {"CONS-04"}
    t["consents"][0]["practitioner_npi"] = ""  # no NPI named: covers the billing practitioner
    assert ids(run(t, tmp_path), "error") == set()


def test_cons_06_availability_warning_only(tmp_path):
    t = chart()
    t["consents"][0]["informed_availability"] = "no"
    r = run(t, tmp_path)
    assert ids(r) == {"CONS-06"} and r.findings["amount"].sum() == 0
    assert line(r, "99490")["determination"] == "supported"


# ----------------------------------------------------------------- initiating visit
def test_iv_01_visit_must_be_within_365_days(tmp_path):
    t = chart()
    t["encounters"] = [dict(t["encounters"][0], encounter_date="2024-11-30"), dict(t["encounters"][0], encounter_date="2024-01-02", cpt_code="99213")]
    r = run(t, tmp_path)
    assert "IV-01" in ids(r)
    t["encounters"][0]["encounter_date"] = "2024-12-01"  # exactly 365 days before the 2025-12-01 consent
    assert "IV-01" not in ids(run(t, tmp_path))


def test_iv_01_not_guessed_when_encounters_do_not_reach_back(tmp_path):
    t = chart()
    t["encounters"] = [dict(t["encounters"][0], encounter_date="2025-12-15")]  # after commencement only
    r = run(t, tmp_path)
    assert "IV-01" not in ids(r)
    assert r.data_quality["problem"].str.contains("IV-01 not assessed").any()


def test_iv_01_visit_by_another_practitioner_does_not_count(tmp_path):
    t = chart()
    t["encounters"] = [dict(t["encounters"][0], practitioner_npi=OTHER), dict(t["encounters"][0], encounter_date="2024-01-01", cpt_code="99213")]
    assert "IV-01" in ids(run(t, tmp_path))


# ----------------------------------------------------------------- care plan
@pytest.mark.parametrize("change,rule,severity", [
    ({"plan": None}, "CP-01", "error"),
    ({"measurable_goals": "false"}, "CP-02", "error"),
    ({"community_resources": ""}, "CP-03", "warning"),
    ({"electronic": "false"}, "CP-04", "error"),
    ({"shared_with_patient_date": ""}, "CP-05", "error"),
    ({"shared_with_patient_date": "2026-02-01"}, "CP-05", "error"),
    ({"created_date": "2024-12-01"}, "CP-06", "warning"),
])
def test_care_plan_rules(tmp_path, change, rule, severity):
    t = chart()
    if "plan" in change:
        t["care_plans"] = [dict(t["care_plans"][0], created_date="2026-02-01")]  # created after the month
    else:
        t["care_plans"][0].update(change)
    r = run(t, tmp_path)
    assert rule in ids(r, severity)
    assert (line(r, "99490")["determination"] == "not_supported") is (severity == "error")


def test_cp_06_review_keeps_an_old_plan_current(tmp_path):
    t = chart()
    t["care_plans"][0].update(created_date="2024-06-01", reviewed_date="2025-06-01", shared_with_patient_date="2024-06-01")
    assert "CP-06" not in ids(run(t, tmp_path))


def test_plan_in_force_is_the_latest_version(tmp_path):
    t = chart()
    t["care_plans"].append(dict(t["care_plans"][0], plan_id="CP2", created_date="2026-01-20", electronic="false"))
    assert "CP-04" in ids(run(t, tmp_path))
    t["care_plans"][1]["created_date"] = "2026-02-03"
    assert "CP-04" not in ids(run(t, tmp_path))


# ----------------------------------------------------------------- billing
def test_bill_01_second_practitioner_is_unsupported(tmp_path):
    t = chart()
    t["consents"][0]["practitioner_npi"] = ""
    t["encounters"].append(dict(t["encounters"][0], practitioner_npi=OTHER))
    t["claims"].append(claim("C2", "99490", npi=OTHER, paid=66.13))
    r = run(t, tmp_path)
    assert ids(r, "error") == {"BILL-01"}
    cl = r.claim_lines.set_index("claim_id")
    assert cl.loc["C1", "determination"] == "supported" and cl.loc["C2", "determination"] == "not_supported"


def test_bill_02_base_code_twice(tmp_path):
    t = chart()
    t["claims"].append(claim("C2", "99490", paid=66.13, date="2026-01-31"))
    r = run(t, tmp_path)
    assert ids(r, "error") == {"BILL-02"}
    assert r.claim_lines["units_supported"].sum() == 1


@pytest.mark.parametrize("code,npi,severity", [("G0181", NPI, "error"), ("90960", NPI, "error"), ("99424", NPI, "error"),
                                               ("G0556", NPI, "error"), ("G0181", OTHER, "warning"), ("99424", OTHER, None)])
def test_bill_03_conflicting_services(tmp_path, code, npi, severity):
    t = chart()
    t["claims"].append(claim("C9", code, npi=npi, date="2026-01-10", paid=100))
    r = run(t, tmp_path)
    if severity is None:
        assert "BILL-03" not in ids(r)
    else:
        assert "BILL-03" in ids(r, severity)
        assert (line(r, "99490")["determination"] == "not_supported") is (severity == "error")


def test_bill_04_incompatible_codes(tmp_path):
    t = chart()
    t["time_entries"].append(entry("E3", 40))
    t["claims"] = [claim("C1", "99439", paid=45.93)]
    r = run(t, tmp_path)
    assert "BILL-04" in ids(r, "error")
    t["claims"] = [claim("C1", "99490", paid=66.13), claim("C2", "99487", date="2026-02-01", paid=131.65)]
    t["claims"][1]["service_date"] = "2026-01-31"
    t["claims"][0]["service_date"] = "2026-01-30"
    r = run(t, tmp_path)
    assert r.findings.query("rule_id == 'BILL-04'")["cpt_code"].tolist() == ["99487"]


@pytest.mark.parametrize("first, later", [("99490", "99491"), ("99491", "99490"), ("99487", "99491")])
def test_bill_04_v3_99491_is_exclusive(tmp_path, first, later):
    """Catalog v3: 99491 is not reported in the month of 99490, 99487 or 99489; the base billed first keeps the month,
    the other falls with its add-ons. Near miss: the same two codes one month apart are each their month's only base."""
    t = chart()
    t["claims"] = [claim("C1", first, date="2026-01-30", paid=80), claim("C2", later, date="2026-01-31", paid=70),
                   claim("C2", {"99490": "99439", "99491": "99437", "99487": "99489"}[later], date="2026-01-31", paid=40, line=2)]
    r = run(t, tmp_path / "a")
    hit = r.findings.query("rule_id == 'BILL-04'")
    assert set(hit["claim_id"]) == {"C2"} and set(hit["cpt_code"]) >= {later}
    assert set(r.claim_lines.loc[r.claim_lines["claim_id"] == "C2", "units_supported"]) == {0}
    t["claims"][1]["service_date"] = t["claims"][2]["service_date"] = "2026-02-02"
    r = run(t, tmp_path / "b", period="2026Q1")
    assert "BILL-04" not in ids(r)


def test_bill_05_billed_before_threshold(tmp_path):
    t = chart()
    t["claims"][0]["service_date"] = "2026-01-12"  # 20 minutes reached on 2026-01-13
    r = run(t, tmp_path)
    assert ids(r) == {"BILL-05"} and r.findings["amount"].sum() == 0
    t["claims"][0]["service_date"] = "2026-01-13"
    assert "BILL-05" not in ids(run(t, tmp_path))


def test_bill_06_g0506(tmp_path):
    t = chart()
    t["claims"].append(claim("C5", "G0506", date="2025-11-20", paid=63))
    t["claims"].append(claim("C5", "99214", date="2025-11-20", line=2, paid=131))
    r = run(t, tmp_path, period="2025-11")
    assert "BILL-06" not in ids(r)
    t["claims"].append(claim("C6", "G0506", date="2025-11-25", paid=63))
    r = run(t, tmp_path, period="2025-11")
    f = r.findings.query("rule_id == 'BILL-06'")
    assert f["claim_id"].tolist() == ["C6"]


# ----------------------------------------------------------------- opportunities and money
def test_rev_01_missed_add_on(tmp_path):
    t = chart()
    t["time_entries"].append(entry("E3", 17))  # 45 minutes
    r = run(t, tmp_path)
    f = r.findings
    assert f["rule_id"].tolist() == ["REV-01"] and f["severity"].tolist() == ["info"]
    assert f["amount"].tolist() == [50.44]
    assert r.patient_months.iloc[0]["missed_amount"] == 50.44


def test_rev_01_not_raised_when_month_has_an_error(tmp_path):
    t = chart()
    t["time_entries"].append(entry("E3", 17))
    t["care_plans"][0]["electronic"] = "false"
    assert "REV-01" not in ids(run(t, tmp_path))


def test_rev_01_unbilled_month(tmp_path):
    t = chart()
    t["claims"] = []
    t["claims"] = None
    r = run(t, tmp_path)
    assert "REV-01" not in ids(r)  # no claims table: cannot say what was billed
    t2 = chart()
    t2["claims"] = [claim("C9", "99214", date="2026-01-05", paid=131)]
    r = run(t2, tmp_path)
    assert ids(r) == {"REV-01"} and r.findings["amount"].tolist() == [66.13]


def test_overpayment_without_paid_amount_uses_fee_schedule(tmp_path):
    t = chart()
    t["time_entries"] = [entry("E1", 10)]
    t["claims"] = [claim("C1", "99490", date="2025-06-30")]
    t["time_entries"][0]["activity_date"] = "2025-06-10"
    r = run(t, tmp_path, period="2025-06")
    ln = line(r, "99490")  # catalog v3: Medicare's share (80 %, less 2 % sequestration) and the patient's 20 %
    assert (ln["overpayment"], ln["cost_sharing"], ln["allowed_unsupported"], ln["price_basis"]) == (47.42, 12.10, 60.49, "fee")


def test_rule_subset_and_catalog():
    cat = load_all()
    assert len(cat) == 39 and {r.severity for r in cat.values()} == {"error", "warning", "info"}
    for r in cat.values():
        assert r.citation and r.cert_category in {"no_documentation", "insufficient_documentation", "medical_necessity", "incorrect_coding", "other"}


def test_run_only_some_rules(tmp_path):
    t = chart()
    t["time_entries"][1]["description"] = ""
    r = run(t, tmp_path, rules="TIME-06")
    assert ids(r) == {"TIME-06"}
    assert [s["rule_id"] for s in r.run["rules"]] == ["TIME-06"]


def test_missing_table_is_reported_not_passed(tmp_path):
    t = chart()
    t["care_plans"] = None
    r = run(t, tmp_path)
    st = {s["rule_id"]: s["status"] for s in r.run["rules"]}
    assert st["CP-01"] == "not_run"
    assert r.data_quality["problem"].str.contains("rule CP-01 could not run").any()


def test_overturned_finding_keeps_trail_and_gives_back_the_money(tmp_path):
    from ccmlib.engine.decisions import record_decision
    t = chart()
    t["consents"][0]["informed_cost_sharing"] = ""
    d = write(t, tmp_path / "ov")
    r = audit(d, period="2026-01")
    f = r.findings.iloc[0]
    assert f["rule_id"] == "CONS-02" and line(r, "99490")["determination"] == "not_supported"
    log = tmp_path / "overrides.csv"
    record_decision(log, f, "overturn", "J. Auditor", "cost-sharing line found in the scanned paper consent")
    r2 = audit(d, period="2026-01", overrides=log)
    g = r2.findings.iloc[0]
    assert (g["rule_id"], g["review_decision"], g["reviewed_by"]) == ("CONS-02", "overturn", "J. Auditor")
    assert line(r2, "99490")["determination"] == "supported"
    assert r2.run["summary"]["findings"]["error"] == 0 and r2.run["summary"]["overturned"] == 1
    trail = r2.review_trail
    assert trail.loc[0, "status"] == "applied" and trail.loc[0, "original_message"] == f["message"]
    record_decision(log, f, "accept", "J. Auditor", "second look: the paper consent is for 2024")
    r3 = audit(d, period="2026-01", overrides=log)
    assert line(r3, "99490")["determination"] == "not_supported"  # the latest decision wins
    assert r3.findings.iloc[0]["review_decision"] == "accept"


def _unsupported_99490(tmp_path, **claim_kw):
    t = chart()
    t["time_entries"] = [entry("E1", 10)]  # 10 minutes: 99490 not supported (TIME-06)
    t["claims"] = [claim("C1", "99490", **claim_kw)]
    return run(t, tmp_path)


def test_v3_money_medicare_share_and_cost_sharing(tmp_path):
    """Catalog v3 money: a 2026 non-facility 99490 without paid_amount, unsupported: Medicare's share $51.85 (66.13 x 0.80 x
    0.98), the patient's $13.23 (20 %); paid 47.00 of an allowed 60.00: $47.00 and $13.00 exactly."""
    ln = line(_unsupported_99490(tmp_path / "a"), "99490")
    assert (ln["overpayment"], ln["cost_sharing"], ln["allowed_unsupported"]) == (51.85, 13.23, 66.13)
    t = chart()
    t["time_entries"] = [entry("E1", 10)]
    t["claims"] = [claim("C1", "99490", paid=47.00)]
    t["claims"][0]["allowed_amount"] = 60.00
    r = run(t, tmp_path / "b")
    ln = line(r, "99490")
    assert (ln["overpayment"], ln["cost_sharing"], ln["allowed_unsupported"], ln["price_basis"]) == (47.00, 13.00, 60.00, "paid")
    s = r.run["summary"]
    assert (s["overpayment"], s["cost_sharing"], s["allowed_unsupported"]) == (47.00, 13.00, 60.00)
    assert r.patient_months["cost_sharing"].tolist() == [13.00]
    # near miss: supported (20 minutes), nothing to refund to anyone
    t["time_entries"] = [entry("E1", 20)]
    ln = line(run(t, tmp_path / "c"), "99490")
    assert (ln["overpayment"], ln["cost_sharing"], ln["allowed_unsupported"]) == (0.0, 0.0, 0.0)


def test_bill_08_a_denied_line_is_not_an_overpayment(tmp_path):
    r = _unsupported_99490(tmp_path / "a", paid=0)
    ln = line(r, "99490")
    assert ln["determination"] == "denied" and (ln["overpayment"], ln["cost_sharing"]) == (0.0, 0.0)
    assert "BILL-08" in ids(r) and r.run["summary"]["claim_lines_not_supported"] == 0 and r.run["summary"]["denied_lines"] == 1
    f = r.findings[r.findings["rule_id"] == "BILL-08"].iloc[0]
    assert f["severity"] == "warning" and f["amount"] == 0
    # near miss: one cent paid is a paid line, judged and refunded as usual
    r = _unsupported_99490(tmp_path / "b", paid=0.01)
    ln = line(r, "99490")
    assert ln["determination"] == "not_supported" and ln["overpayment"] == 0.01 and "BILL-08" not in ids(r)


@pytest.mark.parametrize("code, day, same, other", [
    ("99495", "2019-12-31", "error", None), ("99495", "2020-01-01", None, None),        # TCM: a conflict before CY2020 only
    ("G0556", "2024-12-31", None, None), ("G0556", "2025-01-01", "error", None),        # APCM from 2025
    ("G0568", "2025-12-31", None, None), ("G0570", "2026-01-01", "error", None),        # APCM BHI add-ons from 2026
    ("90970", "2026-01-15", "error", "warning"), ("90971", "2026-01-15", None, None),   # ESRD 90951-90970, one code past it
    ("99427", "2026-01-15", "error", None)])                                            # PCM: same practitioner only
def test_bill_03_v3_dated_conflicts(tmp_path, code, day, same, other):
    """Catalog v3's dated conflict list (reference/conflicts.csv), one day and one code either side."""
    from ccmlib.synth.examples import OTHER_NPI
    month = day[:7]
    for who, expect in ((None, same), (OTHER_NPI, other)):
        t = chart()
        t["claims"] = [claim("C1", "99490", date=day, paid=66.13),
                       claim("C2", code, date=day, paid=50, **({"npi": who} if who else {}))]
        r = run(t, tmp_path / f"{code}{day}{who}", period=month, rules="BILL-03")
        f = r.findings[r.findings["rule_id"] == "BILL-03"]
        assert (f["severity"].iloc[0] if len(f) else None) == expect, (code, day, who, f["message"].tolist())


@pytest.mark.parametrize("day, minutes, expect", [
    ("2025-06-30", 0, {"TIME-10"}),      # from 2024 G0511 may be another service: ask, do not price as an error
    ("2023-12-31", 0, {"TIME-06"}),      # one day before: G0511 stood for CCM, judged like 99490
    ("2025-06-30", 10, {"TIME-06"}),     # CCM time on record: judged like 99490
    ("2025-06-30", 20, set())])
def test_time_10_g0511_without_ccm_time(tmp_path, day, minutes, expect):
    t = chart()
    t["time_entries"] = [entry("E1", minutes)] if minutes else []
    for e in t["time_entries"]:
        e["activity_date"] = day[:8] + "10"
    t["consents"][0]["consent_date"] = "2023-01-02"  # the time counts (consent in force)
    t["claims"] = [claim("C1", "G0511", date=day, paid=72.90)]
    r = run(t, tmp_path, period=day[:7], rules="TIME-06,TIME-10")
    assert ids(r) == expect
    if expect == {"TIME-10"}:
        assert set(r.findings["severity"]) == {"warning"} and line(r, "G0511")["units_supported"] == 1


def test_bill_02_not_for_g0511(tmp_path):
    t = chart()
    t["claims"] = [claim("C1", "G0511", date="2025-06-30", paid=72.90), claim("C2", "G0511", date="2025-06-30", paid=72.90)]
    assert "BILL-02" not in ids(run(t, tmp_path / "a", period="2025-06", rules="BILL-02"))
    t["claims"] = [claim("C1", "99490", date="2025-06-30", paid=60.49), claim("C2", "99490", date="2025-06-30", paid=60.49)]
    assert "BILL-02" in ids(run(t, tmp_path / "b", period="2025-06", rules="BILL-02"))


@pytest.mark.parametrize("death, expect", [("2025-12-31", True), ("2026-01-01", False), ("", False)])
def test_elig_03_months_after_death(tmp_path, death, expect):
    """A month that begins after the death is not billable (G0506 included); the month of death is."""
    t = chart()
    t["patients"][0]["death_date"] = death
    t["claims"].append(claim("C2", "G0506", paid=63))
    r = run(t, tmp_path, rules="ELIG-03")
    assert ("ELIG-03" in ids(r, "error")) is expect
    if expect:
        assert set(r.claim_lines["units_supported"]) == {0}


@pytest.mark.parametrize("codes, expect", [("E11.9;E11.65", True), ("E11.9;I10", False), ("E119; I10", False), ("E11.9", True),
                                           (None, False)])
def test_dx_01_claim_diagnoses(tmp_path, codes, expect):
    """Two codes of one category (diabetes) are one condition; a column left out does not run the rule."""
    t = chart()
    if codes is not None:
        t["claims"][0]["diagnosis_codes"] = codes
    r = run(t, tmp_path, rules="DX-01")
    assert ("DX-01" in ids(r, "warning")) is expect
    assert line(r, "99490")["units_supported"] == 1  # a warning: the line stays supported


@pytest.mark.parametrize("plan, expect", [
    ({"signed_by": "Dr. A. Rivera", "signature_method": "electronic"}, False),
    ({"signed_by": "Dr. A. Rivera", "signature_method": "stamp"}, True),                         # a stamp is no signature
    ({"signed_by": "Dr. A. Rivera", "signature_method": "stamp", "attested_date": "2026-02-01"}, False),  # attested
    ({"signed_by": "", "signature_method": ""}, False)])                                          # column not supplied: no run
def test_doc_01_unsigned_care_plan(tmp_path, plan, expect):
    t = chart()
    t["care_plans"][0].update(plan)
    r = run(t, tmp_path, rules="DOC-01")
    assert ("DOC-01" in ids(r, "error")) is expect
    assert bool(line(r, "99490")["units_supported"] == 0) is expect


def test_doc_02_unsigned_entry_and_late_plan_signature(tmp_path):
    t = chart()
    t["time_entries"][0]["signed_by"], t["time_entries"][1]["signed_by"] = "S1", ""
    r = run(t, tmp_path / "a", rules="DOC-02")
    assert r.findings["entry_id"].tolist() == ["E2"] and set(r.findings["severity"]) == {"warning"}
    t = chart()
    t["care_plans"][0].update(signed_by="Dr. A. Rivera", signature_method="electronic", signed_date="2026-02-01")  # after the claim
    assert "DOC-02" in ids(run(t, tmp_path / "b", rules="DOC-02"))
    t["care_plans"][0]["signed_date"] = "2026-01-31"  # the claim's day: in time
    assert "DOC-02" not in ids(run(t, tmp_path / "c", rules="DOC-02"))
