"""Outputs that never destroy, mix or leak (issue 10): run folders, concurrency, escaping, inert workbooks,
and the hostile or careless inputs that used to crash or pass silently."""
import hashlib
import json
import multiprocessing as mp
import os
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from chart import chart, claim, entry, write
from click.testing import CliRunner

from ccmlib.cli import main
from ccmlib.errors import InputError
from ccmlib.engine.outputs import LOCK, MARKER, RunFolder


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# ---------------------------------------------------------------- folders that are never destroyed
@pytest.mark.parametrize("cmd", ["check", "report"])
def test_out_pointing_at_the_data_folder_is_refused_and_nothing_changes(tmp_path, cmd):
    data = write(chart(), tmp_path / "data")
    before = snapshot(data)
    extra = ["--period", "2026-01"]
    r = run(cmd, data, "--out", data, *extra)
    assert r.exit_code == 2 and "not made by ccm-audit" in r.output and "Traceback" not in r.output
    assert snapshot(data) == before and not (data / MARKER).exists() and not (data / LOCK).exists()


def test_folder_of_earlier_reports_is_refused(tmp_path):
    data = write(chart(), tmp_path / "data")
    reports = tmp_path / "reports"
    (reports / "2026Q1").mkdir(parents=True)
    (reports / "2026Q1" / "report.pdf").write_bytes(b"%PDF-1.7 earlier report")
    (reports / "notes.txt").write_text("keep me")
    before = snapshot(reports)
    for cmd in ("check", "report"):
        r = run(cmd, data, "--out", reports, "--period", "2026-01")
        assert r.exit_code == 2 and "not made by ccm-audit" in r.output
    assert snapshot(reports) == before


@pytest.mark.parametrize("cmd", ["check", "report", "batch"])
def test_out_naming_an_existing_file_is_refused_before_any_work(tmp_path, cmd):
    data = write(chart(), tmp_path / "clients" / "a")
    target = tmp_path / "out.txt"
    target.write_text("a user's file")
    src = tmp_path / "clients" if cmd == "batch" else data
    r = run(cmd, src, "--out", target, "--period", "2026-01")
    assert r.exit_code == 2 and "is a file" in r.output and "Traceback" not in r.output
    assert target.read_text() == "a user's file"
    assert not (tmp_path / "ledger.sqlite").exists()  # the report did not start


def test_empty_folder_is_adopted_and_a_rerun_replaces_only_its_own_files(tmp_path):
    data = write(chart(), tmp_path / "data")
    out = tmp_path / "out"
    out.mkdir()
    assert run("check", data, "--out", out, "--period", "2026-01", "--sample", "1", "--seed", "1", "--quiet").exit_code == 0
    assert (out / "sample.csv").is_file()
    (out / "my notes.txt").write_text("the auditor's own notes")
    assert run("check", data, "--out", out, "--period", "2026-01", "--quiet").exit_code == 0
    assert not (out / "sample.csv").exists() and not (out / "frame.csv").exists()  # not left over from the sampled run
    assert (out / "my notes.txt").read_text() == "the auditor's own notes"
    marker = json.loads((out / MARKER).read_text())
    assert marker["kind"] == "check" and "sample.csv" not in marker["files"] and "run.json" in marker["files"]
    # a file the marker does not list is never overwritten
    (out / "frame.csv").write_text("mine")
    r = run("check", data, "--out", out, "--period", "2026-01", "--sample", "1", "--seed", "1", "--quiet")
    assert r.exit_code == 2 and "frame.csv" in r.output and (out / "frame.csv").read_text() == "mine"


def test_folder_of_another_kind_of_run_is_refused(tmp_path):
    data = write(chart(), tmp_path / "data")
    out = tmp_path / "out"
    assert run("check", data, "--out", out, "--period", "2026-01", "--quiet").exit_code == 0
    with pytest.raises(InputError, match="holds a `ccm-audit check` run"):
        with RunFolder(out, "report"):
            pass


