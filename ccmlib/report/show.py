"""Display a table in a notebook: no index, money and percent formatted, static HTML (no widgets)."""
from __future__ import annotations

import pandas as pd


def table_html(data, columns=None, money=(), percent=(), max_rows: int | None = None) -> str:
    df = pd.DataFrame(data)
    if columns:
        df = df[[c for c in columns if c in df.columns]]
    if max_rows is not None and len(df) > max_rows:
        df = df.head(max_rows)
    fmt = {c: "${:,.2f}".format for c in money if c in df.columns}
    fmt.update({c: "{:.1%}".format for c in percent if c in df.columns})
    if df.empty:
        return "<p><em>none</em></p>"
    # escape="html": every value and header from data is escaped (a claim id holding <script> stays text)
    return (df.style.format(fmt, na_rep="", escape="html").format_index(escape="html", axis=1).hide(axis="index")
            .set_table_attributes('class="ccm-table"').to_html())


def show(data, columns=None, money=(), percent=(), max_rows: int | None = None) -> None:
    from IPython.display import HTML, display

    display(HTML(table_html(data, columns, money, percent, max_rows)))
