"""The quarterly report: four files, figures that match the tables, no PHI, clean failure."""
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from pypdf import PdfReader

from conftest import run_cli
from ccmlib.engine.money import NOT_SUPPORTED
from ccmlib.report.render import ReportError, render_report
from ccmlib.report.record import read_records


def _render(root):
    from conftest import DEMO, demo_audit

    from ccmlib.engine.decisions import record_decision
    errors = demo_audit("2026Q3").findings.query("severity == 'error'")
    once = errors["rule_id"].value_counts()
    rule = once[once == 1].index[0]
    log = root / "decisions.csv"
    record_decision(log, errors[errors["rule_id"] == rule].iloc[0], "overturn", "A. Auditor", "visit note in the paper chart")
    r = render_report(DEMO, "2026Q3", root / "q3", sample_size=40, seed="48863.78", practice_name="Demo Family Practice",
                      overrides=log)
    return {"folder": str(r.folder), "headline": r.headline, "provenance": r.provenance, "overturned_rule": rule,
            "errors_before": int(len(errors))}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, worker_id):
    """The demo report, sampled, after an auditor overturned the single error finding of one rule; rendered once per
    test session and shared by the workers (a report takes seconds; the tests only read it)."""
    import fcntl
    import json

    from ccmlib.report.render import NOTEBOOK, Report
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if worker_id != "master" else base) / "shared-demo-report"
    shared.mkdir(exist_ok=True)
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker renders, the others wait for it
        done = shared / "report.json"
        if not done.exists():
            done.write_text(json.dumps(_render(shared)))
        meta = json.loads(done.read_text())
    folder = Path(meta["folder"])
    r = Report(folder, folder / NOTEBOOK, folder / "report.html", folder / "report.pdf", folder / "workpapers.xlsx",
               meta["headline"], meta["provenance"])
    r.overturned_rule, r.errors_before = meta["overturned_rule"], meta["errors_before"]
    return r, shared


_PAGES: dict = {}


def pdf_pages(path) -> list[str]:
    """The text of each page of a PDF, extracted once per file (a 20-page report takes a second; the tests only read it)."""
    if path not in _PAGES:
        _PAGES[path] = [p.extract_text() for p in PdfReader(path).pages]
    return list(_PAGES[path])


def test_after_a_decision_all_six_places_agree(rendered):
    """One number, one place (issue 12): run.json's summary, the headline, the corrective actions, the trend row of
    the quarter, the workbook's summary sheet and the portfolio row."""
    import json

    from ccmlib.workbench.portfolio import practice_row
    r, _ = rendered
    rule = r.overturned_rule
    s = json.loads((r.folder / "audit" / "run.json").read_text())["summary"]
    assert s["overturned"] == 1 and s["findings"]["error"] == r.errors_before - 1 and rule not in s["rules_with_errors"]
    rec = read_records(r.notebook)
    h = rec["headline"]
    assert (h["errors"], h["overpayment"], h["claim_lines_in_error"]) == (s["findings"]["error"], s["overpayment"],
                                                                         s["claim_lines_not_supported"])
    assert rule not in rec["corrective_actions"] and set(rec["corrective_actions"]) >= set(s["rules_with_errors"])
    this = [t for t in rec["trend"] if t["period"] == "2026Q3"]
    assert len(this) == 1 and this[0]["overpayment"] == s["overpayment"] and this[0]["source"] == "this report"
    sheet = {row[0]: row[1] for row in openpyxl.load_workbook(r.workpapers)["summary"].iter_rows(min_row=2, values_only=True)}
    assert sheet["errors"] == s["findings"]["error"] and sheet["overpayment"] == s["overpayment"]
    assert isinstance(sheet["overpayment"], (int, float))  # a number, not text
    row = practice_row("Demo", r.folder / "audit", r.folder)
    assert (row["overpayment"], row["claim_lines_in_error"]) == (s["overpayment"], s["claim_lines_not_supported"])


def test_all_four_files(rendered):
    r, _ = rendered
    for p in (r.notebook, r.html, r.pdf, r.workpapers):
        assert p.is_file() and p.stat().st_size > 1000
    assert not list(r.folder.parent.glob(".q3.partial-*")) and not list(r.folder.glob(".staging-*"))
    assert (r.folder / "audit" / ".ccm-audit-run").is_file() and not (r.folder / "audit" / ".ccm-audit.lock").exists()


