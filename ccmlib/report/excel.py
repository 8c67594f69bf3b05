"""Excel workpapers: one sheet per table, frozen headers, filters, sensible widths (xlsxwriter).

Every cell from data is written as a value: xlsxwriter's ``strings_to_formulas`` and ``strings_to_urls`` are off, so a
claim id such as ``=HYPERLINK(...)`` or ``=cmd|' /C calc'!A0`` is stored as text, never as a formula or a link."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


#: xlsxwriter options: strings stay strings (no formulas, links or numbers guessed from text)
INERT = {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False}


#: columns shown as dollars and as percentages (typed numbers with a number format, never text)
MONEY = frozenset({"paid_amount", "overpayment", "amount", "missed_amount", "missed_revenue", "unit_value", "examined", "audited",
                   "difference", "current_amount"})
PERCENT_PREFIX = ("error_rate", "sample_error_rate")


def write_workpapers(path: Path, sheets: dict[str, pd.DataFrame]) -> Path:
    path = Path(path)
    with pd.ExcelWriter(path, engine="xlsxwriter", datetime_format="yyyy-mm-dd", date_format="yyyy-mm-dd",
                        engine_kwargs={"options": INERT}) as xw:
        for name, df in sheets.items():
            df = df.copy()
            for c in df.columns:
                if str(df[c].dtype) in ("string", "str") or df[c].dtype == object:
                    df[c] = df[c].astype(object).where(df[c].notna(), None)
            df.to_excel(xw, sheet_name=name[:31], index=False)
            ws = xw.sheets[name[:31]]
            ws.freeze_panes(1, 0)
            if len(df.columns):
                ws.autofilter(0, 0, max(len(df), 1), len(df.columns) - 1)
            money_fmt = xw.book.add_format({"num_format": "$#,##0.00"})
            pct_fmt = xw.book.add_format({"num_format": "0.0%"})
            for i, c in enumerate(df.columns):
                width = max([len(str(c))] + [len(str(v)) for v in df[c].head(500).tolist()])
                numeric = pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
                fmt = (money_fmt if numeric and str(c) in MONEY else pct_fmt if numeric and str(c).startswith(PERCENT_PREFIX)
                       else None)
                ws.set_column(i, i, min(max(width + 2, 8), 60), fmt)
    return path
