"""Auditor decisions: an append-only CSV log (latest decision per key wins), in both directions.

A reviewer reading the chart of a sampled unit (a claim line or a patient-month) can

- ``accept`` a finding (it stands) or ``overturn`` it (it is wrong: a reason is needed);
- ``confirm`` the unit (reviewed against the chart, its determination stands, with or without findings);
- ``add`` a defect the chart shows that the data did not (a catalog rule id or ``CHART`` with a description, the
  units the chart supports, a reason and the evidence).

``audit(..., overrides=PATH)`` keeps overturned findings in ``findings.csv`` with the decision beside them and takes them
out of the money; an added finding takes units like an engine error and is marked ``found_by = auditor``. The trail of
every decision goes to ``overrides_applied.csv``. Logs written before ``confirm``/``add`` existed still load.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from ccmlib.errors import InputError

KEY_FIELDS = ["rule_id", "patient_id", "service_month", "claim_id", "line", "billing_npi", "entry_id"]
COLUMNS = ["decided_at", "reviewer", "decision", "reason", "finding_key", *KEY_FIELDS, "original_message", "original_amount",
           "evidence", "units_supported", "description"]
REQUIRED = ["decided_at", "reviewer", "decision", "reason", "finding_key"]  # what every log since the first one has
DECISIONS = ("accept", "overturn", "confirm", "add")
CHART = "CHART"  # the rule id of a defect the chart shows that no catalog rule describes
ADDED = "add|"  # prefix of an added finding's key (never equal to an engine finding's key)
UNIT = "unit|"  # prefix of a confirmed unit's key
FILE_NAME = "overrides.csv"


def finding_key(f: pd.DataFrame) -> pd.Series:
    """Stable identity of a finding from its data fields (not its wording); an auditor's finding keyed apart, by its
    rule and unit only (rule_id, patient_id, service_month, claim_id, line)."""
    parts = [f[c].astype("string").fillna("") if c in f.columns else pd.Series("", index=f.index, dtype="string") for c in KEY_FIELDS]
    auditor = f["found_by"].astype("string").fillna("").eq("auditor").to_numpy() if "found_by" in f.columns else None
    if auditor is not None and auditor.any():
        parts[-2] = parts[-2].where(~auditor, "")
        parts[-1] = parts[-1].where(~auditor, "")
    key = parts[0]
    for p in parts[1:]:
        key = key + "|" + p.str.replace(r"\.0$", "", regex=True)
    if "found_by" in f.columns:
        key = key.where(f["found_by"].astype("string").fillna("") != "auditor", ADDED + key)
    return key


def unit_key(patient_id, service_month, claim_id="", line="") -> str:
    """The key of a sampled unit: a claim line (claim_id and line) or, without them, a patient-month."""
    claim = "" if claim_id is None or pd.isna(claim_id) else str(claim_id)
    ln = "" if line is None or pd.isna(line) or str(line) == "" else str(int(float(line)))
    if claim:
        return f"{UNIT}line|{claim}|{ln}"
    return f"{UNIT}pm|{patient_id}|{service_month}"


def unit_keys(units: pd.DataFrame, unit: str) -> pd.Series:
    """:func:`unit_key` of every row of a frame or sample (``unit``: claim_lines or patient_months)."""
    if unit == "claim_lines":
        return UNIT + "line|" + units["claim_id"].astype(str) + "|" + units["line"].astype("Int64").astype(str)
    return UNIT + "pm|" + units["patient_id"].astype(str) + "|" + units["service_month"].astype(str)


def _blank(s: pd.Series) -> pd.Series:
    return s.fillna("").astype(str).str.strip() == ""


def load(path: str | Path | None) -> pd.DataFrame:
    """The decision log (empty when the file does not exist), checked row by row: every problem names the file's
    line and column. ``_row`` keeps each decision's line in the file."""
    if path is None or not Path(path).is_file():
        return pd.DataFrame(columns=[*COLUMNS, "_row"])
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text; save the decisions CSV as UTF-8") from None
    except pd.errors.ParserError as exc:
        raise InputError(f"{path}: cannot be read as a decisions CSV ({exc})") from None
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=[*COLUMNS, "_row"])
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in ("reviewer", "decision") if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} of a decisions file (layout: {', '.join(COLUMNS)})")
    for c in COLUMNS:  # a log written before decisions could cite evidence, confirm or add
        if c not in df.columns:
            df[c] = ""
    df["_row"] = np.arange(2, len(df) + 2)
    df["decision"] = df["decision"].str.strip().str.lower()

    def fail(mask, column, why):
        if mask.any():
            i = int(np.flatnonzero(mask.to_numpy())[0])
            value = df[column].iloc[i] if column in df.columns else ""
            raise InputError(f"{path}: line {i + 2}, column {column}: {why(value) if callable(why) else why}")

    fail(~df["decision"].isin(DECISIONS), "decision", lambda v: f"{v!r} is not one of {', '.join(DECISIONS)}")
    fail(_blank(df["reviewer"]), "reviewer", "a decision needs the reviewer's name")
    d = df["decision"]
    fail(d.isin(["overturn", "add"]) & _blank(df["reason"]), "reason",
         "an overturn or an add needs a reason (what the chart shows that the data did not)")
    fail((d == "add") & _blank(df["evidence"]), "evidence", "an add needs the evidence (document and page of the chart)")
    fail((d == "add") & _blank(df["rule_id"]), "rule_id", f"an add needs a rule id of the catalog, or {CHART} with a description")
    fail((d == "add") & (df["rule_id"].str.strip().str.upper() == CHART) & _blank(df["description"]) & _blank(df["reason"]),
         "description", f"a {CHART} finding needs a description of the defect")
    units = pd.to_numeric(df["units_supported"].str.strip(), errors="coerce")
    fail((d == "add") & (units.isna() | (units < 0) | (units % 1 != 0)), "units_supported",
         lambda v: f"{v!r}: an add needs the units the chart supports on the line, a whole number (0 = none)")
    df["rule_id"] = df["rule_id"].str.strip().str.upper().where(d == "add", df["rule_id"])
    # a scripted accept/overturn may give the finding's fields without its key, or the key without its fields
    fb = d.isin(["accept", "overturn"])
    no_key = fb & _blank(df["finding_key"])
    fail(no_key & (_blank(df["rule_id"]) | _blank(df["patient_id"]) | _blank(df["service_month"])), "finding_key",
         "an accept or overturn names its finding: finding_key, or rule_id, patient_id and service_month (with the "
         "finding's claim_id, line, billing_npi, entry_id)")
    if no_key.any():
        df.loc[no_key, "finding_key"] = finding_key(df.loc[no_key]).to_numpy()
    has_key = fb & ~no_key
    if has_key.any():
        parts = df.loc[has_key, "finding_key"].str.removeprefix(ADDED).str.split("|", expand=True)
        for j, c in enumerate(KEY_FIELDS[:3]):  # rule, patient, month: read back from the key when left out
            if j in parts.columns:
                df.loc[has_key, c] = df.loc[has_key, c].where(~_blank(df.loc[has_key, c]), parts[j].fillna(""))
    unit_rows = d.isin(["confirm", "add"])
    fail(unit_rows & (_blank(df["patient_id"]) | _blank(df["service_month"])), "patient_id",
         "a confirm or add names its unit: patient_id and service_month, and for a claim line its claim_id and line")
    fail(unit_rows & (_blank(df["claim_id"]) != _blank(df["line"])), "line", "a claim line needs both claim_id and line")
    df.loc[d == "confirm", "finding_key"] = [unit_key(r.patient_id, r.service_month, r.claim_id, r.line)
                                             for r in df[d == "confirm"].itertuples()]
    if (d == "add").any():
        adds = df[d == "add"].assign(found_by="auditor", billing_npi="", entry_id="")
        df.loc[d == "add", "finding_key"] = finding_key(adds).to_numpy()
    return df


