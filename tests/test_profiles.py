"""Profiles (catalog v3, issue 24): severities and pricing as data. Each profile's effect on the money beside the
default's on the same small chart, the user's file with `extends:`, every validation error's message, the record in
run.json and one CLI run."""
import hashlib
import json
import math

import pandas as pd
import pytest
from click.testing import CliRunner

from ccmlib.cli import main
from ccmlib.engine import profiles
from ccmlib.engine.pipeline import audit, write_outputs
from ccmlib.errors import InputError
from ccmlib.synth.examples import NPI, chart, claim, entry, practice, write


def run(c, profile=None, **kw):
    return audit(practice(c), period="2026-01", profile=profile, **kw)


def line(res, code="99490"):
    cl = res.claim_lines
    return cl[cl["cpt_code"] == code].iloc[0]


def severities(res, rule):
    f = res.findings
    return set(f.loc[f["rule_id"] == rule, "severity"])


# ---------------------------------------------------------------- strict-mac
def test_strict_mac_makes_a_cons_06_only_month_unsupported_and_medicare_ffs_does_not():
    c = chart()
    c["consents"][0]["informed_availability"] = ""  # the month's only defect
    ffs, strict = run(c), run(c, "strict-mac")
    assert severities(ffs, "CONS-06") == {"warning"} and line(ffs)["determination"] == "supported"
    assert severities(strict, "CONS-06") == {"error"}
    assert line(strict)["determination"] == "not_supported" and line(strict)["rule_ids"] == "CONS-06"
    assert line(strict)["overpayment"] == 66.13  # the paid amount: Medicare's share
    # like CONS-02: the same line, the same money
    c2 = chart()
    c2["consents"][0]["informed_cost_sharing"] = ""
    assert line(run(c2))["overpayment"] == line(strict)["overpayment"]
    # near miss: the disclosure documented, strict-mac finds nothing
    assert line(run(chart(), "strict-mac"))["determination"] == "supported"


def test_strict_mac_sup_01_as_error_takes_the_time_lines():
    c = chart()
    c["staff"][0]["supervising_npi"] = ""  # S1 (rn) logged both January entries
    c["claims"].append(claim("C1", "99439", line=2, paid=50.0))
    c["time_entries"].append(entry("E3", 15, staff="S1"))  # 43 minutes: 99490 + one 99439
    ffs, strict = run(c), run(c, "strict-mac")
    assert severities(ffs, "SUP-01") == {"warning"}
    assert set(ffs.claim_lines["determination"]) == {"supported"}
    assert severities(strict, "SUP-01") == {"error"}
    assert set(strict.claim_lines["determination"]) == {"not_supported"}
    assert set(strict.claim_lines["rule_ids"]) == {"SUP-01"}


def test_sup_01_as_error_takes_only_the_lines_the_entrys_minutes_count_toward():
    c = chart()
    c["staff"][1]["supervising_npi"] = ""  # S2 (ma): no supervisor on record
    # an unsupervised entry whose minutes did not count (face-to-face) takes nothing
    c["time_entries"].append(entry("E3", 10, staff="S2", face_to_face="true"))
    res = run(c, "strict-mac")
    assert severities(res, "SUP-01") == {"error"} and line(res)["determination"] == "supported"
    # a practitioner's own 99491 month: a staff member's minutes never count toward it, so SUP-01 leaves it standing
    c = chart()
    c["staff"][1]["supervising_npi"] = ""
    c["time_entries"] = [entry("D", 35, staff="D1"), entry("M", 10, staff="S2")]
    c["claims"] = [claim("C1", "99491", paid=80.0)]
    res = run(c, "strict-mac")
    assert severities(res, "SUP-01") == {"error"} and line(res, "99491")["determination"] == "supported"


def test_strict_mac_doc_02_as_error_takes_the_lines_like_doc_01():
    def with_addon(c):
        c["claims"].append(claim("C1", "99439", line=2, paid=50.0))
        c["time_entries"].append(entry("E3", 15))
        return c

    unsigned_entry = with_addon(chart())
    for e in unsigned_entry["time_entries"]:
        e["signed_by"] = "S1"
    unsigned_entry["time_entries"][1]["signed_by"] = ""
    ffs = run(unsigned_entry)
    assert severities(ffs, "DOC-02") == {"warning"}
    assert set(ffs.claim_lines["determination"]) == {"supported"}
    strict = run(unsigned_entry, "strict-mac")
    unsigned_plan = with_addon(chart())
    unsigned_plan["care_plans"][0].update(signed_by="Dr. A. Rivera", signature_method="stamp")
    doc01 = run(unsigned_plan)
    assert severities(doc01, "DOC-01") == {"error"}
    cols = ["claim_id", "line", "units_supported", "overpayment", "determination"]
    pd.testing.assert_frame_equal(strict.claim_lines[cols], doc01.claim_lines[cols])
    assert set(strict.claim_lines["determination"]) == {"not_supported"}
    # the other half of DOC-02 (a plan signed after the claim, no attestation) takes the lines the same way
    late = with_addon(chart())
    late["care_plans"][0].update(signed_by="Dr. A. Rivera", signature_method="electronic", signed_date="2026-02-01")
    pd.testing.assert_frame_equal(run(late, "strict-mac").claim_lines[cols], doc01.claim_lines[cols])
    late["care_plans"][0]["signed_date"] = "2026-01-31"  # near miss: signed on the claim's day
    assert set(run(late, "strict-mac").claim_lines["determination"]) == {"supported"}


