"""The report's words (issue 26): counts that say what they count, staff with roles and practitioners by name, missed
revenue never titled as money at risk, a conclusion and the review's limits. On the library functions the notebook
shows, over one demo audit."""
import re
import shutil

import pandas as pd
import pytest

from conftest import DEMO


@pytest.fixture(scope="module")
def review(tmp_path_factory):
    from ccmlib.report.quarterly import QuarterlyReview

    root = tmp_path_factory.mktemp("text")
    data = root / "demo"
    shutil.copytree(DEMO, data)
    staff = pd.read_csv(data / "staff.csv", dtype=str)
    doctors = staff["role"] == "physician"
    staff["name"] = staff["staff_id"].map(lambda s: f"Dr. {s.title()} Example").where(doctors, "")
    staff["npi"] = staff["supervising_npi"].where(doctors, "")  # each physician supervises under their own NPI
    staff.to_csv(data / "staff.csv", index=False)
    return QuarterlyReview.run(str(data), "2026Q3", output_dir=str(root / "out"), practice_name="Demo")


def test_the_summary_counts_billed_patient_months_and_names_unbilled_ones(review):
    s = review.summary
    text = review.executive_summary()
    assert s["billed_patient_months"] < s["patient_months"]
    assert f"for {s['billed_patient_months']:,} patient-months" in text
    assert f"and {s['patient_months'] - s['billed_patient_months']:,} more patient-months with care-management time but no claim" in text
    assert "(s)" not in text


def test_practitioners_by_name_and_staff_with_roles(review):
    p = review.practitioners()
    named = p[p["practitioner"] != ""]
    assert len(named) and named["practitioner"].str.match(r"Dr\. D\d+ Example \(physician\)").all()
    st = review.staff_error_rate()
    assert list(st.columns[:3]) == ["staff_id", "name", "role"]
    roles = dict(zip(st["staff_id"], st["role"]))
    assert roles["S0001"] == "registered nurse" and roles["S0002"] == "licensed practical nurse"
    assert review.result.run["staff"][0].keys() >= {"staff_id", "role", "name", "npi"}


def test_missed_revenue_is_titled_as_missed_revenue(review):
    from ccmlib.report.show import table_html

    opp = review.criterion_tables()["Opportunities"]
    assert "missed_amount" in opp.columns and "amount" not in opp.columns
    html = table_html(opp, money=["missed_amount"])
    assert "Missed revenue" in html and "at risk" not in html


def test_conclusion_states_the_figures_and_the_review_state(review):
    h = review.headline
    text = review.conclusion_markdown()
    assert f"{h['claim_lines_in_error']} claim lines of {h['claim_lines_reviewed']}" in text
    assert f"{h['overpayment']:,.2f}" in text
    assert "No sample was read against the charts" in text  # unsampled: the screen is to be confirmed


def test_limitations_say_what_the_review_did_not_test(review):
    text = review.limitations_markdown()
    for words in ("does not read medical records", "medical necessity", "Medicare Advantage", "facility"):
        assert words in text
    skipped = [s["rule_id"] for s in review.result.run["rules"] if s["status"] != "ran"]
    assert all(r in text for r in skipped)
    assert not re.search(r"\(s\)", text)


def test_denied_lines_are_listed_apart_and_are_not_an_overpayment(review):
    """BILL-08 (catalog v3): a line the payer denied (paid 0) is listed apart, never among the overpaid lines."""
    cl = review.result.claim_lines
    denied = cl[cl["determination"] == "denied"]
    assert len(denied) and (denied["overpayment"].fillna(0) == 0).all()
    shown = review.denied_lines()
    assert sorted(shown["claim_id"] + "/" + shown["line"].astype(str)) == sorted(denied["claim_id"] + "/" + denied["line"].astype(str))
    assert "patient_id" not in shown.columns  # pseudonymous keys unless identifiers were asked for
    assert not set(review.lines_not_supported()["claim_id"].astype(str)) & set(denied["claim_id"]) - set(
        cl.loc[cl["determination"] != "denied", "claim_id"])
    assert f"{len(denied)} claim lines were denied by the payer" in review.denied_note()