def latest(log: pd.DataFrame) -> pd.DataFrame:
    """The last decision per key (the file is in the order decisions were made)."""
    return log.drop_duplicates("finding_key", keep="last")


def in_period(log: pd.DataFrame, months: set[str]) -> pd.DataFrame:
    """The decisions on this audit's months (a log may hold decisions on other periods' findings)."""
    return log[log["service_month"].astype(str).isin(months)]


def check_log(log: pd.DataFrame, path, finding_keys: set[str], lines: pd.DataFrame, months: pd.DataFrame, rule_ids) -> None:
    """Every decision refers to something of this audit: a finding it raised (or one an app recorded from a finding
    that is no longer raised), a claim line of the period with its units, a patient-month, a catalog rule. Raises an
    InputError naming the file's line and column."""
    if log.empty:
        return

    def fail(mask, column, why):
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            r = log.iloc[int(np.flatnonzero(mask)[0])]
            raise InputError(f"{path}: line {r['_row']}, column {column}: {why(r) if callable(why) else why}")

    d = log["decision"]
    added = set(log.loc[d == "add", "finding_key"])
    fb = d.isin(["accept", "overturn"])
    known = log["finding_key"].isin(finding_keys) | log["finding_key"].isin(added)
    fail(fb & ~known & _blank(log["original_message"]), "finding_key",
         lambda r: f"{r['finding_key']!r}: this audit raised no such finding")
    unit_rows = d.isin(["confirm", "add"])
    fail(unit_rows & ~_months_of(log).isin(_months_of(months)), "patient_id",
         lambda r: f"patient-month {r['patient_id']} {r['service_month']} is not in this audit")
    on_line = unit_rows & ~_blank(log["claim_id"])
    if on_line.any():
        ln = lines.assign(_k=lines["claim_id"].astype(str) + "|" + lines["line"].astype("int64").astype(str))
        key = _line_keys(log["claim_id"], log["line"])
        units = key.map(ln.drop_duplicates("_k").set_index("_k")["units"])
        pm_of = key.map(ln.drop_duplicates("_k").set_index("_k")["_pm"])
        fail(on_line & units.isna(), "claim_id", lambda r: f"claim {r['claim_id']} line {r['line']} is not a CCM claim line of this audit")
        fail(on_line & (pm_of != log["patient_id"].astype(str) + "|" + log["service_month"].astype(str)), "service_month",
             lambda r: f"claim {r['claim_id']} line {r['line']} is not patient {r['patient_id']}'s line in {r['service_month']}")
        sup = pd.to_numeric(log["units_supported"], errors="coerce")
        fail((d == "add") & on_line & (sup > units), "units_supported",
             lambda r: f"{r['units_supported']} units supported is more than the line billed ({int(units[r.name])})")
    fail((d == "add") & ~on_line & (pd.to_numeric(log["units_supported"], errors="coerce") > 0), "units_supported",
         "an add on a whole patient-month supports none of its lines (0); to keep some units, name the claim_id and line")
    known_rules = set(rule_ids) | {CHART}
    fail((d == "add") & ~log["rule_id"].isin(known_rules), "rule_id",
         lambda r: f"{r['rule_id']!r} is not a rule of the catalog (or {CHART} for a defect no rule describes)")


