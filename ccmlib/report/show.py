"""Display a table in a notebook or report: no index, human column titles, money as $1,234.56, percentages with one
decimal, minutes as whole numbers, every value escaped, static HTML (no widgets)."""
from __future__ import annotations

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
}
MINUTES = ("qualifying_minutes", "practitioner_minutes", "documented_minutes", "minutes")


def title(name) -> str:
    name = str(name)
    return TITLES.get(name, name.replace("_", " ").capitalize())


def table_html(data, columns=None, money=(), percent=(), max_rows: int | None = None) -> str:
    df = pd.DataFrame(data)
    if columns:
        df = df[[c for c in columns if c in df.columns]]
    if max_rows is not None and len(df) > max_rows:
        df = df.head(max_rows)
    fmt = {c: "${:,.2f}".format for c in money if c in df.columns}
    fmt.update({c: "{:.1%}".format for c in percent if c in df.columns})
    fmt.update({c: "{:,.0f}".format for c in MINUTES if c in df.columns and pd.api.types.is_numeric_dtype(df[c])})
    if df.empty:
        return "<p><em>none</em></p>"
    # escape="html": every value and header from data is escaped (a claim id holding <script> stays text)
    return (df.style.format(fmt, na_rep="", escape="html").format_index(lambda c: title(c), escape="html", axis=1)
            .hide(axis="index").set_table_attributes('class="ccm-table"').to_html())


def show(data, columns=None, money=(), percent=(), max_rows: int | None = None) -> None:
    from IPython.display import HTML, display

    display(HTML(table_html(data, columns, money, percent, max_rows)))
