"""The sampled audit as an auditor performs it (issue 22): decisions in both directions, the review state of every
sampled unit, the final gate, the repayment figure and the claim list."""
import json

import pandas as pd
import pytest
from pypdf import PdfReader

from ccmlib.engine.money import NOT_SUPPORTED
from ccmlib.engine import decisions
from ccmlib.engine.decisions import record_decision
from ccmlib.engine.pipeline import attach_sample, audit
from ccmlib.errors import InputError
from conftest import run_cli

SEED, SIZE = "7", 30


def cli(*args):
    return run_cli(*args)  # the command in this process (conftest.run_cli): its exit code, stdout and stderr


def _engine_sample():
    """The demo's 2026Q3 audit with the engine's sample drawn (the audit computed once per test process: a fresh copy)."""
    from conftest import demo_audit
    return attach_sample(demo_audit("2026Q3"), SIZE, SEED)


def _unit_findings(res, u):
    """Error and warning findings of a sampled claim line: on the line, or on its patient-month (its NPI or none)."""
    f = res.findings[res.findings["severity"].isin(["error", "warning"])]
    on_line = (f["claim_id"].astype(str) == str(u["claim_id"])) & (f["line"] == u["line"])
    on_pm = f["claim_id"].isna() & (f["patient_id"] == u["patient_id"]) & (f["service_month"] == u["service_month"]) & (
        f["billing_npi"].isna() | (f["billing_npi"].astype(str) == str(u["billing_npi"])))
    return f[on_line | on_pm]


def _walk(res):
    """A decision for every sampled unit, as a reviewer working outside the app would write them (the contract's layout,
    accept/overturn by the finding's fields): one engine-supported line gets an added CHART defect, one erroneous line alone
    in its patient-month has every finding overturned, one confirmed unit has no finding, the rest accepted."""
    s = res.sample[~res.sample["spare"]].reset_index(drop=True)
    per_pm = s.groupby(["patient_id", "service_month"])["unit"].transform("size")
    clean = s[(s["difference"] == 0) & s.apply(lambda u: _unit_findings(res, u).empty, axis=1)]
    added, confirmed = clean.iloc[0], clean.iloc[1]
    bad = s[(s["difference"] > 0) & (per_pm == 1) & (s["cpt_code"] == "99490")]
    overturned = bad.iloc[0]
    rows, when = [], iter(pd.date_range("2026-10-01", periods=400, freq="min").strftime("%Y-%m-%dT%H:%M:%S+00:00"))
    base = {c: "" for c in decisions.COLUMNS}
    for _, u in s.iterrows():
        fs = _unit_findings(res, u)
        unit = {"patient_id": u["patient_id"], "service_month": u["service_month"], "claim_id": u["claim_id"], "line": str(u["line"])}
        if u["unit"] == added["unit"]:
            rows.append(base | unit | {"decided_at": next(when), "reviewer": "R. Auditor", "decision": "add", "rule_id": "CHART",
                                       "description": "time note cloned from the previous month", "reason": "identical text and minutes",
                                       "evidence": "progress notes, page 4", "units_supported": "0"})
        elif u["unit"] == confirmed["unit"] or fs.empty:
            rows.append(base | unit | {"decided_at": next(when), "reviewer": "R. Auditor", "decision": "confirm"})
        else:
            verdict = "overturn" if u["unit"] == overturned["unit"] else "accept"
            for _, f in fs.iterrows():
                rows.append(base | {c: ("" if pd.isna(f[c]) else str(f[c])) for c in decisions.KEY_FIELDS} | {
                    "decided_at": next(when), "reviewer": "R. Auditor", "decision": verdict,
                    "reason": "signed consent in the paper chart" if verdict == "overturn" else ""})
    return pd.DataFrame(rows, columns=decisions.COLUMNS), added, overturned


@pytest.fixture(scope="module")
def walked(tmp_path_factory):
    res = _engine_sample()
    log, added, overturned = _walk(res)
    root = tmp_path_factory.mktemp("walk")
    return res, log, added, overturned, root