# ---------------------------------------------------------------- medicare-advantage
def short_month(paid, allowed=""):
    """15 qualifying minutes: the 99490 line is unsupported by TIME-06."""
    c = chart()
    c["time_entries"] = c["time_entries"][:1]
    c["claims"][0]["paid_amount"] = "" if paid is None else str(paid)
    c["claims"][0]["allowed_amount"] = allowed
    return c


def test_medicare_advantage_leaves_a_line_without_paid_amount_unpriced():
    ma = run(short_month(None, allowed="60.00"), "medicare-advantage")
    ln = line(ma)
    assert ln["determination"] == "not_supported" and ln["price_basis"] == "unpriced"
    assert math.isnan(ln["overpayment"]) and math.isnan(ln["cost_sharing"])  # blank, never a silent 0
    assert ma.run["summary"]["unpriced_lines_not_supported"] == 1
    assert ma.data_quality["problem"].str.contains("profile medicare-advantage: the paid amount is the only price").any()
    # the default prices the same line (from its allowed amount), and a line with neither from the fee schedule
    assert line(run(short_month(None, allowed="60.00")))["price_basis"] == "fee"
    assert line(run(short_month(None)))["overpayment"] == 51.85
    assert line(run(short_month(None), "medicare-advantage"))["price_basis"] == "unpriced"


def test_medicare_advantage_prices_a_line_at_its_paid_amount_and_cost_sharing_only_from_allowed():
    ln = line(run(short_month(47.00, allowed="60.00"), "medicare-advantage"))
    assert (ln["overpayment"], ln["cost_sharing"], ln["price_basis"]) == (47.00, 13.00, "paid")
    ln = line(run(short_month(47.00), "medicare-advantage"))  # no allowed amount: no estimate of the patient's share
    assert ln["overpayment"] == 47.00 and math.isnan(ln["cost_sharing"])
    assert line(run(short_month(47.00)))["cost_sharing"] == 13.23  # the default estimates 20 % of the fee


# ---------------------------------------------------------------- a user's file
def test_a_user_file_extends_strict_mac_with_its_own_override(tmp_path):
    f = tmp_path / "my-mac.yml"
    f.write_text("name: my-mac\ndescription: our MAC, without the copy rule\nextends: strict-mac\n"
                 "severity:\n  CP-05: warning\n  SUP-01: warning\nrules_off: [DX-01]\n")
    p = profiles.load_profile(f)
    assert p.severity == {"CONS-06": "error", "CP-05": "warning", "DOC-02": "error", "SUP-01": "warning"}
    assert p.off == ("DX-01",) and p.pricing == "fee_schedule"
    c = chart()
    c["care_plans"][0]["shared_with_patient_date"] = ""  # CP-05, an error in the catalog
    res = run(c, f)
    assert severities(res, "CP-05") == {"warning"} and line(res)["determination"] == "supported"
    assert line(run(c))["determination"] == "not_supported"  # near miss: the default
    c["consents"][0]["informed_availability"] = ""  # inherited from strict-mac: CONS-06 is an error
    assert line(run(c, f))["rule_ids"] == "CONS-06"
    assert {"rule_id": "DX-01", "status": "off", "reason": "switched off by profile my-mac"} in res.run["rules"]
    assert "DX-01" not in {s["rule_id"] for s in res.run["rules"] if s["status"] == "ran"}