def test_stale_staging_of_a_killed_run_is_removed_by_the_next_run(tmp_path):
    data = write(chart(), tmp_path / "data")
    out = tmp_path / "out"
    assert run("check", data, "--out", out, "--period", "2026-01", "--quiet").exit_code == 0
    stale = out / ".staging-deadbeef"
    stale.mkdir()
    (stale / "findings.csv").write_text("patient_id\nP1\n")  # raw ids a killed run left behind
    assert run("check", data, "--out", out, "--period", "2026-01", "--quiet").exit_code == 0
    assert not stale.exists()


def test_failed_run_into_a_new_folder_leaves_no_folder(tmp_path):
    data = write(chart(), tmp_path / "data")
    (data / "claims.csv").write_text("claim_id\nC1\n")  # missing required columns: exit 2
    out = tmp_path / "new"
    r = run("check", data, "--out", out, "--quiet")
    assert r.exit_code == 2 and "missing required column" in r.output
    assert not out.exists()


def _writer(args):
    """One process of the concurrency test: audit one period of the practice and write it into the shared folder."""
    out, period, barrier = args
    from ccmlib.engine.pipeline import audit, write_outputs
    barrier.wait()
    try:
        with RunFolder(out, "check") as rf:
            write_outputs(audit(_PRACTICE, period=period), rf)
        return "ok"
    except InputError as exc:
        return "refused: " + str(exc)


_PRACTICE = None


def test_concurrent_runs_into_one_folder_never_mix(tmp_path, demo_dir):
    """Four processes write one --out at the same moment, over many rounds: every round ends with a whole folder
    from one run (its run.json, claim lines and patient-months agree) and each other run refused with a message."""
    global _PRACTICE
    from ccmlib.intake.load import load_practice
    _PRACTICE = load_practice(demo_dir)
    periods = ["2026-07", "2026-08", "2026-09", "2026Q3"]
    ctx = mp.get_context("fork")
    outcomes = []
    with ctx.Manager() as manager, ctx.Pool(4) as pool:
        barrier = manager.Barrier(4)
        for rnd in range(8):
            out = tmp_path / f"round{rnd}"
            if rnd % 2:  # half the rounds race for an existing folder, half for one that does not exist yet
                out.mkdir()
            res = pool.map(_writer, [(out, p, barrier) for p in periods])
            outcomes += res
            assert all(r == "ok" or ("another ccm-audit run is writing" in r) for r in res), res
            assert "ok" in res
            files = {p.name for p in out.iterdir()}
            assert {"run.json", "findings.csv", "claim_lines.csv", "patient_months.csv", "data_quality.csv"} <= files
            assert not [f for f in files if f.startswith(".staging") or f.endswith(".tmp")]
            runj = json.loads((out / "run.json").read_text())
            months = pd.period_range(runj["period"]["from"], runj["period"]["to"], freq="M").strftime("%Y-%m")
            cl = pd.read_csv(out / "claim_lines.csv", dtype=str)
            pm = pd.read_csv(out / "patient_months.csv", dtype=str)
            assert cl["service_month"].isin(months).all() and pm["service_month"].isin(months).all()
            assert len(cl) == runj["summary"]["claim_lines"] and len(pm) == runj["summary"]["patient_months"]
    assert outcomes.count("ok") >= 8


# ---------------------------------------------------------------- nothing injected into HTML or Excel
HOSTILE = '<script>alert("x")</script>'
FORMULAS = ['=HYPERLINK("http://evil.example","click")', "=cmd|' /C calc'!A0", "+SUM(1,2)", "@SUM(1)", "-2+3"]


