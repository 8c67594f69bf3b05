"""Look at a practice's export before auditing it: per table, which contract columns are there, which are missing,
which source columns nothing maps, sample values, and values the contract will not accept (roles, yes/no columns,
codes, dates); and a draft ``mapping.yml`` with best-guess matches for the consultant to confirm.

Used by ``ccm-audit inspect DATA_DIR [--write]``. The draft only names what it could match; anything left is listed.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from ccmlib.errors import InputError
from ccmlib.intake.schema import TABLES
from ccmlib.intake import dates
from ccmlib.intake.sources import FOLDER_SETTINGS, apply_mapping, find_sources, load_mapping, read_raw, table_settings
from ccmlib.intake.validate import FALSE, TRUE

#: words exports use for a contract column (normalized: lower case, letters and digits only)
SYNONYMS = {
    "patient_id": ["mrn", "ptmrn", "patientmrn", "patient", "patientnumber", "ptid", "memberid", "personid", "chartnumber"],
    "staff_id": ["staff", "user", "userid", "employeeid", "clinician", "loggedby", "providerid"],
    "minutes": ["mins", "duration", "durationmin", "durationminutes", "timespent", "totalminutes", "time"],
    "activity_date": ["date", "dateofservice", "servicedate", "activitydt", "logdate", "entrydate"],
    "service_date": ["dos", "dateofservice", "svcdate", "fromdate", "servicefromdate"],
    "cpt_code": ["cpt", "hcpcs", "procedurecode", "proccode", "code", "cpthcpcs", "visitcode"],
    "billing_npi": ["npi", "renderingnpi", "billingprovidernpi", "providernpi"],
    "practitioner_npi": ["npi", "providernpi", "physiciannpi"],
    "paid_amount": ["paid", "paidamt", "amountpaid", "payment", "allowed"],
    "icd10_code": ["icd10", "icd", "dx", "dxcode", "diagnosis", "diagnosiscode"],
    "consent_date": ["consentdt", "dateofconsent", "consented", "consentsigned"],
    "description": ["note", "notes", "comment", "comments", "narrative", "details"],
    "activity": ["activitytype", "category", "type", "task"],
    "role": ["credential", "title", "jobtitle", "position", "stafftype"],
    "claim_id": ["claim", "claimnumber", "claimno", "icn", "patientcontrolnumber"],
    "line": ["lineno", "linenumber", "seq", "lineitem"],
    "units": ["qty", "quantity", "unitsbilled"],
    "encounter_date": ["visitdate", "dateofvisit", "apptdate"],
}
#: words exports use for a role
ROLE_WORDS = {"registerednurse": "rn", "nurse": "rn", "licensedpracticalnurse": "lpn", "medicalassistant": "ma",
              "physician": "physician", "doctor": "physician", "md": "physician", "do": "physician", "nursepractitioner": "np",
              "physicianassistant": "pa", "socialworker": "social_worker", "lcsw": "social_worker", "msw": "social_worker",
              "pharmacist": "pharmacist", "pharmd": "pharmacist", "frontdesk": "non_clinical", "receptionist": "non_clinical",
              "billing": "non_clinical", "scheduler": "non_clinical"}
CODE_RE = re.compile(r"^[0-9A-Z][0-9]{3}[0-9A-Z]$")
NPI_RE = re.compile(r"^[0-9]{10}$")


def _norm(name) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def guess_column(target: str, candidates: list[str]) -> str | None:
    """The source column most likely to be ``target``: a synonym, else a close spelling (difflib), else none."""
    if not candidates:
        return None
    norm = {c: _norm(c) for c in candidates}
    t = _norm(target)
    for c, n in norm.items():
        if n == t:
            return c
    for word in SYNONYMS.get(target, []):
        for c, n in norm.items():
            if n == word:
                return c
    close = difflib.get_close_matches(t, list(norm.values()), n=1, cutoff=0.75)
    if close:
        return next(c for c, n in norm.items() if n == close[0])
    return None


def guess_value(value: str, choices: tuple[str, ...]) -> str | None:
    """A contract value for an export's value: role words, then a close spelling."""
    n = _norm(value)
    if not n:
        return None
    if set(choices) & set(ROLE_WORDS.values()) and n in ROLE_WORDS and ROLE_WORDS[n] in choices:
        return ROLE_WORDS[n]
    by_norm = {_norm(c): c for c in choices}
    if n in by_norm:
        return by_norm[n]
    close = difflib.get_close_matches(n, list(by_norm), n=1, cutoff=0.8)
    return by_norm[close[0]] if close else None