def test_a_nearer_file_wins_over_what_it_extends(tmp_path):
    (tmp_path / "base.yml").write_text("name: base\nextends: strict-mac\nrules_off: [CONS-06]\npricing: paid_only\n")
    (tmp_path / "top.yml").write_text("name: top\nextends: base.yml\nseverity:\n  CONS-06: warning\npricing: fee_schedule\n")
    p = profiles.load_profile(tmp_path / "top.yml")
    assert p.severity["CONS-06"] == "warning" and p.off == () and p.pricing == "fee_schedule"
    assert [f["file"] for f in p.files] == [str(tmp_path / "top.yml"), str(tmp_path / "base.yml"), "(built in) strict-mac.yml",
                                            "(built in) medicare-ffs.yml"]


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize("text, message", [
    ("name: x\nseverty:\n  CONS-06: error\n", "line 2: unknown key 'severty'"),
    ("name: x\nseverity:\n  CONS-6: error\n", "line 3: severity: unknown rule id 'CONS-6'"),
    ("name: x\nseverity:\n  CONS-06: fatal\n", "line 3: severity of CONS-06: 'fatal' is not a severity (error or warning)"),
    ("name: x\nseverity:\n  CONS-06: info\n", "severity of CONS-06: 'info' is not a severity"),
    ("name: x\nseverity:\n  REV-01: error\n", "line 3: severity: REV-01 is a missed-revenue opportunity"),
    ("name: x\nrules_off: [TIME-10, NOPE-01]\n", "line 2: rules_off: unknown rule id 'NOPE-01'"),
    ("name: x\nrules_off: TIME-10\n", "key 'rules_off' must be a list of rule ids"),
    ("name: x\nseverity:\n  CONS-06: error\nrules_off: [CONS-06]\n", "rules_off: CONS-06 is also given a severity in this file"),
    ("name: x\npricing: allowed\n", "line 2: pricing: 'allowed' is not a pricing source (fee_schedule or paid_only)"),
    ("name: x\noff: [TIME-10]\n", "unknown key 'False' (YAML reads a bare yes/no/on/off as true/false"),
    ("description: no name\n", "key 'name' must be a non-empty text"),
    ("name: strict-mac\n", "line 1: name 'strict-mac' is a built-in profile's"),
    ("name: x\nname: y\n", "line 2: key 'name' given twice (also on line 1)"),
    ("name: x\nextends: nowhere\n", "line 2: extends: 'nowhere': no built-in profile of that name"),
    ("- CONS-06\n", "a profile is a YAML mapping"),
    ("name: x\nseverity: [CONS-06]\n", "key 'severity' must map rule ids to error or warning"),
    ("name: [x\n", "not valid YAML"),
])
def test_each_validation_error_names_the_file_the_key_and_the_bad_value(tmp_path, text, message):
    f = tmp_path / "mine.yml"
    f.write_text(text)
    with pytest.raises(InputError) as exc:
        profiles.load_profile(f)
    assert str(exc.value).startswith(str(f)) and message in str(exc.value)


def test_an_extends_cycle_is_named(tmp_path):
    (tmp_path / "a.yml").write_text("name: a\nextends: b.yml\n")
    (tmp_path / "b.yml").write_text("name: b\nextends: a.yml\n")
    with pytest.raises(InputError, match=r"b\.yml: extends: 'a\.yml' makes a cycle \(.*a\.yml -> .*b\.yml -> .*a\.yml\)"):
        profiles.load_profile(tmp_path / "a.yml")


def test_an_unknown_profile_name_is_an_error():
    with pytest.raises(InputError, match="--profile 'strict': no built-in profile of that name .*strict-mac"):
        profiles.load_profile("strict")


def test_the_builtins_validate_and_the_default_is_the_catalog_as_written():
    assert profiles.builtins() == ["medicare-advantage", "medicare-ffs", "strict-mac"]
    ffs = profiles.load_profile(None)
    assert (ffs.name, ffs.severity, ffs.off, ffs.pricing) == ("medicare-ffs", {}, (), "fee_schedule")
    assert profiles.load_profile("strict-mac").severity == {"CONS-06": "error", "DOC-02": "error", "SUP-01": "error"}
    assert profiles.load_profile("medicare-advantage").pricing == "paid_only"