def test_pdf_renders_text_with_page_numbers(rendered):
    """Page 1: the cover, the findings, the repayment sentence and the sample's table; the executive summary ends on page 2
    at the latest; then a table of contents whose page numbers are right."""
    r, _ = rendered
    pages = pdf_pages(r.pdf)
    assert len(pages) >= 5
    first = " ".join(pages[0].split())
    s = r.headline
    assert "Demo Family Practice" in first and "DRAFT" in first and "Executive summary" in first
    assert "What we found" in first and f"${s['overpayment']:,.2f}" in first
    assert "Repayment (OIG self-disclosure)" in first and "Overpayment in the sample" in first and "Lower limit, two-sided 90%" in first
    assert "Chart review of the sample: not finished" in first  # nobody has reviewed the sample of this report
    assert "most valuable actions" in " ".join((pages[0] + pages[1]).split())
    assert re.search(r"Page 1 of \d+", first)
    toc = next(i for i, t in enumerate(pages) if "Contents" in t)
    assert toc in (1, 2)
    entries = re.findall(r"^(\d\. [A-Z][^\n.]*?)\s*\.*\s*(\d+)$", pages[toc], re.M)
    assert len(entries) >= 8, pages[toc]
    for title, page in entries:
        assert title in " ".join(pages[int(page) - 1].split()), (title, page)


def test_html_is_self_contained_without_code(rendered):
    html = rendered[0].html.read_text()
    assert "<script" not in html  # no require.js, MathJax or widget scripts
    assert not re.search(r'(src|href)="https?://', html)  # nothing fetched from a CDN
    assert "QuarterlyReview.run(" not in html  # code cells are not shown
    assert "data:image/png;base64" in html  # figures embedded
    assert "@page" in html and "counter(page)" in html
    assert "48863.78" in html and "rule catalog v3" in html


def test_headline_in_html_equals_the_tables(rendered):
    r, _ = rendered
    html = r.html.read_text()
    cl = pd.read_csv(r.folder / "audit" / "claim_lines.csv")
    pm = pd.read_csv(r.folder / "audit" / "patient_months.csv")
    over = cl["overpayment"].sum()
    bad = cl["determination"].isin(NOT_SUPPORTED).sum()  # a denied line (paid 0) is not an overpayment (BILL-08)
    assert f"overpayment of <strong>${over:,.2f}</strong>" in html
    assert f"{bad} of {len(cl)} claim lines" in html
    assert f"supported ${pm['missed_amount'].sum():,.2f} that was not billed" in html
    rec = read_records(r.notebook)
    assert rec["headline"]["overpayment"] == pytest.approx(over)
    s = pd.read_csv(r.folder / "audit" / "sample.csv")
    s = s[~s["spare"]]
    assert rec["headline"]["sample_size"] == len(s) == 40


def test_claim_by_claim_list_and_breakdowns_come_from_the_engine(rendered):
    """Every line not fully supported is in the workbook with its reasons in words; the practitioner breakdown adds up
    to the claim lines; the crosswalk (audit data only) maps every key the report shows back to a patient id."""
    import json
    r, _ = rendered
    cl = pd.read_csv(r.folder / "audit" / "claim_lines.csv", dtype={"billing_npi": str})
    bad = cl[cl["determination"].isin(NOT_SUPPORTED)]
    listed = pd.read_excel(r.workpapers, sheet_name="lines not supported")
    assert len(listed) == len(bad) and listed["Overpayment"].sum() == pytest.approx(bad["overpayment"].sum())
    assert listed["Why"].str.len().gt(0).all() and not listed["Why"].str.contains("_").any()
    s = json.loads((r.folder / "audit" / "run.json").read_text())["summary"]
    byp = pd.DataFrame(s["by_practitioner"])
    assert byp["overpayment"].sum() == pytest.approx(s["overpayment"]) and byp["claim_lines"].sum() == s["claim_lines"]
    sheet = pd.read_excel(r.workpapers, sheet_name="by practitioner", dtype={"Billing NPI": str})
    assert sheet["Overpayment"].tolist() == byp["overpayment"].tolist()
    cw = pd.read_csv(r.folder / "audit" / "crosswalk.csv", dtype=str)
    keys = set(pd.read_excel(r.workpapers, sheet_name="patient-months")["Patient"])
    assert keys <= set(cw["patient_key"]) and cw["patient_id"].is_unique
    assert "crosswalk" not in " ".join(openpyxl.load_workbook(r.workpapers, read_only=True).sheetnames)
    html = r.html.read_text()
    for section in ("Corrective-action plan", "Management response", "Identified overpayments", "42 CFR 401.305", "Sign-off",
                    "Risk indicators", "By billing practitioner and staff member", "Claim lines not fully supported"):
        assert section in html, section


