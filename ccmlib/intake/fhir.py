"""Read FHIR R4 resources (JSON Bundles, single resources, bulk-export NDJSON) into the contract's tables.

Each resource is validated with the ``fhir.resources`` models (the R4B package of fhir.resources 8, which for the
resources read here has the R4 elements) and mapped by a small function per resource type. A resource that fails
validation, has nothing the contract can use (a Condition without an ICD-10-CM coding, an Encounter without a CPT
type, a Procedure, which is clinical and not a claim line) or is not read at all becomes a rejected record with
its file, position (NDJSON line or Bundle entry) and id. Every resource read is either mapped or rejected.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from ccmlib.errors import InputError

ICD10CM = {"http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10-us"}
CPT = {"http://www.ama-assn.org/go/cpt"}
HCPCS = {"https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
         "urn:oid:2.16.840.1.113883.6.285"}
NPI = "http://hl7.org/fhir/sid/us-npi"
MBI = {"http://hl7.org/fhir/sid/us-mbi", "http://terminology.hl7.org/NamingSystem/cmsMBI"}
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
# Practitioner.qualification (v2-0360 degrees) and PractitionerRole.code (NUCC taxonomy prefixes) -> staff role
DEGREE_ROLE = {"MD": "physician", "DO": "physician", "NP": "np", "PA": "pa", "RN": "rn", "BSN": "rn", "LPN": "lpn",
               "LVN": "lpn", "CNS": "cns", "CNM": "cnm", "MA": "ma", "CMA": "ma", "PHARMD": "pharmacist", "RPH": "pharmacist",
               "MSW": "social_worker", "LCSW": "social_worker"}
TAXONOMY_ROLE = [("207", "physician"), ("208", "physician"), ("363L", "np"), ("363A", "pa"), ("364S", "cns"),
                 ("367A", "cnm"), ("163W", "rn"), ("164W", "lpn"), ("164X", "lpn"), ("1835", "pharmacist"),
                 ("1041C", "social_worker"), ("1041", "social_worker"), ("3726S", "ma"), ("3747", "other_clinical")]
ROLES = {"physician", "np", "pa", "cns", "cnm", "rn", "lpn", "ma", "pharmacist", "social_worker", "other_clinical", "non_clinical"}
READ = ("Patient", "Condition", "Consent", "CarePlan", "Encounter", "Practitioner", "PractitionerRole", "Organization",
        "Claim", "ExplanationOfBenefit")
TABLE_OF = {"Patient": "patients", "Condition": "diagnoses", "Consent": "consents", "CarePlan": "care_plans",
            "Encounter": "encounters", "Practitioner": "staff", "PractitionerRole": "staff", "Claim": "claims",
            "ExplanationOfBenefit": "claims", "Procedure": "claims"}
NOT_READ = {"Procedure": "a Procedure is clinical, not a claim line (claim lines come from Claim, ExplanationOfBenefit or 837P)"}


def sniff(path: Path) -> bool:
    return path.suffix.lower() in (".json", ".ndjson", ".jsonl")


@dataclass
class FhirRecords:
    resources: list = field(default_factory=list)   # (source, position, model) of every valid resource
    rejected: list = field(default_factory=list)    # records that were not mapped
    rows: dict = field(default_factory=dict)        # table -> list of row dicts (each with _source, _position, _record)
    read: dict = field(default_factory=dict)        # file -> resources (and unreadable NDJSON lines) counted in it


def read_files(paths: list[Path], progress=None) -> FhirRecords:
    """Parse and validate every resource of the given files (JSON Bundle or resource, NDJSON)."""
    from fhir.resources.R4B import get_fhir_model_class

    out = FhirRecords()

    def take(obj, source, position):
        rtype = obj.get("resourceType") if isinstance(obj, dict) else None
        rid = obj.get("id") if isinstance(obj, dict) else None
        record = f"{rtype}/{rid}" if rtype else "(no resourceType)"
        if rtype == "Bundle":
            for i, entry in enumerate(obj.get("entry") or [], start=1):
                if isinstance(entry, dict) and "resource" in entry:
                    take(entry["resource"], source, f"{position} entry {i}".strip())
                else:
                    out.rejected.append(_rej(source, f"{position} entry {i}".strip(), record, "", "Bundle entry without a resource"))
            return
        out.read[source] = out.read.get(source, 0) + 1
        if rtype in NOT_READ or rtype not in READ:
            why = NOT_READ.get(rtype) or (f"{rtype} resources are not used by ccm-audit" if rtype else "not a FHIR resource (no resourceType)")
            out.rejected.append(_rej(source, position, record, TABLE_OF.get(rtype, ""), why))
            return
        try:
            model = get_fhir_model_class(rtype).model_validate(obj)
        except Exception as exc:  # pydantic ValidationError: name the first few elements at fault
            errs = getattr(exc, "errors", lambda: [])()
            what = "; ".join(f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg', '')}" for e in errs[:3]) or str(exc)
            out.rejected.append(_rej(source, position, record, TABLE_OF.get(rtype, ""), f"not a valid FHIR R4 {rtype}: " + " ".join(what.split())))
            return
        out.resources.append((source, position, model))

    for path in paths:
        source = str(path)
        if path.suffix.lower() in (".ndjson", ".jsonl"):
            with open(path, encoding="utf-8-sig") as fh:
                for i, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as exc:
                        out.read[source] = out.read.get(source, 0) + 1
                        out.rejected.append(_rej(source, f"line {i}", "", "", f"not valid JSON ({exc.msg} at column {exc.colno})"))
                        continue
                    take(obj, source, f"line {i}")
        else:
            try:
                obj = json.loads(path.read_text(encoding="utf-8-sig"))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
            except UnicodeDecodeError:
                raise InputError(f"{path}: not UTF-8 text (FHIR JSON must be UTF-8)") from None
            items = obj if isinstance(obj, list) else [obj]
            for i, o in enumerate(items, start=1):
                take(o, source, f"item {i}" if isinstance(obj, list) else "")
        if progress is not None:  # one step per file, NDJSON or JSON
            progress.update(1)
    return out


def _rej(source, position, record, table, problem, paid=0.0) -> dict:
    return {"file": source, "position": position, "record": record, "table": table, "problem": problem, "paid": paid}


# ---------------------------------------------------------------------------------------------------- helpers
def _day(value) -> str | None:
    """ISO day of a FHIR date/dateTime (the local date as recorded); None for missing or partial dates."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    return text[:10] if len(text) >= 10 else None