def hostile_chart() -> dict:
    c = chart()
    pid = "P1" + HOSTILE
    for t in ("patients", "diagnoses", "consents", "care_plans", "time_entries", "claims", "encounters"):
        for row in c[t]:
            row["patient_id"] = pid
    c["patients"][0].update(first_name=HOSTILE, last_name=HOSTILE)
    c["care_plans"][0]["plan_id"] = "CP" + HOSTILE
    c["staff"].append({"staff_id": "S9" + HOSTILE, "role": "rn"})
    c["time_entries"][0].update(entry_id=FORMULAS[1], description=HOSTILE, activity=HOSTILE, face_to_face="true")  # TIME-04 names it
    c["time_entries"][1].update(entry_id="E2" + HOSTILE, staff_id="S9" + HOSTILE)
    c["time_entries"].append(entry(FORMULAS[3], 5, patient=pid, description=FORMULAS[2]))
    c["claims"][0]["claim_id"] = FORMULAS[0]
    c["claims"].append(claim(HOSTILE, "99439", patient=pid))  # add-on without enough minutes: a finding naming the claim
    c["claims"].append(claim(FORMULAS[4], "99490", date="not a date" + HOSTILE, patient=pid))  # rejected row: a data-quality message
    c["claims"].append(claim("C9" + HOSTILE, "G0506", patient=pid))  # G0506 without a visit, unpriced: a note naming the claim
    return c


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    from ccmlib.report.render import render_report
    root = tmp_path_factory.mktemp("hostile")
    data = write(hostile_chart(), root / "data")
    return render_report(data, "2026-01", root / "out", practice_name="Clinic " + HOSTILE)


def test_no_script_from_any_text_column_or_the_practice_name_reaches_the_html(hostile_report):
    html = hostile_report.html.read_text()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;" in html  # the name is shown, as text
    findings = pd.read_csv(hostile_report.folder / "audit" / "findings.csv", dtype=str)
    assert findings["claim_id"].fillna("").str.contains("<script>").any()  # the payload did reach the report's data


def test_workbook_cells_from_data_are_values_never_formulas(hostile_report):
    wb = openpyxl.load_workbook(hostile_report.workpapers)
    values = []
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                assert cell.hyperlink is None, (ws.title, cell.coordinate)
                values.append(cell.value)
    for payload in FORMULAS[:2]:
        assert payload in values  # kept, as text


def test_workbook_writer_keeps_formula_text_as_strings(tmp_path):
    from ccmlib.report.excel import write_workpapers
    df = pd.DataFrame({"claim_id": FORMULAS, "n": range(len(FORMULAS))})
    p = write_workpapers(tmp_path / "w.xlsx", {"findings": df})
    ws = openpyxl.load_workbook(p)["findings"]
    cells = [ws.cell(i + 2, 1) for i in range(len(FORMULAS))]
    assert [c.value for c in cells] == FORMULAS and all(c.data_type == "s" for c in cells)
    assert [ws.cell(i + 2, 2).value for i in range(len(FORMULAS))] == list(range(len(FORMULAS)))


def test_table_html_escapes_values_and_headers():
    from ccmlib.report.show import table_html
    html = table_html(pd.DataFrame({HOSTILE: [HOSTILE, "a & b"]}))
    assert "<script" not in html and "&lt;script&gt;" in html and "a &amp; b" in html


def test_scope_markdown_escapes_the_practice_name():
    from ccmlib.report.quarterly import md_text
    assert "<" not in md_text(HOSTILE) and "&lt;script&gt;" in md_text(HOSTILE)


def test_report_refuses_active_content_as_a_last_line_of_defence():
    from ccmlib.report.render import ReportError, assert_inert
    for bad in ("<script>x</script>", '<img src=x onerror="alert(1)">', '<a href="javascript:alert(1)">', "<iframe src=x>"):
        with pytest.raises(ReportError, match="active content"):
            assert_inert(f"<html><body>{bad}</body></html>")
    assert_inert("<p>onset date 2026-01-01; the on-call rn</p>")


