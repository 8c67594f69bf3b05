"""Time documentation: exclusions (TIME-01..05, CONS-05) and time thresholds (TIME-06..09)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ccmlib.engine.facts import Facts
from ccmlib.reference.codes import ADDON_OF, TIME_RULES, addon_units, minutes_needed
from ccmlib.engine.rules.registry import raw, rule, minutes_text

CMS_CCM = "CMS MLN909188 Chronic Care Management Services; CPT 2024 CCM code descriptors"


#: what every entry finding reads (raw's keys and the minutes excluded)
ENTRY_KEYS = ["patient_id", "mkey", "entry_id", "duration"]


#: the exclusion flags the entry rules below report, and every column they read
ENTRY_FLAGS = ("x_incomplete", "x_staff", "x_overlap", "x_f2f", "x_counted", "x_before_consent", "x_no_consent",
               "x_after_revocation", "x_unsupervised")
ENTRY_READS = (*ENTRY_KEYS, "description", "staff_id", "role", "overlap", "counted_toward", "activity_date", "first_consent",
               "revoked_date")


def _flagged(f: Facts, flag: str | list[str], columns: list[str]) -> pd.DataFrame:
    """``f.entry_rows(flag, columns=columns)`` for a flag of :data:`ENTRY_FLAGS` (or a list of them): the rows are taken
    from the entries any of those flags marks, fetched from the store once per audit (kept on the facts) for all of
    these rules, instead of one query of the store per rule. The same rows, in the same order, with the same index
    labels, columns and dtypes."""
    flags = [flag] if isinstance(flag, str) else list(flag)
    have = [c for c in ENTRY_FLAGS if f.store.dtypes.get(c) == np.dtype(bool)]
    reads = [c for c in ENTRY_READS if c in f.store.dtypes]
    if not set(flags) <= set(have) or not set(columns) <= set(reads) | set(have):
        return f.entry_rows(flag, columns=columns)
    rows = f.once("flagged_entries", lambda: f.entry_rows(have, columns=reads + have), f.store)
    keep = np.zeros(len(rows), dtype=bool)
    for c in flags:
        keep |= rows[c].to_numpy(dtype=bool)
    return rows.loc[keep, list(columns)]


def _entries(f: Facts, flag: str, what, reads=()) -> pd.DataFrame:
    e = _flagged(f, flag, ENTRY_KEYS + list(reads))
    return raw(e, "entry", lambda: "entry " + e["entry_id"].astype(str) + ": " + (what(e) if callable(what) else what) + "; "
               + minutes_text(e["duration"]) + " min excluded")


@rule("TIME-01", "Time entry documentation incomplete", "warning", "insufficient_documentation",
      "Medicare Claims Processing Manual ch.12 s.30.6; CMS CCM FAQ (time must be documented)", ("time_entries",),
      meaning="A time entry lacks a description, a staff member or a duration, so it cannot count.",
      fix="Make description, staff and minutes (or start/end) mandatory fields in the CCM time log.",
      excludes=(("x_incomplete", "incomplete documentation"),))
def time_01(f: Facts) -> pd.DataFrame:
    def what(e):
        d = e["description"].astype("string").str.strip()
        parts = (pd.Series(np.where(d.isna() | (d == ""), "no description", ""), index=e.index) + ","
                 + np.where(e["staff_id"].isna(), "no staff", "") + "," + np.where(e["duration"].isna(), "no duration", ""))
        return parts.str.replace(r",+", ", ", regex=True).str.strip(", ")
    return _entries(f, "x_incomplete", what, reads=("description", "staff_id"))


@rule("TIME-02", "Time by staff who are not clinical staff or a billing practitioner", "warning",
      "insufficient_documentation", "CPT clinical staff definition; CMS CCM FAQ (MLN909188)", ("time_entries", "staff"),
      meaning="Time was logged by someone who is not clinical staff or a billing practitioner.",
      fix="Restrict CCM time logging to clinical roles; keep the staff roster current.",
      excludes=(("x_staff", "not clinical staff"),))
def time_02(f: Facts) -> pd.DataFrame:
    return _entries(f, "x_staff", lambda e: np.where(e["role"].isna(), "staff " + e["staff_id"].astype(str) + " not in the staff table",
                                                      "staff " + e["staff_id"].astype(str) + " is " + e["role"].astype(str)),
                    reads=("role", "staff_id"))


@rule("TIME-03", "Overlapping time of one staff member", "warning", "insufficient_documentation",
      "CPT time rules (a unit of time is counted once); OIG A-07-17-05101", ("time_entries",),
      meaning="One staff member logged overlapping time; overlapping minutes count once.",
      fix="Log start and end times and review overlapping entries before billing.",
      excludes=(("x_overlap", "overlaps another entry"),))
def time_03(f: Facts) -> pd.DataFrame:
    e = _flagged(f, "x_overlap", ENTRY_KEYS + ["staff_id", "overlap"])
    return raw(e, "entry", lambda: "entry " + e["entry_id"].astype(str) + ": staff " + e["staff_id"].astype(str) + " logged "
               + minutes_text(e["overlap"]) + " min that overlap an earlier entry; counted once")


@rule("TIME-04", "Face-to-face time logged as CCM", "warning", "insufficient_documentation",
      "CMS CCM FAQ: face-to-face time belongs to the visit", ("time_entries",),
      meaning="Face-to-face time belongs to a visit and cannot count toward CCM.",
      fix="Log visit time on the visit, not in the CCM time log.",
      excludes=(("x_f2f", "face-to-face"),))
def time_04(f: Facts) -> pd.DataFrame:
    return _entries(f, "x_f2f", "face-to-face time belongs to a visit")


@rule("TIME-05", "Time already counted toward another service", "warning", "insufficient_documentation",
      "CMS PFS final rule CY2020 (no double counting of time with TCM, RPM, BHI)", ("time_entries",),
      meaning="The minutes were already counted toward another service (e.g. TCM, RPM, BHI).",
      fix="Separate time logs per service; never count a minute twice.",
      excludes=(("x_counted", "counted toward another service"),))
def time_05(f: Facts) -> pd.DataFrame:
    return _entries(f, "x_counted", lambda e: "already counted toward " + e["counted_toward"].astype(str), reads=("counted_toward",))


@rule("CONS-05", "Activity outside consent", "warning", "no_documentation",
      "CMS CY2015 and CY2017 PFS final rules (consent before CCM begins); CMS MLN909188 CCM booklet (revocation ends CCM "
      "at the end of its month)", ("time_entries", "consents"),
      meaning="Activity logged before the consent, without one, or after a revocation and before a new consent cannot "
              "count.",
      fix="Start the CCM clock on the consent date; stop it at the end of a revocation month until a new consent.",
      excludes=(("x_before_consent", "before consent"), ("x_no_consent", "no consent on file"),
                ("x_after_revocation", "after a revocation, before a new consent")))
def cons_05(f: Facts) -> pd.DataFrame:
    """Activity before the patient's first consent, with no consent at all, or after the end of the month of a
    revocation and before the next consent: the time cannot count. Catalog v3: judged against the consent in force on
    the activity date for the month's practitioner (the first billing practitioner; in an unbilled month the
    practitioner of the latest consent), or the latest consent of any practitioner when none covers that practitioner;
    a revoked consent given to another practitioner never puts this practitioner's activity outside consent."""
    e = _flagged(f, ["x_before_consent", "x_no_consent", "x_after_revocation"],
                 ENTRY_KEYS + ["activity_date", "x_no_consent", "x_before_consent", "first_consent", "revoked_date"])

    def what(e):
        day = e["activity_date"].dt.strftime("%Y-%m-%d")
        return pd.Series(np.select(
            [e["x_no_consent"].to_numpy(), e["x_before_consent"].to_numpy()],
            ["no consent on file", "activity on " + day + " before consent of " + e["first_consent"].dt.strftime("%Y-%m-%d").fillna("")],
            "activity on " + day + " after the consent was revoked on " + e["revoked_date"].dt.strftime("%Y-%m-%d").fillna("")
            + " and before a new consent"), index=e.index)

    return raw(e, "entry", lambda: "entry " + e["entry_id"].astype(str) + ": " + what(e) + "; " + minutes_text(e["duration"])
               + " min excluded")


