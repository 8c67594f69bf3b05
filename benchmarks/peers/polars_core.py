"""The core of the CCM time audit as an analyst would write it with Polars' lazy API (a peer for benchmarks/run.py).

    python benchmarks/peers/polars_core.py DATA_DIR OUT.csv --period 2026Q1 [--patient-months PM.csv]

Reads the practice's Parquet tables as `ccm-audit synth --format parquet` writes them and writes every CCM claim line
of the period (99490, 99439, 99487, 99489, 99491, 99437, G0506, G0511) with its patient-month's qualifying minutes, the
dates 20/40/60 minutes were reached, the 99490/99439 units the minutes support and the overpayment at the line's paid
amount. `--patient-months` also writes the minutes and dates of every patient-month with time (for tests/test_peers.py).

What it computes, as the engine does (ccmlib/engine/facts.py, rules/time.py, money.py):
- an entry's minutes are `minutes`, else end_time - start_time; it counts only when its staff member's role is clinical
  staff or a practitioner (ccmlib/intake/schema.py), it is not face to face, not already counted toward another
  service, and has a description, a staff id and a duration;
- overlaps of one staff member on one day (any patient) count once, against the earlier-starting entry (ties: the
  lower entry_id), as the engine's overlap_minutes; the entries excluded above still cover later ones;
- 99490 is supported with 20 qualifying minutes; 99439 supports min(2, floor((m - 20) / 20)) units in the month, taken
  by the month's 99439 lines in order (service date, claim_id, line), and none when no 99490 of the same billing
  practitioner is supported; a line paid 0 (denied) has no overpayment; the overpayment is (units billed - units
  supported) x paid / units, rounded to the cent half to even as numpy does (39.545 -> 39.54).

What it leaves out on purpose (the engine does all of these; on a practice with only the time pitfalls injected the
results agree exactly, see tests/test_peers.py):
- validation: no rejected rows, no data-quality report; staff_id is assumed unique in the staff table;
- consent (CONS-05: time before consent, without consent or after a revocation still counts here) and every rule
  that is not about 99490/99439 time (consent, care plan, eligibility, billing, initiating visit, signatures);
  lines of the other CCM codes are written with blank units_supported and overpayment (not judged);
- tie-breaks in text order of entry_id and claim_id, which is the engine's natural order only when ids have the same
  width (the generator's do: T0000009 < T0000010);
- pricing: a line with no paid_amount gets a blank overpayment (the engine prices it from the fee schedule);
- `--period` takes only a quarter (YYYYQn) or a month (YYYY-MM); CSV inputs are not read.
"""
import argparse
import sys
from datetime import date
from pathlib import Path

import polars as pl

ROLES = ["physician", "np", "pa", "cns", "cnm", "rn", "lpn", "ma", "pharmacist", "social_worker", "other_clinical"]
CCM = ["99490", "99439", "99487", "99489", "99491", "99437", "G0506", "G0511"]
PM = ["patient_id", "m"]