def _line_keys(claim_id: pd.Series, line: pd.Series) -> pd.Series:
    """``claim_id|line`` of a decision's or a claim line's cells, as :func:`check_log` joins them."""
    return claim_id.astype(str).str.strip() + "|" + pd.to_numeric(line, errors="coerce").astype("Int64").astype(str)


def log_refs(log: pd.DataFrame, finding_keys: set[str], lines: pd.DataFrame, months: pd.DataFrame) -> dict:
    """What one shard of a practice holds of the things the decisions in ``log`` name (the arguments of
    :func:`check_log`, kept only where the log names them): the decisions are checked once every shard is done, on
    these put together (:func:`refs_together`), with the result :func:`check_log` gives on the whole practice."""
    on_lines = lines["claim_id"].astype(str) + "|" + lines["line"].astype("int64").astype(str)
    return {"finding_keys": finding_keys & set(log["finding_key"]),
            "lines": lines[on_lines.isin(set(_line_keys(log["claim_id"], log["line"]))).to_numpy()],
            "months": months[_months_of(months).isin(_months_of(log))]}


def refs_together(refs: list[dict]) -> dict:
    """The shards' :func:`log_refs` as one practice's, in shard order."""
    return {"finding_keys": set().union(*(r["finding_keys"] for r in refs)),
            "lines": pd.concat([r["lines"] for r in refs], ignore_index=True),
            "months": pd.concat([r["months"] for r in refs], ignore_index=True)}


def on_months(log: pd.DataFrame, months: pd.DataFrame) -> pd.DataFrame:
    """The decisions on the patient-months of ``months`` (a shard's: its auditor-added findings are its own)."""
    return log[_months_of(log).isin(_months_of(months))]