@dataclass
class TableReport:
    table: str
    file: str
    rows: int
    found: list[str]
    missing_required: list[str]
    missing_optional: list[str]
    unmapped: list[str]
    guesses: dict[str, str]  # source column -> contract column
    samples: dict[str, list[str]]
    bad_values: list[dict] = field(default_factory=list)  # column, value, rows, problem, suggestion
    recodes: dict[str, dict[str, str]] = field(default_factory=dict)
    dates: str | None = None  # the date format the values show when it is not ISO (mapping.yml's dates:)


@dataclass
class Inspection:
    folder: Path
    tables: list[TableReport]
    absent: list[str]  # contract tables with no file
    existing_mapping: dict

    def draft_mapping(self) -> dict:
        """mapping.yml as it would be with the guesses added to the one that exists (if any)."""
        out = {k: (v if not isinstance(v, dict) or k in FOLDER_SETTINGS else
                   {kk: (dict(vv) if isinstance(vv, dict) else vv) for kk, vv in v.items()})
               for k, v in self.existing_mapping.items() if v is not None}
        shared = {t.dates for t in self.tables if t.dates}
        if len(shared) == 1 and "dates" not in out and not any("dates" in (out.get(t.table) or {}) for t in self.tables):
            out["dates"] = next(iter(shared))  # every table writes its dates one way: one setting for the folder
        for t in self.tables:
            spec = out.setdefault(t.table, {})
            if t.guesses:
                spec.setdefault("columns", {}).update(t.guesses)
            for col, codes in t.recodes.items():
                spec.setdefault("values", {}).setdefault(col, {}).update(codes)
            if t.dates and "dates" not in spec and "dates" not in out and len(shared) != 1:
                spec["dates"] = t.dates
            if not spec:
                out.pop(t.table)
        return out

    def draft_yaml(self) -> str:
        head = ("# mapping.yml drafted by `ccm-audit inspect`: best guesses, confirm each line before you rely on it.\n"
                "# columns: source column -> contract column; values: contract column -> {source value: contract value}\n"
                "# dates: the table's date format when it is not YYYY-MM-DD (MM/DD/YYYY, DD/MM/YYYY, DD.MM.YYYY ...)\n")
        body = self.draft_mapping()
        return head + (yaml.safe_dump(body, sort_keys=True, allow_unicode=True) if body else "{}\n")

    def summary(self) -> pd.DataFrame:
        return pd.DataFrame([{"table": t.table, "file": t.file, "rows": t.rows, "found": len(t.found),
                              "missing_required": ", ".join(t.missing_required), "unmapped": ", ".join(t.unmapped),
                              "guessed": ", ".join(f"{k} -> {v}" for k, v in t.guesses.items()),
                              "values_to_fix": len(t.bad_values)} for t in self.tables])

    def text(self) -> str:
        lines = [f"inspection of {self.folder}"]
        for t in self.tables:
            lines.append(f"\n{t.table} ({t.file}, {t.rows} rows)")
            lines.append(f"  contract columns found: {', '.join(t.found) or 'none'}")
            if t.missing_required:
                lines.append(f"  MISSING required: {', '.join(t.missing_required)}")
            if t.missing_optional:
                lines.append(f"  missing optional: {', '.join(t.missing_optional)}")
            if t.unmapped:
                lines.append(f"  source columns nothing maps: {', '.join(t.unmapped)}")
            for src, dst in t.guesses.items():
                lines.append(f"  guess: {src} -> {dst}  (samples: {', '.join(t.samples.get(src, [])[:3])})")
            for b in t.bad_values[:12]:
                sug = ("" if not b.get("suggestion") else f"; the draft sets {b['suggestion']}" if b["suggestion"].startswith("dates: ")
                       else f"; draft maps it to {b['suggestion']}")
                lines.append(f"  value {b['value']!r} in {b['column']} ({b['rows']} rows): {b['problem']}{sug}")
            if len(t.bad_values) > 12:
                lines.append(f"  ... {len(t.bad_values) - 12} more values to fix")
        if self.absent:
            lines.append(f"\nno file for: {', '.join(self.absent)}")
        return "\n".join(lines)


