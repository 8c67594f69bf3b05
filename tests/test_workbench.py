"""Workbench library: training scenarios flip verdicts; chart review views and decisions."""
import pandas as pd
import pytest
from chart import chart

from ccmlib.engine.rules import load_all
from ccmlib.workbench.review import ChartReview, patient_month_view, review_queue
from ccmlib.workbench.training import SCENARIOS, TrainingApp, controls, scenario_chart, verdict, verdicts


def test_a_scenario_for_every_rule():
    assert set(SCENARIOS) == set(load_all())


def test_the_clean_chart_every_scenario_starts_from_is_clean(together):
    off = verdict(chart())
    assert off["findings"] == [] and off["supported"]
    assert together[("TIME-06", False)] == off


@pytest.fixture(scope="module")
def together():
    """Every scenario's chart, pitfall on and off, audited together as the handout does."""
    return verdicts({(r, on): scenario_chart(r, on) for r in SCENARIOS for on in (True, False)})


@pytest.mark.parametrize("rule_id", sorted(SCENARIOS))
def test_each_scenario_shows_its_pitfall_and_only_when_on(rule_id, together):
    on = verdict(scenario_chart(rule_id, on=True))
    assert scenario_chart(rule_id, on=False) == chart()  # off: the clean chart (audited once, above)
    assert rule_id in {f["rule_id"] for f in on["findings"]}
    severity = load_all()[rule_id].severity
    assert on["supported"] is (severity != "error")
    # audited with every other scenario in one practice (the handout's way): the same verdict, message for message
    assert together[(rule_id, True)] == on
    assert together[(rule_id, False)] == together[("TIME-06", False)]  # off is the clean chart, checked once below


@pytest.mark.parametrize("on", [True, False])
@pytest.mark.parametrize("rule_id", sorted(SCENARIOS))
def test_the_controls_show_the_scenarios_chart(rule_id, on):
    """Every knob is set from the chart: applying the knobs' values gives the scenario's chart back, and turning any
    knob away from its value changes the chart (the knob reads and writes the same fact)."""
    c = scenario_chart(rule_id, on)
    k = controls(c)
    assert scenario_chart(rule_id, on, **k) == c
    assert scenario_chart(rule_id, on, minutes=k["minutes"] + 1) != c
    for knob in ("cost_sharing", "electronic"):
        if k[knob] is not None:
            assert scenario_chart(rule_id, on, **{knob: not k[knob]}) != c


def test_the_controls_of_the_scenarios_that_change_what_a_knob_shows():
    clean = {"minutes": 28, "cost_sharing": True, "electronic": True}
    assert all(controls(scenario_chart(r, on=False)) == clean for r in SCENARIOS)
    assert controls(scenario_chart("CONS-02")) == {**clean, "cost_sharing": False}  # the box unticked, as the verdict says
    assert controls(scenario_chart("CP-04")) == {**clean, "electronic": False}
    assert controls(scenario_chart("CONS-01")) == {**clean, "cost_sharing": None}  # no consent: nothing to tick
    assert controls(scenario_chart("TIME-06"))["minutes"] == 18 and controls(scenario_chart("REV-01"))["minutes"] == 45
    assert controls(scenario_chart("TIME-10"))["minutes"] == 0  # no CCM time on record in June 2025
    # ticking the box restores the disclosure: the CONS-02 finding goes
    assert "CONS-02" not in {f["rule_id"] for f in verdict(scenario_chart("CONS-02", cost_sharing=True))["findings"]}
    # minutes on the TIME-10 chart are logged in the month billed, and count there
    v = verdict(scenario_chart("TIME-10", minutes=25))
    assert v["qualifying_minutes"] == 25 and "TIME-10" not in {f["rule_id"] for f in v["findings"]}


