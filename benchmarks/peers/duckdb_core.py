"""The core of the CCM time audit as an analyst would write it in DuckDB (a peer for benchmarks/run.py).

    python benchmarks/peers/duckdb_core.py DATA_DIR OUT.csv --period 2026Q1 [--patient-months PM.csv]

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
from pathlib import Path

import duckdb

SQL = """
CREATE TEMP TABLE e AS
SELECT t.entry_id, t.patient_id, t.staff_id, CAST(t.activity_date AS DATE) AS d,
       date_trunc('month', CAST(t.activity_date AS DATE)) AS m,
       60 * CAST(substr(t.start_time, 1, 2) AS INT) + CAST(substr(t.start_time, 4, 2) AS INT) AS s,
       60 * CAST(substr(t.end_time, 1, 2) AS INT) + CAST(substr(t.end_time, 4, 2) AS INT) AS f,
       t.minutes, t.description, t.face_to_face, t.counted_toward, st.role
FROM read_parquet($dir || '/time_entries.parquet') t LEFT JOIN read_parquet($dir || '/staff.parquet') st USING (staff_id)
WHERE t.activity_date >= $first AND t.activity_date < $after;

CREATE TEMP TABLE q AS
WITH o AS (
  SELECT *, coalesce(minutes, f - s) AS duration,
         max(f) OVER (PARTITION BY staff_id, d, s IS NULL OR f IS NULL ORDER BY s, entry_id
                      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
  FROM e)
SELECT patient_id, m, d,
       CASE WHEN coalesce(trim(description), '') = '' OR staff_id IS NULL OR duration IS NULL
              OR role IS NULL OR role NOT IN ('physician', 'np', 'pa', 'cns', 'cnm',
                                               'rn', 'lpn', 'ma', 'pharmacist', 'social_worker', 'other_clinical')
              OR coalesce(face_to_face, false) OR counted_toward IS NOT NULL THEN 0
            ELSE greatest(duration - CASE WHEN s IS NULL OR f IS NULL OR staff_id IS NULL THEN 0
                                          ELSE (f - s) - greatest(f - greatest(s, coalesce(prev_end, -1)), 0) END, 0)
       END AS qualifying
FROM o;

CREATE TEMP TABLE pm AS
WITH daily AS (SELECT patient_id, m, d, sum(qualifying) AS mins FROM q GROUP BY ALL),
run AS (SELECT *, sum(mins) OVER (PARTITION BY patient_id, m ORDER BY d) AS cum FROM daily)
SELECT patient_id, m, sum(mins) AS qualifying_minutes,
       min(d) FILTER (WHERE cum >= 20) AS date_20min, min(d) FILTER (WHERE cum >= 40) AS date_40min,
       min(d) FILTER (WHERE cum >= 60) AS date_60min
FROM run GROUP BY ALL;

CREATE TEMP TABLE lines AS
WITH l AS (
  SELECT c.claim_id, c.line, c.patient_id, date_trunc('month', CAST(c.service_date AS DATE)) AS m, c.billing_npi,
         CAST(c.service_date AS DATE) AS service_date, c.cpt_code, coalesce(c.units, 1) AS units, c.paid_amount,
         coalesce(pm.qualifying_minutes, 0) AS mins, pm.date_20min, pm.date_40min, pm.date_60min
  FROM read_parquet($dir || '/claims.parquet') c LEFT JOIN pm
    ON pm.patient_id = c.patient_id AND pm.m = date_trunc('month', CAST(c.service_date AS DATE))
  WHERE c.service_date >= $first AND c.service_date < $after
    AND c.cpt_code IN ('99490', '99439', '99487', '99489', '99491', '99437', 'G0506', 'G0511')),
u AS (
  SELECT *,
         coalesce(sum(CASE WHEN cpt_code = '99439' THEN units ELSE 0 END) OVER (PARTITION BY patient_id, m
                  ORDER BY service_date, claim_id, line ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS addon_before,
         sum(CASE WHEN cpt_code = '99490' AND mins >= 20 THEN units ELSE 0 END) OVER (PARTITION BY patient_id, m, billing_npi) AS base_ok
  FROM l),
s AS (
  SELECT *, CASE cpt_code WHEN '99490' THEN CASE WHEN mins >= 20 THEN units ELSE 0 END
                          WHEN '99439' THEN CASE WHEN base_ok > 0 THEN
                               least(units, greatest(least(2, floor((mins - 20) / 20)) - addon_before, 0)) ELSE 0 END
            END AS units_supported
  FROM u)
SELECT claim_id, line, patient_id, strftime(m, '%Y-%m') AS service_month, billing_npi, service_date, cpt_code,
       units AS units_billed, CAST(units_supported AS BIGINT) AS units_supported, paid_amount,
       CASE WHEN units_supported IS NULL THEN NULL WHEN paid_amount = 0 THEN 0.0
            ELSE round_even((units - units_supported) * (paid_amount / units) * 100, 0) / 100 END AS overpayment,
       mins AS qualifying_minutes, date_20min, date_40min, date_60min
FROM s ORDER BY patient_id, m, service_date, claim_id, line;
"""


def period_bounds(period: str) -> tuple[str, str]:
    """First day of the period and first day after it: 2026Q1 -> ('2026-01-01', '2026-04-01'); 2026-02 likewise."""
    if "Q" in period.upper():
        y, qn = (int(x) for x in period.upper().split("Q"))
        first, last = 3 * qn - 2, 3 * qn
    else:
        y, first = (int(x) for x in period.split("-"))
        last = first
    return f"{y}-{first:02d}-01", f"{y + last // 12}-{last % 12 + 1:02d}-01"


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir")
    ap.add_argument("out_csv")
    ap.add_argument("--period", required=True, help="YYYYQn or YYYY-MM")
    ap.add_argument("--patient-months", help="also write every patient-month's minutes and dates to this CSV")
    a = ap.parse_args()
    first, after = period_bounds(a.period)
    sql = (SQL.replace("$dir", literal(str(Path(a.data_dir).resolve())))
           .replace("$first", f"DATE {literal(first)}").replace("$after", f"DATE {literal(after)}"))
    con = duckdb.connect()
    con.execute(sql)
    con.execute(f"COPY lines TO {literal(a.out_csv)} (HEADER, DELIMITER ',')")
    if a.patient_months:
        con.execute("COPY (SELECT patient_id, strftime(m, '%Y-%m') AS service_month, qualifying_minutes, date_20min, date_40min, "
                    f"date_60min FROM pm ORDER BY patient_id, m) TO {literal(a.patient_months)} (HEADER, DELIMITER ',')")
    print(con.execute("SELECT count(*) FROM lines").fetchone()[0], "claim lines", file=sys.stderr)


if __name__ == "__main__":
    main()