def _months_of(df: pd.DataFrame) -> pd.MultiIndex:
    """(patient_id, service_month) of each row as text, as :func:`check_log` matches them."""
    return pd.MultiIndex.from_frame(df[["patient_id", "service_month"]].astype(str))


def record_decision(path: str | Path, finding: dict | pd.Series, decision: str, reviewer: str, reason: str = "",
                    when: datetime | None = None, evidence: str = "", units_supported: int | None = None,
                    description: str = "") -> dict:
    """Append one decision to the log and flush it to disk at once (nothing is lost if the kernel restarts).

    ``finding`` is the finding (accept/overturn), or the unit (confirm/add: patient_id, service_month and, for a
    claim line, claim_id and line; for add also rule_id). An overturn and an add need a reason; an add also the
    evidence and ``units_supported``."""
    decision = str(decision or "").lower().strip()
    if decision not in DECISIONS:
        raise InputError("choose accept or overturn" if not decision else f"decision {decision!r} is not one of {', '.join(DECISIONS)}")
    if not str(reviewer).strip():
        raise InputError("a decision needs the reviewer's name")
    if decision in ("overturn", "add") and not str(reason or "").strip():
        raise InputError(f"an {decision} needs a reason (what the chart shows that the data did not)")
    finding = dict(finding)
    if decision == "add":
        if not str(evidence or "").strip():
            raise InputError("an add needs the evidence (document and page of the chart)")
        rule = str(finding.get("rule_id") or "").strip().upper()
        if not rule:
            raise InputError(f"an add needs a rule id of the catalog, or {CHART} with a description")
        if rule == CHART and not str(description or "").strip():
            raise InputError(f"a {CHART} finding needs a description of the defect")
        if units_supported is None or str(units_supported).strip() == "" or int(units_supported) < 0:
            raise InputError("an add needs the units the chart supports on the line (0 = none)")
        finding["rule_id"] = rule
    if decision in ("confirm", "add"):
        finding = {c: finding.get(c) for c in ("rule_id", "patient_id", "service_month", "claim_id", "line")} | {"billing_npi": "", "entry_id": ""}
    if decision == "confirm":
        finding["rule_id"] = ""
        key = unit_key(finding["patient_id"], finding["service_month"], finding.get("claim_id"), finding.get("line"))
    else:
        key = finding_key(pd.DataFrame([{**finding, "found_by": "auditor" if decision == "add" else finding.get("found_by", "")}])).iloc[0]
    clean = lambda v: "" if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)  # noqa: E731
    line = clean(finding.get("line"))
    row = {"decided_at": (when or datetime.now(timezone.utc)).isoformat(timespec="seconds"), "reviewer": str(reviewer).strip(),
           "decision": decision, "reason": str(reason or "").strip(), "finding_key": key,
           **{c: clean(finding.get(c)) for c in KEY_FIELDS},
           "line": str(int(float(line))) if line else "",
           "original_message": clean(finding.get("message")) if decision in ("accept", "overturn") else "",
           "original_amount": clean(finding.get("amount")) if decision in ("accept", "overturn") else "",
           "evidence": str(evidence or "").strip(),
           "units_supported": "" if decision != "add" else str(int(units_supported)),
           "description": str(description or "").strip() if decision == "add" else ""}
    _upgrade(Path(path))
    from ccmlib.engine.outputs import append_csv_row

    return append_csv_row(Path(path), COLUMNS, row, required=REQUIRED)


def _upgrade(path: Path) -> None:
    """A log started before decisions could cite evidence, confirm or add gets the new columns (every row kept, the
    file replaced whole), so that nothing recorded now is lost to a missing column."""
    from ccmlib.engine.outputs import atomic_write_text, csv_header

    head = csv_header(path)
    if not head or all(c in head for c in COLUMNS):
        return
    if not all(c in head for c in REQUIRED):
        return  # not a decision log: append_csv_row refuses it with its own message
    old = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    cols = [*head, *[c for c in COLUMNS if c not in head]]
    atomic_write_text(path, old.reindex(columns=cols, fill_value="").to_csv(index=False, lineterminator="\n"))