def test_every_decision_moves_the_appraisal_exactly(walked, demo_dir):
    res, log, added, overturned, root = walked
    path = root / "decisions.csv"
    log.to_csv(path, index=False)
    before = res.run["summary"]
    out = root / "audit"
    r = cli("check", demo_dir, "--period", "2026Q3", "--out", out, "--sample", SIZE, "--seed", SEED, "--overrides", path)
    assert r.returncode == 0, r.stderr
    assert f"chart review: {SIZE} of {SIZE} sampled units decided, 0 undecided" in r.stdout
    run = json.loads((out / "run.json").read_text())
    s = run["summary"]
    assert run["review"] == {"unit": "claim_lines", "sampled_units": SIZE, "decided": SIZE, "undecided": 0, "complete": True}
    # the added defect puts an engine-supported line in error; the overturned line leaves it
    assert s["sample_in_error"] == before["sample_in_error"] + 1 - 1
    assert s["sample_overpayment"] == pytest.approx(before["sample_overpayment"] + added["examined"] - overturned["difference"], abs=0.005)
    sample = pd.read_csv(out / "sample.csv", dtype={"claim_id": str})
    assert set(sample.loc[~sample["spare"], "review_state"]) == {"decided"}
    a = sample[sample["unit"] == added["unit"]].iloc[0]
    assert a["difference"] == pytest.approx(added["examined"]) and a["decisions"] == "add 1"
    assert sample.loc[sample["unit"] == overturned["unit"], "difference"].iloc[0] == 0
    f = pd.read_csv(out / "findings.csv", dtype=str, keep_default_na=False)
    mine = f[f["found_by"] == "auditor"]
    assert len(mine) == 1 and mine.iloc[0]["rule_id"] == "CHART" and mine.iloc[0]["review_decision"] == "add"
    assert mine.iloc[0]["claim_id"] == added["claim_id"] and float(mine.iloc[0]["amount"]) == pytest.approx(added["examined"])
    cl = pd.read_csv(out / "claim_lines.csv", dtype={"claim_id": str}, keep_default_na=False)
    line = cl[(cl["claim_id"] == added["claim_id"]) & (cl["line"] == added["line"])].iloc[0]
    assert line["units_supported"] == 0 and "CHART" in line["rule_ids"]
    assert run["overrides"]["added"] == 1 and run["overrides"]["confirmed"] >= 2 and run["overrides"]["overturned"] >= 1
    # the appraisal uses the reviewed determinations: the point estimate is N x the sample's mean difference
    assert s["estimate_point"] == pytest.approx(s["frame_size"] * s["sample_overpayment"] / SIZE, abs=0.01)


