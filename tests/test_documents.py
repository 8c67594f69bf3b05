"""The documents handed out through the one rendering route (issue 26): the pre-bill worklist and the consultant's
portfolio, built as data in Python and laid out by Jinja templates; every value from data escaped."""
from __future__ import annotations

from html.parser import HTMLParser

import pandas as pd
import pytest
from markupsafe import escape

from ccmlib.report.render import assert_inert

HOSTILE = '<script>alert("x")</script>'


class _Tables(HTMLParser):
    """Every table of a page as rows of cell texts; a row in a <tfoot> is marked by its first item 'tfoot'."""

    def __init__(self):
        super().__init__()
        self.tables, self._row, self._cell, self._foot = [], None, None, False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tfoot":
            self._foot = True
        elif tag == "tr":
            self._row = ["tfoot"] if self._foot else []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join(" ".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None
        elif tag == "tfoot":
            self._foot = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def tables(html: str) -> list[list[list[str]]]:
    p = _Tables()
    p.feed(html)
    return p.tables


def money(text: str) -> float:
    return float(text.replace("$", "").replace(",", ""))


# ---------------------------------------------------------------- the worklist

@pytest.fixture(scope="module")
def open_month():
    from conftest import demo_prebill
    return demo_prebill("2026-09", as_of="2026-09-20")


def test_worklist_escapes_a_hostile_practice_name_and_patient(open_month):
    from ccmlib.report.worklist import worklist_html
    shown = open_month.worklist.copy()
    shown.loc[shown.index[0], "patient_id"] = HOSTILE  # the first row needs action before month end (blocked)
    html = worklist_html(open_month, shown, practice_name=HOSTILE)
    assert "<script" not in html
    assert html.count("&lt;script&gt;alert(") == 3  # the title, the heading, the first row
    assert_inert(html, "worklist.html")


def test_worklist_header_names_the_profile_when_the_run_has_one(open_month):
    from dataclasses import replace

    from ccmlib.report.worklist import worklist_html
    none = replace(open_month, run={k: v for k, v in open_month.run.items() if k != "profile"})
    assert "profile" not in worklist_html(none, none.worklist)
    pb = replace(open_month, run={**open_month.run, "profile": "strict-mac"})
    assert "rule catalog v" in (html := worklist_html(pb, pb.worklist)) and ", profile strict-mac)" in html
    pb = replace(open_month, run={**open_month.run, "profile": {"name": "<b>mine</b>", "extends": "strict-mac"}})
    assert ", profile &lt;b&gt;mine&lt;/b&gt;)" in worklist_html(pb, pb.worklist)


def test_worklist_before_month_end_lists_the_patients_closest_to_a_threshold_first(open_month):
    from ccmlib.report.worklist import worklist_html
    html = worklist_html(open_month, open_month.worklist)
    head, *rows = tables(html)[1]
    assert head[:3] == ["Patient", "Status", "Billing NPI"] and "Days left" in head and "Corrective action" in head
    status = [r[1] for r in rows]
    need = [int(r[head.index("Minutes needed")]) for r in rows if r[1] == "needs minutes"]
    assert status[0] == "blocked" and need == sorted(need) and need[0] < need[-1]
    todo = open_month.worklist["status"].isin(["blocked", "needs minutes", "billed with problems", "not enrolled"]).sum()
    assert len(rows) == min(todo, 60) and "days left in the month" in html


def test_worklist_after_month_end_starts_with_the_claims_billed_with_problems():
    from conftest import demo_prebill

    from ccmlib.report.worklist import worklist_html
    pb = demo_prebill("2026-08")  # a past month: as of its last day
    html = worklist_html(pb, pb.worklist, practice_name="Demo")
    head, *rows = tables(html)[1]
    n = int((pb.worklist["status"] == "billed with problems").sum())
    assert n > 1 and [r[1] for r in rows[:n]] == ["billed with problems"] * n
    assert {r[1] for r in rows[n:]} <= {"blocked", "not enrolled", "needs minutes"} and rows[-1][1] == "needs minutes"
    assert money(rows[0][head.index("Dollars at stake")]) >= money(rows[n - 1][head.index("Dollars at stake")])
    assert "Days left" not in head and "The month has ended" in html  # 0 on every row: said once, above the list


def test_worklist_of_long_actions_stays_on_two_pages_and_says_how_many_more(tmp_path):
    """After month end the corrective actions of claims billed with problems wrap over several lines: the worklist shows
    the rows that fit two pages and names how many more are in prebill.csv (the 300-patient practice's third page held
    six rows)."""
    from conftest import demo_prebill
    from pypdf import PdfReader

    from ccmlib.report.render import to_pdf
    from ccmlib.report.worklist import PAGE_ROWS, fits_two_pages, worklist_html
    pb = demo_prebill("2026-08")
    todo = pb.worklist[pb.worklist["status"] == "billed with problems"]
    long = pd.concat([todo] * (1 + 120 // len(todo)), ignore_index=True).head(120)
    long["action"] = "Already billed; correct or void: " + "Obtain and document consent before the first CCM activity. " * 5
    shown = long.sample(frac=1, random_state=1).reset_index(drop=True)
    n = len(fits_two_pages(shown))
    assert 15 < n < PAGE_ROWS
    (tmp_path / "w.html").write_text(worklist_html(pb, shown), encoding="utf-8")
    pages = PdfReader(to_pdf(tmp_path / "w.html", tmp_path / "w.pdf")).pages
    text = " ".join(" ".join(p.extract_text().split()) for p in pages)
    assert len(pages) == 2 and f"{120 - n} more, each with its action, in prebill.csv" in text
    one_line = shown.assign(action="Bill 99490")
    assert len(fits_two_pages(one_line)) == PAGE_ROWS  # short rows: the page-row limit, not the lines


# ---------------------------------------------------------------- the portfolio

def _pf(**over) -> pd.DataFrame:
    """Three practices as portfolio.csv has them (rates rounded as practice_row rounds them) and one that failed."""
    rows = []
    for name, lines, bad, billed, errs, paid, over_, missed, top in [
            ("north", 100, 50, 80, 40, 5000.00, 2400.50, 10.0, "CONS-02 (9), CP-01 (4)"),
            ("south", 10, 1, 8, 1, 700.00, 35.00, 0.0, "TIME-06 (1)"),
            ("east", 300, 30, 200, 60, 21000.40, 1500.25, 120.5, "IV-01 (20), CONS-02 (3), BILL-02 (2)")]:
        rows.append({"practice": name, "period": "2026Q3", "status": "ok", "error": "", "claim_lines": lines,
                     "claim_lines_in_error": bad, "error_rate_count": round(bad / lines, 4), "billed_patient_months": billed,
                     "error_findings": errs, "errors_per_100_billed_pm": round(100 * errs / billed, 1), "paid_amount": paid,
                     "overpayment": over_, "error_rate_dollars": round(over_ / paid, 4),
                     "overpayment_per_billed_line": round(over_ / lines, 2), "cost_sharing": round(over_ / 4, 2),
                     "missed_revenue": missed, "top_pitfalls": top,
                     "folder": ""})
    rows.append({"practice": "west", "period": "2026Q3", "status": "failed", "error": "time_entries.csv: not UTF-8",
                 "folder": ""})
    df = pd.DataFrame(rows)
    for k, v in over.items():
        df.loc[0, k] = v
    return df


def test_portfolio_total_row_sums_counts_and_money_and_recomputes_the_rates(tmp_path):
    from ccmlib.workbench.portfolio_report import portfolio_html, totals
    pf = _pf()
    ok = pf[pf["status"] == "ok"]
    t = totals(ok)
    assert t["overpayment"] == round(2400.50 + 35.00 + 1500.25, 2) and t["claim_lines"] == 410 and t["paid_amount"] == 26700.40
    assert t["error_rate_count"] == pytest.approx(81 / 410) != pytest.approx(ok["error_rate_count"].mean())
    assert t["error_rate_dollars"] == pytest.approx(3935.75 / 26700.40) != pytest.approx(ok["error_rate_dollars"].mean())
    assert t["errors_per_100_billed_pm"] == pytest.approx(100 * 101 / 288)
    assert t["overpayment_per_billed_line"] == pytest.approx(3935.75 / 410)

    head, *rows = tables(portfolio_html(pf, tmp_path / "no-ledger.sqlite", "2026Q3", chart=False))[0]
    body, foot = [r for r in rows if r[0] != "tfoot"], [r[1:] for r in rows if r[0] == "tfoot"]
    assert [r[0] for r in body] == ["north", "south", "east"] and len(foot) == 1  # the failed practice is not a row
    total = dict(zip(head, foot[0]))
    assert total["Practice"] == "Total, 3 practices"
    assert money(total["Overpayment (refund to Medicare)"]) == round(sum(money(dict(zip(head, r))["Overpayment (refund to Medicare)"]) for r in body), 2) == 3935.75
    assert total["Claim lines"] == "410" and total["Error rate (lines)"] == "19.8%" and total["Error rate (dollars)"] == "14.7%"
    assert total["Errors per 100 billed patient-months"] == "35.1" and total["Overpayment per billed line"] == "$9.60"


def test_portfolio_columns_hold_one_kind_of_value_each_with_headers_in_words(tmp_path):
    import re

    from ccmlib.workbench.portfolio_report import portfolio_html
    html = portfolio_html(_pf(), tmp_path / "no-ledger.sqlite", "2026Q3", chart=False)
    head, *rows = tables(html)[0]
    assert not [h for h in head if "_" in h] and "Overpayment (refund to Medicare)" in head and "Missed revenue" in head
    kinds = {"Errors per 100 billed patient-months": r"\d+\.\d", "Claim lines": r"[\d,]+", "Error findings": r"\d+",
             "Error rate (lines)": r"\d+\.\d%", "Error rate (dollars)": r"\d+\.\d%", "Paid": r"\$[\d,]+\.\d\d",
             "Overpayment (refund to Medicare)": r"\$[\d,]+\.\d\d", "Missed revenue": r"\$[\d,]+\.\d\d"}
    for row in rows:
        cells = dict(zip(head, row[1:] if row[0] == "tfoot" else row))
        for col, pattern in kinds.items():
            assert re.fullmatch(pattern, cells[col]), (col, cells[col])
    # 35 errors per 100 is "35.0" beside "50.0", never "35" beside "43.40"
    assert dict(zip(head, rows[1]))["Errors per 100 billed patient-months"] == "12.5"
    assert "dollars at risk" not in html.lower()


def test_portfolio_names_the_top_pitfalls_in_words_from_the_rule_catalog(tmp_path):
    from ccmlib.engine.rules.registry import catalog
    from ccmlib.workbench.portfolio import _top
    from ccmlib.workbench.portfolio_report import pitfalls_in_words, portfolio_html

    titles = catalog().set_index("id")["title"]
    html = portfolio_html(_pf(), tmp_path / "no-ledger.sqlite", "2026Q3", chart=False)
    pit = {r[0]: r[1] for r in tables(html)[1][1:]}
    assert pit["north"] == f"{titles['CONS-02']} [CONS-02]: 9 findings {titles['CP-01']} [CP-01]: 4 findings"
    assert pit["south"] == f"{titles['TIME-06']} [TIME-06]: 1 finding"
    # the parser reads what the batch writes
    by_rule = {"CONS-02": {"findings": 5}, "IV-01": {"findings": 7}, "TIME-01": {"findings": 50}, "CP-01": {"findings": 5}}
    assert [(p["id"], p["findings"]) for p in pitfalls_in_words(_top(by_rule))] == [("IV-01", 7), ("CONS-02", 5), ("CP-01", 5)]
    with pytest.raises(ValueError, match="RULE-ID"):
        pitfalls_in_words("CONS-02, 5")


def test_portfolio_escapes_hostile_practice_names_and_errors(tmp_path):
    from ccmlib.workbench.portfolio_report import portfolio_html
    pf = _pf(practice=HOSTILE)
    pf.loc[3, "error"] = f'bad file {HOSTILE}<img src=x onerror="y">'
    html = portfolio_html(pf, tmp_path / "no-ledger.sqlite", "2026Q3<b>", chart=False)
    assert "<script" not in html and "<img src=x" not in html and "2026Q3<b>" not in html
    assert html.count(str(escape(HOSTILE))) == 3  # the practices table, the pitfalls, the failed practice's error
    assert_inert(html, "portfolio.html")


def test_portfolio_shows_a_profile_column_only_when_practices_differ(tmp_path):
    from ccmlib.workbench.portfolio_report import portfolio_html
    html = portfolio_html(_pf(), tmp_path / "l.sqlite", "2026Q3", chart=False)
    assert "Profile" not in tables(html)[0][0] and "profile" not in html
    html = portfolio_html(_pf().assign(profile="strict-mac"), tmp_path / "l.sqlite", "2026Q3", chart=False)
    assert "Profile" not in tables(html)[0][0] and "same rule catalog (profile strict-mac)." in html  # one: said once
    pf = _pf().assign(profile=["strict-mac", "medicare-ffs", "medicare-ffs", ""])
    head, first, *_ = tables(portfolio_html(pf, tmp_path / "l.sqlite", "2026Q3", chart=False))[0]
    assert head[:2] == ["Practice", "Profile"] and first[:2] == ["north", "strict-mac"]


def test_batch_portfolio_total_equals_the_practices_run_summaries(tmp_path):
    """From a real batch: the total row's overpayment is the sum of the practices' run.json overpayments, its error rate
    their lines in error over their lines; the chart is embedded and the PDF written."""
    import json

    from ccmlib.workbench.portfolio import make_demo_clients, run_batch
    from ccmlib.workbench.portfolio_report import write_portfolio_report

    clients = make_demo_clients(tmp_path / "clients", patients=12, which=("csv", "mapping"))
    pf = run_batch(clients, "2026Q3", tmp_path / "batch", reports=False, progress=False)
    summ = [json.loads((tmp_path / "batch" / n / "run.json").read_text())["summary"] for n in pf["practice"]]
    write_portfolio_report(pf, tmp_path / "ledger.sqlite", tmp_path / "batch", "2026Q3")
    html = (tmp_path / "batch" / "portfolio.html").read_text()
    head, *rows = tables(html)[0]
    total = dict(zip(head, [r for r in rows if r[0] == "tfoot"][0][1:]))
    assert money(total["Overpayment (refund to Medicare)"]) == round(sum(s["overpayment"] for s in summ), 2)
    # the patients' share beside Medicare's (catalog v3 money), per practice from its run and summed in the total row
    assert pf["cost_sharing"].tolist() == [s["cost_sharing"] for s in summ]
    assert money(total["Patients' cost sharing (refund to patients)"]) == round(sum(s["cost_sharing"] for s in summ), 2)
    lines, bad = sum(s["claim_lines"] for s in summ), sum(s["claim_lines_not_supported"] for s in summ)
    assert total["Claim lines"] == f"{lines:,}" and total["Error rate (lines)"] == f"{bad / lines:.1%}"
    assert 'src="data:image/png;base64,' in html and (tmp_path / "batch" / "portfolio.pdf").stat().st_size > 5000
