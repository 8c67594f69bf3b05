"""Display a table in a notebook or report: no index, human column titles, money as $1,234.56, percentages with one
decimal, minutes as whole numbers, every value escaped, static HTML (no widgets)."""
from __future__ import annotations

import re
from html import escape

import pandas as pd

#: column titles for print; any other snake_case name becomes "Snake case"
TITLES = {
    "id": "Rule", "rule_id": "Rule", "title": "Criterion", "severity": "Severity", "findings": "Findings",
    "patient_months": "Patient-months", "amount": "Dollars at risk (overlap)", "explanation": "What it means",
    "citation": "Source", "action": "Corrective action", "table": "Table", "file": "File", "rows_read": "Rows read",
    "rows_accepted": "Accepted", "rows_rejected": "Rejected", "sha256": "SHA-256", "column": "Column", "rows": "Rows",
    "example": "Example", "period": "Period", "claim_lines_reviewed": "Claim lines", "error_rate_count": "Error rate (count)",
    "overpayment": "Overpayment", "error_rate_dollars": "Error rate (dollars)", "missed_revenue": "Missed revenue",
    "missed_amount": "Missed revenue", "source": "Source", "patient_key": "Patient", "patient_id": "Patient",
    "service_month": "Month", "qualifying_minutes": "Qualifying minutes", "codes_billed": "Billed", "codes_supported": "Supported",
    "rules": "Rules", "run_at": "Run at", "status": "Status", "report_dir": "Report folder", "staff_id": "Staff",
    "measure": "Measure", "this_quarter": "This quarter", "previous_quarter": "Previous quarter", "change": "Change",
    "previous_amount": "Previous quarter", "billing_npi": "Billing NPI", "patients": "Patients", "claim_lines": "Claim lines",
    "not_supported": "Not fully supported", "paid_amount": "Paid", "with_error": "With an error", "error_rate": "Error rate",
    "minutes_logged": "Minutes logged", "minutes_counted": "Minutes counted", "claim_id": "Claim", "line": "Line",
    "service_date": "Service date", "cpt_code": "Code", "units_billed": "Units billed", "units_supported": "Units supported",
    "determination": "Determination", "reasons": "Why", "rule_ids": "Rules (section 2)", "indicator": "Indicator", "value": "Value", "look_closer": "Look closer",
    "owner": "Owner", "due_date": "Due date", "claim_lines_in_error": "Not fully supported", "package": "Package",
    "version": "Version", "terms_met": "This review meets the path's terms", "applies_when": "Applies when",
    "repayment": "Repayment", "practitioner": "Practitioner",
}
MINUTES = ("qualifying_minutes", "practitioner_minutes", "documented_minutes", "minutes", "minutes_logged", "minutes_counted")


def _money(v) -> str:
    if isinstance(v, str):
        return v  # a word in a money column ('n/a')
    if pd.isna(v):
        return ""
    return f"\u2011${-v:,.2f}" if v < 0 else f"${v:,.2f}"  # a non-breaking hyphen keeps -$283.58 on one line


#: the one way a document writes money, a rate and a count of things (tables, Markdown text, templates)
money_text = _money


def percent_text(v) -> str:
    return "" if v is None or pd.isna(v) else f"{v:.1%}"


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 practitioner', '2 practitioners': counts in words without '(s)'."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def title(name) -> str:
    name = str(name)
    return TITLES.get(name, name.replace("_", " ").capitalize())


def _plain(v) -> str:
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v):
        return ""
    if isinstance(v, bool) or type(v).__name__ == "bool_":
        return "yes" if v else "no"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else f"{v:,.2f}"
    if isinstance(v, pd.Timestamp):
        return f"{v:%Y-%m-%d}"
    return str(v)


_LONG = re.compile(r"[^\s&<>]{21,}")


def _breakable(text: str) -> str:
    """Escaped cell text with a line-break opportunity (<wbr>, markup: copying the text does not pick it up) every 16
    characters of a token longer than 20 (a SHA-256 hash, a path), so such a token wraps inside its cell while short
    values (amounts, dates, codes, patient keys) are never broken mid-value."""
    if len(text) <= 20:
        return text
    return _LONG.sub(lambda m: "<wbr>".join(m.group(0)[i:i + 16] for i in range(0, len(m.group(0)), 16)), text)


def table_html(data, columns=None, money=(), percent=(), max_rows: int | None = None, wide_last: bool = False) -> str:
    """A static HTML table: human column titles, money as $1,234.56, percentages with one decimal, minutes as whole
    numbers, dates as YYYY-MM-DD, and every header and value HTML-escaped (a claim id holding <script> stays text).
    ``wide_last`` gives the last column (a long text such as the reasons) 40 % of the width. Plain markup, no ids or
    classes per cell: the PDF lays it out several times faster than a pandas Styler table."""
    df = pd.DataFrame(data)
    if columns:
        df = df[[c for c in columns if c in df.columns]]
    if max_rows is not None and len(df) > max_rows:
        df = df.head(max_rows)
    if df.empty:
        return "<p><em>none</em></p>"
    fmt = {c: _money for c in money if c in df.columns}
    fmt.update({c: percent_text for c in percent if c in df.columns})
    fmt.update({c: (lambda v: "" if pd.isna(v) else f"{v:,.0f}") for c in MINUTES if c in df.columns and pd.api.types.is_numeric_dtype(df[c])})
    cols = []
    for c in df.columns:
        f = fmt.get(c, _plain)
        cols.append([_breakable(escape(f(v), quote=True)) for v in df[c].astype(object).tolist()])
    head = "".join(f"<th>{escape(title(c), quote=True)}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>\n" for row in zip(*cols))
    cls = "ccm-table ccm-wide-last" if wide_last else "ccm-table"
    return f'<table class="{cls}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>'


def show(data, columns=None, money=(), percent=(), max_rows: int | None = None, wide_last: bool = False) -> None:
    from IPython.display import HTML, display

    display(HTML(table_html(data, columns, money, percent, max_rows, wide_last)))


def response_html(rows: int = 6) -> str:
    """The management-response section: ruled blank lines for the practice to write on (no data in it)."""
    return ('<div class="ccm-response">' + '<div class="ccm-rule-line"></div>' * rows
            + '<p class="ccm-sign-caption">Practice representative, title and date</p></div>')


def signoff_html(prov: dict) -> str:
    """The sign-off block: who prepared and reviewed the report and who accepted it for the practice (names escaped)."""
    from html import escape

    def box(role: str, name: str = "") -> str:
        return (f'<td><div class="ccm-sign-name">{escape(str(name))}</div><div class="ccm-sign-line"></div>'
                f'<div class="ccm-sign-caption">{escape(role)}: signature and date</div></td>')
    status = escape(str(prov.get("status", "DRAFT")))
    return (f'<div class="ccm-signoff-block"><p>This report is <strong>{status}</strong>. It was prepared for {escape(str(prov.get("prepared_for", "")))} from the '
            f'data and software listed in appendix B; the same inputs and seed give the same findings.</p>'
            f'<table class="ccm-signoff"><tr>{box("Prepared by", prov.get("prepared_by", ""))}{box("Reviewed by")}</tr>'
            f'<tr>{box("Accepted for the practice")}{box("Compliance officer")}</tr></table></div>')
