"""Intake templates for practices without an export, generated from the schema declarations."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ccmlib.intake.schema import TABLES

KIND_TEXT = {"id": "text", "text": "text", "code": "code", "icd": "ICD-10-CM code", "choice": "one of the listed values",
             "date": "date YYYY-MM-DD", "time": "time HH:MM (24 h)", "bool": "true/false, yes/no, y/n or 1/0",
             "number": "number", "int": "whole number"}


def column_guide() -> pd.DataFrame:
    """One row per column of every table: required, format, meaning, example."""
    rows = []
    for t in TABLES.values():
        for c in t.cols:
            req = "yes" if c.required and not c.blank_ok else ("column yes, value may be blank" if c.required else "no")
            if t.name == "time_entries" and c.name in ("minutes", "start_time", "end_time"):
                req = "minutes, or start_time and end_time"
            rows.append({"table": t.name, "column": c.name, "required": req, "format": KIND_TEXT[c.kind],
                         "meaning": c.doc, "example": c.example})
    return pd.DataFrame(rows)


MAPPING_DOC = """## An export with other column names or values: mapping.yml

A practice's system rarely exports these exact names. Put a `mapping.yml` beside the files: per table, `columns`
renames source columns to contract columns, and `values` recodes a contract column's values (after the renames).
Anything not named stays as it is; a mapping to an unknown table or column is refused with a message.

```yaml
time_entries:
  columns:
    Pt MRN: patient_id     # source column: contract column
    Mins: minutes
    Staff: staff_id
claims:
  columns:
    DOS: service_date
    CPT: cpt_code
    Rendering NPI: billing_npi
staff:
  columns:
    Credential: role
  values:
    role:                  # contract column: {source value: contract value}
      Registered Nurse: rn
      Medical Assistant: ma
      MD: physician
```

`ccm-audit inspect FOLDER` drafts this file: per table it lists the contract columns found and missing, the source
columns nothing maps, sample values and values the contract will not accept, and guesses the matches;
`ccm-audit inspect FOLDER --write` saves the draft as `FOLDER/mapping.yml` (never over one that exists). Confirm
each line before relying on it. Dates must be `YYYY-MM-DD` (or real dates in Excel); a mapping cannot reformat them.
"""


INGEST_DOC = """
## X12 and FHIR

`ccm-audit ingest SOURCE... --out FOLDER` writes these tables from X12 837P (005010X222A1), X12 835
(005010X221A1) and FHIR R4 files; time entries stay a CSV and are copied in with any other table of the
practice's own (`time_entries.csv`, `staff.csv`, ...). Every record read (an 837P service line, diagnosis code
or subscriber; an 835 service payment; a FHIR resource) is either mapped or listed in `data_quality.csv`
(table, file, line, position, record, problem, action, paid_amount; X12 positions are segment numbers, ISA = 1;
NDJSON positions are line numbers; Bundle positions are entry numbers). `ingest.json` lists each source with its
sha256 and reconciles records read = mapped + rejected, and for an 835 the sum of SVC03 = paid mapped + paid
rejected. Files are validated by pyx12 first: an envelope error (segment terminator, ISA/IEA, GS/GE, ST/SE)
stops the run (exit 2, file and segment named); an error inside a claim rejects that claim's records.

### 837P claim (loop 2300) and service line (loop 2400) -> claims, diagnoses, patients

| contract column | X12 element |
|---|---|
| claims.claim_id | CLM01 (patient control number) |
| claims.line | LX01 |
| claims.patient_id | 2300 REF*EA (medical record number), else the patient_id whose medicare_id is the subscriber's NM109 (patients.csv or FHIR Patient), else 2010BA NM109 |
| claims.billing_npi | the billing practitioner: 2420A NM109, else 2310B NM109 (rendering provider, NM108 XX), else 2010AA NM109 |
| claims.group_npi | 2010AA NM109 (billing provider, usually the group) |
| claims.service_date | 2400 DTP*472 (D8, or the first day of an RD8 range; a range over two months is flagged) |
| claims.cpt_code, modifiers | SV101-2; SV101-3..6 (qualifier HC only) |
| claims.units, charge_amount | SV104; SV102 |
| claims.place_of_service | SV105, else CLM05-1 |
| diagnoses.icd10_code | HI composites with qualifier ABK/ABF/ABJ/ABN/APR (ICD-10-CM); onset unknown. BK/BF (ICD-9-CM) codes are data-quality rows, never diagnoses |
| claims.diagnosis_codes | the claim's ICD-10-CM HI codes, `;`-separated, on each of its lines (DX-01) |
| claims.allowed_amount | 835 `AMT*B6` of the service line (net over payments, reversals and corrections) |
| patients | 2010BA NM103/NM104 (name), NM109 (medicare_id), DMG02 (birth_date) |

A claim with CLM05-3 `7` (replacement) supersedes the earlier claim of the same CLM01; `8` (void) cancels it;
both are listed in `data_quality.csv`. The same claim and line sent twice as originals keeps the first.

### 835 claim payment (loop 2100) and service payment (loop 2110) -> claims

| contract column | X12 element |
|---|---|
| matched 837P line | same CLP01 and REF*6R (line item control number), else same CLP01 + procedure (SVC06 when present, else SVC01) + DTM*472/150 date within the 837P line's dates |
| claims.paid_amount | sum of SVC03 over every payment of the line (original, reversal CLP02 22, correction); a reversal whose original payment (same CLP07) is not among the sources is not counted (data_quality row) |
| claims.units_paid | sum of SVC05 |
| claims.claim_status | `paid`, `denied` (net paid 0), `no remittance` (837P line without 835); a line whose payments net to nothing after a reversal is not a claim line (data_quality row per payment) |
| claims.adjustments | CAS group-reason and net amount, e.g. `CO-45 10.88; PR-2 10.62` |
| claims.payer_claim_id | CLP07 of the last payment |
| 835 without its 837P | claim_id CLP01; line numbered in order; patient from 2100 REF*EA, else NM1*QC NM109 via medicare_id; billing_npi NM1*82 NM109 (XX), else 1000B N1*PE N104 (XX); units SVC07, else SVC05; place of service CLP08 |