@rule("SUP-01", "Clinical staff time with no supervising practitioner on record", "warning", "insufficient_documentation",
      "42 CFR 410.26(b)(5) and 410.32(b)(3)(i) (general supervision); CMS MLN909188", ("time_entries", "staff"),
      meaning="Clinical staff time with no supervising practitioner on record (the minutes still count).",
      fix="Record the supervising physician or practitioner of every clinical staff member in the staff roster.")
def sup_01(f: Facts) -> pd.DataFrame:
    """Clinical staff (not practitioners) whose staff row names no supervising_npi; the minutes still count."""
    e = _flagged(f, "x_unsupervised", ENTRY_KEYS + ["staff_id", "role"])
    return raw(e, "entry", lambda: "entry " + e["entry_id"].astype(str) + ": staff " + e["staff_id"].astype(str) + " (" + e["role"].astype(str)
               + ") has no supervising practitioner on record; minutes still count")


# ----------------------------------------------------------------------------- thresholds
def _lines_with_minutes(f: Facts, codes: tuple[str, ...]) -> pd.DataFrame:
    """The lines of ``codes`` with their month's minutes, in "first" order (billing.in_order), as
    ``in_order(lines[codes].merge(minutes, how="left"))`` gives them, index included. Every line is joined to its
    month's minutes and ordered once per audit (kept on the facts); each call takes its codes' rows from that."""
    from ccmlib.engine.rules.billing import _order

    def join():
        pm = f.pm[["patient_id", "mkey", "qualifying_minutes", "practitioner_minutes"]]
        joined = f.lines.merge(pm, on=["patient_id", "mkey"], how="left")  # one row per line, in the lines' order
        return joined, _order(joined)

    joined, order = f.once("minutes_order", join, f.lines, f.pm)
    want = f.lines["cpt_code"].isin(codes).to_numpy(dtype=bool, na_value=False)
    at = order[want[order]]  # the ordered rows of those codes (a stable order kept on a subset is the subset's order)
    out = joined.take(at)
    out.index = (np.cumsum(want) - 1)[at]  # each row's number among the codes' lines, as the merge numbered them
    return out