# ---------------------------------------------------------------- the record
def test_run_json_records_the_profile_with_its_file_hash_and_resolved_overrides(tmp_path):
    f = tmp_path / "my-mac.yml"
    f.write_text("name: my-mac\nextends: strict-mac\nseverity:\n  CP-05: warning\n")
    res = run(chart(), f)
    write_outputs(res, tmp_path / "out")
    rec = json.loads((tmp_path / "out" / "run.json").read_text())["profile"]
    assert rec["name"] == "my-mac" and rec["file"] == str(f)
    assert rec["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert rec["extends"] == ["(built in) strict-mac.yml", "(built in) medicare-ffs.yml"]
    builtin = profiles.builtin_dir() / "strict-mac.yml"
    assert rec["files"][1]["sha256"] == hashlib.sha256(builtin.read_bytes()).hexdigest()
    assert rec["severity"] == {"CONS-06": "error", "CP-05": "warning", "DOC-02": "error", "SUP-01": "error"}
    assert rec["pricing"] == "fee_schedule" and rec["rules_off"] == []
    assert run(chart()).run["profile"]["name"] == "medicare-ffs"  # the default is recorded too


def test_the_prebill_run_records_the_profile():
    from ccmlib.engine.prebill import prebill

    pb = prebill(practice(chart()), "2026-01", profile="strict-mac")
    assert pb.run["profile"]["name"] == "strict-mac" and pb.run["profile"]["severity"]["SUP-01"] == "error"


def test_the_reports_sentence_and_rule_table_follow_the_profile():
    strict = run(chart(), "strict-mac").run["profile"]
    assert profiles.sentence(strict) == "Profile strict-mac: CONS-06, DOC-02, SUP-01 as errors that take units."
    assert "paid amount as the only price" in profiles.sentence(run(chart(), "medicare-advantage").run["profile"])
    assert profiles.sentence(None) == "Profile medicare-ffs: the rule catalog as written."
    cat = profiles.catalog(strict).set_index("id")
    assert (cat.loc["CONS-06", "severity"], cat.loc["CONS-06", "catalog_severity"]) == ("error", "warning")


# ---------------------------------------------------------------- the command line
def test_check_with_profile_strict_mac_on_a_tiny_practice(tmp_path):
    c = chart()
    c["consents"][0]["informed_availability"] = ""
    data = write(c, tmp_path / "practice")
    r = CliRunner().invoke(main, ["check", str(data), "--period", "2026-01", "--out", str(tmp_path / "out"), "--profile", "strict-mac"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "out" / "run.json").read_text())["profile"]["name"] == "strict-mac"
    cl = pd.read_csv(tmp_path / "out" / "claim_lines.csv", dtype=str)
    assert cl[["cpt_code", "determination", "rule_ids"]].values.tolist() == [["99490", "not_supported", "CONS-06"]]
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\nseverity:\n  SUP-01: critical\n")
    r = CliRunner().invoke(main, ["check", str(data), "--period", "2026-01", "--out", str(tmp_path / "out2"), "--profile", str(bad)])
    assert r.exit_code == 2 and f"{bad}, line 3: severity of SUP-01: 'critical'" in r.output
    r = CliRunner().invoke(main, ["rules", "--profile", "strict-mac"])
    assert r.exit_code == 0
    row = next(x for x in r.output.splitlines() if x.startswith("SUP-01"))
    assert row.split()[1] == "error" and "[catalog: warning]" in row


def test_batch_runs_every_practice_under_the_profile_and_portfolio_csv_names_it(tmp_path):
    from ccmlib.workbench.portfolio import run_batch

    c = chart()
    c["consents"][0]["informed_availability"] = ""
    write(c, tmp_path / "clients" / "one")
    write(chart(), tmp_path / "clients" / "two")
    df = run_batch(tmp_path / "clients", "2026-01", tmp_path / "batch", reports=False, progress=False, profile="strict-mac")
    csv = pd.read_csv(tmp_path / "batch" / "portfolio.csv", dtype=str).set_index("practice")
    assert csv["profile"].tolist() == ["strict-mac", "strict-mac"]
    assert csv.loc["one", "top_pitfalls"] == "CONS-06 (1)" and csv.loc["one", "claim_lines_in_error"] == "1"  # an error here
    assert df.set_index("practice").loc["two", "claim_lines_in_error"] == 0
    with pytest.raises(InputError, match="--profile 'nope'"):
        run_batch(tmp_path / "clients", "2026-01", tmp_path / "batch2", reports=False, progress=False, profile="nope")
    assert not (tmp_path / "batch2").exists()  # stopped before any work


def test_the_chart_review_re_runs_the_audit_under_the_profile_it_was_run_with(tmp_path):
    from ccmlib.workbench.review import ChartReview

    c = chart()
    c["consents"][0]["informed_availability"] = ""
    data = write(c, tmp_path / "practice")
    mine = tmp_path / "mine.yml"
    mine.write_text("name: mine\nextends: strict-mac\n")
    write_outputs(audit(data, period="2026-01", profile=mine), tmp_path / "audit")
    cr = ChartReview.from_audit(tmp_path / "audit")
    assert cr.result.run["profile"]["name"] == "mine" and line(cr.result)["rule_ids"] == "CONS-06"
    mine.write_text("name: mine\nextends: medicare-ffs\n")  # edited since the run: the review refuses to re-run silently
    with pytest.raises(InputError, match="mine.yml: the profile file changed since this audit was run"):
        ChartReview.from_audit(tmp_path / "audit")


def test_the_reports_rule_change_table_counts_a_raised_rule_as_an_error():
    from ccmlib.report.tables import rule_change

    now = {"by_rule": {"CONS-06": {"findings": 2, "patient_months": 2, "amount": 132.26}}}
    assert rule_change(now, None)["id"].tolist() == []  # the catalog: a warning, no dollars to compare
    strict = profiles.load_profile("strict-mac").to_json()
    assert rule_change(now, None, strict)["id"].tolist() == ["CONS-06"]
