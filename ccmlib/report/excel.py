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
                   "difference", "current_amount", "original_amount", "cost_sharing", "allowed_unsupported", "allowed_amount",
                   "repayment", "sample_overpayment", "sample_examined", "estimate_point", "estimate_lower_90", "estimate_lower_80",
                   "per_rule_amounts_total", "overpayment_per_claim_line", "paid_read", "paid_rejected"})
PERCENT_PREFIX = ("error_rate", "sample_error_rate")


def _row_format(item: str, money_fmt, pct_fmt):
    """The number format of a value on an item/value sheet (the summary): by the item's name."""
    return money_fmt if item in MONEY else pct_fmt if item.startswith(PERCENT_PREFIX) else None


def _cells(col: pd.Series) -> list:
    """A column as Python values for xlsxwriter: numbers stay numbers, dates datetimes, blanks None."""
    if pd.api.types.is_datetime64_any_dtype(col):
        return [None if pd.isna(v) else v.to_pydatetime() for v in col]
    if pd.api.types.is_bool_dtype(col) and not col.isna().any():
        return col.astype(bool).tolist()
    if pd.api.types.is_numeric_dtype(col):
        vals = col.astype("float64") if not pd.api.types.is_integer_dtype(col) or col.isna().any() else col
        return [None if v != v else v for v in vals.tolist()]  # NaN -> blank
    return [None if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v) else
            (v if isinstance(v, (str, bool, int, float)) else str(v)) for v in col.astype(object).tolist()]


def headers(columns) -> list[str]:
    """Column titles in words, as the report prints them (show.title: 'overpayment' -> 'Overpayment'); a title that two
    columns of one sheet would share keeps the second column's own name in words."""
    from ccmlib.report.show import title

    out = []
    for c in columns:
        t = title(c)
        out.append(t if t not in out else str(c).replace("_", " ").capitalize())
    return out


def write_workpapers(path: Path, sheets: dict[str, pd.DataFrame]) -> Path:
    """One sheet per table with xlsxwriter directly (pandas' writer encodes a style per cell, four times slower):
    a bold frozen header row, a filter, widths that fit, money and percentages as typed numbers with a format."""
    import xlsxwriter

    path = Path(path)
    wb = xlsxwriter.Workbook(str(path), {**INERT, "default_date_format": "yyyy-mm-dd"})
    try:
        head = wb.add_format({"bold": True, "bottom": 1, "text_wrap": False})
        money_fmt = wb.add_format({"num_format": "$#,##0.00"})
        pct_fmt = wb.add_format({"num_format": "0.0%"})
        for name, df in sheets.items():
            ws = wb.add_worksheet(name[:31])
            ws.write_row(0, 0, headers(df.columns), head)
            ws.freeze_panes(1, 0)
            if len(df.columns):
                ws.autofilter(0, 0, max(len(df), 1), len(df.columns) - 1)
            if list(df.columns) == ["item", "value"]:  # a summary: each value formatted by its item (money, percent)
                for r, (item, value) in enumerate(zip(df["item"].astype(str), _cells(df["value"])), start=1):
                    ws.write(r, 0, item)
                    fmt = _row_format(item, money_fmt, pct_fmt) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
                    ws.write(r, 1, value, fmt) if value is not None else ws.write_blank(r, 1, None)
                ws.set_column(0, 0, min(max([len(x) for x in df["item"].astype(str)] + [8]) + 2, 60))
                ws.set_column(1, 1, 24)
                continue
            for i, c in enumerate(df.columns):
                col = df[c]
                numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
                fmt = (money_fmt if numeric and str(c) in MONEY else pct_fmt if numeric and str(c).startswith(PERCENT_PREFIX)
                       else None)
                values = _cells(col)
                if values:
                    ws.write_column(1, i, values, fmt)
                width = max([len(headers([c])[0])] + [len(str(v)) for v in values[:500] if v is not None])
                ws.set_column(i, i, min(max(width + 2, 8), 60), fmt)
    finally:
        wb.close()
    return path
