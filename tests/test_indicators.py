"""Breakdowns and risk indicators the engine puts in run.json's summary, the reasons per claim line, the quarter split
the trend uses, and the background runner the report uses for it."""
import os

import pandas as pd
import pytest
from chart import NPI, chart, claim, entry  # noqa: F401

from ccmlib.engine import indicators
from ccmlib.engine.pipeline import audit, quarter_summaries
from ccmlib.synth.examples import OTHER_NPI, practice


def pm_frame(minutes, billed=True):
    return pd.DataFrame({"patient_id": [f"P{i}" for i in range(len(minutes))], "service_month": "2026-01",
                         "qualifying_minutes": minutes, "codes_billed": "99490" if billed else ""})


# ----------------------------------------------------------------- minutes clustered just over a threshold
def test_a_cluster_just_over_20_minutes_is_flagged():
    c = indicators.minutes_clusters(pm_frame([20, 20, 21, 21, 22, 22, 23, 30]))
    twenty = c[0]
    assert (twenty["threshold"], twenty["just_over"], twenty["next_band"], twenty["spike"]) == (20, 6, 1, True)
    assert not c[1]["spike"] and not c[2]["spike"]


def test_an_even_spread_is_not_a_cluster_and_unbilled_months_do_not_count():
    assert not indicators.minutes_clusters(pm_frame([20, 21, 22, 23, 24, 25, 26]))[0]["spike"]
    assert indicators.minutes_clusters(pm_frame([20] * 9, billed=False))[0]["just_over"] == 0


def test_minutes_distribution_counts_every_billed_month_once():
    d = indicators.minutes_distribution(pm_frame([0, 4, 5, 19, 20, 130]))
    assert sum(b["patient_months"] for b in d) == 6
    by = {b["from"]: b["patient_months"] for b in d}
    assert (by[0], by[5], by[15], by[20], by[120]) == (2, 1, 1, 1, 1)


# ----------------------------------------------------------------- enrolment spikes
def test_an_enrolment_spike_is_a_month_well_above_the_median():
    consents = pd.DataFrame({"patient_id": [f"P{i}" for i in range(14)],
                             "consent_date": pd.to_datetime(["2026-01-05"] * 10 + ["2025-11-02", "2025-12-01", "2025-10-01", "2025-09-09"])})
    e = indicators.enrolments(consents, last_key=2026 * 12 + 0, months=6)
    assert [x["month"] for x in e] == ["2025-08", "2025-09", "2025-10", "2025-11", "2025-12", "2026-01"]
    assert [x["new_patients"] for x in e] == [0, 1, 1, 1, 1, 10]
    assert [x["month"] for x in e if x["spike"]] == ["2026-01"]


def test_a_second_consent_is_not_a_new_patient():
    consents = pd.DataFrame({"patient_id": ["P1", "P1"], "consent_date": pd.to_datetime(["2025-06-01", "2026-01-10"])})
    assert sum(x["new_patients"] for x in indicators.enrolments(consents, last_key=2026 * 12, months=3)) == 0


# ----------------------------------------------------------------- on a chart, through the engine
def test_no_prior_visit_by_the_billing_practitioner_is_counted():
    t = chart()  # the seed chart's visit (2025-11-20) is by the billing NPI, within a year
    s = audit(practice(t), period="2026-01").summary()["risk_indicators"]["no_prior_visit"]
    assert (s["patient_months"], s["of_patient_months"], s["assessable"]) == (0, 1, True)
    t["encounters"][0]["practitioner_npi"] = OTHER_NPI
    s = audit(practice(t), period="2026-01").summary()["risk_indicators"]["no_prior_visit"]
    assert (s["patient_months"], s["patients"]) == (1, 1)


def test_a_visit_billed_on_a_claim_counts_as_a_visit():
    t = chart()
    t["encounters"] = []
    t["claims"].append(claim("C9", "99214", date="2025-12-10"))
    s = audit(practice(t), period="2026-01").summary()["risk_indicators"]["no_prior_visit"]
    assert s["patient_months"] == 0


def test_two_practitioners_in_one_month_and_the_practitioner_breakdown():
    t = chart()
    t["claims"].append(claim("C2", "99490", npi=OTHER_NPI, paid=66.13))
    s = audit(practice(t), period="2026-01").summary()
    assert s["risk_indicators"]["several_practitioners"] == {"patient_months": 1, "of_patient_months": 1}
    byp = pd.DataFrame(s["by_practitioner"])
    assert set(byp["billing_npi"]) == {NPI, OTHER_NPI}
    assert byp["claim_lines"].sum() == s["claim_lines"] and byp["overpayment"].sum() == pytest.approx(s["overpayment"])
    assert byp["not_supported"].sum() == s["claim_lines_not_supported"]