def test_final_is_refused_with_one_unit_open_and_page_one_states_the_repayment(walked, demo_dir):
    res, log, added, overturned, root = walked
    partial = root / "partial.csv"
    open_one = log[log["decision"] == "confirm"].index[-1]  # a unit without findings: its confirm is its only decision
    log.drop(index=open_one).to_csv(partial, index=False)
    out = root / "q3"
    r = cli("report", demo_dir, "--period", "2026Q3", "--out", out, "--sample", SIZE, "--seed", SEED, "--overrides", partial, "--final")
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"--final refused: 1 of {SIZE} sampled units are still undecided" in r.stderr
    assert not (out / "report.pdf").exists()
    full = root / "full.csv"
    log.to_csv(full, index=False)
    r = cli("report", demo_dir, "--period", "2026Q3", "--out", out, "--sample", SIZE, "--seed", SEED, "--overrides", full, "--final",
            "--path", "contractor")
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((out / "audit" / "run.json").read_text())["summary"]
    pages = [p.extract_text() for p in PdfReader(out / "report.pdf").pages]
    one = " ".join(pages[0].split())
    assert "FINAL" in one and "Chart review of the sample: complete" in one
    assert f"Repayment (Medicare contractor's demand): ${s['estimate_lower_80']:,.2f}" in one
    assert "Overpayment in the sample" in one and f"${s['sample_overpayment']:,.2f}" in one and "Precision at 90% confidence" in one
    assert f"asks for at least 100" not in one  # the contractor path has no minimum sample
    # the claim list: claim ids and lines, sampled lines marked, every line (fewer than 500) and a total row
    text = " ".join(" ".join(pages).split())
    cl = pd.read_csv(out / "audit" / "claim_lines.csv", dtype={"claim_id": str})
    bad = cl[cl["determination"].isin(NOT_SUPPORTED)]
    assert all(c in text for c in bad["claim_id"])
    assert f"Total, all {len(bad):,} lines" in text and f"{len(bad):,} claim lines are not fully supported, all listed" in text
    html = (out / "report.html").read_text()
    assert "Appendix D. Chart review" in html and "time note cloned from the previous month" in html and "R. Auditor" in html
    import openpyxl
    wb = openpyxl.load_workbook(out / "workpapers.xlsx", read_only=True)
    head = [c.value for c in next(wb["sample"].iter_rows(max_row=1))]
    assert {"Review state", "Decided by", "Decided at", "Decisions"} <= set(head)  # headers in words (issue 26)
    head = [c.value for c in next(wb["lines not supported"].iter_rows(max_row=1))]
    assert head[:3] == ["Claim", "Line", "Sampled"]
    fmt = {r[0].value: r[1].number_format for r in openpyxl.load_workbook(out / "workpapers.xlsx")["summary"].iter_rows(min_row=2)}
    assert fmt["overpayment"] == fmt["cost_sharing"] == fmt["estimate_lower_80"] == "$#,##0.00" and fmt["error_rate_count"] == "0.0%"
    # provenance names the command that was run, not the kernel's launch line (issue 26)
    prov = {r[0]: r[1] for r in wb["provenance"].iter_rows(values_only=True)}
    assert prov["command"].startswith("ccm-audit report ") and "--final" in prov["command"]
    rows = list(wb["auditor decisions"].iter_rows(values_only=True))
    col = rows[0].index("Original amount")
    assert all(r[col] is None or isinstance(r[col], (int, float)) for r in rows[1:])  # numbers, not text


def test_repayment_sentence_warns_below_100_units():
    from ccmlib.report import repayment
    s = {"sampled": True, "sample_size": 50, "sample_undecided": 0, "frame_size": 498, "estimate_point": 6138.05,
         "estimate_lower_90": 2998.0, "estimate_lower_80": 3705.0, "estimate_precision_90_pct": 51.2, "overpayment": 10577.13,
         "claim_lines_not_supported": 147}
    assert repayment.default_path(s) == "self-disclosure"
    # below 100 units the path's figure is not put on page 1 as if it were fit; with 100 it is
    assert repayment.sentence(s, "self-disclosure").startswith("Repayment (OIG self-disclosure): no figure yet")
    assert "$6,138.05" not in repayment.sentence(s, "self-disclosure")
    assert repayment.sentence({**s, "sample_size": 100}, "self-disclosure").startswith(
        "Repayment (OIG self-disclosure): $6,138.05, the point estimate")
    w = repayment.warnings(s, "self-disclosure")
    assert any("50 units" in x and "at least 100" in x for x in w)
    assert not repayment.warnings({**s, "sample_size": 100}, "self-disclosure")
    assert any("25%" in x for x in repayment.warnings(s, "cia"))  # 51 % precision is too wide for a CIA claims review
    assert not any("25%" in x for x in repayment.warnings({**s, "estimate_precision_90_pct": 24.9}, "cia"))
    assert any("not yet reviewed" in x for x in repayment.warnings({**s, "sample_undecided": 1}, "contractor"))
    assert repayment.sentence({"sampled": False, "overpayment": 10.5, "claim_lines_not_supported": 2}, "identified").startswith(
        "Repayment (refund of the identified lines): $10.50, the sum of the 2 claim lines")
    with pytest.raises(InputError, match="choose one of"):
        repayment.check_path("refund")