# ---------------------------------------------------------------- pseudonymous keys everywhere
def test_no_raw_patient_id_in_the_workpapers_composite_keys_included(tmp_path):
    """A duplicate care plan (key patient_id+plan_id) and an auditor decision (its finding key holds the patient id)."""
    from ccmlib.engine.decisions import record_decision
    from ccmlib.report.quarterly import QuarterlyReview
    c = chart()
    secret = "MRN-SECRET-4711"
    for t in ("patients", "diagnoses", "consents", "care_plans", "time_entries", "claims", "encounters"):
        for row in c[t]:
            row["patient_id"] = secret
    c["care_plans"].append(dict(c["care_plans"][0]))
    c["time_entries"] = c["time_entries"][:1]  # 15 minutes: TIME-06 on the 99490 line
    c["claims"].append(claim("C2", "99490", patient="NOT-IN-PATIENTS-99"))
    data = write(c, tmp_path / "data")
    out = tmp_path / "reports" / "q"
    review = QuarterlyReview.run(str(data), "2026-01", output_dir=str(out))
    f = review.result.findings
    record_decision(out / "audit" / "overrides.csv", f[f["rule_id"] == "TIME-06"].iloc[0], "overturn", "A. Auditor", "log found")
    review = QuarterlyReview.run(str(data), "2026-01", output_dir=str(out), overrides=str(out / "audit" / "overrides.csv"))
    assert review.result.review_trail is not None and len(review.result.review_trail)
    p = review.write_workpapers()
    text = " ".join(str(v) for ws in openpyxl.load_workbook(p).worksheets for row in ws.iter_rows(values_only=True)
                    for v in row if v is not None)
    assert "PT-" in text
    for raw in (secret, "NOT-IN-PATIENTS-99", "Philomena", "1EG4TE5MK73"):
        assert raw not in text, raw


def test_salt_is_owner_only_and_shared_by_concurrent_starts(tmp_path):
    from ccmlib.report.privacy import load_salt, salt_path
    ctx = mp.get_context("fork")
    with ctx.Pool(4) as pool:
        salts = pool.map(load_salt, [tmp_path] * 8)
    assert len(set(salts)) == 1 and len(salts[0]) == 32
    assert os.stat(salt_path(tmp_path)).st_mode & 0o077 == 0
    assert [p.name for p in tmp_path.iterdir()] == [".ccm-audit-salt"]


def test_interactive_review_without_output_folder_leaves_nothing_in_temp(tmp_path, monkeypatch):
    import tempfile
    from ccmlib.report.quarterly import QuarterlyReview
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    data = write(chart(), tmp_path / "data")
    review = QuarterlyReview.run(str(data), "2026-01")
    folder = review.output_dir
    assert folder.is_dir() and folder.parent == tmp_path
    del review
    import gc
    gc.collect()
    assert not folder.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no salt, no run folder with raw ids


# ---------------------------------------------------------------- hostile and careless inputs
def test_out_of_range_dates_are_one_rejected_row_each(tmp_path):
    c = chart()
    c["claims"].append(claim("C2", "99214", date="9999-12-31"))
    c["time_entries"].append(entry("E9", 10, date="0954-05-31"))
    data = write(c, tmp_path / "data")
    r = run("check", data, "--out", tmp_path / "out", "--quiet")
    assert r.exit_code == 0, r.output
    dq = pd.read_csv(tmp_path / "out" / "data_quality.csv", dtype=str)
    bad = dq[dq["problem"].str.contains("out of range")]
    assert sorted(bad["value"]) == ["0954-05-31", "9999-12-31"] and set(bad["action"]) == {"rejected"}


def test_a_run_with_no_data_quality_rows_works(tmp_path):
    data = write(chart(), tmp_path / "data")
    r = run("check", data, "--out", tmp_path / "out", "--period", "2025Q1", "--quiet")
    assert r.exit_code == 0, r.output
    from ccmlib.engine.pipeline import audit
    res = audit(data, period="2026-01", rules="TIME-06")
    assert list(res.data_quality.columns)[:5] == ["table", "file", "line", "column", "problem"]


