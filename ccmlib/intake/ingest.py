"""`ccm-audit ingest`: X12 837P/835 and FHIR R4 files (plus the practice's own CSV tables) into a data folder.

Sources are read by :mod:`ccmlib.intake.x12` (pyx12) and :mod:`ccmlib.intake.fhir` (fhir.resources); this module
links them (patients by medical-record number, else Medicare id, across X12, FHIR and a patients CSV), matches each
835 service payment to its 837P line (line-item control number, else claim id + procedure + service date), nets
payments, reversals and corrections per line, and writes the contract's tables, ``data_quality.csv`` (every record
that was not mapped, and flags) and ``ingest.json`` (sources with their hashes and counts that reconcile:
records read = mapped + rejected, and paid amounts read = paid mapped + paid rejected, per file).
"""
from __future__ import annotations

import json
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ccmlib import paths
from ccmlib.errors import InputError
from ccmlib.intake import fhir as fhirmod
from ccmlib.intake import x12 as x12mod
from ccmlib.intake.schema import TABLES
from ccmlib.intake.sources import Source, read_raw, sha256

TABLE_FILES = {f"{t}.csv": t for t in TABLES} | {f"{t}.parquet": t for t in TABLES}
#: the contract's data-quality layout (line: the segment number of an X12 file, the line of an NDJSON file; column: what
#: the line counts, or where in a Bundle; value: the record), then the paid dollars a rejected record holds
DQ_COLUMNS = ["table", "file", "line", "column", "problem", "value", "action", "paid_amount"]
CLAIM_COLUMNS = ["claim_id", "line", "patient_id", "billing_npi", "service_date", "cpt_code", "units", "paid_amount",
                 "allowed_amount", "diagnosis_codes", "place_of_service", "modifiers", "group_npi", "charge_amount", "units_paid", "claim_status",
                 "adjustments", "payer_claim_id", "member_id", "source"]
PAID_STATUS = {"1", "2", "3", "19", "20", "21"}


@dataclass
class Ingested:
    tables: dict[str, pd.DataFrame]
    quality: pd.DataFrame
    sources: list[dict]
    copied: list[Path] = field(default_factory=list)  # the practice's own table files given as sources
    passthrough: dict[str, Path] = field(default_factory=dict)  # those nothing was added to: copied byte for byte


def _expand(sources: list[Path], exclude: Path | None = None) -> tuple[list[Path], list[Path], list[tuple[Path, str]], list[dict]]:
    """(x12 files, fhir files, practice tables as (path, table), files in folders that are not read). Files under
    ``exclude`` (the output folder, when it sits inside a source folder) and hidden files are not read."""
    x12, fhir, tables, skipped = [], [], [], []
    skip = Path(exclude).resolve() if exclude is not None else None

    def excluded(p: Path) -> bool:
        return skip is not None and (p.resolve() == skip or skip in p.resolve().parents)

    def classify(p: Path, explicit: bool):
        if p.name.lower() in TABLE_FILES:
            tables.append((p, TABLE_FILES[p.name.lower()]))
        elif x12mod.sniff(p):
            x12.append(p)
        elif fhirmod.sniff(p):
            fhir.append(p)
        elif explicit:
            raise InputError(f"{p}: not an X12 interchange (starts with ISA), FHIR JSON/NDJSON (.json, .ndjson) or a "
                             f"practice table ({', '.join(sorted(t + '.csv' for t in TABLES))})")
        elif not p.name.startswith("."):
            skipped.append({"table": "", "file": str(p), "line": None, "column": "", "value": "",
                            "problem": "file not read: not X12, FHIR JSON/NDJSON or a practice table", "action": "skipped",
                            "paid_amount": 0.0})

    for src in sources:
        src = Path(src)
        if src.is_dir():
            for p in sorted(q for q in src.rglob("*") if q.is_file()):
                rel = p.relative_to(src).parts
                if not excluded(p) and not any(part.startswith(".") for part in rel):
                    classify(p, explicit=False)
        elif src.is_file():
            if excluded(src):
                raise InputError(f"{src}: is inside the output folder {exclude}; give the original file")
            classify(src, explicit=True)
        else:
            raise InputError(f"{src}: no such file or folder")
    if not (x12 or fhir or tables):
        raise InputError("no X12, FHIR or practice table files among the sources: " + ", ".join(map(str, sources)))
    names = [t for _, t in tables]
    for t in set(names):
        if names.count(t) > 1:
            raise InputError(f"table {t} is given more than once: " + ", ".join(str(p) for p, n in tables if n == t))
    return x12, fhir, tables, skipped


