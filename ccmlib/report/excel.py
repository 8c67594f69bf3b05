"""Excel workpapers: one sheet per table, frozen headers, filters, sensible widths (xlsxwriter).

Every cell from data is written as a value: xlsxwriter's ``strings_to_formulas`` and ``strings_to_urls`` are off, so a
claim id such as ``=HYPERLINK(...)`` or ``=cmd|' /C calc'!A0`` is stored as text, never as a formula or a link."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


#: xlsxwriter options: strings stay strings (no formulas, links or numbers guessed from text)
INERT = {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False}


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
            for i, c in enumerate(df.columns):
                width = max([len(str(c))] + [len(str(v)) for v in df[c].head(500).tolist()])
                ws.set_column(i, i, min(max(width + 2, 8), 60))
    return path