@pytest.mark.parametrize("yml, message", [
    ("claims:\n  columns: [a, b]\n", "claims.columns must map"),
    ("claims:\n  values: [a]\n", "claims.values must map"),
    ("claims:\n  values: {cpt_code: [a]}\n", "claims.values.cpt_code must map"),
    ("claims:\n  columns: {CPT: cpt_kode}\n", "unknown column(s) cpt_kode; the claims table's columns are: claim_id"),
    ("claims:\n  values: {cpt_kode: {a: b}}\n", "recodes unknown column 'cpt_kode'"),
    ("claims:\n  columns: {a: units, b: units}\n", "several source columns to units"),
])
def test_bad_mapping_is_exit_2_naming_the_problem(tmp_path, yml, message):
    data = write(chart(), tmp_path / "data")
    (data / "mapping.yml").write_text(yml)
    r = run("check", data, "--out", tmp_path / "out", "--quiet")
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_whitespace_only_line_does_not_shift_line_numbers(tmp_path):
    data = write(chart(), tmp_path / "data")
    p = data / "claims.csv"
    lines = p.read_text().splitlines()
    lines.insert(1, "   ")
    lines.append("C7,1,P1,1234567893,2026-13-01,99490,1,")
    p.write_text("\n".join(lines) + "\n")
    r = run("check", data, "--out", tmp_path / "out", "--quiet")
    assert r.exit_code == 0, r.output
    dq = pd.read_csv(tmp_path / "out" / "data_quality.csv", dtype=str)
    assert dq.loc[dq["value"] == "2026-13-01", "line"].tolist() == ["4"]


def test_duplicate_column_names_are_exit_2(tmp_path):
    data = write(chart(), tmp_path / "data")
    p = data / "claims.csv"
    p.write_text(p.read_text().replace("units", "line", 1))
    r = run("check", data, "--out", tmp_path / "out", "--quiet")
    assert r.exit_code == 2 and "line appear more than once" in r.output


def test_symlink_loop_is_exit_2_naming_the_file(tmp_path):
    data = write(chart(), tmp_path / "data")
    (data / "time_entries.csv").unlink()
    (data / "time_entries.csv").symlink_to("time_entries.csv")
    r = run("check", data, "--out", tmp_path / "out", "--quiet")
    assert r.exit_code == 2 and "time_entries.csv" in r.output and "symbolic link" in r.output


def test_summary_names_the_rules_that_did_not_run(tmp_path):
    c = chart()
    c["time_entries"] = None
    data = write(c, tmp_path / "data")
    r = run("check", data, "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert "rule(s) did not run" in r.output and "TIME-06" in r.output and "time_entries" in r.output


def test_ccm_code_typo_is_a_data_quality_row(tmp_path):
    c = chart()
    c["claims"] = [claim("C1", "9949O"), claim("C2", "99214", line=1), claim("C3", "99495"), claim("C4", "G0599")]
    data = write(c, tmp_path / "data")
    r = run("check", data, "--out", tmp_path / "out", "--quiet")
    assert r.exit_code == 0, r.output
    dq = pd.read_csv(tmp_path / "out" / "data_quality.csv", dtype=str)
    typo = dq[dq["problem"].str.contains("looks like a CCM-family code", na=False)]
    assert sorted(typo["value"]) == ["9949O", "G0599"] and set(typo["action"]) == {"flagged"}


def test_synth_refuses_a_folder_it_did_not_make(tmp_path):
    data = write(chart(), tmp_path / "data")
    before = snapshot(data)
    r = run("synth", "--patients", "3", "--out", data)
    assert r.exit_code == 2 and "synth.json" in r.output and snapshot(data) == before
    out = tmp_path / "s"
    assert run("synth", "--patients", "3", "--out", out).exit_code == 0
    assert run("synth", "--patients", "3", "--out", out, "--format", "parquet").exit_code == 0
    assert [p.name for p in out.glob("*.csv")] == ["truth.csv"] and (out / "claims.parquet").is_file()