def trail(findings: pd.DataFrame, log: pd.DataFrame) -> pd.DataFrame:
    """Every decision in force joined to what it concerns: findings (accept, overturn, add) and units (confirm).
    Decisions on findings that are no longer raised are kept and marked."""
    cols = ["status", *COLUMNS, "current_message", "current_amount"]
    if log.empty:
        return pd.DataFrame(columns=cols)
    last = latest(log).drop(columns="_row", errors="ignore")
    cur = findings.assign(finding_key=finding_key(findings))[["finding_key", "message", "amount"]]
    t = last.merge(cur.rename(columns={"message": "current_message", "amount": "current_amount"}), on="finding_key", how="left")
    status = np.where(t["decision"] == "confirm", "applied", np.where(t["current_message"].notna(), "applied", "finding no longer raised"))
    t.insert(0, "status", status)
    t["original_amount"] = pd.to_numeric(t["original_amount"], errors="coerce")  # a number beside current_amount, not text
    return t[cols].sort_values(["patient_id", "service_month", "rule_id", "decided_at"], kind="mergesort").reset_index(drop=True)


def added_findings(log: pd.DataFrame, lines: pd.DataFrame, catalog: dict) -> pd.DataFrame:
    """The raw findings of the ``add`` decisions in force: scope ``line`` (the units the chart supports on a claim line)
    or ``pm_all`` (none of the patient-month's lines), severity error, marked ``found_by = auditor``."""
    adds = latest(log)
    adds = adds[adds["decision"] == "add"]
    if adds.empty:
        return pd.DataFrame()
    on_line = ~_blank(adds["claim_id"])
    ln = lines[["claim_id", "line", "billing_npi", "cpt_code", "units"]].assign(
        _k=lines["claim_id"].astype(str) + "|" + lines["line"].astype("int64").astype(str)).drop_duplicates("_k").set_index("_k")
    k = _line_keys(adds["claim_id"], adds["line"])
    units = k.map(ln["units"])
    supported = pd.to_numeric(adds["units_supported"], errors="coerce").fillna(0).astype("int64")
    rule = adds["rule_id"]
    title = rule.map(lambda r: catalog[r].title if r in catalog else "")
    words = adds["description"].where(~_blank(adds["description"]), adds["reason"])
    message = ("Auditor (chart review): " + np.where(rule == CHART, words, title + ": " + words) + " [evidence: " + adds["evidence"]
               + "]; chart supports " + supported.astype(str) + " unit(s)" + np.where(on_line, "", " on the month's lines"))
    return pd.DataFrame({
        "patient_id": adds["patient_id"].to_numpy(), "service_month": adds["service_month"].to_numpy(),
        "scope": np.where(on_line, "line", "pm_all"), "rule_id": rule.to_numpy(), "severity": "error",
        "cert_category": rule.map(lambda r: catalog[r].cert_category if r in catalog else "Insufficient Documentation").to_numpy(),
        "message": message.to_numpy(),
        "claim_id": adds["claim_id"].where(on_line, None).to_numpy(),
        "line": pd.to_numeric(adds["line"], errors="coerce").where(on_line).to_numpy(),
        "billing_npi": k.map(ln["billing_npi"]).where(on_line).astype(object).to_numpy(),
        "cpt_code": k.map(ln["cpt_code"]).where(on_line).astype(object).to_numpy(),
        "units_removed": (units - supported).where(on_line, np.nan).to_numpy(),
        "found_by": "auditor"})


STATE_COLUMNS = ["review_state", "decided_by", "decided_at", "decisions"]


def _values_in(s: pd.Series, among: pd.Series) -> np.ndarray:
    """Whether each value of ``s`` as text (``astype(str)``, as :func:`unit_states` joins them) is among ``among``'s,
    each distinct value converted once."""
    codes, uniq = pd.factorize(s, use_na_sentinel=False)
    found = pd.Series(uniq, dtype=s.dtype).astype(str).isin(among.astype(str)).to_numpy(dtype=bool)
    return found[codes] if len(codes) else np.zeros(0, dtype=bool)