# ------------------------------------------------------------------ the decision log, checked with clear messages
FINDING = {"rule_id": "TIME-06", "patient_id": "P1", "service_month": "2026-07", "message": "m", "amount": 1.0}


def _log(tmp_path, rows):
    p = tmp_path / "d.csv"
    pd.DataFrame([{c: "" for c in decisions.COLUMNS} | r for r in rows]).to_csv(p, index=False)
    return p


@pytest.mark.parametrize("row,where", [
    ({"decision": "approve"}, "line 2, column decision: 'approve' is not one of accept, overturn, confirm, add"),
    ({"decision": "add", "rule_id": "CHART", "reason": "r", "evidence": "e", "description": "d", "units_supported": ""},
     "line 2, column units_supported"),
    ({"decision": "add", "rule_id": "CHART", "evidence": "e", "description": "d", "units_supported": "0"}, "line 2, column reason"),
    ({"decision": "add", "rule_id": "CHART", "reason": "r", "description": "d", "units_supported": "0"}, "line 2, column evidence"),
    ({"decision": "overturn", "rule_id": "TIME-06"}, "line 2, column reason"),
    ({"decision": "confirm", "patient_id": ""}, "line 2, column patient_id"),
])
def test_a_bad_decision_names_its_line_and_column(tmp_path, row, where):
    p = _log(tmp_path, [{"decided_at": "2026-10-01T00:00:00+00:00", "reviewer": "R", "patient_id": "P1", "service_month": "2026-07",
                         "claim_id": "C1", "line": "1"} | row])
    with pytest.raises(InputError, match=f"{p}: {where}".replace("(", r"\(").replace(")", r"\)")):
        decisions.load(p)


def test_decisions_must_refer_to_this_audit(tmp_path):
    """On the one-patient seed chart (C1 line 1, 99490, P1 2026-01; no findings): each kind of decision that names
    something this audit does not have is refused, naming the log's line and column."""
    from chart import chart, write
    data = write(chart(), tmp_path / "data")
    res = audit(data, period="2026-01")
    assert res.findings.empty and len(res.claim_lines) == 1
    line = res.claim_lines.iloc[0]
    unit = {"decided_at": "2026-10-01T00:00:00+00:00", "reviewer": "R", "patient_id": line["patient_id"],
            "service_month": line["service_month"], "claim_id": line["claim_id"], "line": str(line["line"])}
    add = unit | {"decision": "add", "rule_id": "CHART", "reason": "r", "evidence": "e", "description": "d"}
    cases = [
        (add | {"units_supported": str(int(line["units_billed"]) + 1)}, "column units_supported: .* more than the line billed"),
        (add | {"units_supported": "0", "rule_id": "TIME-99"}, "column rule_id: 'TIME-99' is not a rule of the catalog"),
        (add | {"units_supported": "0", "claim_id": "NOPE"}, "column claim_id: claim NOPE line .* is not a CCM claim line"),
        (unit | {"decision": "confirm", "patient_id": "P999999"}, "column patient_id: patient-month P999999"),
        ({"decided_at": "2026-10-01T00:00:00+00:00", "reviewer": "R", "decision": "accept", "rule_id": "CONS-01",
          "patient_id": line["patient_id"], "service_month": line["service_month"]}, "column finding_key: .* raised no such finding"),
    ]
    for row, msg in cases:
        p = _log(tmp_path, [row])
        with pytest.raises(InputError, match=f"line 2, {msg}"):
            audit(data, period="2026-01", overrides=p)
    # the CLI: exit 2, the message on stderr
    p = _log(tmp_path, [cases[0][0]])
    r = cli("check", data, "--period", "2026-01", "--out", tmp_path / "out", "--overrides", p, "--quiet")
    assert r.returncode == 2 and "line 2, column units_supported" in r.stderr