def test_workpapers_sheets(rendered):
    r, _ = rendered
    wb = openpyxl.load_workbook(r.workpapers)
    assert {"summary", "findings", "claim lines", "lines not supported", "patient-months", "by practitioner", "by staff", "trend",
            "corrective actions", "sample", "frame", "data quality", "rules", "provenance"} <= set(wb.sheetnames)
    ws = wb["findings"]
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref
    assert ws.cell(1, 1).value == "Patient"  # the pseudonymous key, titled in words
    cl = pd.read_excel(r.workpapers, sheet_name="claim lines")
    assert cl["Overpayment"].sum() == pytest.approx(pd.read_csv(r.folder / "audit" / "claim_lines.csv")["overpayment"].sum())
    assert len(pd.read_excel(r.workpapers, sheet_name="frame")) == len(cl)


def test_no_phi_in_html_pdf_or_excel(rendered):
    from conftest import DEMO
    r, _ = rendered
    pts = pd.read_csv(DEMO / "patients.csv", dtype=str)
    needles = set(pts["first_name"]) | set(pts["last_name"]) | set(pts["birth_date"]) | set(pts["medicare_id"]) | set(pts["patient_id"])
    html = r.html.read_text()
    pdf = " ".join(pdf_pages(r.pdf))
    wb = openpyxl.load_workbook(r.workpapers, read_only=True)
    cells = " ".join(str(v) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for v in row if v is not None)
    for where, text in (("html", html), ("pdf", pdf), ("xlsx", cells)):
        leaks = [n for n in needles if n in text]
        assert not leaks, (where, leaks[:5])


def test_ledger_records_the_run(rendered):
    r, root = rendered
    con = sqlite3.connect(root / "ledger.sqlite")
    rows = con.execute("SELECT practice, period, status, report_dir, headline FROM runs").fetchall()
    assert rows[-1][:4] == ("Demo Family Practice", "2026Q3", "ok", str(r.folder))
    assert '"overpayment"' in rows[-1][4]


def test_input_error_inside_the_notebook_is_exit_2_and_leaves_nothing(tmp_path):
    from chart import chart, write
    data = write(chart(), tmp_path / "data")
    (data / "staff.csv").write_bytes("staff_id,role\nS1,rn\nS\xe9,rn\n".encode("latin-1"))  # not UTF-8: the first cell fails
    out = tmp_path / "r"
    proc = run_cli("report", data, "--period", "2026-01", "--out", out)
    assert proc.returncode == 2 and "not UTF-8" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))


def test_failed_cell_keeps_evidence_and_no_half_report(tmp_path, monkeypatch):
    import nbformat
    from chart import chart, write
    from ccmlib import paths
    from ccmlib.report import render
    data = write(chart(), tmp_path / "data")
    nb = nbformat.read(str(paths.notebook(render.NOTEBOOK)), as_version=4)
    nb.cells.insert(3, nbformat.v4.new_code_cell("raise RuntimeError('boom in a cell')"))
    broken = tmp_path / "nb" / render.NOTEBOOK
    broken.parent.mkdir()
    nbformat.write(nb, str(broken))
    monkeypatch.setattr(render.paths, "notebook", lambda name: broken)
    out = tmp_path / "r"
    with pytest.raises(ReportError, match="RuntimeError: boom in a cell"):
        render_report(data, "2026-01", out)
    assert (out / "failed" / "quarterly_review.ipynb").is_file() and (out / "failed" / "error.html").is_file()
    assert not (out / "report.html").exists() and not (out / "report.pdf").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".staging")]


