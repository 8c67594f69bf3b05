"""Each rule in plain words: what a finding means and what fixes it (the report, the pre-bill worklist and the
workbench show these; the rule catalog keeps the citations)."""

#: plain-language explanation and corrective action per rule
EXPLAIN = {
    "TIME-01": ("A time entry lacks a description, a staff member or a duration, so it cannot count.",
                "Make description, staff and minutes (or start/end) mandatory fields in the CCM time log."),
    "TIME-02": ("Time was logged by someone who is not clinical staff or a billing practitioner.",
                "Restrict CCM time logging to clinical roles; keep the staff roster current."),
    "TIME-03": ("One staff member logged overlapping time; overlapping minutes count once.",
                "Log start and end times and review overlapping entries before billing."),
    "TIME-04": ("Face-to-face time belongs to a visit and cannot count toward CCM.",
                "Log visit time on the visit, not in the CCM time log."),
    "TIME-05": ("The minutes were already counted toward another service (e.g. TCM, RPM, BHI).",
                "Separate time logs per service; never count a minute twice."),
    "TIME-06": ("99490 needs at least 20 qualifying minutes in the calendar month; fewer were documented.",
                "Hold the claim until 20 qualifying minutes are documented; reconcile time logs monthly."),
    "TIME-07": ("Each 99439 unit needs a further full 20 minutes (at most two a month).",
                "Bill 99439 units from the qualifying-minute total, never rounded up."),
    "TIME-08": ("99487 needs 60 minutes and each 99489 a further 30.",
                "Bill complex CCM only when 60 qualifying minutes and complex decision-making are documented."),
    "TIME-09": ("99491/99437 count only the practitioner's own time.",
                "Track practitioner time separately from staff time."),
    "CONS-01": ("No consent was documented before the service.",
                "Obtain and document consent before the first CCM activity; verify it before billing."),
    "CONS-02": ("The consent in force for the billing practitioner does not show the patient was told of cost sharing, the one-practitioner limit and the right to stop.",
                "Use a consent template with all required disclosures as separate checkboxes."),
    "CONS-03": ("The consent in force was revoked; later months are not covered until a new consent.",
                "Stop CCM billing after the month of revocation; flag revoked patients in the billing system."),
    "CONS-04": ("The consent names a different billing practitioner.",
                "Obtain a new consent when the billing practitioner changes."),
    "CONS-05": ("Activity logged before the consent, without one, or after a revocation and before a new consent cannot count.",
                "Start the CCM clock on the consent date; stop it at the end of a revocation month until a new consent."),
    "SUP-01": ("Clinical staff time with no supervising practitioner on record (the minutes still count).",
               "Record the supervising physician or practitioner of every clinical staff member in the staff roster."),
    "CONS-06": ("The consent does not show the patient was told CCM is available.",
                "Add the availability statement to the consent template."),
    "ELIG-01": ("Fewer than two chronic conditions were active in the month.",
                "Confirm two qualifying chronic conditions on the problem list before enrolling."),
    "ELIG-02": ("A diagnosis code is not a valid ICD-10-CM code and was ignored.",
                "Correct invalid codes on the problem list."),
    "IV-01": ("No initiating face-to-face visit by the billing practitioner in the year before CCM began.",
              "Schedule an initiating visit (E/M, AWV, IPPE or TCM) before starting CCM."),
    "CP-01": ("No care plan was in force for the month.", "Create the comprehensive care plan at enrollment."),
    "CP-02": ("The care plan lacks a core element (problem list, measurable goals, interventions, responsible individuals).",
              "Use a care-plan template that requires every core element."),
    "CP-03": ("The care plan lacks another expected element.", "Complete every expected care-plan element."),
    "CP-04": ("The care plan is not kept electronically and shareable with the care team.",
              "Keep the care plan in the certified EHR, shareable with the care team."),
    "CP-05": ("No record that the patient received a copy of the care plan.",
              "Give the patient a copy and document the date."),
    "CP-06": ("The care plan was not created or reviewed in the last 12 months.", "Review care plans at least yearly."),
    "TIME-10": ("G0511 was billed in a month with no CCM time on record; from 2024 it may stand for other care-management "
                "services, so the chart must show which.", "Document which service each G0511 stood for, with its time."),
    "BILL-01": ("More than one practitioner billed CCM for the same patient and month.",
                "Coordinate with other practices; only one practitioner may bill CCM a month."),
    "BILL-02": ("A base CCM code was billed more than once in the month.", "Bill the base code once per calendar month."),
    "BILL-03": ("CCM was billed in a month with a conflicting service (home health or hospice supervision, ESRD, PCM, APCM).",
                "Check for conflicting services before billing CCM."),
    "BILL-04": ("Incompatible CCM codes were billed together, or an add-on without its base.",
                "Bill add-ons only with their base code; do not combine 99490 and 99487."),
    "BILL-05": ("The claim was dated before the time threshold was reached.", "Date the claim after the threshold is met."),
    "BILL-06": ("G0506 was billed without a same-day initiating visit by the same practitioner, or twice.",
                "Bill G0506 once, with the initiating visit."),
    "BILL-07": ("G0511 was billed after 30 Sep 2025; rural health clinics and FQHCs now bill the individual care-management codes.",
                "Bill 99490 and its siblings for RHC/FQHC care management from 1 Oct 2025."),
    "BILL-08": ("The payer denied the CCM line (paid $0): it was not paid, so it is not an overpayment; it is listed apart.",
                "Find out why it was denied (a duplicate, a conflicting service, missing documentation) before billing the next month."),
    "REV-01": ("Documented qualifying minutes support codes or units that were not billed.",
               "Review time totals at month end and bill what the documentation supports."),
}


def meaning(rule_id: str) -> str:
    return EXPLAIN[rule_id][0]


def fix(rule_id: str) -> str:
    return EXPLAIN[rule_id][1]
