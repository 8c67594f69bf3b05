"""Auditor decisions on findings: an append-only CSV log (latest decision per finding wins).

A reviewer may ``accept`` a finding or ``overturn`` it (e.g. "consent found in the scanned paper
chart"). ``audit(..., overrides=PATH)`` keeps overturned findings in ``findings.csv`` with the
decision beside them, takes them out of the money, and writes the trail to
``overrides_applied.csv``: original finding, decision, who, when, why.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ccmlib.errors import InputError

KEY_FIELDS = ["rule_id", "patient_id", "service_month", "claim_id", "line", "billing_npi", "entry_id"]
COLUMNS = ["decided_at", "reviewer", "decision", "reason", "finding_key", *KEY_FIELDS, "original_message", "original_amount",
           "evidence"]
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
    blank = (df["reviewer"].str.strip() == "") | ((df["reason"].str.strip() == "") & (df["decision"].str.lower() == "overturn"))
    if blank.any():
        i = int(blank.to_numpy().nonzero()[0][0])
        raise InputError(f"{path}: line {i + 2}: a decision needs a reviewer, and an overturn a reason")
    if "evidence" not in df.columns:  # a log written before decisions could cite evidence
        df["evidence"] = ""
    return df.assign(decision=df["decision"].str.lower())


def latest(log: pd.DataFrame) -> pd.DataFrame:
    """The last decision per finding (the file is in the order decisions were made)."""
    return log.drop_duplicates("finding_key", keep="last")


def record_decision(path: str | Path, finding: dict | pd.Series, decision: str, reviewer: str, reason: str = "",
                    when: datetime | None = None, evidence: str = "") -> dict:
    """Append one decision to the log and flush it to disk at once (nothing is lost if the kernel restarts). An
    overturn needs a reason; an accept does not. ``evidence`` cites what the reviewer saw (document and page)."""
    decision = str(decision or "").lower().strip()
    if decision not in DECISIONS:
        raise InputError("choose accept or overturn" if not decision else f"decision {decision!r} is not accept or overturn")
    if not str(reviewer).strip():
        raise InputError("a decision needs the reviewer's name")
    if decision == "overturn" and not str(reason or "").strip():
        raise InputError("an overturn needs a reason (what the chart shows that the data did not)")
    finding = dict(finding)
    key = finding_key(pd.DataFrame([finding])).iloc[0]
    row = {"decided_at": (when or datetime.now(timezone.utc)).isoformat(timespec="seconds"), "reviewer": str(reviewer).strip(),
           "decision": decision, "reason": str(reason or "").strip(), "finding_key": key,
           **{c: "" if pd.isna(finding.get(c)) else str(finding.get(c)) for c in KEY_FIELDS},
           "original_message": str(finding.get("message", "")), "original_amount": str(finding.get("amount", "")),
           "evidence": str(evidence or "").strip()}
    from ccmlib.engine.outputs import append_csv_row, csv_header

    head = csv_header(Path(path))
    if head and "evidence" not in head and row["evidence"]:  # a log started before decisions could cite evidence
        row["reason"] = f"{row['reason']} [evidence: {row['evidence']}]".strip()
    return append_csv_row(Path(path), COLUMNS, row, required=[c for c in COLUMNS if c != "evidence"])


def trail(findings: pd.DataFrame, log: pd.DataFrame) -> pd.DataFrame:
    """Applied decisions joined to the findings they concern; decisions whose finding is gone are kept and marked."""
    if log.empty:
        return pd.DataFrame(columns=["status", *COLUMNS, "current_message", "current_amount"])
    last = latest(log)
    cur = findings.assign(finding_key=finding_key(findings))[["finding_key", "message", "amount", "severity"]]
    t = last.merge(cur.rename(columns={"message": "current_message", "amount": "current_amount"}), on="finding_key", how="left")
    t.insert(0, "status", t["current_message"].notna().map({True: "applied", False: "finding no longer raised"}))
    return t.sort_values(["patient_id", "service_month", "rule_id", "decided_at"], kind="mergesort").reset_index(drop=True)