def _codes(concept, systems) -> list[str]:
    if concept is None:
        return []
    return [c.code for c in (concept.coding or []) if c.system in systems and c.code]


def _any_codes(concept) -> list[str]:
    if concept is None:
        return []
    return [c.code for c in (concept.coding or []) if c.code] + ([concept.text] if concept.text else [])


def _ref_id(ref, rtype: str) -> str | None:
    """The id of a literal reference such as Patient/123 (or a full URL ending so)."""
    if ref is None or not ref.reference:
        return None
    parts = ref.reference.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == rtype:
        return parts[-1]
    if len(parts) >= 4 and parts[-4] == rtype and parts[-2] == "_history":
        return parts[-3]
    return None


def _identifier(identifiers, systems=None, type_code=None) -> str | None:
    for ident in identifiers or []:
        if systems is not None and ident.system in systems and ident.value:
            return ident.value
        if type_code is not None and ident.type is not None and ident.value:
            if any(c.code == type_code and (c.system in (None, V2_0203)) for c in ident.type.coding or []):
                return ident.value
    return None


# ---------------------------------------------------------------------------------------------------- mapping
def map_resources(recs: FhirRecords, mbi_to_patient: dict[str, str]) -> dict[str, str]:
    """Map every valid resource to table rows (``recs.rows``) or a rejected record; returns FHIR Patient id ->
    patient_id (the MRN identifier when there is one, else the resource id) for use by the caller."""
    by_type: dict[str, list] = {}
    for src, pos, m in recs.resources:
        by_type.setdefault(m.get_resource_type(), []).append((src, pos, m))
    patient_ids: dict[str, str] = {}
    for src, pos, m in by_type.get("Patient", []):
        mbi = _identifier(m.identifier, systems=MBI) or _identifier(m.identifier, type_code="MC")
        pid = _identifier(m.identifier, type_code="MR") or (mbi_to_patient.get(mbi) if mbi else None) or m.id
        patient_ids[m.id] = pid
    npis: dict[tuple[str, str], str] = {}
    for kind in ("Practitioner", "Organization"):
        for src, pos, m in by_type.get(kind, []):
            npi = _identifier(m.identifier, systems={NPI})
            if npi:
                npis[(kind, m.id)] = npi
    role_of: dict[str, str] = {}
    for src, pos, m in by_type.get("PractitionerRole", []):
        pr = _ref_id(m.practitioner, "Practitioner")
        role = _role([c for cc in (m.code or []) for c in _any_codes(cc)])
        if pr and role and pr not in role_of:
            role_of[pr] = role
        if npi := _identifier(m.identifier, systems={NPI}):
            npis.setdefault(("Practitioner", pr), npi)
        recs.rows.setdefault("_practitioner_roles", []).append({"_source": src, "_position": pos, "_record": f"PractitionerRole/{m.id}"})

    def row(table, src, pos, m, **values):
        recs.rows.setdefault(table, []).append({"_source": src, "_position": pos, "_record": f"{m.get_resource_type()}/{m.id}", **values})

    def reject(src, pos, m, table, problem, paid=0.0):
        recs.rejected.append(_rej(src, pos, f"{m.get_resource_type()}/{m.id}", table, problem, paid))

    def patient_of(ref):
        fid = _ref_id(ref, "Patient")
        return patient_ids.get(fid, fid) if fid else None

    def npi_of(ref):
        for kind in ("Practitioner", "Organization"):
            fid = _ref_id(ref, kind)
            if fid:
                return npis.get((kind, fid))
        if ref is not None and ref.identifier is not None and ref.identifier.system == NPI:
            return ref.identifier.value
        return None

    for src, pos, m in by_type.get("Patient", []):
        name = (m.name or [None])[0]
        row("patients", src, pos, m, patient_id=patient_ids[m.id], first_name=" ".join(name.given or []) if name else None,
            last_name=name.family if name else None, birth_date=_day(m.birthDate),
            medicare_id=_identifier(m.identifier, systems=MBI) or _identifier(m.identifier, type_code="MC"))
    for src, pos, m in by_type.get("Practitioner", []):
        role = role_of.get(m.id) or _role([c for q in (m.qualification or []) for c in _any_codes(q.code)])
        if role is None:
            reject(src, pos, m, "staff", "no staff role recognised in qualification or PractitionerRole.code (its NPI is "
                   "still used to resolve references); add the person to staff.csv")
        else:
            row("staff", src, pos, m, staff_id=m.id, role=role, npi=npis.get(("Practitioner", m.id)))
    for src, pos, m in by_type.get("Organization", []):
        row("_organizations", src, pos, m)
    for src, pos, m in by_type.get("Condition", []):
        codes = _codes(m.code, ICD10CM)
        verification = _codes(m.verificationStatus, {"http://terminology.hl7.org/CodeSystem/condition-ver-status"})
        if not codes:
            reject(src, pos, m, "diagnoses", "no ICD-10-CM coding (only " + (", ".join(f"{c.system}|{c.code}" for c in (m.code.coding if m.code else []) or []) or "text")
                   + "); not guessed")
        elif set(verification) & {"refuted", "entered-in-error"}:
            reject(src, pos, m, "diagnoses", f"verificationStatus {verification[0]}")
        elif patient_of(m.subject) is None:
            reject(src, pos, m, "diagnoses", "subject is not a Patient reference")
        else:
            onset = _day(m.onsetDateTime) or _day(m.onsetPeriod.start if m.onsetPeriod else None)
            resolved = _day(m.abatementDateTime) or _day(m.abatementPeriod.start if m.abatementPeriod else None)
            status = _codes(m.clinicalStatus, {"http://terminology.hl7.org/CodeSystem/condition-clinical"})
            row("diagnoses", src, pos, m, patient_id=patient_of(m.subject), icd10_code=codes[0], onset_date=onset,
                resolved_date=resolved, clinical_status=status[0] if status else None,
                _flag=("clinicalStatus is " + status[0] + " but no abatement date: counted as active")
                if status and status[0] in ("resolved", "inactive", "remission") and not resolved else None)
    for src, pos, m in by_type.get("Consent", []):
        scope = _codes(m.scope, {"http://terminology.hl7.org/CodeSystem/consentscope"})
        if m.status in ("draft", "proposed", "entered-in-error"):
            reject(src, pos, m, "consents", f"status {m.status}: not a documented consent")
        elif m.status == "rejected":
            reject(src, pos, m, "consents", "status rejected: the patient declined")
        elif scope and scope[0] != "treatment":
            reject(src, pos, m, "consents", f"scope {scope[0]}: not a consent to treatment (CCM consent is scope treatment)")
        elif patient_of(m.patient) is None or _day(m.dateTime) is None:
            reject(src, pos, m, "consents", "no patient reference or no dateTime (the day the consent was documented)")
        else:
            prov = m.provision
            revoked = _day(prov.period.end) if prov is not None and prov.period is not None else None
            if m.status == "inactive" and revoked is None:
                revoked = _day(m.meta.lastUpdated) if m.meta is not None else None
            npi = None
            for actor in (prov.actor or []) if prov is not None else []:
                npi = npi or npi_of(actor.reference)
            row("consents", src, pos, m, patient_id=patient_of(m.patient), consent_date=_day(m.dateTime), practitioner_npi=npi,
                revoked_date=revoked)
    for src, pos, m in by_type.get("CarePlan", []):
        created = _day(m.created) or _day(m.period.start if m.period else None)
        if m.status in ("draft", "entered-in-error"):
            reject(src, pos, m, "care_plans", f"status {m.status}")
        elif patient_of(m.subject) is None or created is None:
            reject(src, pos, m, "care_plans", "no subject Patient or no created date")
        else:
            kinds = {getattr(a.detail, "kind", None) for a in m.activity or [] if a.detail is not None}
            refs = {a.reference.reference.split("/")[0] for a in m.activity or [] if a.reference is not None and a.reference.reference}
            row("care_plans", src, pos, m, patient_id=patient_of(m.subject), plan_id=m.id, created_date=created,
                electronic=True, problem_list=bool(m.addresses) or None, expected_outcomes=bool(m.goal) or None,
                measurable_goals=None, planned_interventions=bool(m.activity) or None,
                medication_management=bool(kinds & {"MedicationRequest"} or refs & {"MedicationRequest"}) or None,
                care_coordination=bool(m.careTeam) or None, responsible_individuals=bool(m.careTeam or m.author) or None)
    for src, pos, m in by_type.get("Encounter", []):
        codes = [c for t in m.type or [] for c in _codes(t, CPT | HCPCS)]
        day = _day(m.period.start) if m.period is not None else None
        if m.status in ("cancelled", "entered-in-error", "planned"):
            reject(src, pos, m, "encounters", f"status {m.status}: not a visit that took place")
        elif not codes:
            reject(src, pos, m, "encounters", "no CPT/HCPCS code in Encounter.type")
        elif patient_of(m.subject) is None or day is None:
            reject(src, pos, m, "encounters", "no subject Patient or no period.start")
        else:
            npi = None
            for part in m.participant or []:
                npi = npi or npi_of(part.individual)
            row("encounters", src, pos, m, patient_id=patient_of(m.subject), encounter_date=day, cpt_code=codes[0], practitioner_npi=npi)
    _claims(recs, by_type, row, reject, patient_of, npi_of)
    return patient_ids