def _g0511_last():
    from ccmlib.reference import data as refdata
    return refdata.code_date("G0511", "last_billable_date")


def _base_short(f: Facts, code: str, need: int, col: str, label: str, until=None) -> pd.DataFrame:
    ln = _lines_with_minutes(f, (code,))
    if until is not None:
        ln = ln[ln["service_date"] <= until]
    ln = ln[ln[col].fillna(0) < need]
    return raw(ln, "line", lambda: code + " billed with " + minutes_text(ln[col]) + f" {label}minutes; it needs {need}")


def _addon_excess(f: Facts, addon: str, col: str, label: str) -> pd.DataFrame:
    """Add-on units beyond those the minutes support (codes.addon_units), taken from the latest lines first."""
    ln = _lines_with_minutes(f, (addon,))
    if not len(ln):
        return raw(ln, "line", "")
    supported = pd.Series(addon_units(ln[col].fillna(0), ADDON_OF[addon]), index=ln.index)
    before = ln.groupby(["patient_id", "mkey"])["units"].cumsum() - ln["units"]
    keep = (supported - before).clip(lower=0)
    removed = (ln["units"] - keep).clip(lower=0).astype("int64")
    bad = removed > 0
    x, sup = ln[bad], supported[bad]  # the message written for the flagged lines only
    return raw(x, "line", lambda: x["units"].astype(str) + f" unit(s) of {addon} billed; " + minutes_text(x[col])
               + f" {label}minutes support " + sup.astype(int).astype(str) + " in the month", units_removed=removed[bad])


@rule("TIME-06", "99490 (or G0511) billed with fewer than 20 qualifying minutes", "error", "insufficient_documentation",
      "CPT 99490 descriptor; CMS MLN909188; G0511 before 1 Oct 2025 likewise (CMS RHC/FQHC care management)",
      ("time_entries", "claims"),
      meaning="99490 needs at least 20 qualifying minutes in the calendar month; fewer were documented.",
      fix="Hold the claim until 20 qualifying minutes are documented; reconcile time logs monthly.",
      threshold=True,
      effective="99490 throughout; G0511 up to its last billable date (reference/code_dates.csv: G0511 "
                "last_billable_date), and from its multi_service_from date only in a month with CCM time on record")