def period_bounds(period: str) -> tuple[date, date]:
    """First day of the period and first day after it: 2026Q1 -> (2026-01-01, 2026-04-01); 2026-02 likewise."""
    if "Q" in period.upper():
        y, qn = (int(x) for x in period.upper().split("Q"))
        first, last = 3 * qn - 2, 3 * qn
    else:
        y, first = (int(x) for x in period.split("-"))
        last = first
    return date(y, first, 1), date(y + last // 12, last % 12 + 1, 1)


def clock(col: str) -> pl.Expr:
    """'HH:MM' -> minutes after midnight."""
    return pl.col(col).str.slice(0, 2).cast(pl.Int32) * 60 + pl.col(col).str.slice(3, 2).cast(pl.Int32)


def audit(data: Path, first: date, after: date) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    staff = pl.scan_parquet(data / "staff.parquet").select("staff_id", "role")
    e = (pl.scan_parquet(data / "time_entries.parquet")
         .with_columns(d=pl.col("activity_date").cast(pl.Date))
         .filter((pl.col("d") >= first) & (pl.col("d") < after))
         .join(staff, on="staff_id", how="left")
         .with_columns(m=pl.col("d").dt.truncate("1mo"), s=clock("start_time"), f=clock("end_time"))
         .with_columns(duration=pl.col("minutes").fill_null(pl.col("f") - pl.col("s")),
                       timed=pl.col("s").is_not_null() & pl.col("f").is_not_null() & pl.col("staff_id").is_not_null())
         # overlaps: the latest end among the earlier-starting entries of the staff member's day
         .sort("staff_id", "d", "s", "entry_id", nulls_last=True)
         .with_columns(prev_end=pl.col("f").cum_max().shift(1).over("staff_id", "d", "timed"))
         .with_columns(overlap=pl.when(pl.col("timed"))
                       .then((pl.col("f") - pl.col("s"))
                             - (pl.col("f") - pl.max_horizontal("s", pl.col("prev_end").fill_null(-1))).clip(lower_bound=0))
                       .otherwise(0))
         .with_columns(excluded=(pl.col("description").str.strip_chars().fill_null("") == "") | pl.col("staff_id").is_null()
                       | pl.col("duration").is_null() | ~pl.col("role").is_in(ROLES).fill_null(False)
                       | pl.col("face_to_face").fill_null(False) | pl.col("counted_toward").is_not_null())
         .with_columns(qualifying=pl.when(pl.col("excluded")).then(0.0)
                       .otherwise((pl.col("duration") - pl.col("overlap")).clip(lower_bound=0))))
    daily = (e.group_by(*PM, "d").agg(mins=pl.col("qualifying").sum()).sort(*PM, "d")
             .with_columns(cum=pl.col("mins").cum_sum().over(PM)))
    pm = daily.group_by(PM).agg(pl.col("mins").sum().alias("qualifying_minutes"),
                                *[pl.col("d").filter(pl.col("cum") >= t).min().alias(f"date_{t}min") for t in (20, 40, 60)])

    units, mins = pl.col("units"), pl.col("qualifying_minutes")
    base_units = pl.when((pl.col("cpt_code") == "99490") & (mins >= 20)).then(units).otherwise(0)
    addon_units = pl.when(pl.col("cpt_code") == "99439").then(units).otherwise(0)
    addon_supported = pl.min_horizontal(units, (pl.min_horizontal(pl.lit(2.0), ((mins - 20) / 20).floor()) - pl.col("addon_before")).clip(lower_bound=0))
    lines = (pl.scan_parquet(data / "claims.parquet")
             .with_columns(service_date=pl.col("service_date").cast(pl.Date), units=pl.col("units").fill_null(1))
             .filter((pl.col("service_date") >= first) & (pl.col("service_date") < after) & pl.col("cpt_code").is_in(CCM))
             .with_columns(m=pl.col("service_date").dt.truncate("1mo"))
             .join(pm, on=PM, how="left")
             .with_columns(qualifying_minutes=mins.fill_null(0.0))
             .sort(*PM, "service_date", "claim_id", "line")
             .with_columns(addon_before=addon_units.cum_sum().over(PM) - addon_units,
                           base_ok=base_units.sum().over(*PM, "billing_npi"))
             .with_columns(units_supported=pl.when(pl.col("cpt_code") == "99490").then(base_units)
                           .when(pl.col("cpt_code") == "99439").then(pl.when(pl.col("base_ok") > 0).then(addon_supported).otherwise(0))
                           .cast(pl.Int64))
             .with_columns(overpayment=pl.when(pl.col("units_supported").is_null()).then(None)
                           .when(pl.col("paid_amount") == 0).then(0.0)
                           .otherwise(((units - pl.col("units_supported")) * (pl.col("paid_amount") / units) * 100).round(0) / 100))
             .select("claim_id", "line", "patient_id", pl.col("m").dt.strftime("%Y-%m").alias("service_month"), "billing_npi",
                     "service_date", "cpt_code", units.alias("units_billed"), "units_supported", "paid_amount", "overpayment",
                     "qualifying_minutes", "date_20min", "date_40min", "date_60min"))
    return lines, pm.sort(PM).select("patient_id", pl.col("m").dt.strftime("%Y-%m").alias("service_month"),
                                     "qualifying_minutes", "date_20min", "date_40min", "date_60min")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir")
    ap.add_argument("out_csv")
    ap.add_argument("--period", required=True, help="YYYYQn or YYYY-MM")
    ap.add_argument("--patient-months", help="also write every patient-month's minutes and dates to this CSV")
    a = ap.parse_args()
    lines, pm = audit(Path(a.data_dir), *period_bounds(a.period))
    if a.patient_months:
        lines, pm = pl.collect_all([lines, pm])
        pm.write_csv(a.patient_months)
    else:
        lines = lines.collect()
    lines.write_csv(a.out_csv)
    print(len(lines), "claim lines", file=sys.stderr)


if __name__ == "__main__":
    main()