### FHIR R4 resources (JSON Bundle or resource, bulk-export NDJSON)

| resource | becomes |
|---|---|
| Patient | patients: patient_id = identifier of type MR (else the medicare_id match in patients.csv, else the resource id); medicare_id = identifier system `http://hl7.org/fhir/sid/us-mbi`; name; birthDate; deceasedDateTime = death_date (ELIG-03) |
| Condition | diagnoses: code.coding with system `http://hl7.org/fhir/sid/icd-10-cm`; onsetDateTime/onsetPeriod.start; abatementDateTime/abatementPeriod.start = resolved_date. No ICD-10-CM coding, or verificationStatus refuted/entered-in-error: rejected (never guessed); clinicalStatus resolved/inactive without an abatement date: kept and flagged |
| Consent | consents (scope `treatment`, status active or inactive): dateTime = consent_date; provision.actor Practitioner NPI = practitioner_npi; provision.period.end = revoked_date. Draft, proposed, rejected or other scopes: rejected. The informed_* disclosures have no FHIR element and stay blank (add them in consents.csv) |
| CarePlan | care_plans: id = plan_id; created (else period.start); electronic = true (it is in the EHR); problem_list = addresses, expected_outcomes = goal, planned_interventions = activity, medication_management = a MedicationRequest activity, care_coordination = careTeam, responsible_individuals = careTeam or author; the other elements have no FHIR element and stay blank |
| Encounter | encounters: type coding CPT/HCPCS = cpt_code; period.start = encounter_date; participant Practitioner NPI. Without a CPT/HCPCS type, or cancelled/planned: rejected |
| Practitioner, PractitionerRole | staff: staff_id = Practitioner id; role from PractitionerRole.code (NUCC taxonomy) or qualification (v2-0360 degree: MD/DO physician, NP, PA, RN, LPN, CNS, CNM, MA, PharmD, MSW); NPI identifier resolves references. No recognisable role: rejected (add the person to staff.csv) |
| Claim, ExplanationOfBenefit (FHIR R4 and CARIN Blue Button) | claims: one line per item with a CPT (`http://www.ama-assn.org/go/cpt`) or HCPCS productOrService (also Blue Button's `https://bluebutton.cms.gov/resources/codesystem/hcpcs`); every other item is its own rejected record with its paid dollars; sequence = line; servicedDate/servicedPeriod.start, else billablePeriod.start; quantity; net = charge_amount; locationCodeableConcept = place_of_service; billing_npi = the NPI of the item's `rendering`/`performing` careTeam member (by careTeamSequence), else any such member, else a careTeam Practitioner without a role, else provider; references resolve to contained resources (`#id`), resources of the files, or an NPI identifier (us-npi, type NPI, Blue Button's NPI variables); paid_amount = the item's adjudication `benefit`, else `paidtoprovider` + `paidtopatient` (an EOB pointing at a Claim adds its payment to that Claim's line); allowed_amount = `eligible`; diagnosis ICD-10-CM codes = diagnoses and each line's diagnosis_codes; a resource the strict R4 model refuses (CMS's timestamps, a missing insurer) is read for these elements with a flagged data-quality row; use `preauthorization`/`predetermination` and status `entered-in-error` are rejected |
| Procedure | rejected: clinical, not a claim line |
| anything else | rejected: not used |

Resources are validated with `fhir.resources` (its R4B models, which have the R4 elements of these resources);
an invalid resource is rejected with the elements at fault.
"""


def write_templates(out: str | Path = "templates") -> list[Path]:
    """Write ``intake/<table>.csv`` headers, ``intake/README.md`` and ``intake/ccm_intake.xlsx``."""
    folder = Path(out) / "intake"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    guide = column_guide()
    for name, t in TABLES.items():
        p = folder / f"{name}.csv"
        p.write_text(",".join(t.columns) + "\n", encoding="utf-8")
        written.append(p)
    lines = ["# Intake templates", "",
             "Fill one CSV per table (or the sheets of `ccm_intake.xlsx`) and put them in one folder; run",
             "`ccm-audit check FOLDER --out OUT`. Generated by `ccm-audit templates` from the schema; do not edit by hand.", ""]
    for name, t in TABLES.items():
        lines += [f"## {name}", "", t.doc, "", "| column | required | format | meaning | example |", "|---|---|---|---|---|"]
        for r in guide[guide["table"] == name].itertuples():
            lines.append(f"| {r.column} | {r.required} | {r.format} | {r.meaning} | {r.example} |")
        lines.append("")
    lines += MAPPING_DOC.splitlines()
    lines += INGEST_DOC.splitlines()
    p = folder / "README.md"
    p.write_text("\n".join(lines), encoding="utf-8")
    written.append(p)
    p = folder / "ccm_intake.xlsx"
    with pd.ExcelWriter(p, engine="xlsxwriter") as xw:
        guide.to_excel(xw, sheet_name="README", index=False)
        xw.sheets["README"].freeze_panes(1, 0)
        xw.sheets["README"].set_column(0, 1, 22)
        xw.sheets["README"].set_column(2, 5, 40)
        for name, t in TABLES.items():
            pd.DataFrame(columns=t.columns).to_excel(xw, sheet_name=name, index=False)
            xw.sheets[name].freeze_panes(1, 0)
            xw.sheets[name].set_column(0, len(t.columns) - 1, 18)
    written.append(p)
    return written
