"""Code lists of the rule catalog, kept in one place."""
from __future__ import annotations

#: CCM family codes reported in claim_lines.csv
CCM_CODES = ("99490", "99439", "99487", "99489", "99491", "99437", "G0506", "G0511")
#: time-based CCM codes: a month-level error (consent, care plan, eligibility, conflict) takes them down; G0506 is an
#: add-on to the initiating visit and falls only by BILL-06 or ELIG-01 (catalog v2, Money)
TIMED_CODES = ("99490", "99439", "99487", "99489", "99491", "99437", "G0511")
#: base code -> its add-on code
ADDON_OF = {"99439": "99490", "99489": "99487", "99437": "99491"}
BASE_CODES = ("99490", "99487", "99491", "G0511")
#: RHC/FQHC general care management, judged like 99490 up to its last billable date (reference/code_dates.csv), BILL-07 after
G0511 = "G0511"
#: code -> (time family, minutes for the base, minutes per add-on unit, max add-on units or None)
TIME_RULES = {
    "99490": ("staff", 20, 20, 2),
    "99487": ("staff", 60, 30, None),
    "99491": ("practitioner", 30, 30, None),
    "G0511": ("staff", 20, 0, 0),
}
BASE_OF_ADDON = ADDON_OF
ADDON_OF_BASE = {v: k for k, v in ADDON_OF.items()}
#: the PFS time codes proposed by REV-01 and labelled in codes_billed (G0506 and G0511 are not time-proposed)
PFS_TIME_CODES = ("99490", "99439", "99487", "99489", "99491", "99437")


def minutes_needed(code: str, unit: int = 1) -> int:
    """Minutes the ``unit``-th unit of ``code`` needs in the month (TIME_RULES, the one home of the thresholds):
    a base code its base minutes; add-on unit k the base minutes plus k steps (99439 unit 2: 20 + 2 x 20 = 60)."""
    base = ADDON_OF.get(code, code)
    _, first, step, _ = TIME_RULES[base]
    return first if code == base else first + step * unit


def addon_units(minutes, base: str, capped: bool = True):
    """Add-on units that ``minutes`` support beside ``base`` (TIME_RULES): floor((minutes - base minutes) / step), not
    below 0 and, ``capped``, not above the add-on's monthly cap (99439: 2). The one home of this arithmetic: the money,
    the time rules (TIME-07/08/09) and the pre-bill's next threshold use it. Works on numbers and numpy/pandas arrays."""
    import numpy as np

    _, first, step, cap = TIME_RULES[base]
    if not step:
        return np.zeros_like(np.asarray(minutes, dtype=float))
    k = np.floor((np.asarray(minutes, dtype=float) - first) / step)
    return np.clip(k, 0, cap if capped and cap is not None else None) if capped else k


def time_family(code: str) -> str:
    """``staff`` (clinical staff and practitioner minutes count) or ``practitioner`` (only the practitioner's own)."""
    return TIME_RULES[ADDON_OF.get(code, code)][0]

#: visits that G0506 can be added to (E/M, AWV, IPPE): BILL-06
G0506_HOSTS = frozenset([f"9920{i}" for i in range(2, 6)] + [f"9921{i}" for i in range(2, 6)]
                        + ["G0438", "G0439", "G0402"])

#: BILL-03's conflicting services are dated reference data: reference/conflicts.csv (reference.data.conflicts)

#: codes in a CCM-like position (994xx, G05xx) that are real CPT/HCPCS codes of other services; any other code of that
#: shape on a claim (``9949O``, ``99940``, ``G0560X``) is listed in data_quality.csv as a probable typo (the line is kept
#: but is not audited as CCM). CPT 2024-2026 and HCPCS Level II G05xx, deleted codes included for older claims.
OTHER_994_G05 = frozenset(
    [f"9940{i}" for i in (1, 2, 3, 4, 6, 7, 8, 9)] + ["99411", "99412", "99415", "99416", "99417", "99418"]
    + [f"9942{i}" for i in range(1, 10)] + ["99441", "99442", "99443", "99445", "99446", "99447", "99448", "99449"]
    + [f"9945{i}" for i in range(1, 10)] + [f"994{i}" for i in range(60, 87)] + [f"9949{i}" for i in range(2, 10)]
    + ["G0500", "G0501", "G0505", "G0508", "G0509", "G0512", "G0513", "G0514", "G0516", "G0517", "G0518"]
    + [f"G05{i}" for i in range(19, 60)] + [f"G05{i}" for i in range(60, 71)])
CCM_LIKE = r"^(?:994|G05)[0-9A-Z]{2}$"


def __getattr__(name: str):
    """``INITIATING_VISITS``: IV-01's qualifying visit codes (office/outpatient and home E/M, AWV, IPPE, TCM, FQHC visits),
    kept as reference data in ``reference/initiating_visits.csv`` and read on first use (catalog v3)."""
    if name == "INITIATING_VISITS":
        from ccmlib.reference.data import initiating_visit_codes
        return initiating_visit_codes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
