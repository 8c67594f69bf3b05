"""Auditor decisions on findings: an append-only CSV log (latest decision per finding wins).

A reviewer may ``accept`` a finding or ``overturn`` it (e.g. "consent found in the scanned paper
chart"). ``audit(..., overrides=PATH)`` keeps overturned findings in ``findings.csv`` with the
decision beside them, takes them out of the money, and writes the trail to
``overrides_applied.csv``: original finding, decision, who, when, why.
"""
from __future__ import annotations

import csv
import os
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ccmlib.errors import InputError

KEY_FIELDS = ["rule_id", "patient_id", "service_month", "claim_id", "line", "billing_npi", "entry_id"]
COLUMNS = ["decided_at", "reviewer", "decision", "reason", "finding_key", *KEY_FIELDS, "original_message", "original_amount"]
DECISIONS = ("accept", "overturn")
FILE_NAME = "overrides.csv"


def finding_key(f: pd.DataFrame) -> pd.Series:
    """Stable identity of a finding from its data fields (not its wording)."""
    parts = [f[c].astype("string").fillna("") if c in f.columns else pd.Series("", index=f.index) for c in KEY_FIELDS]
    key = parts[0]
    for p in parts[1:]:
        key = key + "|" + p.str.replace(r"\.0$", "", regex=True)
    return key


def load(path: str | Path | None) -> pd.DataFrame:
    """The decision log (empty when the file does not exist)."""
    if path is None or not Path(path).is_file():
        return pd.DataFrame(columns=COLUMNS)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: cannot be read as a UTF-8 overrides CSV ({exc})") from None
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=COLUMNS)
    missing = [c for c in ("decided_at", "reviewer", "decision", "reason", "finding_key") if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} of an overrides file")
    bad = ~df["decision"].str.lower().isin(DECISIONS)
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise InputError(f"{path}: line {i + 2}, column decision: {df['decision'].iloc[i]!r} is not accept or overturn")
    blank = (df["reviewer"].str.strip() == "") | (df["reason"].str.strip() == "")
    if blank.any():
        i = int(blank.to_numpy().nonzero()[0][0])
        raise InputError(f"{path}: line {i + 2}: a decision needs a reviewer and a reason")
    return df.assign(decision=df["decision"].str.lower())


def latest(log: pd.DataFrame) -> pd.DataFrame:
    """The last decision per finding (the file is in the order decisions were made)."""
    return log.drop_duplicates("finding_key", keep="last")


def record_decision(path: str | Path, finding: dict | pd.Series, decision: str, reviewer: str, reason: str,
                    when: datetime | None = None) -> dict:
    """Append one decision to the log and flush it to disk at once (nothing is lost if the kernel restarts)."""
    decision = decision.lower().strip()
    if decision not in DECISIONS:
        raise InputError(f"decision {decision!r} is not accept or overturn")
    if not str(reviewer).strip() or not str(reason).strip():
        raise InputError("a decision needs the reviewer's name and a reason")
    finding = dict(finding)
    key = finding_key(pd.DataFrame([finding])).iloc[0]
    row = {"decided_at": (when or datetime.now(timezone.utc)).isoformat(timespec="seconds"), "reviewer": str(reviewer).strip(),
           "decision": decision, "reason": str(reason).strip(), "finding_key": key,
           **{c: "" if pd.isna(finding.get(c)) else str(finding.get(c)) for c in KEY_FIELDS},
           "original_message": str(finding.get("message", "")), "original_amount": str(finding.get("amount", ""))}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        if new:
            w.writeheader()
        w.writerow(row)
        fh.flush()
        os.fsync(fh.fileno())
    return row


def trail(findings: pd.DataFrame, log: pd.DataFrame) -> pd.DataFrame:
    """Applied decisions joined to the findings they concern; decisions whose finding is gone are kept and marked."""
    if log.empty:
        return pd.DataFrame(columns=["status", *COLUMNS, "current_message", "current_amount"])
    last = latest(log)
    cur = findings.assign(finding_key=finding_key(findings))[["finding_key", "message", "amount", "severity"]]
    t = last.merge(cur.rename(columns={"message": "current_message", "amount": "current_amount"}), on="finding_key", how="left")
    t.insert(0, "status", t["current_message"].notna().map({True: "applied", False: "finding no longer raised"}))
    return t.sort_values(["patient_id", "service_month", "rule_id", "decided_at"], kind="mergesort").reset_index(drop=True)
