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
         "urn:oid:2.16.840.1.113883.6.285", "https://bluebutton.cms.gov/resources/codesystem/hcpcs"}  # the last: Blue Button's
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
    claims: list = field(default_factory=list)      # (source, position, raw dict, validation problem or None) of Claims and EOBs
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
        if rtype == "Bundle":  # any type: collection, searchset, transaction, batch, document, ...
            _resolve_full_urls(obj)
            for i, entry in enumerate(obj.get("entry") or [], start=1):
                if isinstance(entry, dict) and "resource" in entry:
                    take(entry["resource"], source, f"{position} entry {i}".strip())
                else:
                    out.read[source] = out.read.get(source, 0) + 1
                    out.rejected.append(_rej(source, f"{position} entry {i}".strip(), record, "", "Bundle entry without a resource"))
            return
        if rtype in ("Claim", "ExplanationOfBenefit"):  # read element by element (CARIN Blue Button, contained resources)
            out.read[source] = out.read.get(source, 0) + max(1, len(obj.get("item") or []))  # each item is a record
            problem = None
            try:
                get_fhir_model_class(rtype).model_validate(obj)
            except Exception as exc:
                errs = getattr(exc, "errors", lambda: [])()
                problem = "; ".join(f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg', '')}" for e in errs[:3]) or str(exc)
                problem = " ".join(problem.split())
            out.claims.append((source, position, obj, problem))
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


def _resolve_full_urls(bundle: dict) -> None:
    """References by an entry's fullUrl (``urn:uuid:...``, as transaction Bundles and Synthea write them) rewritten
    as ``Type/id``, and an entry's resource without an id given the fullUrl's last part as its id."""
    targets = {}
    for entry in bundle.get("entry") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            continue
        res, url = entry["resource"], entry.get("fullUrl")
        if url and res.get("resourceType"):
            res.setdefault("id", str(url).rstrip("/").split("/")[-1].split(":")[-1])
            targets[url] = f"{res['resourceType']}/{res['id']}"

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str) and ref in targets:
                node["reference"] = targets[ref]
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    if targets:
        walk(bundle)


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
            last_name=name.family if name else None, birth_date=_day(m.birthDate), death_date=_day(m.deceasedDateTime),
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


# ------------------------------------------------------------------------------- Claims and EOBs, as dicts
def _dcodes(concept, systems) -> list[str]:
    return [c.get("code") for c in ((concept or {}).get("coding") or []) if c.get("system") in systems and c.get("code")]


def _dany(concept) -> list[str]:
    concept = concept or {}
    return [c.get("code") for c in (concept.get("coding") or []) if c.get("code")] + ([concept["text"]] if concept.get("text") else [])


def _is_npi(value) -> bool:
    return isinstance(value, str) and len(value) == 10 and value.isdigit()


def _ident_npi(ident) -> str | None:
    """An NPI identifier: system us-npi, a type coded NPI (v2-0203 or CARIN's npi), or a Blue Button NPI variable."""
    if not isinstance(ident, dict):
        return None
    value, system = ident.get("value"), str(ident.get("system") or "")
    typed = any(str(c.get("code", "")).lower() == "npi" for c in ((ident.get("type") or {}).get("coding") or []))
    if (system == NPI or typed or "npi" in system.lower()) and _is_npi(value):
        return value
    return None