def _read_table(path: Path, table: str) -> pd.DataFrame:
    """A practice table as the loader reads it (text columns; Parquet keeps its types)."""
    fmt = "parquet" if path.suffix.lower() == ".parquet" else "csv"
    return read_raw(Source(table, path, fmt)).drop(columns="_line")


def ingest(sources: list[Path], progress: bool = False, exclude: Path | None = None) -> Ingested:
    """Read every source and build the tables (nothing is written here; see :func:`write_ingested`). ``exclude``:
    the output folder, never read as a source."""
    from tqdm.auto import tqdm

    x12_files, fhir_files, table_files, skipped = _expand(sources, exclude)
    practice = {t: _read_table(p, t) for p, t in table_files}
    ledger: list[dict] = []   # one entry per record read: file, format, outcome, paid
    dq: list[dict] = list(skipped)

    # Medicare id -> patient_id from the practice's patients table (its ids are the ones time entries use)
    mbi_to_patient: dict[str, str] = {}
    if "patients" in practice and {"medicare_id", "patient_id"} <= set(practice["patients"].columns):
        ids = practice["patients"][["medicare_id", "patient_id"]].astype("string").replace("", pd.NA).dropna()
        mbi_to_patient.update(zip(ids["medicare_id"], ids["patient_id"]))

    # FHIR
    rows: dict[str, list] = {}
    counted: dict[str, int] = {}
    paid_read: dict[str, float] = {}
    if fhir_files:
        bar = tqdm(total=len(fhir_files), desc="reading FHIR", unit="file", disable=paths.progress_off() if progress else True, leave=False)
        recs = fhirmod.read_files(fhir_files, progress=bar)
        bar.close()
        fhirmod.map_resources(recs, mbi_to_patient)
        rows = recs.rows
        counted = dict(recs.read)
        for r in recs.rejected:
            ledger.append({"file": r["file"], "format": "FHIR", "outcome": "rejected", "paid": r["paid"]})
            dq.append(_dq(r["table"], r["file"], _line(r["position"]), r["position"], r["record"], r["problem"], "rejected", r["paid"]))
        seen = set()
        for table, items in rows.items():
            for it in items:
                key = (it["_source"], it["_position"], it["_record"])
                if key in seen:
                    continue
                seen.add(key)
                ledger.append({"file": it["_source"], "format": "FHIR", "outcome": "mapped", "paid": 0.0})
        for it in rows.get("claims", []) + rows.get("_eob_merged", []):  # paid amounts come from EOBs only
            if it["_record"].startswith("ExplanationOfBenefit/"):
                paid = it["paid"] if "paid" in it else it.get("paid_amount")
                if paid:
                    ledger.append({"file": it["_source"], "format": "FHIR", "outcome": "paid_mapped", "paid": float(paid)})
        for table in ("diagnoses", "claims"):
            for it in rows.get(table, []):
                if it.get("_flag"):
                    dq.append(_dq(table, it["_source"], _line(it["_position"]), it["_position"], it["_record"], it["_flag"], "flagged", 0.0))
        fhir_patients = rows.get("patients", [])
        for it in fhir_patients:
            if it.get("medicare_id"):
                mbi_to_patient.setdefault(it["medicare_id"], it["patient_id"])

    # X12
    x12_recs = []
    for path in tqdm(x12_files, desc="reading X12", unit="file", disable=paths.progress_off() if progress else True, leave=False):
        try:
            rec = x12mod.read_x12(path)
        except InputError:
            raise  # an unreadable envelope: the file cannot be used at all (exit 2 naming it)
        except Exception as exc:  # anything else stops this file, never the run: its service lines are listed
            rec = x12mod.unreadable(path, f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
        x12_recs.append(rec)
        counted[str(path)] = rec.read
        if "835" in rec.kinds:
            paid_read[str(path)] = round(rec.paid_read, 2)
    claims_x12, dx_x12, patients_x12 = _link_x12(x12_recs, mbi_to_patient, ledger, dq)

    tables = _assemble(rows, claims_x12, dx_x12, patients_x12)
    quality = pd.DataFrame(dq, columns=DQ_COLUMNS)
    quality["line"] = pd.to_numeric(quality["line"]).astype("Int64")
    order = pd.to_numeric(quality["column"].astype(str).str.extract(r"(\d+)\s*$")[0], errors="coerce").fillna(quality["line"].astype("Float64"))
    quality = quality.assign(_o=order).sort_values(["file", "_o", "value"], kind="mergesort", na_position="first")
    quality = quality.drop(columns="_o").reset_index(drop=True)
    sources_out = _source_counts(x12_files, fhir_files, ledger, counted, paid_read, {str(r.path): r.notes for r in x12_recs})
    merged = set(tables)
    tables = _with_practice_tables(tables, practice)
    passthrough = {t: p for p, t in table_files if t not in merged}
    return Ingested(tables, quality, sources_out, [p for p, _ in table_files], passthrough)


def _line(position: str):
    parts = str(position).split()
    return int(parts[1]) if len(parts) >= 2 and parts[0] in ("line", "segment") and parts[1].isdigit() else None


def _dq(table, file, line, position, record, problem, action, paid) -> dict:
    pos = str(position or "")
    column = pos.split()[0] if line is not None and len(pos.split()) == 2 else pos  # "segment", "line", or "entry 3"
    return {"table": table, "file": str(file), "line": line, "column": column, "problem": problem, "value": record,
            "action": action, "paid_amount": round(float(paid or 0.0), 2)}


def _patient_id(mrn, member_id, mbi_to_patient):
    return mrn or (mbi_to_patient.get(member_id) if member_id else None) or member_id


def _link_x12(x12_recs, mbi_to_patient, ledger, dq):
    """837P lines and 835 payments into claim lines; diagnoses and patients of the claims."""
    def mapped(r, rec, fmt):
        ledger.append({"file": str(rec.path), "format": fmt, "outcome": "mapped", "paid": r.get("paid", 0.0)})

    def rejected(r, rec, fmt, problem, table="claims"):
        ledger.append({"file": str(rec.path), "format": fmt, "outcome": "rejected", "paid": r.get("paid", 0.0)})
        dq.append(_dq(table, rec.path, r.get("segment"), f"segment {r.get('segment')}", r.get("record", ""), problem,
                      "rejected", r.get("paid", 0.0)))

    for rec in x12_recs:
        for r in rec.rejected:
            fmt = "X12 835" if "CLP02" in str(r.get("record", "")) else "X12 837P" if rec.kinds else "X12"
            rejected(r, rec, fmt, r["problem"], r.get("table") or "")

    # 837P lines: later replacement (frequency 7) or void (8) claims of the same claim id supersede earlier ones
    billed: dict[tuple, tuple] = {}  # (claim_id, line) -> (record, rec)
    by_claim: dict[str, list] = defaultdict(list)
    for rec in x12_recs:
        for r in rec.lines:
            c = r["claim"]
            freq = c["frequency"]
            earlier = [k for k in by_claim.get(c["claim_id"], []) if billed[k][0]["claim"] is not c]
            if freq in ("7", "8") and earlier:
                by_claim[c["claim_id"]] = [k for k in by_claim[c["claim_id"]] if k not in earlier]
                for key in earlier:
                    old, orec = billed.pop(key)
                    rejected(old, orec, "X12 837P", f"superseded: claim {c['claim_id']} was {'replaced' if freq == '7' else 'voided'} "
                             f"(CLM05-3 {freq}) in {rec.path.name} segment {c['segment']}")
            if freq == "8":
                rejected(r, rec, "X12 837P", "void claim (CLM05-3 8): cancels the earlier claim, not a claim line")
                continue
            key = (c["claim_id"], r["line"])
            if key in billed:
                first = billed[key]
                rejected(r, rec, "X12 837P", f"duplicate of claim {key[0]} line {key[1]} in {first[1].path.name} segment "
                         f"{first[0]['segment']} (a resubmission needs CLM05-3 7)")
                continue
            if r.get("qualifier") not in ("HC", None):
                rejected(r, rec, "X12 837P", f"procedure qualifier {r.get('qualifier')} is not HCPCS/CPT (HC)")
                continue
            billed[key] = (r, rec)
            by_claim[c["claim_id"]].append(key)

    by_ctrl = {(k[0], r["line_ctrl"]): k for k, (r, _) in billed.items() if r["line_ctrl"]}
    by_code = defaultdict(list)  # (claim, code) -> [(key, first day, last day)]: an 835 date within an RD8 range matches
    for k, (r, _) in billed.items():
        by_code[(k[0], r["cpt_code"])].append((k, r["service_date"] or "", r["service_date_end"] or r["service_date"] or ""))

    # 835 payments grouped per claim line
    groups: dict[tuple, list] = defaultdict(list)
    nth: dict[tuple, int] = defaultdict(int)  # the how-manieth line of this code and day in its claim payment
    for rec in x12_recs:
        for r in rec.remits:
            c = r["claim"]
            code = r.get("billed_code") or r["cpt_code"]
            date = r["service_date"] or c["claim_date"]
            key = by_ctrl.get((c["claim_id"], r["line_ctrl"])) if r["line_ctrl"] else None
            if key is None:
                hits = [k for k, lo, hi in by_code.get((c["claim_id"], code), []) if date and lo <= date <= hi]
                if hits:
                    key = hits[0]
                else:  # no 837P line: one line per patient, code, day and occurrence (a reversal repeats them in order)
                    nth[(id(c), code, date)] += 1
                    who = f"{c['member_id'] or ''}|{c['mrn'] or ''}"
                    key = ("835", c["claim_id"], who, r["line_ctrl"] or f"{code} {date} #{nth[(id(c), code, date)]}")
            groups[key].append((r, rec))

    claims, dx, persons = [], [], []
    line_no = defaultdict(int)
    for key in list(billed) + [k for k in groups if k not in billed]:
        b = billed.get(key)
        remits = groups.get(key, [])
        # a reversal (CLP02 22) cancels the payment with the same payer claim number (CLP07); when that payment is not
        # among the sources (an earlier 835 not given), the reversal cannot be netted and is not counted
        paid_icns = {r["claim"]["icn"] for r, _ in remits if r["claim"]["status"] != "22"}
        orphans = [(r, rc) for r, rc in remits if r["claim"]["status"] == "22" and r["claim"]["icn"] not in paid_icns]
        for r, rc in orphans:
            rejected(r, rc, "X12 835", f"reversal of payment {r['claim']['icn']}, which is not among the sources (give the 835 "
                     f"that paid it): not counted")
        gone = {id(r) for r, _ in orphans}  # by identity: the records refer to their claims (no deep comparison)
        remits = [x for x in remits if id(x[0]) not in gone]
        if b is None and not remits:
            continue
        paid = round(sum(r["paid"] for r, _ in remits), 2) if remits else None
        units_paid = sum(r["units_paid"] for r, _ in remits) if remits else None
        statuses = [r["claim"]["status"] for r, _ in remits]
        if remits and "22" in statuses and abs(paid) < 0.005 and units_paid <= 0:
            where = next(f"{rc.path.name} segment {r['segment']}" for r, rc in remits if r["claim"]["status"] == "22")
            why = f"payment reversed (CLP02 22 in {where}) and not reissued: not a paid claim line"
            if b is not None:
                rejected(b[0], b[1], "X12 837P", why)
            for r, rc in remits:
                rejected(r, rc, "X12 835", why)
            continue
        status = "no remittance" if not remits else "denied" if abs(paid) < 0.005 else \
            "paid" if set(statuses) & PAID_STATUS else x12mod.CLAIM_STATUS.get(statuses[-1], statuses[-1])
        net = defaultdict(float)
        for r, _ in remits:
            for grp, reason, amt in r["adjustments"]:
                net[(grp, reason)] += amt
        adjustments = "; ".join(f"{g}-{rs} {a:.2f}" for (g, rs), a in sorted(net.items()) if abs(a) >= 0.005)
        last = remits[-1][0]["claim"] if remits else None
        if b is not None:
            r, rec = b
            c = r["claim"]
            pid = _patient_id(c["mrn"], c["member_id"], mbi_to_patient)
            # the CCM rules are about the billing practitioner: the rendering provider (2420A, else 2310B) when the
            # billing provider (2010AA) is a group; the group's NPI is kept as group_npi
            row = dict(claim_id=c["claim_id"], line=r["line"], patient_id=pid,
                       billing_npi=r["rendering_npi"] or c["rendering_npi"] or c["billing_npi"],
                       service_date=r["service_date"], cpt_code=r["cpt_code"], units=r["units"], paid_amount=paid,
                       place_of_service=r["place_of_service"], modifiers=r["modifiers"],
                       group_npi=c["billing_npi"], charge_amount=r["charge_amount"],
                       diagnosis_codes=";".join(c.get("dx_codes") or []) or None,  # the claim's HI codes (DX-01)
                       source="837P+835" if remits else "837P")
            missing = [n for n in ("billing_npi", "service_date", "cpt_code") if not row[n]]
            if missing or not pid:
                rejected(r, rec, "X12 837P", "missing " + ", ".join(missing or ["patient"]))
                for rr, rc in remits:
                    rejected(rr, rc, "X12 835", f"its 837P line {r['record']} was rejected")
                continue
            mapped(r, rec, "X12 837P")
            if r["service_date_end"] and r["service_date_end"][:7] != r["service_date"][:7]:
                dq.append(_dq("claims", rec.path, r["segment"], f"segment {r['segment']}", r["record"],
                              f"service dates {r['service_date']} to {r['service_date_end']} span months; assigned to the "
                              f"month of the first day", "flagged", 0.0))
        else:
            first = next((r for r, _ in remits if r["claim"]["status"] != "22"), remits[0][0])
            c = first["claim"]
            pid = _patient_id(c["mrn"], c["member_id"], mbi_to_patient)
            line_no[c["claim_id"]] += 1
            units = first["units_billed"] or (first["units_paid"] if first["units_paid"] and first["units_paid"] > 0 else 1.0)
            row = dict(claim_id=c["claim_id"], line=str(line_no[c["claim_id"]]), patient_id=pid,
                       billing_npi=c["rendering_npi"] or c["payee_npi"], service_date=first["service_date"] or c["claim_date"],
                       cpt_code=first.get("billed_code") or first["cpt_code"], units=units, paid_amount=paid,
                       place_of_service=c["pos"], modifiers=first["modifiers"], group_npi=c["payee_npi"],
                       charge_amount=first["charge_amount"], source="835")
            missing = [n for n, v in (("billing NPI (NM1*82 or N1*PE with XX)", row["billing_npi"]), ("service date", row["service_date"]),
                                      ("patient", pid)) if not v]
            if missing or first.get("qualifier") not in ("HC", None):
                why = ("835 line without its 837P lacks " + ", ".join(missing)) if missing else \
                    f"procedure qualifier {first.get('qualifier')} is not HCPCS/CPT (HC)"
                for r, rc in remits:
                    rejected(r, rc, "X12 835", why)
                continue
        for r, rc in remits:
            mapped(r, rc, "X12 835")
        allowed = [r.get("allowed") for r, _ in remits if r.get("allowed") is not None]
        row.update(units_paid=units_paid, claim_status=status, adjustments=adjustments or None,
                   allowed_amount=round(sum(allowed), 2) if allowed else None,
                   payer_claim_id=last["icn"] if last else None, member_id=(b[0]["claim"]["member_id"] if b else c["member_id"]))
        claims.append(row)

    # diagnoses of claims that were mapped, and the people named in the files
    kept_claims = {(row["claim_id"]) for row in claims}
    for rec in x12_recs:
        for r in rec.diagnoses:
            c = r["claim"]
            pid = _patient_id(c["mrn"], c["member_id"], mbi_to_patient)
            if r["claim_id"] not in kept_claims or not pid:
                rejected(r, rec, "X12 837P", "diagnosis of a claim that was not mapped", table="diagnoses")
                continue
            mapped(r, rec, "X12 837P")
            dx.append({"patient_id": pid, "icd10_code": r["code"], "source": f"837P claim {r['claim_id']}"})
        for p in rec.patients:
            pid = _patient_id(p["mrn"], p["member_id"], mbi_to_patient)
            fmt = "X12 835" if p["role"] == "patient" and "835" in rec.kinds and "837P" not in rec.kinds else "X12 837P"
            if not pid:
                rejected({**p, "record": f"{p['last_name']} (no member id)"}, rec, fmt, "no member id or medical record number",
                         table="patients")
                continue
            mapped(p, rec, fmt)
            persons.append({"patient_id": pid, "first_name": p["first_name"], "last_name": p["last_name"],
                            "birth_date": p["birth_date"], "medicare_id": p["member_id"]})
    return claims, dx, persons


def _frame(items: list[dict], columns: list[str] | None = None) -> pd.DataFrame:
    df = pd.DataFrame([{k: v for k, v in it.items() if not k.startswith("_")} for it in items])
    if columns is not None:
        df = df.reindex(columns=columns)
    return df


def _text(values: pd.Series, fmt: str) -> pd.Series:
    """Numbers as text in one printf format ('' when missing), formatted by numpy rather than per row in Python."""
    v = pd.to_numeric(values).to_numpy(dtype="float64")
    return pd.Series(np.where(np.isnan(v), "", np.char.mod(fmt, np.nan_to_num(v))), index=values.index)


def _assemble(rows, claims_x12, dx_x12, patients_x12) -> dict[str, pd.DataFrame]:
    """The ingested tables: X12 and FHIR rows together, diagnoses and patients without repeats."""
    tables: dict[str, pd.DataFrame] = {}
    fhir_claims = [{**r, "source": "FHIR " + r["_record"].split("/")[0]} for r in rows.get("claims", [])]
    if claims_x12 or fhir_claims:
        cl = _frame(claims_x12 + fhir_claims, CLAIM_COLUMNS)
        for col in ("units", "units_paid"):
            cl[col] = _text(cl[col], "%g")
        for col in ("paid_amount", "allowed_amount", "charge_amount"):
            cl[col] = _text(cl[col], "%.2f")
        tables["claims"] = cl
    diag = _frame(rows.get("diagnoses", []))
    extra = _frame(dx_x12 + [{**r, "source": r["_record"]} for r in rows.get("_claim_diagnoses", [])])
    if len(extra):  # a code a claim names is added only when no Condition of the patient has it (dot or not)
        key = lambda d: d["patient_id"].astype(str) + "|" + d["icd10_code"].astype(str).str.replace(".", "", regex=False)  # noqa: E731
        extra = extra[~key(extra).isin(key(diag))] if len(diag) else extra
        diag = pd.concat([diag, extra.drop_duplicates(["patient_id", "icd10_code"])], ignore_index=True)
    if len(diag):
        tables["diagnoses"] = diag
    pats = _frame(rows.get("patients", []) + patients_x12)
    if len(pats):
        tables["patients"] = pats.drop_duplicates("patient_id", keep="first")
    for t in ("consents", "care_plans", "encounters", "staff"):
        if rows.get(t):
            tables[t] = _frame(rows[t])
    return tables


def _with_practice_tables(tables: dict[str, pd.DataFrame], practice: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The practice's own tables added: where ingest made the same table, the practice's rows first (patients it
    already has are not repeated), with Parquet dates as YYYY-MM-DD text like every CSV."""
    out = dict(tables)
    for t, df in practice.items():
        if t not in out:
            out[t] = df
            continue
        df = df.assign(**{c: df[c].dt.strftime("%Y-%m-%d") for c in df.columns if pd.api.types.is_datetime64_any_dtype(df[c])})
        both = pd.concat([df, out[t]], ignore_index=True)
        out[t] = both.drop_duplicates("patient_id", keep="first") if t == "patients" else both
    return out


def _source_counts(x12_files, fhir_files, ledger, counted, paid_read, notes=None) -> list[dict]:
    """Per source file: records counted in the file against records mapped + rejected, and (835) the paid amounts."""
    notes = notes or {}
    by_file = defaultdict(list)
    for e in ledger:
        by_file[e["file"]].append(e)
    out = []
    for path in list(x12_files) + list(fhir_files):
        f = str(path)
        mine = by_file.get(f, [])
        mapped = sum(e["outcome"] == "mapped" for e in mine)
        rejected = sum(e["outcome"] == "rejected" for e in mine)
        paid_mapped = sum(e["paid"] for e in mine if e["outcome"] in ("mapped", "paid_mapped"))
        paid_rejected = sum(e["paid"] for e in mine if e["outcome"] == "rejected")
        row = {"file": f, "sha256": sha256(path), "format": mine[0]["format"] if mine else "", "notes": notes.get(f, []),
               "records_read": counted.get(f, 0), "records_mapped": mapped, "records_rejected": rejected,
               "paid_read": paid_read.get(f), "paid_mapped": round(paid_mapped, 2), "paid_rejected": round(paid_rejected, 2)}
        row["reconciles"] = row["records_read"] == mapped + rejected and (
            row["paid_read"] is None or abs(row["paid_read"] - paid_mapped - paid_rejected) < 0.005)
        out.append(row)
    return out


def write_ingested(ing: Ingested, rf) -> list[str]:
    """Write the tables, data_quality.csv and ingest.json into an opened RunFolder (staged, moved into place whole)."""
    from ccmlib._version import __version__

    stage = rf.stage()
    for name, df in ing.tables.items():
        if name in ing.passthrough:  # the practice's own file, as it is (its format and bytes)
            src = ing.passthrough[name]
            shutil.copyfile(src, stage / f"{name}{src.suffix.lower()}")
        else:
            df.to_csv(stage / f"{name}.csv", index=False, lineterminator="\n")
    ing.quality.to_csv(stage / "data_quality.csv", index=False, lineterminator="\n")
    doc = {"ccm_audit": __version__, "sources": ing.sources, "copied_tables": [str(p) for p in ing.copied],
           "tables": {n: int(len(df)) for n, df in ing.tables.items()},
           "data_quality": {a: int(n) for a, n in ing.quality["action"].value_counts().sort_index().items()}}
    (stage / "ingest.json").write_text(json.dumps(doc, indent=2) + "\n")
    return rf.publish(stage)
