"""An audit run folder read back as the engine wrote it: what a report renders from (`ccm-audit render AUDIT_DIR`)
without re-auditing."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ccmlib.engine.pipeline import AuditResult
from ccmlib.errors import InputError

#: the types of the run folder's number, date and flag columns (every other column is text), so that a run read back
#: from its folder (:func:`read_outputs`) holds the values the engine wrote
OUTPUT_TYPES = {
    "Int64": ("line", "units_billed", "units_supported", "chronic_conditions", "errors", "warnings", "unit", "stratum_unit",
              "order", "findings_open", "units_supported_decided"),
    "float64": ("amount", "paid_amount", "overpayment", "cost_sharing", "allowed_unsupported", "conversion_factor",
                "qualifying_minutes", "practitioner_minutes", "documented_minutes", "missed_amount", "examined", "audited",
                "difference", "original_amount", "current_amount"),
    "datetime64[ns]": ("service_date", "date_20min", "date_40min", "date_60min"),
    "bool": ("spare",),
}
RUN_TABLES = ("findings", "claim_lines", "patient_months", "data_quality")


def read_table(path: Path) -> pd.DataFrame:
    """One CSV of a run folder with its columns typed as the engine wrote them (:data:`OUTPUT_TYPES`); text stays text
    (ids keep their leading zeros), an empty cell of a number or date column is missing. A value that is not of its
    column's type is an error naming the file, line and column (a run folder edited by hand)."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    kinds = {c: k for k, cols in OUTPUT_TYPES.items() for c in cols}
    for c in df.columns:
        kind = kinds.get(c)
        if kind is None:
            continue
        raw = df[c]
        empty = raw.eq("")
        if kind == "bool":
            bad = ~raw.isin(["True", "False"])
            conv = raw.eq("True")
        elif kind == "datetime64[ns]":
            conv = pd.to_datetime(raw.where(~empty), format="%Y-%m-%d", errors="coerce").astype("datetime64[ns]")
            bad = conv.isna() & ~empty
        else:
            conv = pd.to_numeric(raw.where(~empty), errors="coerce")
            bad = (conv.isna() & ~empty) | ((conv % 1 != 0) & conv.notna() if kind == "Int64" else False)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{path}, line {i + 2}, column {c}: {raw.iloc[i]!r} is not a {kind.split('[')[0].lower()}; "
                             f"a run folder is read as ccm-audit wrote it (was it edited?)")
        if kind == "Int64" and not empty.any():
            kind = "int64"  # a whole column of numbers: plain integers, as the engine holds them
        df[c] = conv.astype(kind) if kind not in ("bool", "datetime64[ns]") else conv
    return df


def read_run_json(folder) -> dict:
    """run.json of an audit run folder, checked: there, JSON, and a ccm-audit run (a summary and a period)."""
    folder = Path(folder)
    run_json = folder / "run.json"
    if not run_json.is_file():
        raise InputError(f"{folder}: not an audit folder (no run.json); run `ccm-audit check DATA_DIR --out {folder}` first, "
                         f"or give a report's audit/ folder")
    try:
        run = json.loads(run_json.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{run_json}: not a ccm-audit run.json ({exc})") from None
    if not isinstance(run, dict) or "summary" not in run or "period" not in run:
        raise InputError(f"{run_json}: not a ccm-audit run.json (no summary or period)")
    return run


def read_outputs(audit_dir) -> AuditResult:
    """An audit as its run folder holds it (a ``check`` run folder or a report's ``audit/``): the four tables, run.json,
    the sample, frame and decision trail when there are any. No facts: nothing is re-audited, so the views that need the
    time log (:meth:`AuditResult.entries`) are not available."""
    folder = Path(audit_dir)
    run = read_run_json(folder)
    missing = [f"{n}.csv" for n in RUN_TABLES if not (folder / f"{n}.csv").is_file()]
    if missing:
        raise InputError(f"{folder}: the run folder lacks {', '.join(missing)}")
    tabs = {n: read_table(folder / f"{n}.csv") for n in RUN_TABLES}
    opt = {n: read_table(folder / f"{n}.csv") if (folder / f"{n}.csv").is_file() else None
           for n in ("sample", "frame", "overrides_applied")}
    return AuditResult(tabs["findings"], tabs["claim_lines"], tabs["patient_months"], tabs["data_quality"], run,
                       review_trail=opt["overrides_applied"], sample=opt["sample"], frame=opt["frame"])