def _value_problems(col, s: pd.Series, date_format: str | None = None) -> tuple[list[dict], dict[str, str]]:
    """Values of one contract column the loader would reject, with a recode where one is clear."""
    text = s.astype("string").str.strip()
    text = text[text.notna() & (text != "")]
    if text.empty:
        return [], {}
    counts = text.value_counts()
    bad, recode = [], {}
    if col.kind == "choice":
        for v, n in counts.items():
            if v.lower() in col.choices:
                continue
            g = guess_value(v, col.choices)
            bad.append({"column": col.name, "value": v, "rows": int(n), "problem": f"not one of {', '.join(col.choices)}",
                        "suggestion": g})
            if g:
                recode[v] = g
    elif col.kind == "bool":
        for v, n in counts.items():
            if v.lower() in TRUE or v.lower() in FALSE:
                continue
            g = "true" if _norm(v) in {"x", "checked", "done", "on", "documented"} else "false" if _norm(v) in {"off", "none", "unchecked"} else None
            bad.append({"column": col.name, "value": v, "rows": int(n), "problem": "not a yes/no value (true/false, yes/no, y/n, 1/0)",
                        "suggestion": g})
            if g:
                recode[v] = g
    elif col.kind == "date":
        fmt = date_format or dates.ISO
        parsed = dates.parse(counts.index.to_series().astype("string"), fmt)
        failing = counts.index[parsed.isna().to_numpy()]
        other = dates.guess(pd.Series(failing), exclude=fmt) if len(failing) * 2 > len(counts) else []
        if other:  # the column's format, not typos: one line for the column
            also = f" (or {' or '.join(other[1:])}: the values do not tell which)" if len(other) > 1 else ""
            bad.append({"column": col.name, "value": str(failing[0]), "rows": int(counts[failing].sum()),
                        "problem": f"dates written {other[0]}{also}, not {fmt}", "suggestion": f"dates: {other[0]} in mapping.yml"})
        else:
            for v in failing[:20]:
                bad.append({"column": col.name, "value": v, "rows": int(counts[v]), "problem": f"not a date {fmt}", "suggestion": None})
    elif col.name.endswith("npi"):
        for v in counts.index:
            if not NPI_RE.match(v):
                bad.append({"column": col.name, "value": v, "rows": int(counts[v]), "problem": "not a 10-digit NPI", "suggestion": None})
    elif col.name == "cpt_code":
        for v in counts.index:
            if not CODE_RE.match(v.upper()):
                bad.append({"column": col.name, "value": v, "rows": int(counts[v]), "problem": "not a 5-character CPT/HCPCS code",
                            "suggestion": None})
    return bad[:50], recode


def inspect_folder(folder) -> Inspection:
    """Inspect every table file of ``folder`` (after any mapping.yml already there)."""
    folder = Path(folder)
    sources = find_sources(folder)
    mapping = load_mapping(folder)
    reports = []
    for name, src in sources.items():
        settings = table_settings(mapping, name)
        raw = read_raw(src, settings["csv"])
        df = apply_mapping(raw, mapping.get(name) or {}, src) if mapping.get(name) else raw
        table = TABLES[name]
        cols = [c for c in df.columns if c != "_line"]
        found = [c for c in table.columns if c in cols]
        missing = [c for c in table.columns if c not in cols]
        unmapped = [c for c in cols if c not in table.columns]
        guesses = {}
        for target in missing:
            g = guess_column(target, [c for c in unmapped if c not in guesses])
            if g:
                guesses[g] = target
        samples = {c: [str(v) for v in df[c].astype("string").dropna().unique()[:5]] for c in cols}
        bad, recodes, formats = [], {}, []
        for target in table.columns:
            source = target if target in cols else next((s for s, t in guesses.items() if t == target), None)
            if source is None:
                continue
            b, r = _value_problems(table.col(target), df[source], settings["dates"])
            bad += b
            if r:
                recodes[target] = r
            formats += [x["suggestion"].split()[1] for x in b if x["suggestion"] and x["suggestion"].startswith("dates: ")][:1]
        still = [c for c in missing if c not in guesses.values()]
        reports.append(TableReport(name, src.label, int(len(df)), found, [c for c in still if c in table.required],
                                   [c for c in still if c not in table.required], [c for c in unmapped if c not in guesses],
                                   guesses, samples, bad, recodes, max(set(formats), key=formats.count) if formats else None))
    absent = [t for t in TABLES if t not in sources]
    return Inspection(folder, reports, absent, mapping)


def write_draft(ins: Inspection) -> Path:
    """Save the draft as ``DATA_DIR/mapping.yml``; never over a mapping.yml that exists."""
    path = ins.folder / "mapping.yml"
    if path.exists():
        raise InputError(f"{path} exists; ccm-audit never overwrites it. The draft is printed above: merge it by hand, or move "
                         f"the file away and run `ccm-audit inspect {ins.folder} --write` again")
    with open(path, "x", encoding="utf-8") as fh:  # "x": fails rather than replace a file created meanwhile
        fh.write(ins.draft_yaml())
    return path