def test_decisions_of_other_periods_are_left_to_them(tmp_path, demo_dir):
    """The trend audits earlier quarters with the same log: a decision on a 2026Q3 unit is not an error in 2026Q2."""
    res = _engine_sample()
    u = res.sample.iloc[0]
    p = tmp_path / "d.csv"
    record_decision(p, u, "confirm", "R")
    assert audit(demo_dir, period="2026Q2", overrides=p).run["overrides"]["decisions"] == 0


def test_an_old_log_loads_and_takes_the_new_decisions(tmp_path, demo_dir, demo_q3):
    """A log written before evidence, confirm and add existed: read as it is, widened (every row kept) on the next save."""
    res = demo_q3
    f = res.findings[res.findings["severity"] == "error"].iloc[0]
    old = tmp_path / "overrides.csv"
    key = decisions.finding_key(pd.DataFrame([f])).iloc[0]
    old.write_text("decided_at,reviewer,decision,reason,finding_key,rule_id,patient_id,service_month,claim_id,line,billing_npi,"
                   "entry_id,original_message,original_amount\n"
                   f"2026-09-01T10:00:00+00:00,A. Auditor,overturn,consent in paper chart,{key},{f['rule_id']},{f['patient_id']},"
                   f"{f['service_month']},,,{'' if pd.isna(f['billing_npi']) else f['billing_npi']},,m,1.0\n")
    r1 = audit(demo_dir, period="2026Q3", overrides=old)
    assert r1.run["overrides"]["overturned"] == 1
    line = res.claim_lines.iloc[0]
    record_decision(old, line, "confirm", "B. Auditor")
    text = old.read_text().splitlines()
    assert text[0].endswith("evidence,units_supported,description") and len(text) == 3 and "consent in paper chart" in text[1]
    r2 = audit(demo_dir, period="2026Q3", overrides=old)
    assert r2.run["overrides"]["overturned"] == 1 and r2.run["overrides"]["confirmed"] == 1


def test_an_add_on_a_whole_patient_month_takes_every_line_and_can_be_withdrawn(tmp_path, demo_dir, demo_q3):
    res = demo_q3
    cl = res.claim_lines
    pm = cl[cl["determination"] == "supported"].groupby(["patient_id", "service_month"]).filter(lambda d: len(d) > 1).iloc[0]
    lines = cl[(cl["patient_id"] == pm["patient_id"]) & (cl["service_month"] == pm["service_month"])]
    p = tmp_path / "d.csv"
    unit = {"patient_id": pm["patient_id"], "service_month": pm["service_month"], "rule_id": "CONS-01"}
    with pytest.raises(InputError, match="evidence"):
        record_decision(p, unit, "add", "R", "no consent in the chart", units_supported=0)
    row = record_decision(p, unit, "add", "R", "no consent in the chart", evidence="chart index", units_supported=0)
    r = audit(demo_dir, period="2026Q3", overrides=p)
    got = r.claim_lines.merge(lines[["claim_id", "line"]])
    assert (got["units_supported"] == 0).all() and got["overpayment"].sum() == pytest.approx(lines["paid_amount"].sum())
    assert r.run["summary"]["overpayment"] == pytest.approx(res.run["summary"]["overpayment"] + lines["paid_amount"].sum(), abs=0.01)
    mine = r.findings[r.findings["found_by"] == "auditor"]
    assert len(mine) == 1 and mine.iloc[0]["rule_id"] == "CONS-01" and mine.iloc[0]["severity"] == "error"
    # withdrawn: an overturn of the auditor's own finding (its key) gives the units back
    record_decision(p, mine.iloc[0], "overturn", "R", "consent found after all")
    r = audit(demo_dir, period="2026Q3", overrides=p)
    assert r.run["summary"]["overpayment"] == pytest.approx(res.run["summary"]["overpayment"], abs=0.01)
    assert row["finding_key"].startswith("add|CONS-01|")
