"""Declared input tables of a practice data folder (data contract v2).

One declaration drives loading, validation (the value checks ``choices``, ``min``, ``max``,
``flag_above`` and the unique ``key``, run as vectorized comparisons by :mod:`ccmlib.intake.validate`),
the intake templates and the docs, so they cannot drift apart. Kinds:

- ``id``/``text``: strings, stripped; ``code``: upper-case strings (CPT/HCPCS, NPI);
  ``icd``: ICD-10-CM code, upper-case without the dot;
- ``date``: ISO ``YYYY-MM-DD`` -> ``datetime64[ns]``; ``time``: ``HH:MM`` -> minutes after
  midnight (``Int32``); ``bool``: true/false, yes/no, y/n, 1/0 -> ``boolean``;
  ``number``: float; ``int``: ``Int64``; ``choice``: lower-case string from ``choices``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

CLINICAL_STAFF_ROLES = ("rn", "lpn", "ma", "pharmacist", "social_worker", "other_clinical")
PRACTITIONER_ROLES = ("physician", "np", "pa", "cns", "cnm")
ROLES = PRACTITIONER_ROLES + CLINICAL_STAFF_ROLES + ("non_clinical",)

#: A single logged activity longer than this is kept but flagged as implausible.
PLAUSIBLE_ENTRY_MINUTES = 240
#: Longer than a day is impossible: the row is rejected.
MAX_ENTRY_MINUTES = 1440


@dataclass(frozen=True)
class Col:
    name: str
    kind: str = "text"
    required: bool = False  # the column must be present
    blank_ok: bool = True  # a blank value is acceptable (else the row is rejected)
    doc: str = ""
    example: str = ""
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    flag_above: float | None = None  # kept but listed in the data-quality table


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    cols: tuple[Col, ...]
    key: tuple[str, ...] = ()  # unique key: later duplicates are rejected
    patient_ref: bool = True  # rows name a patient_id that must exist in patients
    one_of: tuple[tuple[str, ...], ...] = field(default=())  # column groups, one must be present

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.cols]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.cols if c.required]

    def col(self, name: str) -> Col:
        return next(c for c in self.cols if c.name == name)


#: the care plan's required elements, in the table's column order (CP-02 judges the core ones, CP-03 the others)
CARE_PLAN_ELEMENTS = ("problem_list", "expected_outcomes", "measurable_goals", "symptom_management", "planned_interventions",
                      "medication_management", "community_resources", "care_coordination", "responsible_individuals",
                      "review_schedule")


def _bools(names: str, doc: str) -> tuple[Col, ...]:
    return tuple(Col(n, "bool", doc=doc.format(n=n.replace("_", " ")), example="true") for n in names.split())


PATIENTS = Table(
    "patients",
    "One row per patient.",
    (
        Col("patient_id", "id", True, False, "unique patient id (any string)", "P000123"),
        Col("first_name", doc="first name (PHI)", example="Ada"),
        Col("last_name", doc="last name (PHI)", example="Lovelace"),
        Col("birth_date", "date", doc="date of birth (PHI)", example="1948-05-17"),
        Col("medicare_id", doc="Medicare beneficiary identifier (PHI)", example="1EG4TE5MK73"),
        Col("death_date", "date", doc="date of death (PHI); months that begin after it are not billable (ELIG-03)", example=""),
    ),
    key=("patient_id",),
    patient_ref=False,
)

DIAGNOSES = Table(
    "diagnoses",
    "One row per diagnosis on the patient's problem list.",
    (
        Col("patient_id", "id", True, False, "patient id", "P000123"),
        Col("icd10_code", "icd", True, False, "ICD-10-CM code, with or without the dot", "E11.9"),
        Col("onset_date", "date", doc="date the condition began (blank = unknown)", example="2019-03-01"),
        Col("resolved_date", "date", doc="does not count after this date", example=""),
    ),
)

CONSENTS = Table(
    "consents",
    "One row per documented CCM consent.",
    (
        Col("patient_id", "id", True, False, "patient id", "P000123"),
        Col("consent_date", "date", True, False, "date the consent was documented", "2025-11-04"),
        Col("method", "choice", doc="verbal or written", example="verbal", choices=("verbal", "written")),
        Col("practitioner_npi", "code", doc="billing practitioner the consent was given for", example="1234567893"),
        *_bools(
            "informed_cost_sharing informed_one_practitioner informed_right_to_stop informed_availability",
            "was the patient told: {n} (blank = not documented)",
        ),
        Col("revoked_date", "date", doc="CCM stops at the end of that calendar month", example=""),
    ),
)

CARE_PLANS = Table(
    "care_plans",
    "One row per care-plan version.",
    (
        Col("patient_id", "id", True, False, "patient id", "P000123"),
        Col("plan_id", "id", True, False, "plan version id", "CP-1"),
        Col("created_date", "date", True, False, "date this version was created", "2025-11-04"),
        Col("reviewed_date", "date", doc="last review or revision", example="2026-05-02"),
        Col("electronic", "bool", doc="kept in the electronic record and shareable with the care team", example="true"),
        Col("shared_with_patient_date", "date", doc="when a copy went to the patient or caregiver", example="2025-11-05"),
        Col("signed_by", doc="who signed the plan (its author); blank: unsigned (DOC-01)", example="Dr. A. Rivera"),
        Col("signed_date", "date", doc="when the plan was signed", example="2025-11-04"),
        Col("signature_method", "choice", doc="electronic, handwritten or stamp (a stamp is not a signature)", example="electronic",
            choices=("electronic", "handwritten", "stamp")),
        Col("attested_date", "date", doc="date of the author's signature attestation, for an unsigned plan", example=""),
        *_bools(" ".join(CARE_PLAN_ELEMENTS), "plan element present: {n} (blank = absent)"),
    ),
    key=("patient_id", "plan_id"),
)

STAFF = Table(
    "staff",
    "One row per staff member who logs time or bills.",
    (
        Col("staff_id", "id", True, False, "unique staff id", "S001"),
        Col("role", "choice", True, False, "one of: " + ", ".join(ROLES), "rn", choices=ROLES),
        Col("supervising_npi", "code", doc="NPI of the supervising practitioner", example="1234567893"),
        Col("name", doc="name as the report shows it (optional; not patient data)", example="Dr. A. Rivera"),
        Col("npi", "code", doc="the staff member's own NPI, for practitioners who bill (names the billing NPI in reports)",
            example="1234567893"),
    ),
    key=("staff_id",),
    patient_ref=False,
)

TIME_ENTRIES = Table(
    "time_entries",
    "One row per logged care-management activity.",
    (
        Col("entry_id", "id", True, False, "unique entry id", "T0000001"),
        Col("patient_id", "id", True, False, "patient id", "P000123"),
        Col("staff_id", "id", True, True, "who did the work (blank is a documentation defect)", "S001"),
        Col("activity_date", "date", True, False, "date of the activity", "2026-07-14"),
        Col("minutes", "number", doc="duration in minutes (or give start_time and end_time)", example="15",
            min=0, max=MAX_ENTRY_MINUTES, flag_above=PLAUSIBLE_ENTRY_MINUTES),
        Col("start_time", "time", doc="HH:MM, 24 h, local", example="09:10"),
        Col("end_time", "time", doc="HH:MM, 24 h, local", example="09:25"),
        Col("activity", doc="category, e.g. medication_reconciliation, care_coordination", example="care_coordination"),
        Col("description", "text", True, True, "free text (blank is a documentation defect)",
            "Called pharmacy to reconcile metformin dose after discharge"),
        Col("face_to_face", "bool", doc="time spent face to face with the patient", example="false"),
        Col("counted_toward", "code", doc="code of another service this time already counted toward", example=""),
        Col("signed_by", doc="author signature of the entry; blank: unsigned (DOC-02)", example="S001"),
    ),
    key=("entry_id",),
    one_of=(("minutes",), ("start_time", "end_time")),
)

CLAIMS = Table(
    "claims",
    "One row per claim line (CCM and other services).",
    (
        Col("claim_id", "id", True, False, "claim id", "C0000001"),
        Col("line", "int", True, False, "line number within the claim", "1", min=1),
        Col("patient_id", "id", True, False, "patient id", "P000123"),
        Col("billing_npi", "code", True, False, "NPI of the billing practitioner", "1234567893"),
        Col("service_date", "date", True, False, "date of service", "2026-07-31"),
        Col("cpt_code", "code", True, False, "CPT/HCPCS code", "99490"),
        Col("units", "int", doc="units billed (default 1)", example="1", min=1, max=99),
        Col("paid_amount", "number", doc="amount paid for the line (blank: fee schedule)", example="66.13", min=0),
        Col("allowed_amount", "number", doc="the payer's allowed amount for the line (835 AMT*B6); with paid_amount it gives the "
            "patient's cost sharing exactly (blank: 20 % of the fee schedule's)", example="66.13", min=0),
        Col("diagnosis_codes", doc="the claim's ICD-10-CM codes, separated by ; (837P HI segment); DX-01 checks them",
            example="E11.9;I10"),
        Col("place_of_service", "code", doc="CMS two-digit place of service; a facility setting (19, 21, 22, 23, 24, 26, 31, 34, "
            "41, 42, 51, 52, 53, 56, 61) selects the facility fee", example="11"),
    ),
    key=("claim_id", "line"),
)

ENCOUNTERS = Table(
    "encounters",
    "Face-to-face visits (for the initiating-visit rule).",
    (
        Col("patient_id", "id", True, False, "patient id", "P000123"),
        Col("encounter_date", "date", True, False, "date of the visit", "2025-10-21"),
        Col("cpt_code", "code", True, False, "visit code, e.g. 99214, G0439", "99214"),
        Col("practitioner_npi", "code", doc="practitioner who saw the patient", example="1234567893"),
    ),
)

TABLES: dict[str, Table] = {t.name: t for t in (PATIENTS, DIAGNOSES, CONSENTS, CARE_PLANS, STAFF, TIME_ENTRIES, CLAIMS, ENCOUNTERS)}

CARE_PLAN_CORE = ("problem_list", "measurable_goals", "planned_interventions", "responsible_individuals")
CARE_PLAN_OTHER = tuple(e for e in CARE_PLAN_ELEMENTS if e not in CARE_PLAN_CORE)
CONSENT_REQUIRED = ("informed_cost_sharing", "informed_one_practitioner", "informed_right_to_stop")