def test_the_widget_sets_every_control_from_the_scenario(tmp_path):
    app = TrainingApp(tmp_path / "quiz.csv")
    app.widget("CONS-02")
    w = app.controls

    def shown():
        return {"minutes": w["minutes"].value, "cost_sharing": None if w["cost_sharing"].disabled else w["cost_sharing"].value,
                "electronic": None if w["electronic"].disabled else w["electronic"].value}

    assert shown() == controls(scenario_chart("CONS-02")) and w["cost_sharing"].value is False
    assert "NOT FULLY SUPPORTED" in w["verdict"].value and "CONS-02" in w["verdict"].value
    for rule_id in ("CP-04", "CONS-01", "TIME-10", "TIME-06"):
        w["pick"].value = rule_id
        assert w["on"].value and shown() == controls(scenario_chart(rule_id)), rule_id
    w["on"].value = False
    assert shown() == controls(chart())
    w["pick"].value = "CONS-02"  # a new scenario switches the pitfall back on
    assert w["on"].value and w["cost_sharing"].value is False
    w["cost_sharing"].value = True  # ticking the box gives the consent its disclosure back
    assert "<li>no findings</li>" in w["verdict"].value and ">SUPPORTED</b>: billed 99490, supported 99490" in w["verdict"].value


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
    import json

    from conftest import run_cli
    from ccmlib.workbench.portfolio import make_demo_clients, pitfall_matrix
    clients = make_demo_clients(tmp_path / "clients", patients=25, which=("csv", "broken"))
    out = tmp_path / "out"
    proc = run_cli("batch", clients, "--period", "2026Q3", "--out", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pf = pd.read_csv(out / "portfolio.csv", keep_default_na=False)
    assert list(pf["status"]) == ["ok", "failed"]
    assert "time_entries.csv: not UTF-8" in pf.loc[1, "error"] and "FAILED  clinic_b_broken" in proc.stderr
    for f in ("report.html", "report.pdf", "workpapers.xlsx", "quarterly_review.ipynb"):
        assert (out / "clinic_a_csv" / f).is_file()
    assert not (out / "clinic_b_broken" / "report.html").exists()
    m = pitfall_matrix(pf)
    assert list(m.columns) == ["clinic_a_csv"] and m.values.sum() > 0
    # comparable rates, the period, error rules only among the pitfalls
    ok = pf.iloc[0]
    assert ok["period"] == "2026Q3" == pf.loc[1, "period"]
    s = json.loads((out / "clinic_a_csv" / "audit" / "run.json").read_text())["summary"]
    assert float(ok["errors_per_100_billed_pm"]) == round(100 * s["findings"]["error"] / s["billed_patient_months"], 1)
    assert float(ok["overpayment_per_billed_line"]) == round(s["overpayment"] / s["claim_lines"], 2)
    errors = set(pd.read_csv(out / "clinic_a_csv" / "audit" / "findings.csv").query("severity == 'error'")["rule_id"])
    assert {p.split(" ")[0] for p in ok["top_pitfalls"].split(", ")} <= errors
    # the portfolio report, and one salt for the engagement: a report beside the batch keys patients the same way
    assert (out / "portfolio.html").is_file() and (out / "portfolio.pdf").is_file()
    html = (out / "portfolio.html").read_text()
    assert "Practices side by side" in html and "Quarters on record" in html and "clinic_b_broken" in html
    from ccmlib.report.privacy import load_salt, patient_keys
    cw = pd.read_csv(out / "clinic_a_csv" / "audit" / "crosswalk.csv", dtype=str)
    assert (patient_keys(cw["patient_id"], load_salt(tmp_path), "clinic_a_csv").tolist() == cw["patient_key"].tolist())
    strict = run_cli("batch", clients, "--period", "2026Q3", "--out", tmp_path / "o2", "--check-only", "--strict")
    assert strict.returncode == 1


def test_report_takes_a_locality_fee_schedule(tmp_path):
    """`report --fees` prices lines without a paid amount from the practice's locality rates (the README promises it)."""
    from chart import chart, entry, write
    from conftest import run_cli
    from ccmlib.report.quarterly import QuarterlyReview

    t = chart()
    t["time_entries"] = [entry("E1", 15)]  # 99490 on 15 minutes: not supported, overpaid by the fee
    t["claims"][0]["paid_amount"] = ""
    data = write(t, tmp_path / "practice")
    fees = tmp_path / "locality.csv"
    fees.write_text("code,effective_from,effective_to,amount\n99490,2026-01-01,2026-12-31,71.11\n")
    review = QuarterlyReview.run(str(data), "2026-01", output_dir=str(tmp_path / "out"), fees=str(fees))
    assert review.headline["overpayment"] == round(71.11 * 0.8 * 0.98, 2)  # Medicare's share of the locality's allowed amount
    assert review.summary["allowed_unsupported"] == 71.11
    r = run_cli("report", data, "--period", "2026-01", "--out", tmp_path / "r", "--fees", tmp_path / "nope.csv")
    assert r.returncode == 2 and "nope.csv" in r.stderr


def test_logs_are_never_appended_to_someone_elses_csv(tmp_path):
    """A decision log or quiz-results path that names an existing CSV of another kind is refused, the file unchanged."""
    from ccmlib.engine.decisions import record_decision
    from ccmlib.errors import InputError
    from ccmlib.workbench.training import record_answer

    other = tmp_path / "budget.csv"
    other.write_text("item,amount\nrent,1200\n")
    before = other.read_bytes()
    finding = {"rule_id": "TIME-06", "patient_id": "P1", "service_month": "2026-01", "message": "m", "amount": 1.0}
    with pytest.raises(InputError, match="not this log"):
        record_decision(other, finding, "accept", "A. Auditor")
    with pytest.raises(InputError, match="not this log"):
        record_answer(other, "Sam", "TIME-06", True, 18, "supported", False)
    assert other.read_bytes() == before
    log = tmp_path / "overrides.csv"  # a real log takes one decision after another; an accept needs no reason
    record_decision(log, finding, "accept", "A. Auditor")
    record_decision(log, finding, "overturn", "A. Auditor", "found in the chart", evidence="scan p. 2")
    assert pd.read_csv(log)["decision"].tolist() == ["accept", "overturn"]