def test_each_unsupported_line_names_the_rules_that_took_its_units():
    t = chart()
    t["time_entries"] = [entry("E1", 15)]  # 15 minutes: 99490 not supported (TIME-06)
    r = audit(practice(t), period="2026-01")
    line = r.claim_lines.iloc[0]
    assert line["determination"] == "not_supported" and line["rule_ids"] == "TIME-06"
    assert audit(practice(chart()), period="2026-01").claim_lines.iloc[0]["rule_ids"] == ""


def test_staff_breakdown_counts_minutes_logged_and_counted():
    t = chart()
    t["time_entries"].append(entry("E3", 10, staff="X1"))  # non-clinical: logged, not counted
    s = audit(practice(t), period="2026-01").summary()["by_staff"]
    by = {x["staff_id"]: x for x in s}
    assert (by["S1"]["minutes_logged"], by["S1"]["minutes_counted"]) == (28, 28)
    assert (by["X1"]["minutes_logged"], by["X1"]["minutes_counted"]) == (10, 0)


# ----------------------------------------------------------------- the trend's quarter split
def test_quarters_cut_from_one_longer_run_equal_runs_of_each_quarter():
    from conftest import DEMO
    from ccmlib.intake.load import load_practice
    p = load_practice(DEMO)
    span = quarter_summaries(audit(p, start="2026-01", end="2026-06"))
    assert set(span) == {"2026Q1", "2026Q2"}
    for q in ("2026Q1", "2026Q2"):
        own = audit(p, period=q).run["summary"]
        for k, v in span[q].items():
            assert own[k] == v, (q, k)


# ----------------------------------------------------------------- background work
def _square(x):
    return x * x


def _boom():
    from ccmlib.errors import InputError
    raise InputError("bad data in the child")


@pytest.mark.parametrize("fork", ["1", "0"])
def test_background_gives_the_result_or_the_error_of_the_call(monkeypatch, fork):
    from ccmlib.errors import InputError
    from ccmlib.report.background import Background
    monkeypatch.setenv("CCM_AUDIT_NO_FORK", "1" if fork == "0" else "0")
    job = Background(_square, 7)
    assert (job._proc is not None) == (fork == "1")
    assert job.result() == 49 and job.result() == 49
    with pytest.raises(InputError, match="bad data in the child"):
        Background(_boom).result()
    assert os.getpid() == os.getpid()  # the parent goes on


def _sleep_long():
    import time
    time.sleep(600)


@pytest.mark.parametrize("fork", ["1", "0"])
def test_cancelled_background_work_stops_at_once_and_gives_no_result(monkeypatch, fork):
    """A caller that fails before asking for the result (a refused --final report) stops the child and reaps it at once;
    asking for the result afterwards is an error, not a wait or a value."""
    import time

    from ccmlib.report.background import Background
    monkeypatch.setenv("CCM_AUDIT_NO_FORK", "1" if fork == "0" else "0")
    job = Background(_sleep_long)
    proc = job._proc
    t = time.monotonic()
    job.cancel()
    assert time.monotonic() - t < 30
    if fork == "1":
        assert proc.exitcode is not None and proc.exitcode < 0 and not proc.is_alive()  # killed and reaped, not left running
    with pytest.raises(RuntimeError, match="_sleep_long was cancelled"):
        job.result()
    done = Background(_square, 3)
    assert done.result() == 9
    done.cancel()  # after the result: nothing left to stop
    with pytest.raises(RuntimeError, match="cancelled"):
        done.result()


def _slow_trend(*args, **kwargs):
    import time
    time.sleep(600)


def test_a_refused_final_report_stops_the_trend_audit_it_started(tmp_path, monkeypatch):
    """The earlier quarters are audited in a child beside this quarter; `--final` refused (sampled units undecided) stops
    that child instead of leaving it to finish in the process that asked (a notebook, the chart review)."""
    import multiprocessing
    import time

    from conftest import DEMO
    from ccmlib.errors import InputError
    from ccmlib.report import quarterly, tables
    monkeypatch.setenv("CCM_AUDIT_NO_FORK", "0")
    monkeypatch.setattr(tables, "earlier_quarters", _slow_trend)
    t = time.monotonic()
    with pytest.raises(InputError, match="--final refused"):
        quarterly.audit_for_report(DEMO, "2026Q3", tmp_path / "audit", sample_size=5, seed="7", final=True)
    assert time.monotonic() - t < 300 and not multiprocessing.active_children()
