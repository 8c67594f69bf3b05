"""Workbench library: training scenarios flip verdicts; chart review views and decisions."""
import pandas as pd
import pytest

from ccmlib.engine.rules import load_all
from ccmlib.workbench.review import ChartReview, patient_month_view, review_queue
from ccmlib.workbench.training import SCENARIOS, scenario_chart, verdict


def test_a_scenario_for_every_rule():
    assert set(SCENARIOS) == set(load_all())


@pytest.mark.parametrize("rule_id", sorted(SCENARIOS))
def test_each_scenario_shows_its_pitfall_and_only_when_on(rule_id):
    on = verdict(scenario_chart(rule_id, on=True))
    off = verdict(scenario_chart(rule_id, on=False))
    assert rule_id in {f["rule_id"] for f in on["findings"]}
    assert off["findings"] == [] and off["supported"]
    severity = load_all()[rule_id].severity
    assert on["supported"] is (severity != "error")


def test_dragging_minutes_across_20_changes_the_verdict():
    assert not verdict(scenario_chart("TIME-06", on=False, minutes=19))["supported"]
    v = verdict(scenario_chart("TIME-06", on=False, minutes=20))
    assert v["supported"] and v["codes_supported"] == "99490"


def test_consent_and_paper_plan_toggles():
    v = verdict(scenario_chart("TIME-06", on=False, cost_sharing=False))
    assert not v["supported"] and {f["rule_id"] for f in v["findings"]} == {"CONS-02"}
    v = verdict(scenario_chart("TIME-06", on=False, electronic=False))
    assert {f["rule_id"] for f in v["findings"]} == {"CP-04"} and v["overpayment"] == 66.13


def test_chart_review_view_and_decision(tmp_path, demo_dir):
    cr = ChartReview(demo_dir, "2026Q3", tmp_path / "audit", reviewer="J. Auditor")
    q = review_queue(cr.result)
    assert len(q) and q["errors"].iloc[0] >= q["errors"].iloc[-1]
    row = q.iloc[0]
    v = patient_month_view(cr.result, row["patient_id"], row["service_month"])
    assert {"summary", "diagnoses", "consent", "care_plan", "time_log", "claim_lines", "findings"} <= set(v)
    assert (v["time_log"]["qualifying"] <= v["time_log"]["minutes"].fillna(0)).all()
    excluded = v["time_log"][v["time_log"]["qualifying"] == 0]
    assert (excluded["excluded_because"] != "").all()
    err = v["findings"][v["findings"]["severity"] == "error"].iloc[0]
    cr.decide(err, "overturn", "found in the scanned paper chart")
    log = pd.read_csv(tmp_path / "audit" / "overrides.csv")
    assert log.loc[0, "reviewer"] == "J. Auditor" and log.loc[0, "decision"] == "overturn"
    cr.rerun()
    f = cr.result.findings
    hit = f[(f["patient_id"] == err["patient_id"]) & (f["service_month"] == err["service_month"]) & (f["rule_id"] == err["rule_id"])]
    assert set(hit["review_decision"]) == {"overturn"}
    assert (tmp_path / "audit" / "overrides_applied.csv").is_file()


def test_batch_reports_and_goes_past_a_broken_practice(tmp_path):
    """One practice reported, one broken (the mapping and Excel layouts are covered by the portfolio notebook's test)."""
    import subprocess
    import sys

    from ccmlib.workbench.portfolio import make_demo_clients, pitfall_matrix
    clients = make_demo_clients(tmp_path / "clients", patients=25, which=("csv", "broken"))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "ccmlib.cli", "batch", str(clients), "--period", "2026Q3", "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pf = pd.read_csv(out / "portfolio.csv", keep_default_na=False)
    assert list(pf["status"]) == ["ok", "failed"]
    assert "time_entries.csv: not UTF-8" in pf.loc[1, "error"] and "FAILED  clinic_b_broken" in proc.stderr
    for f in ("report.html", "report.pdf", "workpapers.xlsx", "quarterly_review.ipynb"):
        assert (out / "clinic_a_csv" / f).is_file()
    assert not (out / "clinic_b_broken" / "report.html").exists()
    m = pitfall_matrix(pf)
    assert list(m.columns) == ["clinic_a_csv"] and m.values.sum() > 0
    strict = subprocess.run([sys.executable, "-m", "ccmlib.cli", "batch", str(clients), "--period", "2026Q3", "--out",
                             str(tmp_path / "o2"), "--check-only", "--strict"], capture_output=True, text=True)
    assert strict.returncode == 1