def time_06(f: Facts) -> pd.DataFrame:
    """G0511 (RHC/FQHC) is judged like 99490 up to its last billable date (after it BILL-07 applies); from 2024, only in a
    month with CCM time on record (without any, TIME-10 asks which service it stood for)."""
    g = _base_short(f, "G0511", minutes_needed("G0511"), "qualifying_minutes", "qualifying ", until=_g0511_last())
    if len(g):
        multi = _g0511_multi_lines(f)
        g = g[~pd.MultiIndex.from_frame(g[["claim_id", "line"]].astype(str)).isin(
            pd.MultiIndex.from_frame(multi[["claim_id", "line"]].astype(str)))]
    return pd.concat([_base_short(f, "99490", minutes_needed("99490"), "qualifying_minutes", "qualifying "), g], ignore_index=True)


def _g0511_multi_lines(f: Facts) -> pd.DataFrame:
    """G0511 lines from the date it also stood for other care-management services (2024) up to its last billable
    date, in a patient-month with no CCM time on record at all."""
    from ccmlib.reference import data as refdata

    ln = f.lines[f.lines["cpt_code"] == "G0511"].merge(f.pm[["patient_id", "mkey", "documented_minutes"]], on=["patient_id", "mkey"],
                                                       how="left")
    ln = ln[(ln["service_date"] >= refdata.code_date("G0511", "multi_service_from")) & (ln["service_date"] <= _g0511_last())]
    return ln[ln["documented_minutes"].fillna(0) <= 0]


@rule("TIME-10", "G0511 billed with no CCM time on record", "warning", "insufficient_documentation",
      "CMS CY2024 PFS final rule (G0511 also stands for PCM, BHI, RPM, RTM and other care management from 2024)",
      ("time_entries", "claims"),
      meaning="G0511 was billed in a month with no CCM time on record; from 2024 it may stand for other "
              "care-management services, so the chart must show which.",
      fix="Document which service each G0511 stood for, with its time.",
      effective="G0511 lines from its multi_service_from date to its last_billable_date (reference/code_dates.csv)")
def time_10(f: Facts) -> pd.DataFrame:
    """From 2024 G0511 also stood for other general care-management services: in a month with no CCM time on record the
    chart must show which service it was (not judged as CCM, not priced as an error)."""
    ln = _g0511_multi_lines(f)
    return raw(ln, "line", lambda: "G0511 billed in a month with no CCM time on record: from 2024 it may stand for PCM, BHI, RPM, RTM "
               "or other care management; the chart must show which service it was")


@rule("TIME-07", "99439 units beyond those supported", "error", "insufficient_documentation",
      "CPT 99439 descriptor (each additional 20 min, at most twice a month: G2058 in CMS PFS CY2020, 99439 from CY2021)", ("time_entries", "claims"),
      meaning="Each 99439 unit needs a further full 20 minutes (at most two a month).",
      fix="Bill 99439 units from the qualifying-minute total, never rounded up.",
      threshold=True)
def time_07(f: Facts) -> pd.DataFrame:
    return _addon_excess(f, "99439", "qualifying_minutes", "qualifying ")


@rule("TIME-08", "99487/99489 billed beyond the time documented", "error", "insufficient_documentation",
      "CPT 99487/99489 descriptors", ("time_entries", "claims"),
      meaning="99487 needs 60 minutes and each 99489 a further 30.",
      fix="Bill complex CCM only when 60 qualifying minutes and complex decision-making are documented.",
      threshold=True)
def time_08(f: Facts) -> pd.DataFrame:
    return pd.concat([_base_short(f, "99487", minutes_needed("99487"), "qualifying_minutes", "qualifying "),
                      _addon_excess(f, "99489", "qualifying_minutes", "qualifying ")], ignore_index=True)


@rule("TIME-09", "99491/99437 billed beyond the practitioner's own time", "error", "insufficient_documentation",
      "CPT 99491/99437 descriptors (time personally spent by the physician/QHP)", ("time_entries", "claims", "staff"),
      meaning="99491/99437 count only the practitioner's own time.",
      fix="Track practitioner time separately from staff time.",
      threshold=True)
def time_09(f: Facts) -> pd.DataFrame:
    return pd.concat([_base_short(f, "99491", minutes_needed("99491"), "practitioner_minutes", "practitioner "),
                      _addon_excess(f, "99437", "practitioner_minutes", "practitioner ")], ignore_index=True)