def _claims(recs, by_type, row, reject, patient_of, npi_of):
    """Claim and ExplanationOfBenefit items (FHIR R4, CARIN Blue Button) become claim lines, each item its own record:
    a CPT/HCPCS item is mapped or rejected with its reason, an item with another productOrService is rejected, never
    skipped. References resolve to contained resources (``#id``), resources of the files, or an NPI identifier. The
    billing practitioner is the item's rendering/performing care-team member with an NPI, else the provider; paid is
    the 'benefit' adjudication (Medicare's payment), else 'paidtoprovider' plus 'paidtopatient'; allowed is
    'eligible'. A resource that fails the R4 model is read leniently for these elements, with a flag saying so."""
    claim_ids = {obj.get("id") for _, _, obj, _ in recs.claims if obj.get("resourceType") == "Claim"}
    eob_paid: dict[tuple[str, int], list] = {}
    for src, pos, obj, _ in recs.claims:
        if obj.get("resourceType") == "ExplanationOfBenefit":
            cid = _dref_id(obj.get("claim"), "Claim")
            if cid in claim_ids:
                for it in obj.get("item") or []:
                    eob_paid.setdefault((cid, it.get("sequence")), []).append(_amounts(it)[0])
    for src, pos, obj, problem in recs.claims:
        kind = obj["resourceType"]
        ident = next((i.get("value") for i in obj.get("identifier") or [] if isinstance(i, dict) and i.get("value")), None)
        rid = obj.get("id") or ident or f"{Path(src).name}{(' ' + pos) if pos else ''}"
        record = f"{kind}/{rid}"
        cid = rid if kind == "Claim" else (_dref_id(obj.get("claim"), "Claim") or rid)
        items = obj.get("item") or []

        def item_row(table, it, problem_text=None, paid=0.0, **values):
            rec = f"{record} item {it.get('sequence')}" if it is not None else record
            if problem_text is not None:
                recs.rejected.append(_rej(src, pos, rec, table, problem_text, paid))
            else:
                recs.rows.setdefault(table, []).append({"_source": src, "_position": pos, "_record": rec, **values})

        if kind == "ExplanationOfBenefit" and cid in claim_ids:  # its payments go to the lines of its Claim
            for it in items or [None]:
                item_row("_eob_merged", it, paid=_amounts(it)[0] if it else None)
            continue
        if obj.get("status") == "entered-in-error" or (kind == "Claim" and obj.get("status") == "cancelled") or \
                obj.get("use") in ("preauthorization", "predetermination"):
            why = f"use {obj['use']}: not a claim" if obj.get("use") in ("preauthorization", "predetermination") else f"status {obj.get('status')}"
            for it in items or [None]:
                item_row("claims", it, why, paid=_amounts(it)[0] or 0.0 if it else 0.0)
            continue
        contained = {c.get("id"): c for c in obj.get("contained") or [] if isinstance(c, dict) and c.get("id")}

        def npi(ref) -> str | None:
            if not isinstance(ref, dict):
                return None
            target = ref.get("reference")
            if isinstance(target, str) and target.startswith("#"):
                res = contained.get(target[1:])
                return next((n for n in map(_ident_npi, (res or {}).get("identifier") or []) if n), None)
            found = _ident_npi(ref.get("identifier"))
            if found:
                return found
            for kind_ in ("Practitioner", "Organization"):
                fid = _dref_id(ref, kind_)
                if fid:
                    return npi_of(_Ref(f"{kind_}/{fid}"))
            return None

        team = {t.get("sequence"): (npi(t.get("provider")), set(_dany(t.get("role")))) for t in obj.get("careTeam") or []}
        unroled = [n for t in obj.get("careTeam") or [] if not _dany(t.get("role")) and _is_practitioner(t.get("provider"), contained)
                   for n in [npi(t.get("provider"))] if n]  # a care team without roles: its practitioner renders
        rendering = {"rendering", "performing"}
        provider = npi(obj.get("provider"))
        patient = patient_of(_Ref(obj.get("patient", {}).get("reference"))) if isinstance(obj.get("patient"), dict) else None
        bill_start = _day((obj.get("billablePeriod") or {}).get("start"))
        flag = f"not a valid FHIR R4 {kind} ({problem}); read leniently for the elements ccm-audit maps" if problem else None
        dx_codes = ";".join(code for d in obj.get("diagnosis") or [] for code in _dcodes(d.get("diagnosisCodeableConcept"), ICD10CM))
        mapped, first = 0, None
        for it in items:
            paid, allowed = _amounts(it)
            codes = _dcodes(it.get("productOrService"), CPT | HCPCS)
            if not codes:
                other = ", ".join(f"{c.get('system')}|{c.get('code')}" for c in (it.get("productOrService") or {}).get("coding") or []) or "none"
                item_row("claims", it, f"item {it.get('sequence')}: productOrService is not a CPT/HCPCS code ({other})", paid or 0.0)
                continue
            seqs = it.get("careTeamSequence") or []
            billing = next((team[q][0] for q in seqs if q in team and team[q][0] and team[q][1] & rendering), None) or \
                next((n for n, roles in team.values() if n and roles & rendering), None) or next(iter(unroled), None) or provider
            period = it.get("servicedPeriod") or {}
            day = _day(it.get("servicedDate")) or _day(period.get("start")) or bill_start
            merged = eob_paid.get((cid, it.get("sequence")), [])
            if merged:
                paid = sum(p or 0.0 for p in merged)
            if kind == "Claim" and not merged:
                paid = None
            missing = [w for w, v in (("patient", patient), ("billing provider NPI", billing), ("service date", day)) if not v]
            if missing:
                item_row("claims", it, f"item {it.get('sequence')}: no {', no '.join(missing)}", paid or 0.0)
                continue
            qty = (it.get("quantity") or {}).get("value")
            net = (it.get("net") or {}).get("value")
            item_row("claims", it, claim_id=cid, line=it.get("sequence"), patient_id=patient, billing_npi=billing, service_date=day,
                     cpt_code=codes[0], modifiers=" ".join(c for mm in it.get("modifier") or [] for c in _dany(mm)[:1]),
                     units=float(qty) if qty is not None else 1.0, charge_amount=float(net) if net is not None else None,
                     paid_amount=paid, allowed_amount=allowed, diagnosis_codes=dx_codes or None,
                     place_of_service=(_dany(it.get("locationCodeableConcept")) or [None])[0],
                     group_npi=provider, claim_status=("paid" if paid else "denied") if paid is not None else "no remittance",
                     _flag=None if mapped else flag)  # the resource's flag once, on its first line
            first = first or f"{record} item {it.get('sequence')}"
            mapped += 1
        if not items:
            item_row("claims", None, "no item (nothing to map)")
        if mapped:
            for d in obj.get("diagnosis") or []:
                for code in _dcodes(d.get("diagnosisCodeableConcept"), ICD10CM):
                    recs.rows.setdefault("_claim_diagnoses", []).append({"_source": src, "_position": pos, "_record": first,
                                                                         "patient_id": patient, "icd10_code": code})