def test_print_typography(rendered):
    """Human column titles (no snake_case header), the per-rule overlap note, a real document title."""
    r, _ = rendered
    html = r.html.read_text()
    heads = re.findall(r"<th[^>]*>([^<]*)</th>", html)
    assert heads and not [h for h in heads if "_" in h], [h for h in heads if "_" in h]
    assert html.count("Per-rule dollars overlap") >= 2
    pdf = PdfReader(r.pdf)
    assert pdf.metadata.title == "CCM compliance review: Demo Family Practice, 2026Q3"
    text = " ".join(pdf_pages(r.pdf))
    for raw_name in ("claim_lines_reviewed", "qualifying_minutes", "rows_accepted", "error_rate_count", "missed_amount"):
        assert raw_name not in text


def test_workbook_numbers_are_typed_and_formatted(rendered):
    r, _ = rendered
    wb = openpyxl.load_workbook(r.workpapers)
    ws = wb["claim lines"]
    header = [c.value for c in ws[1]]
    assert not [h for h in header if "_" in h]  # headers in words (issue 26)
    cell = ws.cell(2, header.index("Overpayment") + 1)
    assert isinstance(cell.value, (int, float)) and "$" in cell.number_format
    summary = {row[0]: row[1] for row in wb["summary"].iter_rows(min_row=2, values_only=True)}
    assert isinstance(summary["claim_lines_reviewed"], int) and isinstance(summary["error_rate_count"], float)


def test_render_from_the_run_folder_gives_the_reports_figures_and_tables(rendered, tmp_path):
    """`ccm-audit render AUDIT_DIR` re-renders a signed run without re-auditing (issue 26): the same headline and
    provenance, every workbook sheet but provenance cell for cell, and the report's text the same but for the ledger's
    list of runs (which now holds the first report). The audit folder is copied into the new report folder whole."""
    from ccmlib.report.render import render_run

    r, shared = rendered
    again = render_run(r.folder / "audit", shared / "q3-again", command="ccm-audit render (test)")
    assert again.headline == r.headline
    assert {k: v for k, v in again.provenance.items() if k != "rendered_with"} == \
        {k: v for k, v in r.provenance.items() if k != "rendered_with"}
    assert again.provenance["rendered_with"] == "ccm-audit render (test)"
    a, b = openpyxl.load_workbook(r.workpapers, read_only=True), openpyxl.load_workbook(again.workpapers, read_only=True)
    assert a.sheetnames == b.sheetnames
    for name in a.sheetnames:
        if name != "provenance":
            assert list(a[name].values) == list(b[name].values), name
    for f in ("claim_lines.csv", "findings.csv", "sample.csv", "crosswalk.csv", "run.json", "overrides.csv"):
        assert (again.folder / "audit" / f).read_bytes() == (r.folder / "audit" / f).read_bytes(), f

    def text(p):
        body = re.sub(r"<[^>]+>", "\n", p.read_text(encoding="utf-8"))
        body = re.sub(r"Earlier runs recorded in the ledger.*?(?=Appendix C)", "", body, flags=re.S)
        return [t.strip() for t in body.splitlines() if t.strip()]
    assert text(again.html) == text(r.html)


def test_render_refuses_what_it_cannot_render_before_writing(rendered, tmp_path):
    """Checked before a notebook starts, each with a message naming the folder: not an audit folder, --final while sampled
    units are undecided, a practice name that would key patients differently from the folder's crosswalk."""
    r, shared = rendered
    cmd = [sys.executable, "-m", "ccmlib.cli", "render"]
    p = subprocess.run([*cmd, str(tmp_path), "--out", str(tmp_path / "x")], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 2 and "not an audit folder (no run.json)" in p.stderr
    p = subprocess.run([*cmd, str(r.folder / "audit"), "--out", str(shared / "final"), "--final"], capture_output=True, text=True,
                       cwd=tmp_path)
    assert p.returncode == 2 and "--final refused" in p.stderr and "undecided" in p.stderr
    p = subprocess.run([*cmd, str(r.folder / "audit"), "--out", str(shared / "renamed"), "--practice-name", "Another name"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 2 and "crosswalk.csv" in p.stderr and "another practice name" in p.stderr
    assert not (shared / "final").exists() and not (shared / "renamed").exists() and not (tmp_path / "x").exists()