def _role(codes: list[str]) -> str | None:
    for code in codes:
        key = str(code).strip()
        if key.upper().replace(".", "") in DEGREE_ROLE:
            return DEGREE_ROLE[key.upper().replace(".", "")]
        if key.lower() in ROLES:
            return key.lower()
        for prefix, role in TAXONOMY_ROLE:
            if key.startswith(prefix) and key.endswith("X"):
                return role
    return None


def _claims(recs, by_type, row, reject, patient_of, npi_of):
    """Claim and ExplanationOfBenefit items with a CPT/HCPCS code become claim lines (an EOB's paid amount goes to
    the line of its Claim when both are given); their ICD-10-CM diagnoses become diagnoses rows."""
    eob_paid: dict[tuple[str, int], list] = {}
    claim_ids = {m.id for _, _, m in by_type.get("Claim", [])}
    for src, pos, m in by_type.get("ExplanationOfBenefit", []):
        cid = _ref_id(m.claim, "Claim")
        if cid in claim_ids:
            for it in m.item or []:
                eob_paid.setdefault((cid, it.sequence), []).append((src, pos, m, _paid(it)))
    for kind in ("Claim", "ExplanationOfBenefit"):
        for src, pos, m in by_type.get(kind, []):
            cid = m.id if kind == "Claim" else (_ref_id(m.claim, "Claim") or m.id)
            if kind == "ExplanationOfBenefit" and cid in claim_ids:
                paid = sum(_paid(it) or 0.0 for it in m.item or [])
                row("_eob_merged", src, pos, m, paid=paid)
                continue
            if m.status == "entered-in-error" or (kind == "Claim" and m.status == "cancelled"):
                reject(src, pos, m, "claims", f"status {m.status}")
                continue
            # the billing practitioner: a careTeam Practitioner with an NPI (the rendering provider), else the provider
            team = [npi_of(t.provider) for t in m.careTeam or [] if _ref_id(t.provider, "Practitioner")]
            group = npi_of(m.provider)
            patient, billing = patient_of(m.patient), next((n for n in team if n), None) or group
            lines = []
            for it in m.item or []:
                codes = _codes(it.productOrService, CPT | HCPCS)
                if not codes:
                    continue
                day = _day(it.servicedDate) or _day(it.servicedPeriod.start if it.servicedPeriod else None) \
                    or _day(m.billablePeriod.start if m.billablePeriod else None)
                pos_code = (_any_codes(it.locationCodeableConcept) or [None])[0]
                paid = _paid(it) if kind == "ExplanationOfBenefit" else None
                merged = eob_paid.get((cid, it.sequence), [])
                if merged:
                    paid = sum(p or 0.0 for *_, p in merged)
                lines.append(dict(claim_id=cid, line=it.sequence, patient_id=patient, billing_npi=billing, service_date=day,
                                  cpt_code=codes[0], modifiers=" ".join(c for mm in it.modifier or [] for c in _any_codes(mm)[:1]),
                                  units=float(it.quantity.value) if it.quantity is not None and it.quantity.value is not None else 1.0,
                                  charge_amount=float(it.net.value) if it.net is not None and it.net.value is not None else None,
                                  paid_amount=paid, place_of_service=pos_code, group_npi=group,
                                  claim_status=("paid" if paid else "denied") if paid is not None else "no remittance"))
            if not lines:
                reject(src, pos, m, "claims", "no item with a CPT/HCPCS productOrService")
                continue
            if patient is None or billing is None or any(ln["service_date"] is None for ln in lines):
                reject(src, pos, m, "claims", "no patient, no billing provider NPI or no service date",
                       paid=sum(ln["paid_amount"] or 0.0 for ln in lines))
                continue
            for ln in lines:
                row("claims", src, pos, m, **ln)
            for d in m.diagnosis or []:
                for code in _codes(getattr(d, "diagnosisCodeableConcept", None), ICD10CM):
                    row("_claim_diagnoses", src, pos, m, patient_id=patient, icd10_code=code)


def _paid(item) -> float | None:
    """Amount paid for an EOB item: the adjudication of category 'benefit' (FHIR) or 'paidtoprovider' (CARIN)."""
    for adj in item.adjudication or []:
        if set(_any_codes(adj.category)) & {"benefit", "paidtoprovider", "paid"} and adj.amount is not None:
            return float(adj.amount.value)
    return None