def _is_practitioner(ref, contained: dict) -> bool:
    if not isinstance(ref, dict):
        return False
    target = str(ref.get("reference") or "")
    if target.startswith("#"):
        return (contained.get(target[1:]) or {}).get("resourceType") == "Practitioner"
    return _dref_id(ref, "Practitioner") is not None or ref.get("type") == "Practitioner"


class _Ref:
    """A reference as the model-based helpers read it (``.reference``, ``.identifier``)."""

    def __init__(self, reference):
        self.reference, self.identifier = reference, None


def _dref_id(ref, rtype: str) -> str | None:
    return _ref_id(_Ref(ref.get("reference")), rtype) if isinstance(ref, dict) else None


def _amounts(item) -> tuple[float | None, float | None]:
    """(paid, allowed) of an EOB item: 'benefit' (what the payer paid), else 'paidtoprovider' + 'paidtopatient'; allowed
    is 'eligible'. None when the item has no such adjudication."""
    found: dict[str, float] = {}
    for adj in (item or {}).get("adjudication") or []:
        value = (adj.get("amount") or {}).get("value")
        if value is None:
            continue
        for code in _dany(adj.get("category")):
            if code in ("benefit", "paidtoprovider", "paidtopatient", "paid", "eligible") and code not in found:
                found[code] = float(value)
    if "benefit" in found:
        paid = found["benefit"]
    elif "paidtoprovider" in found or "paidtopatient" in found:
        paid = found.get("paidtoprovider", 0.0) + found.get("paidtopatient", 0.0)
    else:
        paid = found.get("paid")
    return paid, found.get("eligible")