def unit_states(units: pd.DataFrame, unit: str, findings: pd.DataFrame, log: pd.DataFrame) -> pd.DataFrame:
    """Review state of each sampled unit: ``decided`` when it was confirmed, or when every error and warning of the unit
    (engine findings and the auditor's own) has a decision and there is at least one; else ``undecided``. A claim
    line's findings are those on the line and those on its patient-month (for its practitioner or the whole month).
    Returns ``units`` with review_state, decided_by, decided_at and decisions (what was decided, counted)."""
    u = units.assign(_u=unit_keys(units, unit).to_numpy(), _i=np.arange(len(units)))
    f = findings[findings["severity"].isin(["error", "warning"])]
    # only the findings that can concern a unit (its claim, or for one without a claim its patient) are converted and
    # joined below: a sample is a few hundred units, the findings of a large practice hundreds of thousands
    on_patient = _values_in(f["patient_id"], u["patient_id"])
    if unit == "claim_lines":
        f = f[np.where(f["claim_id"].notna().to_numpy(), _values_in(f["claim_id"], u["claim_id"]), on_patient)]
    else:
        f = f[on_patient]
    f = f.assign(_d=f["review_decision"].fillna("").astype(str), _by=f["reviewed_by"].fillna("").astype(str),
                 _at=f["reviewed_at"].fillna("").astype(str), service_month=f["service_month"].astype(str),
                 patient_id=f["patient_id"].astype(str))
    cols = ["_u", "_d", "_by", "_at"]
    if unit == "claim_lines":
        on_line = f[f["claim_id"].notna()].assign(claim_id=lambda d: d["claim_id"].astype(str), line=lambda d: d["line"].astype("Int64"))
        a = u[["_u", "claim_id", "line"]].assign(claim_id=u["claim_id"].astype(str), line=u["line"].astype("Int64")).merge(
            on_line, on=["claim_id", "line"])[cols]
        pmf = f[f["claim_id"].isna()]
        b = u[["_u", "patient_id", "service_month", "billing_npi"]].astype({"patient_id": str, "service_month": str}).merge(
            pmf, on=["patient_id", "service_month"], suffixes=("", "_f"))
        b = b[b["billing_npi_f"].isna() | (b["billing_npi_f"].astype(str) == b["billing_npi"].astype(str))][cols]
        hits = pd.concat([a, b], ignore_index=True)
    else:
        hits = u[["_u", "patient_id", "service_month"]].astype({"patient_id": str, "service_month": str}).merge(
            f, on=["patient_id", "service_month"])[cols]
    conf = latest(log) if len(log) else log
    conf = conf[conf["decision"] == "confirm"][["finding_key", "reviewer", "decided_at"]] if len(conf) else pd.DataFrame(
        columns=["finding_key", "reviewer", "decided_at"])
    conf = conf.rename(columns={"finding_key": "_u", "reviewer": "_by", "decided_at": "_at"}).assign(_d="confirm")
    allrows = pd.concat([hits, conf[cols]], ignore_index=True)
    g = hits.groupby("_u")
    n = g.size()
    undecided = hits[hits["_d"] == ""].groupby("_u").size()
    decided_rows = allrows[allrows["_d"] != ""].sort_values("_at", kind="mergesort")
    last = decided_rows.drop_duplicates("_u", keep="last").set_index("_u")
    counts = decided_rows.groupby(["_u", "_d"]).size()
    order = {d: i for i, d in enumerate(DECISIONS)}
    label = {k: "; ".join(f"{d} {c}" if d != "confirm" else "confirm" for d, c in sorted(grp.droplevel(0).items(), key=lambda x: order[x[0]]))
             for k, grp in counts.groupby(level=0)}
    confirmed = u["_u"].isin(set(conf["_u"]))
    n_und = u["_u"].map(undecided).fillna(0).astype(int)
    any_dec = u["_u"].isin(last.index)
    state = np.where(confirmed | ((n_und == 0) & any_dec), "decided", "undecided")
    out = units.copy()
    out["review_state"] = state
    if "spare" in out.columns:
        out["review_state"] = np.where(out["spare"].astype(bool) & (state == "undecided"), "spare", state)
    out["decided_by"] = u["_u"].map(last["_by"]).fillna("").to_numpy()
    out["decided_at"] = u["_u"].map(last["_at"]).fillna("").to_numpy()
    out["decisions"] = u["_u"].map(label).fillna("").to_numpy()
    out["findings_open"] = np.where(confirmed, 0, n_und).astype("int64")
    out["findings_open"] = out["findings_open"].where(u["_u"].map(n).notna().to_numpy(), 0)
    return out
